//! `spark module add|list|remove`: a tenant's modules.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;
use spark_host::{
    Clock, LimitOverrides, Limits, ModuleChange, ModuleCode, ModuleSpec, RegisteredCode, Tenant,
    printable,
};

use super::output::{self, Listing, text, texts};
use super::remote::{ApiError, Remote, Request, segment};
use super::{Context, Outcome};
use crate::views;

/// Register, list and remove a tenant's modules.
#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    Add(Add),
    List(List),
    Remove(Remove),
}

/// Register a module as a source for models and/or a handler for event groups.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark module add challenges_source.wasm --name challenges --source challenge --clock day\n  spark module add mailer.wasm --name mailer --handler '^challenge' --replace\n  spark module add builtin:mails --name mails --handler ."
)]
pub struct Add {
    /// The component (built with `cargo build --target wasm32-wasip2`), or
    /// `builtin:mails` for the built-in mail handler.
    file: PathBuf,
    /// The name to register it under; dead letters are kept by this name.
    #[arg(long)]
    name: String,
    /// A model whose records this module turns into events (repeatable).
    #[arg(long = "source", value_name = "MODEL")]
    sources: Vec<String>,
    /// A regex searched in event groups (unanchored, like `re.search`): the module
    /// handles events whose group matches one of them (repeatable).
    #[arg(long = "handler", value_name = "REGEX")]
    handlers: Vec<String>,
    /// How coarsely its calls read the run's time: exact, minute, hour or day (the
    /// run's time rounded down to the start of its UTC minute, hour or day). A source
    /// with a coarse clock is called once per record and period: a record ingested
    /// again unchanged in the same period skips it.
    #[arg(long, default_value = "exact", value_name = "CLOCK")]
    clock: Clock,
    /// Replace a module registered under the same name (it keeps its place in the
    /// handler order).
    #[arg(long)]
    replace: bool,
}

/// List the tenant's modules in registration order (the order handlers run in).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  spark module list\n  spark module list --json")]
pub struct List {
    /// One JSON object per line, with every limit.
    #[arg(long)]
    json: bool,
}

/// Unregister a module. Its dead letters stay until a module of that name retries them.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  spark module remove mailer")]
pub struct Remove {
    name: String,
}

impl ModuleCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            ModuleCommand::Add(add) => add.run(context),
            ModuleCommand::List(list) => list.run(context),
            ModuleCommand::Remove(remove) => remove.run(context),
        }
    }
}

impl Add {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let code = ModuleCode::load(&self.file)?;
        if let Some(remote) = context.remote() {
            return self.run_remote(remote, code);
        }
        let mut tenant = context.tenant_to_set_up()?;
        let spec = ModuleSpec {
            name: self.name.clone(),
            code,
            sources: self.sources,
            handlers: self.handlers,
            limits: LimitOverrides::default(),
            clock: self.clock,
        };
        let change = tenant.add_module(spec, self.replace)?;
        added(&self.name, context.tenant_name(), change)?;
        warn_unmatched_handlers(&tenant)?;
        Ok(Outcome::Done)
    }

    /// Through a server: without `--replace`, a name in use is refused here first, as on
    /// a data dir, and the upload says `replace=false`. Whether it was added, replaced
    /// or left unchanged is told from the module before and after.
    fn run_remote(self, remote: &Remote, code: ModuleCode) -> anyhow::Result<Outcome> {
        let before = match remote.all("/modules") {
            Ok(modules) => modules
                .into_iter()
                .find(|module| module["name"].as_str() == Some(self.name.as_str())),
            // Made by the upload, as `module add` makes it on a data dir.
            Err(error) if is_unknown_tenant(&error) => None,
            Err(error) => return Err(error),
        };
        if before.is_some() && !self.replace {
            return Err(spark_host::Error::ModuleExists(self.name).into());
        }
        let (body, native) = match &code {
            ModuleCode::Wasm(wasm) => (wasm.as_slice(), None),
            ModuleCode::Native(name) => (&[][..], Some(name.as_str())),
        };
        let mut request = Request::new(
            "PUT",
            remote.path(&format!("/modules/{}", segment(&self.name))),
        );
        for source in &self.sources {
            request = request.query("source", source.as_str());
        }
        for handler in &self.handlers {
            request = request.query("handler", handler.as_str());
        }
        // The look above gives the local command's message; `replace=false` keeps a
        // module registered meanwhile by someone else (409).
        let request = request
            .query("clock", self.clock.to_string())
            .query_opt("native", native)
            .query("replace", self.replace.to_string())
            .body(body);
        let after = remote.call(&request)?;
        let change = match before {
            None => ModuleChange::Added,
            Some(before) if before == after => ModuleChange::Unchanged,
            Some(_) => ModuleChange::Replaced,
        };
        added(&self.name, remote.tenant(), change)
    }
}

