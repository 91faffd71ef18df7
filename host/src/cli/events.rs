//! `spark events list|show|forget`: the ledger of seen event keys.

use clap::{Args, Subcommand};
use serde_json::Value;
use spark_host::{compile_regex, printable};

use super::output::{self, Listing, text};
use super::remote::{Request, segment};
use super::{Context, Outcome};
use crate::views;

/// The ledger: every event key seen, with its group, time and context.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    List(List),
    Show(Show),
    Forget(Forget),
}

/// List seen events in key order.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark events list --group '^challenge_ended$'\n  spark events list --json | jq -r .key"
)]
pub struct List {
    /// Only events whose group matches this regex (unanchored).
    #[arg(long, value_name = "REGEX")]
    group: Option<String>,
    /// One JSON object per line: key, group, created_at, context.
    #[arg(long)]
    json: bool,
}

/// Show one event, with the outbox items and failed deliveries it led to (through
/// --server: without the deliveries waiting for a retry, which the API does not list).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark events show challenge_created_42\n  spark events show challenge_created_42 --json"
)]
pub struct Show {
    key: String,
    /// Print the event as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Forget events, so that each key is new again: the next ingest, `process-sources`
/// or `generate` that makes it delivers it afresh, to the handlers registered then.
/// Their deliveries waiting for a retry and their dead letters go too. Their outbox
/// items stay (those not sent yet go out with the next `outbox send`) unless --outbox.
/// An unknown key is refused, and then nothing is forgotten.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark events forget challenge_created_42 --yes\n  \
                        spark events forget --group '^challenge_ends' --outbox --yes"
)]
pub struct Forget {
    /// The event keys to forget.
    #[arg(
        value_name = "KEY",
        required_unless_present = "group",
        conflicts_with = "group"
    )]
    keys: Vec<String>,
    /// Every event whose group matches this regex (unanchored) instead.
    #[arg(long, value_name = "REGEX")]
    group: Option<String>,
    /// Cancel their outbox items not sent yet too, so that what they lead to comes once,
    /// from their next delivery.
    #[arg(long)]
    outbox: bool,
    /// Forget them. Without it nothing is forgotten: a forgotten event's time, context
    /// and trace are gone.
    #[arg(long)]
    yes: bool,
    /// Print the summary as one JSON object: forgotten, pending, dead, cancelled, kept.
    #[arg(long)]
    json: bool,
}

impl Forget {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        // Checked first, so that a bad regex reads the same through a server.
        if let Some(group) = &self.group {
            compile_regex(group)?;
        }
        let which = match &self.group {
            Some(group) => format!("every event whose group matches `{group}`"),
            None => self.keys.join(", "),
        };
        anyhow::ensure!(
            self.yes,
            "`events forget` drops events from the ledger for good, so that they come again \
             as new: pass --yes to forget {which}"
        );
        let summary = match context.remote() {
            Some(remote) => {
                let mut request = Request::new("POST", remote.path("/ledger/forget"))
                    .query_opt("group", self.group.as_deref());
                for key in &self.keys {
                    request = request.query("key", key.as_str());
                }
                if self.outbox {
                    request = request.query("outbox", "true");
                }
                remote.call(&request)?
            }
            None => {
                let mut tenant = context.tenant()?;
                let forgotten = match &self.group {
                    Some(group) => tenant.forget_group(group)?,
                    None => tenant.forget_events(&self.keys)?,
                };
                let cancelled = if self.outbox && !forgotten.unsent.is_empty() {
                    tenant.outbox_sender()?.cancel_unsent(&forgotten.unsent)?
                } else {
                    0
                };
                views::forgotten(&forgotten, cancelled)
            }
        };
        let count = |name: &str| summary[name].as_u64().unwrap_or(0);
        if let Some(group) = &self.group
            && count("forgotten") == 0
        {
            anyhow::bail!(
                "no event's group matches `{group}`, so nothing was forgotten; `spark events \
                 list --group REGEX` shows which do"
            );
        }
        if count("kept") > 0 {
            eprintln!(
                "warning: {} outbox items of these events were not sent yet and stay: they go \
                 out with the next `outbox send` unless cancelled (`spark outbox cancel ID`; \
                 `outbox list` shows each item's event)",
                count("kept")
            );
        }
        if self.json {
            output::json_line(&summary)?;
        } else {
            let mut line = format!(
                "{} events forgotten, with {} deliveries waiting for a retry and {} dead letters",
                count("forgotten"),
                count("pending"),
                count("dead")
            );
            if count("cancelled") > 0 {
                line.push_str(&format!(
                    "; {} outbox items not sent yet cancelled",
                    count("cancelled")
                ));
            }
            output::line(line)?;
        }
        Ok(Outcome::Done)
    }
}

