//! `spark outbox list`, `send`, `retry`, `prune`, `cancel` and `rerender`: the mails
//! and outputs handlers returned, sending them, and mending those not sent yet.

use clap::builder::TypedValueParser as _;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use spark_host::{
    DEFAULT_CONCURRENCY, Destinations, GIVE_UP_AFTER, OutboxStatus, Route, Transport, parse_time,
};

use super::output::{self, Listing, text, texts};
use super::progress::Progress;
use super::remote::Request;
use super::{Context, Outcome};
use crate::views;

/// The outbox: the mails and outputs handlers returned.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    List(List),
    Send(Send),
    Retry(Retry),
    Prune(Prune),
    Cancel(Cancel),
    Rerender(Rerender),
}

/// List outbox items in the order they were added.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  spark outbox list --pending\n  spark outbox list --json")]
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
#[command(
    after_help = "Examples:\n  spark outbox send --transport smtp://mail.example.com:587\n  spark outbox send --transport stdout --output webhook=http://127.0.0.1:8080/hook --concurrency 8"
)]
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

pub(super) fn channel_transport(text: &str) -> Result<(String, Transport), String> {
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
#[command(after_help = "Examples:\n  spark outbox retry\n  spark outbox retry 12 13 --json")]
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
        let retried = match context.remote() {
            Some(remote) => {
                let mut request = Request::new("POST", remote.path("/outbox/retry"));
                for id in &self.ids {
                    request = request.query("id", id.to_string());
                }
                let answer = remote.call(&request)?;
                answer["retried"]
                    .as_u64()
                    .ok_or_else(|| anyhow::anyhow!("the server's answer has no `retried`"))?
            }
            None => {
                let mut tenant = context.tenant()?;
                let ids = (!self.ids.is_empty()).then_some(self.ids.as_slice());
                tenant.retry_outbox(ids)?
            }
        };
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
#[command(
    after_help = "Examples:\n  spark outbox prune --before 2024-05-01\n  spark outbox prune --json"
)]
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

/// Remove outbox items that were never sent (pending, or set aside as failed), for
/// good: they never go out. Their ids are never given again. A sent item is refused
/// (`outbox prune` removes those); so is an unknown id, and then nothing is removed.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  spark outbox cancel 12 13 --yes")]
pub struct Cancel {
    /// The items' ids (`outbox list` shows them).
    #[arg(value_name = "ID", required = true)]
    ids: Vec<u64>,
    /// Remove them. Without it nothing is removed: a cancelled item cannot be brought
    /// back.
    #[arg(long)]
    yes: bool,
    /// Print the summary as one JSON object: cancelled.
    #[arg(long)]
    json: bool,
}

impl Cancel {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let ids: Vec<String> = self.ids.iter().map(u64::to_string).collect();
        anyhow::ensure!(
            self.yes,
            "`outbox cancel` removes items for good, and they are never sent: pass --yes to \
             remove {}",
            ids.join(", ")
        );
        let cancelled = match context.remote() {
            Some(remote) => {
                let mut request = Request::new("POST", remote.path("/outbox/cancel"));
                for id in &ids {
                    request = request.query("id", id.as_str());
                }
                count_of(&remote.call(&request)?, "cancelled")?
            }
            None => context.tenant()?.cancel_outbox(&self.ids)?,
        };
        if self.json {
            output::line(json!({ "cancelled": cancelled }).to_string())?;
        } else {
            output::line(format!("{cancelled} outbox items cancelled"))?;
        }
        Ok(Outcome::Done)
    }
}

/// Render the mails not sent yet (pending, or set aside) again with the tenant's
/// templates of now, after a template was added or mended: each keeps its id, so its
/// Message-ID, and its status (one set aside stays so until `outbox retry`). A mail
/// that names no sender needs no rerender for a new one: the tenant's sender is filled
/// in when it is sent. Exit status 1 when some mail's template did not render (it
/// keeps its text; its `render_error` says why).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  spark mails set order_shipped order_shipped.txt\n  \
                        spark outbox rerender\n  spark outbox send"
)]
pub struct Rerender {
    /// The mails' ids; default: every mail not sent yet. An output, a sent item or an
    /// unknown id is refused, and then nothing changes.
    #[arg(value_name = "ID")]
    ids: Vec<u64>,
    /// Print the summary as one JSON object: rerendered, failed, unchanged (mails
    /// without a template to render).
    #[arg(long)]
    json: bool,
}

impl Rerender {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let ids = (!self.ids.is_empty()).then_some(self.ids.as_slice());
        let report = match context.remote() {
            Some(remote) => {
                let mut request = Request::new("POST", remote.path("/outbox/rerender"));
                for id in ids.into_iter().flatten() {
                    request = request.query("id", id.to_string());
                }
                let report = remote.call(&request)?;
                let failed = count_of(&report, "failed")?;
                if failed > 0 {
                    eprintln!(
                        "error: {failed} mails did not render (the server logs why; `outbox \
                         list` shows each one's render_error)"
                    );
                }
                report
            }
            None => {
                let report = context.tenant()?.rerender_outbox(ids)?;
                for (id, why) in &report.problems {
                    eprintln!(
                        "error: outbox item {id} did not render and keeps its text: {}",
                        spark_host::printable(why)
                    );
                }
                serde_json::to_value(&report)?
            }
        };
        let failed = count_of(&report, "failed")?;
        if self.json {
            output::json_line(&report)?;
        } else {
            output::line(format!(
                "{} mails rendered again, {failed} failed to render, {} without a template",
                count_of(&report, "rerendered")?,
                count_of(&report, "unchanged")?
            ))?;
        }
        Ok(Outcome::from_failures(failed > 0))
    }
}

