//! `spark outbox list`, `send`, `retry` and `prune`: the mails and outputs handlers
//! returned, and sending them.

use clap::builder::TypedValueParser as _;
use clap::{Args, Subcommand};
use serde_json::json;
use spark_host::{
    DEFAULT_CONCURRENCY, Destinations, GIVE_UP_AFTER, OutboxItem, OutboxKind, OutboxPayload,
    OutboxStatus, Route, Transport, parse_time,
};

use super::output::{self, Table};
use super::progress::Progress;
use super::{Context, Outcome};

/// The outbox: the mails and outputs handlers returned.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    List(List),
    Send(Send),
    Retry(Retry),
    Prune(Prune),
}

/// List outbox items in the order they were added.
#[derive(Debug, Args)]
pub struct List {
    /// Only the items waiting to be sent (not those sent or set aside as failed).
    #[arg(long)]
    pending: bool,
    /// One JSON object per line: id, event, handler, kind, data, status, attempts, error.
    #[arg(long)]
    json: bool,
}

/// Send the pending mails and outputs, each once: a sent item is marked sent; one that
/// fails through its route (a refused connection, a timeout, a temporary refusal) stays
/// pending with its error for the next `outbox send`; one that fails by its own fault
/// (an address that can never be valid, a receiver's permanent refusal) is set aside as
/// failed (see `outbox retry`); one whose route has no transport waits.
#[derive(Debug, Args)]
pub struct Send {
    /// Where mails go: `file:DIR` (one .eml per mail), `smtp://HOST:PORT`,
    /// `smtps://HOST:PORT` or `stdout`; default: the tenant's `[mails] transport`.
    /// SMTP credentials come from SPARK_SMTP_USERNAME and SPARK_SMTP_PASSWORD;
    /// SPARK_SMTP_TLS is `opportunistic` (the default), `required` or `off`;
    /// SPARK_SMTP_CA_FILE names a PEM file of a CA to trust besides the usual roots.
    #[arg(long, value_name = "TRANSPORT")]
    transport: Option<String>,
    /// Where the outputs of CHANNEL go: `http(s)://…` (the payload POSTed, signed with
    /// SPARK_OUTPUT_SECRET if set), `file:DIR` (one .json per output) or `stdout`;
    /// default: the channel's entry under [outputs] in the manifest. Repeat for
    /// several channels.
    #[arg(long = "output", value_name = "CHANNEL=TRANSPORT", value_parser = channel_transport)]
    outputs: Vec<(String, Transport)>,
    /// How many items to send at once; their order is then not kept. Anything going
    /// to stdout makes it one at a time, in id order.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=64).map(usize::from))]
    concurrency: usize,
    /// Print the summary as one JSON object: sent, failed, parked, waiting, skipped (on
    /// stderr when anything goes to `stdout`).
    #[arg(long)]
    json: bool,
}

fn channel_transport(text: &str) -> Result<(String, Transport), String> {
    let (channel, transport) = text
        .split_once('=')
        .ok_or("write CHANNEL=TRANSPORT, e.g. audit=file:audit")?;
    spark_host::check_channel(channel).map_err(|why| format!("the {why}"))?;
    let transport = transport
        .parse()
        .map_err(|error: spark_host::Error| error.to_string())?;
    Ok((channel.to_owned(), transport))
}

/// Make failed items (set aside by `outbox send`) pending again, for the next `outbox
/// send`: after the address, the template or the receiver was mended.
#[derive(Debug, Args)]
pub struct Retry {
    /// The items' ids; default: every failed item.
    #[arg(value_name = "ID")]
    ids: Vec<u64>,
    /// Print the summary as one JSON object: retried.
    #[arg(long)]
    json: bool,
}

impl Retry {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut tenant = context.tenant()?;
        let ids = (!self.ids.is_empty()).then_some(self.ids.as_slice());
        let retried = tenant.retry_outbox(ids)?;
        if self.json {
            output::line(json!({ "retried": retried }).to_string())?;
        } else {
            output::line(format!("{retried} failed items are pending again"))?;
        }
        Ok(Outcome::Done)
    }
}

/// Remove sent items from the outbox (pending ones always stay); their ids are never
/// given again. `outbox list` and `send` read the whole outbox: prune to keep them quick.
#[derive(Debug, Args)]
pub struct Prune {
    /// Only items sent before TIME (`2024-05-10`, `2024-05-10T12:00:00Z`); default:
    /// every sent item.
    #[arg(long, value_name = "TIME")]
    before: Option<String>,
    /// Print the summary as one JSON object: removed, kept.
    #[arg(long)]
    json: bool,
}

