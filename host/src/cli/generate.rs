//! `spark generate`: run the active generators.

use clap::Args;
use spark_host::{parse_time, wall_clock_ms};

use super::report::{self, Progress};
use super::{Context, Outcome};

/// Run every active generator over its model's stored records: each record whose
/// context satisfies a generator's conditions makes an event `{group}_{id}`, which
/// goes through the ledger and the handlers like any other.
#[derive(Debug, Args)]
pub struct Generate {
    /// The logical time of the run; default: now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

impl Generate {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let now_ms = match &self.now {
            Some(text) => parse_time(text)?,
            None => wall_clock_ms(),
        };
        let mut tenant = context.tenant()?;
        let progress = Progress::new();
        let report = tenant.generate(now_ms, &mut |report| progress.update(report))?;
        drop(progress);
        report::finish(&report, self.json)
    }
}
