//! `spark outbox list`: mails and outputs waiting for a transport.

use clap::{Args, Subcommand};
use serde_json::json;
use spark_host::{OutboxItem, OutboxKind, format_time};

use super::output::{self, Table};
use super::{Context, Outcome};

/// The outbox: the mails and outputs handlers returned.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    List(List),
}

/// List outbox items in the order they were added.
#[derive(Debug, Args)]
pub struct List {
    /// One JSON object per line: id, event, handler, kind, data.
    #[arg(long)]
    json: bool,
}

impl OutboxCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            OutboxCommand::List(list) => list.run(context),
        }
    }
}

/// One line about an item: the recipients and subject of a mail, the channel and
/// payload of an output.
pub fn summary(item: &OutboxItem) -> String {
    let text = |name: &str| item.data.get(name).and_then(|v| v.as_str()).unwrap_or("");
    match item.kind {
        OutboxKind::Mail => {
            let to: Vec<&str> = item
                .data
                .get("to")
                .and_then(|to| to.as_array())
                .map(|to| to.iter().filter_map(|a| a.as_str()).collect())
                .unwrap_or_default();
            let template = match text("template") {
                "" => String::new(),
                name => format!(" [template {name}]"),
            };
            format!("to {}: {}{template}", to.join(", "), text("subject"))
        }
        OutboxKind::Output => {
            let payload = item
                .data
                .get("payload")
                .map(|p| p.to_string())
                .unwrap_or_default();
            format!("{}: {payload}", text("channel"))
        }
    }
}

impl List {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let tenant = context.tenant()?;
        let mut table = Table::new(&["ID", "EVENT", "HANDLER", "KIND", "WHAT"]);
        for item in tenant.outbox() {
            let item = item?;
            if self.json {
                output::json_line(&json!({
                    "id": item.id,
                    "event": item.event,
                    "handler": item.handler,
                    "kind": item.kind,
                    "data": item.data,
                    "created_at": format_time(item.created_at_ms),
                }))?;
            } else {
                table.row(vec![
                    item.id.to_string(),
                    item.event.clone(),
                    item.handler.clone(),
                    serde_json::to_value(item.kind)?
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    output::cell(&summary(&item), 70),
                ]);
            }
        }
        if !self.json {
            table.print("the outbox is empty")?;
        }
        Ok(Outcome::Done)
    }
}
