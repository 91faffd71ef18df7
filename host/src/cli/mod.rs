//! The `spark` command line: global options, dispatch, exit status.
//!
//! Each subcommand is a clap struct in its own file with `fn run(self, &Context)`.
//! Exit status: 0 when all went well, 1 when the command ran but some records or
//! deliveries failed (each reported), 2 when nothing was done.
//!
//! With `--server URL` (or SPARK_SERVER) a command goes through that server's HTTP API
//! (`remote.rs`) for the tenant of `--tenant`, and never opens the data dir: each
//! command asks [`Context::remote`] first, and prints what it got, from the API or
//! from the data dir, with the same code (the API answers with the `--json` fields of
//! `views.rs`). Commands that need the data dir itself are refused with `--server`
//! ([`refused_remotely`]); `check`, `completions` and `man` need no tenant and run
//! here.

mod apply;
mod call;
mod check;
mod completions;
mod dead;
mod events;
mod generate;
mod generators;
mod ingest;
mod mails;
mod module;
mod new;
mod outbox;
mod output;
mod process_sources;
mod progress;
mod remote;
mod report;
mod serve;
mod settings;
mod tokens;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use spark_host::{Spark, Tenant};

/// Spark: a sandboxed WebAssembly rules engine. Records go in, sources (WebAssembly
/// modules) turn them into events, each event key is processed once, and handlers turn
/// new events into effects (mails, outputs) kept in an outbox.
#[derive(Debug, Parser)]
#[command(name = "spark", version, max_term_width = 100)]
struct Cli {
    /// Where tenants keep their data.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "SPARK_DATA_DIR",
        default_value = "./spark-data"
    )]
    data_dir: PathBuf,

    /// Where compiled modules are cached [default: DATA_DIR/cache]. Data dirs may
    /// share one.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "SPARK_CACHE_DIR"
    )]
    cache_dir: Option<PathBuf>,

    /// The tenant to act on: a-z, 0-9, `-`, `_`; at most 64 characters.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "SPARK_TENANT",
        default_value = "default"
    )]
    tenant: String,

    /// The page cache of each tenant opened, in MiB [default: 256 for a command, 32
    /// for each tenant `spark serve` keeps open]. A larger one speeds up ingests of
    /// millions of records a little, at the cost of memory (a 1,000,000-record ingest
    /// peaks near 2.2 GiB with 1,024).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "SPARK_STORE_CACHE",
        value_name = "MIB",
        value_parser = clap::value_parser!(u64).range(1..=65_536)
    )]
    store_cache: Option<u64>,

    /// Show what modules write to stdout and stderr (logged at `info`; RUST_LOG overrides).
    #[arg(short, long, global = true, help_heading = "Global options")]
    verbose: bool,

    /// Run the command through the HTTP API of the `spark serve` at URL (e.g.
    /// http://127.0.0.1:7411) instead of on the data dir, for the tenant of --tenant.
    #[arg(
        long = "server",
        id = "server_url",
        global = true,
        help_heading = "Global options",
        env = "SPARK_SERVER",
        value_name = "URL"
    )]
    server: Option<String>,

    /// The access token for --server (`spark tokens add` makes one). Prefer
    /// SPARK_TOKEN: other users can see a command line.
    #[arg(
        long = "token",
        id = "server_token",
        global = true,
        help_heading = "Global options",
        env = "SPARK_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Check(check::Check),
    Call(call::Call),
    #[command(subcommand)]
    Module(module::ModuleCommand),
    Apply(apply::Apply),
    Ingest(ingest::Ingest),
    ProcessSources(process_sources::ProcessSources),
    #[command(subcommand)]
    Events(events::EventsCommand),
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    #[command(subcommand)]
    Mails(mails::MailsCommand),
    #[command(subcommand)]
    Dead(dead::DeadCommand),
    #[command(subcommand)]
    Generators(generators::GeneratorsCommand),
    Generate(generate::Generate),
    #[command(subcommand)]
    Settings(settings::SettingsCommand),
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    Serve(serve::Serve),
    Completions(completions::Completions),
    Man(completions::Man),
    New(new::New),
}