impl Prune {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let before = match self.before.as_deref() {
            Some(time) => parse_time(time)?,
            None => i64::MAX,
        };
        let mut tenant = context.tenant()?;
        let pruned = tenant.prune_outbox(before)?;
        if self.json {
            output::line(serde_json::to_string(&pruned)?)?;
        } else {
            output::line(format!(
                "{} sent items removed, {} kept",
                pruned.removed, pruned.kept
            ))?;
        }
        Ok(Outcome::Done)
    }
}

impl OutboxCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            OutboxCommand::List(list) => list.run(context),
            OutboxCommand::Send(send) => send.run(context),
            OutboxCommand::Retry(retry) => retry.run(context),
            OutboxCommand::Prune(prune) => prune.run(context),
        }
    }
}

impl Send {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut tenant = context.tenant()?;
        let mails = self.transport.as_deref().map(str::parse).transpose()?;
        let destinations = Destinations::new(&tenant.settings()?, mails, self.outputs)?;
        if destinations.is_empty() {
            anyhow::bail!(
                "no transport: pass --transport (mails) or --output CHANNEL=TRANSPORT, or set \
                 `transport` under [mails] or a channel under [outputs] in the manifest"
            );
        }
        let progress = Progress::new();
        let report =
            tenant.send_outbox(&destinations, self.concurrency, &mut |report, total| {
                progress
                    .show(|| format!("{} of {total} sent, {} failed", report.sent, report.failed));
            })?;
        drop(progress);
        for problem in &report.problems {
            let (id, why) = (problem.id, spark_host::printable(&problem.why));
            if problem.parked {
                eprintln!(
                    "error: outbox item {id} was not sent and is set aside as failed \
                     (`spark outbox retry {id}` once mended): {why}"
                );
            } else {
                eprintln!("error: outbox item {id} was not sent (it stays pending): {why}");
            }
        }
        for (route, count) in &report.unrouted {
            let how = match route {
                Route::Mails => "pass --transport or set `transport` under [mails]".to_owned(),
                Route::Channel(channel) => {
                    format!("pass --output {channel}=TRANSPORT or set `{channel}` under [outputs]")
                }
            };
            eprintln!("warning: {route}: {count} waiting, no transport ({how})");
        }
        for (route, count) in &report.given_up {
            eprintln!(
                "error: {route}: {GIVE_UP_AFTER} failures in a row, so {count} more were not \
                 tried; they wait for the next `outbox send`"
            );
        }
        let summary = if self.json {
            serde_json::to_string(&report)?
        } else {
            let mut summary = format!("{} sent, {} failed", report.sent, report.failed);
            if report.parked > 0 {
                summary.push_str(&format!(", {} set aside", report.parked));
            }
            if report.skipped > 0 {
                summary.push_str(&format!(", {} not tried", report.skipped));
            }
            if report.waiting > 0 {
                summary.push_str(&format!(", {} waiting for a transport", report.waiting));
            }
            summary
        };
        // When items go to stdout they are stdout, so the summary goes aside.
        if destinations.prints() {
            eprintln!("{summary}");
        } else {
            output::line(summary)?;
        }
        Ok(Outcome::from_failures(report.failed + report.parked > 0))
    }
}

/// One line about an item: the recipients and subject of a mail, the channel and
/// payload of an output.
pub fn summary(item: &OutboxItem) -> String {
    match &item.payload {
        OutboxPayload::Mail(mail) => format!("to {}: {}", mail.to.join(", "), mail.subject),
        OutboxPayload::Output(output) => format!("{}: {}", output.channel, output.payload),
    }
}

impl List {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let tenant = context.tenant()?;
        // A mail is listed as it will be sent: the tenant's sender fills in its own.
        let defaults = tenant.settings()?.mail;
        let mut table = Table::new(&["ID", "EVENT", "HANDLER", "KIND", "STATUS", "WHAT"]);
        for item in tenant.outbox() {
            let item = item?;
            if self.pending && item.status != OutboxStatus::Pending {
                continue;
            }
            if self.json {
                output::json_line(&crate::views::outbox_item(&item, &defaults))?;
            } else {
                let status = match (&item.status, &item.error) {
                    (OutboxStatus::Sent, _) => "sent".to_owned(),
                    (OutboxStatus::Pending, None) => "pending".to_owned(),
                    (OutboxStatus::Pending, Some(_)) => format!("failed x{}", item.attempts),
                    (OutboxStatus::Failed, _) => "set aside".to_owned(),
                };
                let kind = match item.kind() {
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
