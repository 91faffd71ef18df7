//! `spark dead list|retry`: deliveries that failed every attempt.

use clap::{Args, Subcommand};
use spark_host::{format_time, wall_clock_ms};

use super::output::{self, Table};
use super::report;
use super::{Context, Outcome};

/// Dead letters: handler calls that failed every attempt, kept with their error.
#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    List(List),
    Retry(Retry),
}

/// List dead letters.
#[derive(Debug, Args)]
pub struct List {
    /// One JSON object per line: event, handler, attempts, error, error_kind.
    #[arg(long)]
    json: bool,
}

/// Deliver dead letters again, each once, to the module registered under the
/// handler's name now (replace a broken module first, then retry).
#[derive(Debug, Args)]
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

impl DeadCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            DeadCommand::List(list) => list.run(context),
            DeadCommand::Retry(retry) => retry.run(context),
        }
    }
}

impl List {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let tenant = context.tenant()?;
        let mut table = Table::new(&["EVENT", "HANDLER", "ATTEMPTS", "DEAD SINCE", "ERROR"]);
        for letter in tenant.dead() {
            let letter = letter?;
            if self.json {
                output::json_line(&crate::views::dead_letter(&letter))?;
            } else {
                table.row(vec![
                    letter.event.clone(),
                    letter.handler.clone(),
                    letter.attempts.to_string(),
                    format_time(letter.dead_at_ms),
                    output::cell(&letter.error.to_string(), 100),
                ]);
            }
        }
        if !self.json {
            table.print("no dead letters")?;
        }
        Ok(Outcome::Done)
    }
}

impl Retry {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut tenant = context.tenant()?;
        let found = tenant.dead().filter_map(Result::ok).any(|letter| {
            self.key.as_ref().is_none_or(|key| &letter.event == key)
                && self.handler.as_ref().is_none_or(|h| &letter.handler == h)
        });
        if !found {
            if self.key.is_some() || self.handler.is_some() {
                anyhow::bail!("no dead letters match; `spark dead list` shows them all");
            }
            output::line("no dead letters to retry")?;
            return Ok(Outcome::Done);
        }
        let report = tenant.retry_dead(
            self.key.as_deref(),
            self.handler.as_deref(),
            wall_clock_ms(),
        )?;
        report::finish(&report, self.json)
    }
}