/// How a command that ran went.
pub enum Outcome {
    /// Everything worked: exit status 0.
    Done,
    /// It ran, but some records or deliveries failed (reported): exit status 1.
    Partial,
}

impl Outcome {
    fn from_failures(failed: bool) -> Self {
        if failed {
            Outcome::Partial
        } else {
            Outcome::Done
        }
    }
}

/// The page cache of a command's tenant, in MiB, unless `--store-cache` says: sled's
/// own default (1 GiB, which it undercounts) took a 1,000,000-record ingest to 2.2 GiB;
/// 256 MiB keeps it under 1 GiB, at a few percent of its speed (BENCHMARKS.md).
const COMMAND_STORE_CACHE: u64 = 256;

/// What every command gets: the global options.
pub struct Context {
    data_dir: PathBuf,
    cache_dir: Option<PathBuf>,
    /// `--store-cache`, in MiB, if given.
    store_cache: Option<u64>,
    tenant: String,
    /// The server of `--server`, if the command goes through one.
    remote: Option<remote::Remote>,
}

impl Context {
    /// The server the command goes through (`--server`), if any: then it must not open
    /// the data dir.
    fn remote(&self) -> Option<&remote::Remote> {
        self.remote.as_ref()
    }

    /// `--tenant`.
    fn tenant_name(&self) -> &str {
        &self.tenant
    }

    /// Opens the tenant of `--tenant` in `--data-dir`, which must exist: reading or
    /// running a mistyped tenant makes no empty one.
    fn tenant(&self) -> anyhow::Result<Tenant> {
        Ok(self.spark()?.existing_tenant(&self.tenant)?)
    }

    /// Opens the tenant of `--tenant` in `--data-dir`, making it if needed: for the
    /// commands that set a tenant up.
    fn tenant_to_set_up(&self) -> anyhow::Result<Tenant> {
        Ok(self.spark()?.tenant(&self.tenant)?)
    }

    /// The compiled-module cache, where there is one to use: `--cache-dir`, or the
    /// `cache/` of a data dir that exists (not with `--server`: the data dir is the
    /// server's).
    fn existing_cache_dir(&self) -> Option<PathBuf> {
        match &self.cache_dir {
            Some(dir) => Some(dir.clone()),
            None if self.remote.is_some() => None,
            None => self.data_dir.is_dir().then(|| self.data_dir.join("cache")),
        }
    }

    /// `--data-dir`, for what lives beside the tenants (tokens).
    fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The host over `--data-dir`, refused while `spark serve` holds it: the server
    /// owns its tenants, and a command must go through it.
    pub(crate) fn spark(&self) -> anyhow::Result<Spark> {
        // Each command that goes through a server asks `remote()` before this; one that
        // gets here with `--server` would open the server's data dir behind its back.
        anyhow::ensure!(
            self.remote.is_none(),
            "this command works on a data dir, not through --server"
        );
        if let Some(url) = crate::serve::lock::server_of(&self.data_dir) {
            anyhow::bail!(
                "the data dir `{}` is served by `spark serve` at {url}, which owns its \
                 tenants: run the command through it with `--server {url} --token TOKEN` \
                 (or SPARK_SERVER and SPARK_TOKEN), or stop it",
                self.data_dir.display()
            );
        }
        self.open_spark()
    }

    /// The host over `--data-dir`, without asking whether a server holds it.
    pub(crate) fn open_spark(&self) -> anyhow::Result<Spark> {
        let mut spark = match &self.cache_dir {
            Some(cache_dir) => Spark::open_with_cache(&self.data_dir, cache_dir)?,
            None => Spark::open(&self.data_dir)?,
        };
        spark.set_store_cache(self.store_cache(COMMAND_STORE_CACHE));
        Ok(spark)
    }

    /// `--store-cache` in bytes, or `default` MiB.
    pub(crate) fn store_cache(&self, default: u64) -> u64 {
        self.store_cache.unwrap_or(default) << 20
    }
}