/// The integer field `name` of a summary (the API's answer, or the same made here).
fn count_of(summary: &Value, name: &str) -> anyhow::Result<u64> {
    summary[name]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("the summary has no `{name}`: {summary}"))
}

impl OutboxCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            OutboxCommand::List(list) => list.run(context),
            OutboxCommand::Send(send) => send.run(context),
            OutboxCommand::Retry(retry) => retry.run(context),
            OutboxCommand::Prune(prune) => prune.run(context),
            OutboxCommand::Cancel(cancel) => cancel.run(context),
            OutboxCommand::Rerender(rerender) => rerender.run(context),
        }
    }
}

/// What `outbox send --json` prints, as the API answers it too.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SendCounts {
    sent: u64,
    failed: u64,
    parked: u64,
    waiting: u64,
    skipped: u64,
}

impl Send {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        if let Some(remote) = context.remote() {
            return self.run_remote(remote);
        }
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
        let counts = SendCounts {
            sent: report.sent,
            failed: report.failed,
            parked: report.parked,
            waiting: report.waiting,
            skipped: report.skipped,
        };
        finish_send(&counts, self.json, destinations.prints())
    }

    /// Through a server: it sends with the tenant's own transports (those of its
    /// settings), so the flags that name others are refused rather than ignored. The
    /// API answers the counts only: which items failed, the server logs, and `outbox
    /// list` shows their errors.
    fn run_remote(self, remote: &super::remote::Remote) -> anyhow::Result<Outcome> {
        anyhow::ensure!(
            self.transport.is_none()
                && self.outputs.is_empty()
                && self.concurrency == DEFAULT_CONCURRENCY,
            "through --server, `outbox send` sends with the tenant's own transports (the \
             `transport` under [mails] and the [outputs] of its settings), as the server \
             does by itself: --transport, --output and --concurrency are for a data dir"
        );
        let settings = remote.get("/settings")?;
        let no_mails = settings["mail"]["transport"].is_null();
        let no_outputs = settings["outputs"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty);
        if no_mails && no_outputs {
            anyhow::bail!(
                "no transport: the tenant's settings have no `transport` under [mails] and no \
                 channel under [outputs], and the server sends through those only"
            );
        }
        let report = remote.call(&Request::new("POST", remote.path("/outbox/send")))?;
        let counts: SendCounts = serde_json::from_value(report)
            .map_err(|error| anyhow::anyhow!("the server's report is not one: {error}"))?;
        if counts.failed + counts.parked > 0 {
            eprintln!(
                "error: {} items were not sent (the server logs why; `outbox list` shows each \
                 one's error)",
                counts.failed + counts.parked
            );
        }
        finish_send(&counts, self.json, false)
    }
}

/// Prints the summary of a sending (on stderr when items went to stdout, which they
/// are); the outcome follows the failures.
fn finish_send(counts: &SendCounts, json: bool, prints: bool) -> anyhow::Result<Outcome> {
    let summary = if json {
        serde_json::to_string(counts)?
    } else {
        let mut summary = format!("{} sent, {} failed", counts.sent, counts.failed);
        if counts.parked > 0 {
            summary.push_str(&format!(", {} set aside", counts.parked));
        }
        if counts.skipped > 0 {
            summary.push_str(&format!(", {} not tried", counts.skipped));
        }
        if counts.waiting > 0 {
            summary.push_str(&format!(", {} waiting for a transport", counts.waiting));
        }
        summary
    };
    // When items go to stdout they are stdout, so the summary goes aside.
    if prints {
        eprintln!("{summary}");
    } else {
        output::line(summary)?;
    }
    Ok(Outcome::from_failures(counts.failed + counts.parked > 0))
}

/// One line about an item (as `views.rs` shows it): the recipients and subject of a
/// mail, the channel and payload of an output.
pub fn summary(item: &Value) -> String {
    let data = &item["data"];
    if item["kind"] == "mail" {
        format!("to {}: {}", texts(data, "to", ", "), text(data, "subject"))
    } else {
        format!("{}: {}", text(data, "channel"), data["payload"])
    }
}

impl List {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut listing = Listing::new(
            self.json,
            &["ID", "EVENT", "HANDLER", "KIND", "STATUS", "WHAT"],
        );
        if let Some(remote) = context.remote() {
            let request = Request::new("GET", remote.path("/outbox"))
                .query_opt("status", self.pending.then_some("pending"));
            remote.each(request, |item| Ok(listing.item(item, row)?))?;
        } else {
            let tenant = context.tenant()?;
            // A mail is listed as it will be sent: the tenant's sender fills in its own.
            let defaults = tenant.settings()?.mail;
            for item in tenant.outbox() {
                let item = item?;
                if self.pending && item.status != OutboxStatus::Pending {
                    continue;
                }
                listing.item(&views::outbox_item(&item, &defaults), row)?;
            }
        }
        listing.finish("the outbox is empty")?;
        Ok(Outcome::Done)
    }
}

/// An item's row: id, event, handler, kind, status (a pending item that failed says
/// how often), what it is.
fn row(item: &Value) -> Vec<String> {
    let status = match item["status"].as_str() {
        Some("pending") if item["error"].is_null() => "pending".to_owned(),
        Some("pending") => format!("failed x{}", text(item, "attempts")),
        Some("failed") => "set aside".to_owned(),
        _ => text(item, "status"),
    };
    vec![
        text(item, "id"),
        text(item, "event"),
        text(item, "handler"),
        text(item, "kind"),
        status,
        output::cell(&summary(item), 70),
    ]
}
