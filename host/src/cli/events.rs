//! `spark events list|show`: the ledger of seen event keys.

use clap::{Args, Subcommand};
use serde_json::Value;
use spark_host::compile_regex;

use super::output::{self, Listing, text};
use super::remote::{Request, segment};
use super::{Context, Outcome};
use crate::views;

/// The ledger: every event key seen, with its group, time and context.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    List(List),
    Show(Show),
}

/// List seen events in key order.
#[derive(Debug, Args)]
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
pub struct Show {
    key: String,
    /// Print the event as one JSON object.
    #[arg(long)]
    json: bool,
}

impl EventsCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            EventsCommand::List(list) => list.run(context),
            EventsCommand::Show(show) => show.run(context),
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
