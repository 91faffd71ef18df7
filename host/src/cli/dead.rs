//! `spark dead list|retry|discard`: deliveries that failed every attempt.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use spark_host::wall_clock_ms;

use super::output::{self, Listing, text};
use super::remote::Request;
use super::report;
use super::{Context, Outcome};
use crate::views;

/// Dead letters: handler calls that failed every attempt, kept with their error.
#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    List(List),
    Retry(Retry),
    Discard(Discard),
}

/// List dead letters.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  spark dead list\n  spark dead list --json")]
pub struct List {
    /// One JSON object per line: event, handler, attempts, error, error_kind.
    #[arg(long)]
    json: bool,
}

/// Deliver dead letters again, each once, to the module registered under the
/// handler's name now (replace a broken module first, then retry).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark dead retry\n  spark dead retry challenge_created_42 --handler mailer --json"
)]
pub struct Retry {
    /// Only the dead letters of this event key.
    key: Option<String>,
    /// Only the dead letters of this handler.
    #[arg(long)]
    handler: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Discard dead letters for good: their deliveries are never made (`dead retry` is
/// the other way out). An event without dead letters (of --handler, when given) is
/// refused, and then nothing is discarded.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark dead discard challenge_created_42 --yes\n  \
                        spark dead discard --all --handler mailer --yes"
)]
pub struct Discard {
    /// The event keys whose dead letters go.
    #[arg(
        value_name = "KEY",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    keys: Vec<String>,
    /// Every dead letter (of --handler, when given).
    #[arg(long)]
    all: bool,
    /// Only the dead letters of this handler.
    #[arg(long)]
    handler: Option<String>,
    /// Discard them. Without it nothing is discarded: a discarded delivery cannot be
    /// made again.
    #[arg(long)]
    yes: bool,
    /// Print the summary as one JSON object: discarded.
    #[arg(long)]
    json: bool,
}

impl Discard {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let which = if self.all {
            "every dead letter".to_owned()
        } else {
            format!("the dead letters of {}", self.keys.join(", "))
        };
        let of_handler = self
            .handler
            .as_ref()
            .map(|handler| format!(" of handler `{handler}`"))
            .unwrap_or_default();
        anyhow::ensure!(
            self.yes,
            "`dead discard` drops deliveries for good, and they are never made: pass --yes to \
             discard {which}{of_handler}"
        );
        let discarded = match context.remote() {
            Some(remote) => {
                let mut request = Request::new("POST", remote.path("/dead/discard"))
                    .query_opt("handler", self.handler.as_deref());
                if self.all {
                    request = request.query("all", "true");
                }
                for key in &self.keys {
                    request = request.query("event", key.as_str());
                }
                let answer = remote.call(&request)?;
                answer["discarded"]
                    .as_u64()
                    .ok_or_else(|| anyhow::anyhow!("the server's answer has no `discarded`"))?
            }
            None => {
                let events = (!self.all).then_some(self.keys.as_slice());
                context
                    .tenant()?
                    .discard_dead(events, self.handler.as_deref())?
            }
        };
        if self.json {
            output::line(json!({ "discarded": discarded }).to_string())?;
        } else {
            output::line(format!("{discarded} dead letters discarded"))?;
        }
        Ok(Outcome::Done)
    }
}

impl DeadCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            DeadCommand::List(list) => list.run(context),
            DeadCommand::Retry(retry) => retry.run(context),
            DeadCommand::Discard(discard) => discard.run(context),
        }
    }
}

impl List {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut listing = Listing::new(
            self.json,
            &["EVENT", "HANDLER", "ATTEMPTS", "DEAD SINCE", "ERROR"],
        );
        if let Some(remote) = context.remote() {
            let request = Request::new("GET", remote.path("/dead"));
            remote.each(request, |letter| Ok(listing.item(letter, row)?))?;
        } else {
            let tenant = context.tenant()?;
            for letter in tenant.dead() {
                listing.item(&views::dead_letter(&letter?), row)?;
            }
        }
        listing.finish("no dead letters")?;
        Ok(Outcome::Done)
    }
}

fn row(letter: &Value) -> Vec<String> {
    vec![
        text(letter, "event"),
        text(letter, "handler"),
        text(letter, "attempts"),
        text(letter, "dead_at"),
        output::cell(&text(letter, "error"), 100),
    ]
}

impl Retry {
    /// Whether a dead letter matches the filters given.
    fn matches(&self, event: &str, handler: &str) -> bool {
        self.key.as_ref().is_none_or(|key| event == key)
            && self.handler.as_ref().is_none_or(|h| handler == h)
    }

    /// When no dead letter matches: an error if filters were given, else nothing to do.
    fn none_found(&self) -> anyhow::Result<Outcome> {
        if self.key.is_some() || self.handler.is_some() {
            anyhow::bail!("no dead letters match; `spark dead list` shows them all");
        }
        output::line("no dead letters to retry")?;
        Ok(Outcome::Done)
    }

    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        if let Some(remote) = context.remote() {
            // Asked first, then retried: a letter parked between the two is retried
            // too, as on a data dir a moment later.
            let mut found = false;
            remote.each(Request::new("GET", remote.path("/dead")), |letter| {
                found |= self.matches(&text(letter, "event"), &text(letter, "handler"));
                Ok(())
            })?;
            if !found {
                return self.none_found();
            }
            let request = Request::new("POST", remote.path("/dead/retry"))
                .query_opt("event", self.key.as_deref())
                .query_opt("handler", self.handler.as_deref());
            return report::finish_remote(&remote.call(&request)?, self.json);
        }
        let mut tenant = context.tenant()?;
        let found = tenant
            .dead()
            .filter_map(Result::ok)
            .any(|letter| self.matches(&letter.event, &letter.handler));
        if !found {
            return self.none_found();
        }
        let report = tenant.retry_dead(
            self.key.as_deref(),
            self.handler.as_deref(),
            wall_clock_ms(),
        )?;
        report::finish(&report, self.json)
    }
}