/// Runs the command line; the exit status: 0 done, 1 done in part, 2 nothing done
/// (or bad usage).
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { 2 } else { 0 };
        }
    };
    match &cli.command {
        // A server logs what it does by default; a command only what goes wrong.
        Command::Serve(serve) => init_logging("info", serve.log_json),
        _ => init_logging(if cli.verbose { "info" } else { "warn" }, false),
    }
    let remote = match &cli.server {
        None => None,
        Some(url) => {
            let remote = match refused_remotely(&cli.command) {
                Some(why) => Err(why),
                None => remote::Remote::new(url, cli.token.clone(), &cli.tenant),
            };
            match remote {
                Ok(remote) => Some(remote),
                Err(error) => {
                    eprintln!("error: {}", spark_host::printable(&format!("{error:#}")));
                    return 2;
                }
            }
        }
    };
    let context = Context {
        data_dir: cli.data_dir,
        cache_dir: cli.cache_dir,
        store_cache: cli.store_cache,
        tenant: cli.tenant,
        remote,
    };
    let result = match cli.command {
        Command::Check(command) => command.run(&context),
        Command::Call(command) => command.run(&context),
        Command::Module(command) => command.run(&context),
        Command::Apply(command) => command.run(&context),
        Command::Ingest(command) => command.run(&context),
        Command::ProcessSources(command) => command.run(&context),
        Command::Events(command) => command.run(&context),
        Command::Outbox(command) => command.run(&context),
        Command::Mails(command) => command.run(&context),
        Command::Dead(command) => command.run(&context),
        Command::Generators(command) => command.run(&context),
        Command::Generate(command) => command.run(&context),
        Command::Settings(command) => command.run(&context),
        Command::Tokens(command) => command.run(&context),
        Command::Serve(command) => command.run(&context),
        Command::Completions(command) => command.run(),
        Command::Man(command) => command.run(),
        Command::New(command) => command.run(),
    };
    match result {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Partial) => 1,
        // A reader that went away (`spark events list | head`) is not an error.
        Err(error) if is_broken_pipe(&error) => 0,
        Err(error) => {
            eprintln!("error: {}", spark_host::printable(&format!("{error:#}")));
            // 2 says nothing was done; a run that stopped part-way did some of it.
            let part_done = matches!(
                error.downcast_ref::<spark_host::Error>(),
                Some(spark_host::Error::Interrupted { .. })
            ) || error.downcast_ref::<PartlyDone>().is_some();
            if part_done { 1 } else { 2 }
        }
    }
}

/// A command that stopped part-way after the server committed some of its work (an
/// `ingest` sent in several requests, one of which failed): exit status 1, as for a
/// run interrupted on a data dir.
#[derive(Debug)]
pub struct PartlyDone(pub String);

impl std::fmt::Display for PartlyDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PartlyDone {}

/// Why a command does not run with `--server`, if it does not: it needs the data dir
/// itself, or the API has no route for it.
fn refused_remotely(command: &Command) -> Option<anyhow::Error> {
    let why = match command {
        Command::Apply(_) => {
            "`apply` works on a data dir: a manifest sets module limits and settings the API \
             does not take yet. Through --server, use `module add`, `mails set` and \
             `generators add`, or apply it with the server stopped"
        }
        Command::Outbox(outbox::OutboxCommand::Prune(_)) => {
            "`outbox prune` works on a data dir: the API has no route for it"
        }
        Command::Tokens(_) => {
            "`tokens` manages the token files of a data dir: run it on the server's machine, \
             without --server (a new token counts from the server's next request)"
        }
        Command::Serve(_) => "`serve` serves a data dir; it does not run through --server",
        _ => return None,
    };
    Some(anyhow::anyhow!(
        "{why} (unset SPARK_SERVER, or leave out --server)"
    ))
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs go to stderr, from level `default` up (`RUST_LOG` overrides). Module output
/// is logged at `info` under `spark::guest`, shown with `--verbose`. `json`: one JSON
/// object per line, with the time, for a log collector.
fn init_logging(default: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        logs.json().init();
        return;
    }
    // Colour only for a person: not in a pipe or a file, nor where NO_COLOR is set.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    logs.with_ansi(colour).without_time().init();
}
