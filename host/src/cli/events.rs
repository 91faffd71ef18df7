//! `spark events list|show`: the ledger of seen event keys.

use clap::{Args, Subcommand};
use spark_host::{compile_regex, format_time};

use super::output::{self, Table};
use super::{Context, Outcome};

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

/// Show one event, with the outbox items and failed deliveries it led to.
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
        let group = self.group.as_deref().map(compile_regex).transpose()?;
        let tenant = context.tenant()?;
        let mut table = Table::new(&["KEY", "GROUP", "CREATED AT", "CONTEXT"]);
        for entry in tenant.events() {
            let entry = entry?;
            if group
                .as_ref()
                .is_some_and(|regex| !regex.is_match(&entry.group))
            {
                continue;
            }
            if self.json {
                output::json_line(&crate::views::event(&entry))?;
            } else {
                table.row(vec![
                    entry.key.clone(),
                    entry.group.clone(),
                    format_time(entry.created_at_ms),
                    output::cell(&entry.context, 60),
                ]);
            }
        }
        if !self.json {
            table.print("no events")?;
        }
        Ok(Outcome::Done)
    }
}

impl Show {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let tenant = context.tenant()?;
        let entry = tenant.event(&self.key)?;
        if self.json {
            output::json_line(&crate::views::event(&entry))?;
            return Ok(Outcome::Done);
        }
        output::line(format!("key:        {}", entry.key))?;
        output::line(format!("group:      {}", entry.group))?;
        output::line(format!("created at: {}", format_time(entry.created_at_ms)))?;
        let pretty = serde_json::to_string_pretty(&crate::views::raw_json(&entry.context))?;
        output::line(format!(
            "context:    {}",
            pretty.replace('\n', "\n            ")
        ))?;
        for item in tenant.outbox() {
            let item = item?;
            if item.event == entry.key {
                output::line(format!(
                    "outbox:     #{} from `{}`: {}",
                    item.id,
                    item.handler,
                    super::outbox::summary(&item)
                ))?;
            }
        }
        for pending in tenant.pending() {
            let pending = pending?;
            if pending.event == entry.key {
                output::line(format!(
                    "pending:    `{}` after {} attempts: {}",
                    pending.handler, pending.attempts, pending.error
                ))?;
            }
        }
        for dead in tenant.dead() {
            let dead = dead?;
            if dead.event == entry.key {
                output::line(format!(
                    "dead:       `{}` after {} attempts: {}",
                    dead.handler, dead.attempts, dead.error
                ))?;
            }
        }
        Ok(Outcome::Done)
    }
}