impl EventsCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            EventsCommand::List(list) => list.run(context),
            EventsCommand::Show(show) => show.run(context),
            EventsCommand::Forget(forget) => forget.run(context),
        }
    }
}

impl List {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        // Checked here either way, so that a bad regex reads the same through a server.
        let group = self.group.as_deref().map(compile_regex).transpose()?;
        let mut listing = Listing::new(self.json, &["KEY", "GROUP", "CREATED AT", "CONTEXT"]);
        if let Some(remote) = context.remote() {
            let request = Request::new("GET", remote.path("/events"))
                .query_opt("group", self.group.as_deref());
            remote.each(request, |event| Ok(listing.item(event, row)?))?;
        } else {
            let tenant = context.tenant()?;
            for entry in tenant.events() {
                let entry = entry?;
                if group
                    .as_ref()
                    .is_some_and(|regex| !regex.is_match(&entry.group))
                {
                    continue;
                }
                listing.item(&views::event(&entry), row)?;
            }
        }
        listing.finish("no events")?;
        Ok(Outcome::Done)
    }
}

/// An event's row: key, group, time, context (as compact JSON, cut).
fn row(event: &Value) -> Vec<String> {
    vec![
        text(event, "key"),
        text(event, "group"),
        text(event, "created_at"),
        output::cell(&event["context"].to_string(), 60),
    ]
}

/// What an event led to, as `views.rs` shows each: its outbox items, its deliveries
/// waiting for a retry and its dead letters.
struct Related {
    outbox: Vec<Value>,
    pending: Vec<Value>,
    dead: Vec<Value>,
}

impl Show {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let (event, related) = match context.remote() {
            Some(remote) => {
                let event = remote.get(&format!("/events/{}", segment(&self.key)))?;
                if self.json {
                    return print_json(&event);
                }
                let of_event = |item: &Value| item["event"].as_str() == Some(self.key.as_str());
                let mut outbox = remote.all("/outbox")?;
                outbox.retain(of_event);
                let mut dead = remote.all("/dead")?;
                dead.retain(of_event);
                let mut pending = Vec::new();
                let request =
                    Request::new("GET", remote.path("/pending")).query("event", self.key.as_str());
                remote.each(request, |delivery| {
                    pending.push(delivery.clone());
                    Ok(())
                })?;
                let related = Related {
                    outbox,
                    pending,
                    dead,
                };
                (event, related)
            }
            None => {
                let tenant = context.tenant()?;
                let entry = tenant.event(&self.key)?;
                let event = views::event(&entry);
                if self.json {
                    return print_json(&event);
                }
                let defaults = tenant.settings()?.mail;
                let mut related = Related {
                    outbox: Vec::new(),
                    pending: Vec::new(),
                    dead: Vec::new(),
                };
                for item in tenant.outbox() {
                    let item = item?;
                    if item.event == entry.key {
                        related.outbox.push(views::outbox_item(&item, &defaults));
                    }
                }
                for delivery in tenant.pending() {
                    let delivery = delivery?;
                    if delivery.event == entry.key {
                        related.pending.push(views::pending_delivery(&delivery));
                    }
                }
                for dead in tenant.dead() {
                    let dead = dead?;
                    if dead.event == entry.key {
                        related.dead.push(views::dead_letter(&dead));
                    }
                }
                (event, related)
            }
        };
        print_event(&event, &related)?;
        Ok(Outcome::Done)
    }
}

