//! `spark call`: one call of a module on a sample record or event, nothing stored.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;
use spark_host::{Spark, TrialInput, printable};

use super::remote::{Request, segment};
use super::report::logical_now;
use super::{Context, Outcome, output};
use crate::views;

/// Call a module once, with a record (for its source) or an event (for its handler),
/// under its limits and clock, and show what it returned, what it logged, the fuel and
/// time it used, or why it failed. Nothing is stored and nothing it returns goes
/// further. Exit status 1 when the call failed.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  spark call challenges --model challenge --record record.json
  echo '{\"group\": \"challenge_won\", \"key\": \"k1\", \"context\": {}}' | spark call mailer --event -
  spark call target/wasm32-wasip2/release/orders.wasm --model order --record order.json")]
pub struct Call {
    /// A registered module's name, or a component file (a path that exists) to try
    /// before registering it, under the default limits.
    module: String,
    /// A record for the module's source: a file holding one JSON object with an `id`,
    /// or `-` for stdin.
    #[arg(
        long,
        value_name = "FILE",
        requires = "model",
        conflicts_with = "event"
    )]
    record: Option<PathBuf>,
    /// The model of --record.
    #[arg(long, requires = "record")]
    model: Option<String>,
    /// An event for the module's handler: a file holding `{"group": ..., "key": ...,
    /// "context": {...}}`, or `-` for stdin.
    #[arg(long, value_name = "FILE", required_unless_present = "record")]
    event: Option<PathBuf>,
    /// The logical time the module sees (e.g. 2024-05-01); default: now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Print one JSON object: `ok`, `events` or `effects`, `error`, `log`, `fuel`,
    /// `micros`.
    #[arg(long)]
    json: bool,
}

impl Call {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let now_ms = logical_now(self.now.as_deref())?;
        let (text, model) = match (&self.record, &self.model, &self.event) {
            (Some(file), Some(model), _) => (read(file)?, Some(model.as_str())),
            (_, _, Some(file)) => (read(file)?, None),
            // clap requires one or the other.
            _ => anyhow::bail!("give --record FILE --model MODEL, or --event FILE"),
        };
        let input = match model {
            Some(model) => TrialInput::record(model, &text)?,
            None => TrialInput::event(&text)?,
        };
        let file = Path::new(&self.module);
        let (name, shown) = if file.is_file() {
            // A file needs no tenant and no data dir, so it runs here even with --server.
            let wasm = spark_host::read_component(file)?;
            let name = format!("`{}`", file.display());
            let cache = context.existing_cache_dir();
            let trial = Spark::try_component(&name, &wasm, &input, now_ms, cache)?;
            (name, views::trial(&trial))
        } else if let Some(remote) = context.remote() {
            // Checked here first, as on a data dir; the server checks it again.
            let request = Request::new(
                "POST",
                remote.path(&format!("/modules/{}/call", segment(&self.module))),
            )
            .query_opt("model", model)
            .query_opt("now", self.now.as_deref())
            .body(text.as_bytes());
            (format!("`{}`", self.module), remote.call(&request)?)
        } else {
            let mut tenant = context.tenant()?;
            let trial = tenant.try_module(&self.module, &input, now_ms)?;
            (format!("`{}`", self.module), views::trial(&trial))
        };
        if self.json {
            output::json_line(&shown)?;
        } else {
            print(&name, input.interface(), &shown)?;
        }
        Ok(Outcome::from_failures(shown["ok"] != true))
    }
}

/// The text of `file`, or of stdin for `-`.
fn read(file: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
    }
    Ok(text)
}

/// The call (`views::trial`) for a person: what `name`'s `interface` returned, or why
/// it failed, then its log.
fn print(name: &str, interface: &str, shown: &Value) -> anyhow::Result<()> {
    let mut cost = format!(
        "{:.2} ms",
        shown["micros"].as_u64().unwrap_or(0) as f64 / 1000.0
    );
    if let Some(fuel) = shown["fuel"].as_u64() {
        cost.push_str(&format!(", {fuel} of {} fuel", shown["fuel_limit"]));
    }
    let returned = |what: &str, lines: Vec<String>| -> anyhow::Result<()> {
        output::line(format!(
            "{name} ({interface}) returned {} in {cost}",
            counted(lines.len(), what)
        ))?;
        for line in lines {
            output::line(printable(&format!("  {line}")).into_owned())?;
        }
        Ok(())
    };
    let list = |name: &str| shown[name].as_array().cloned().unwrap_or_default();
    if shown["ok"] != true {
        eprintln!(
            "{}",
            printable(&format!(
                "error: {name} ({interface}) failed after {cost}: {}",
                output::text(&shown["error"], "message")
            ))
        );
    } else if interface == "source" {
        returned("event", list("events").iter().map(event_line).collect())?;
    } else {
        returned("effect", list("effects").iter().map(effect_line).collect())?;
    }
    let log = output::text(shown, "log");
    let log = log.trim_start_matches('\n').trim_end();
    if !log.is_empty() {
        output::line("log:")?;
        for line in log.lines() {
            output::line(format!("  | {}", printable(line)))?;
        }
    }
    Ok(())
}

fn event_line(event: &Value) -> String {
    format!(
        "{} (group {}): {}",
        output::text(event, "key"),
        output::text(event, "group"),
        event["context"]
    )
}

fn effect_line(effect: &Value) -> String {
    match effect["kind"].as_str() {
        Some("emit") => format!("emit {}", event_line(&effect["event"])),
        Some("mail") => {
            let mail = &effect["mail"];
            let template = mail["template"]
                .as_str()
                .map(|template| format!(" (template `{template}`)"))
                .unwrap_or_default();
            format!(
                "mail to {}: {}{template}",
                output::texts(mail, "to", ", "),
                output::text(mail, "subject")
            )
        }
        _ => format!(
            "output `{}`: {}",
            output::text(effect, "channel"),
            effect["payload"]
        ),
    }
}

fn counted(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
