//! `spark process-sources`: stored records through their sources again.

use super::remote::Request;
use super::report;
use super::{Context, Outcome};
use clap::Args;

/// Run every stored record (of one model, or of all) through its sources again, for
/// events that depend on time, such as "ends in two days".
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark process-sources\n  spark process-sources --model challenge --now 2024-05-10 --json"
)]
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
        let now_ms = report::logical_now(self.now.as_deref())?;
        if let Some(remote) = context.remote() {
            // Without --now, at the server's time.
            let request = Request::new("POST", remote.path("/process-sources"))
                .query_opt("model", self.model.as_deref())
                .query_opt("now", self.now.as_deref());
            return report::finish_remote(&remote.call(&request)?, self.json);
        }
        let mut tenant = context.tenant()?;
        report::run(self.json, |progress| {
            tenant.process_sources(self.model.as_deref(), now_ms, progress)
        })
    }
}
