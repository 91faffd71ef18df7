//! `spark outbox list`: mails and outputs waiting for a transport.

use clap::{Args, Subcommand};
use serde_json::json;
use spark_host::{OutboxItem, OutboxKind, OutboxStatus, Transport, format_time};

use super::output::{self, Table};
use super::{Context, Outcome};

/// The outbox: the mails and outputs handlers returned.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    List(List),
    Send(Send),
}

/// List outbox items in the order they were added.
#[derive(Debug, Args)]
pub struct List {
    /// Only the items not sent yet.
    #[arg(long)]
    pending: bool,
    /// One JSON object per line: id, event, handler, kind, data, status, attempts, error.
    #[arg(long)]
    json: bool,
}

/// Send the pending mails, each once: sent mails are marked sent; a mail that fails
/// stays pending with its error for the next `outbox send`. Outputs are not sent.
#[derive(Debug, Args)]
pub struct Send {
    /// `file:DIR` (one .eml per mail), `smtp://HOST:PORT`, `smtps://HOST:PORT` or
    /// `stdout`; default: the tenant's `[mails] transport`. SMTP credentials come from
    /// SPARK_SMTP_USERNAME and SPARK_SMTP_PASSWORD; SPARK_SMTP_TLS is `opportunistic`
    /// (the default), `required` or `off`.
    #[arg(long)]
    transport: Option<String>,
    /// Print the summary as one JSON object: sent, failed (on stderr with `stdout`).
    #[arg(long)]
    json: bool,
}

impl OutboxCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            OutboxCommand::List(list) => list.run(context),
            OutboxCommand::Send(send) => send.run(context),
        }
    }
}

impl Send {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut tenant = context.tenant()?;
        let transport = match self.transport {
            Some(transport) => transport,
            None => tenant.settings()?.mail.transport.ok_or_else(|| {
                anyhow::anyhow!(
                    "no transport: pass --transport, or set `transport` under [mails] in the manifest"
                )
            })?,
        };
        let transport: Transport = transport.parse()?;
        let report = tenant.send_outbox(&transport)?;
        for (id, why) in &report.problems {
            eprintln!("error: outbox item {id} was not sent (it stays pending): {why}");
        }
        let summary = if self.json {
            serde_json::to_string(&report)?
        } else {
            format!("{} mails sent, {} failed", report.sent, report.failed)
        };
        // With the `stdout` transport the messages are stdout, so the summary goes aside.
        if transport == Transport::Stdout {
            eprintln!("{summary}");
        } else {
            output::line(summary)?;
        }
        Ok(Outcome::from_failures(report.failed > 0))
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
            format!("to {}: {}", to.join(", "), text("subject"))
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
        let mut table = Table::new(&["ID", "EVENT", "HANDLER", "KIND", "STATUS", "WHAT"]);
        for item in tenant.outbox() {
            let item = item?;
            if self.pending && item.status != OutboxStatus::Pending {
                continue;
            }
            if self.json {
                output::json_line(&json!({
                    "id": item.id,
                    "event": item.event,
                    "handler": item.handler,
                    "kind": item.kind,
                    "data": item.data,
                    "created_at": format_time(item.created_at_ms),
                    "status": item.status,
                    "attempts": item.attempts,
                    "error": item.error,
                }))?;
            } else {
                let status = match (&item.status, &item.error) {
                    (OutboxStatus::Sent, _) => "sent".to_owned(),
                    (OutboxStatus::Pending, None) => "pending".to_owned(),
                    (OutboxStatus::Pending, Some(_)) => format!("failed x{}", item.attempts),
                };
                let kind = match item.kind {
                    OutboxKind::Mail => "mail",
                    OutboxKind::Output => "output",
                };
                table.row(vec![
                    item.id.to_string(),
                    item.event.clone(),
                    item.handler.clone(),
                    kind.to_owned(),
                    status,
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