fn print_json(event: &Value) -> anyhow::Result<Outcome> {
    output::json_line(event)?;
    Ok(Outcome::Done)
}

fn print_event(event: &Value, related: &Related) -> anyhow::Result<()> {
    output::line(format!("key:        {}", text(event, "key")))?;
    output::line(format!("group:      {}", text(event, "group")))?;
    output::line(format!("created at: {}", text(event, "created_at")))?;
    let pretty = serde_json::to_string_pretty(&event["context"])?;
    output::line(format!(
        "context:    {}",
        pretty.replace('\n', "\n            ")
    ))?;
    print_trace(event)?;
    for item in &related.outbox {
        output::line(format!(
            "outbox:     #{} from `{}`: {}",
            text(item, "id"),
            text(item, "handler"),
            super::outbox::summary(item)
        ))?;
    }
    for delivery in &related.pending {
        output::line(format!(
            "pending:    `{}` after {} attempts: {}",
            text(delivery, "handler"),
            text(delivery, "attempts"),
            text(delivery, "error")
        ))?;
    }
    for letter in &related.dead {
        output::line(format!(
            "dead:       `{}` after {} attempts: {}",
            text(letter, "handler"),
            text(letter, "attempts"),
            text(letter, "error")
        ))?;
    }
    Ok(())
}

/// The event's trace: where it came from, the handlers its group matched, and each
/// delivery with its outcome, time, fuel and log. Module text is made printable.
fn print_trace(event: &Value) -> anyhow::Result<()> {
    let trace = &event["trace"];
    if trace.is_null() {
        output::line("trace:      none (seen before traces were kept)")?;
        return Ok(());
    }
    let origin = &trace["origin"];
    let from = match origin["kind"].as_str() {
        Some("source") => format!("source `{}`", text(origin, "module")),
        Some("generator") => format!("generator `{}`", text(origin, "generator")),
        Some("emitted") => format!(
            "emitted by `{}` handling `{}`",
            text(origin, "handler"),
            text(origin, "parent")
        ),
        _ => "unknown (seen before Spark kept traces)".to_owned(),
    };
    output::line(format!("from:       {}", printable(&from)))?;
    let handlers = output::texts(trace, "handlers", "`, `");
    if handlers.is_empty() {
        output::line(format!(
            "handlers:   none: no handler's regex matches group `{}`",
            printable(&text(event, "group"))
        ))?;
    } else {
        output::line(format!("handlers:   `{}`", printable(&handlers)))?;
    }
    for step in trace["steps"].as_array().into_iter().flatten() {
        output::line(format!("delivery:   {}", step_summary(step)))?;
        let log = text(step, "log");
        for line in log.lines() {
            output::line(format!("              | {}", printable(line)))?;
        }
    }
    if let Some(dropped) = trace["dropped"].as_u64().filter(|n| *n > 0) {
        output::line(format!("            ({dropped} earlier attempts not kept)"))?;
    }
    Ok(())
}

/// One delivery in a line: `mailer` attempt 1 at TIME: done in 0.4 ms, 1,234 fuel;
/// 1 outbox item, 2 events emitted (a, b).
fn step_summary(step: &Value) -> String {
    let micros = step["micros"].as_u64().unwrap_or(0);
    let mut line = format!(
        "`{}` attempt {} at {}: {} in {:.1} ms",
        text(step, "handler"),
        text(step, "attempt"),
        text(step, "at"),
        text(step, "outcome"),
        micros as f64 / 1000.0
    );
    if let Some(fuel) = step["fuel"].as_u64() {
        line.push_str(&format!(", {fuel} fuel"));
    }
    if let Some(error) = step["error"].as_str() {
        line.push_str(&format!(": {error}"));
    } else {
        let effects = step["effects"].as_u64().unwrap_or(0);
        let emitted = step["emitted"].as_u64().unwrap_or(0);
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        line.push_str(&format!("; {effects} outbox item{}", plural(effects)));
        if emitted > 0 {
            line.push_str(&format!(
                ", {emitted} event{} emitted ({})",
                plural(emitted),
                output::texts(step, "emitted_keys", ", ")
            ));
        }
    }
    printable(&line).into_owned()
}
