//! `spark process-sources`: stored records through their sources again.

use clap::Args;
use spark_host::{parse_time, wall_clock_ms};

use super::report::{self, Progress};
use super::{Context, Outcome};

/// Run every stored record (of one model, or of all) through its sources again, for
/// events that depend on time, such as "ends in two days".
#[derive(Debug, Args)]
pub struct ProcessSources {
    /// Only this model.
    #[arg(long)]
    model: Option<String>,
    /// The logical time of the run; default: now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

impl ProcessSources {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let now_ms = match &self.now {
            Some(text) => parse_time(text)?,
            None => wall_clock_ms(),
        };
        let mut tenant = context.tenant()?;
        let progress = Progress::new();
        let report = tenant.process_sources(self.model.as_deref(), now_ms, &mut |report| {
            progress.update(report)
        })?;
        drop(progress);
        report::finish(&report, self.json)
    }
}
