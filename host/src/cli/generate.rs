//! `spark generate`: run the active generators.

use super::remote::Request;
use super::report;
use super::{Context, Outcome};
use clap::Args;

/// Run every active generator over its model's stored records: each record whose
/// context satisfies a generator's conditions makes an event `{group}_{id}`, which
/// goes through the ledger and the handlers like any other.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  spark generate\n  spark generate --now 2024-05-10 --json")]
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
        let now_ms = report::logical_now(self.now.as_deref())?;
        if let Some(remote) = context.remote() {
            // Without --now, at the server's time.
            let request = Request::new("POST", remote.path("/generate"))
                .query_opt("now", self.now.as_deref());
            return report::finish_remote(&remote.call(&request)?, self.json);
        }
        let mut tenant = context.tenant()?;
        report::run(self.json, |progress| tenant.generate(now_ms, progress))
    }
}