/// Whether a request failed because the tenant does not exist (yet).
fn is_unknown_tenant(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<ApiError>()
        .is_some_and(|error| error.kind == "unknown_tenant")
}

fn added(name: &str, tenant: &str, change: ModuleChange) -> anyhow::Result<Outcome> {
    let verb = match change {
        ModuleChange::Added => "added",
        ModuleChange::Replaced => "replaced",
        ModuleChange::Unchanged => "unchanged:",
    };
    output::line(format!("{verb} module `{name}` of tenant `{tenant}`"))?;
    Ok(Outcome::Done)
}

/// Warns on stderr of each handler regex that matches no group the tenant has seen:
/// not an error (the group may be still to come), but the usual reason a handler
/// never runs.
pub fn warn_unmatched_handlers(tenant: &Tenant) -> anyhow::Result<()> {
    let unmatched = tenant.unmatched_handlers()?;
    if unmatched.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 5;
    let groups = tenant.groups()?;
    let mut seen = groups
        .iter()
        .take(SHOWN)
        .map(|group| format!("`{group}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if groups.len() > SHOWN {
        seen.push_str(&format!(" and {} more", groups.len() - SHOWN));
    }
    for (module, regex) in unmatched {
        eprintln!(
            "{}",
            printable(&format!(
                "warning: handler regex `{regex}` of module `{module}` matches no group \
                 seen so far ({seen}): it runs only for groups still to come"
            ))
        );
    }
    Ok(())
}

impl List {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut listing = Listing::new(
            self.json,
            &[
                "NAME",
                "EXPORTS",
                "SOURCE FOR",
                "HANDLES",
                "CLOCK",
                "LIMITS (NOT DEFAULT)",
                "SHA256",
            ],
        );
        if let Some(remote) = context.remote() {
            let request = Request::new("GET", remote.path("/modules"));
            remote.each(request, |module| Ok(listing.item(module, row)?))?;
        } else {
            let tenant = context.tenant()?;
            for module in &tenant.modules()? {
                listing.item(&views::module(module), row)?;
            }
        }
        listing.finish(&format!(
            "tenant `{}` has no modules",
            context.tenant_name()
        ))?;
        Ok(Outcome::Done)
    }
}

/// A module's row. Its limits are those not at their default (the tenant's and the
/// module's own changes); --json shows every limit.
fn row(module: &Value) -> Vec<String> {
    let own: Vec<String> = Limits::default()
        .entries()
        .into_iter()
        .filter_map(|(limit, default)| {
            let value = &module["limits"][limit.name()];
            (value.as_u64() != Some(default)).then(|| format!("{limit}={value}"))
        })
        .collect();
    let code = RegisteredCode::from(text(module, "hash"));
    vec![
        text(module, "name"),
        texts(module, "exports", "+"),
        texts(module, "sources", ", "),
        texts(module, "handlers", ", "),
        text(module, "clock"),
        if own.is_empty() {
            "-".to_owned()
        } else {
            own.join(" ")
        },
        match &code {
            RegisteredCode::Component { sha256 } => sha256.chars().take(12).collect(),
            RegisteredCode::Native { name } => name.clone(),
        },
    ]
}

impl Remove {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        if let Some(remote) = context.remote() {
            let path = remote.path(&format!("/modules/{}", segment(&self.name)));
            remote.call(&Request::new("DELETE", path))?;
        } else {
            let mut tenant = context.tenant()?;
            tenant.remove_module(&self.name)?;
        }
        output::line(format!(
            "removed module `{}` of tenant `{}`",
            self.name,
            context.tenant_name()
        ))?;
        Ok(Outcome::Done)
    }
}
