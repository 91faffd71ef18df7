//! `spark ingest`: records in, events out.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

use super::report;
use super::{Context, Outcome};
use anyhow::Context as _;
use clap::Args;

/// Store JSON Lines records of a model and run each through the model's sources;
/// new events go to their handlers. Bad lines are reported and skipped.
#[derive(Debug, Args)]
pub struct Ingest {
    /// The model the records belong to (one a source is registered for).
    #[arg(long)]
    model: String,
    /// The records, one JSON object with an `id` per line; `-` or nothing for stdin.
    file: Option<PathBuf>,
    /// The logical time of the run (e.g. 2024-05-01 or 2024-05-01T12:00:00Z), which
    /// sources see instead of a clock; default: now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

impl Ingest {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let now_ms = report::logical_now(self.now.as_deref())?;
        let mut input: Box<dyn BufRead> = match &self.file {
            Some(path) if path.as_os_str() != "-" => Box::new(BufReader::new(
                File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?,
            )),
            _ => Box::new(io::stdin().lock()),
        };
        let mut tenant = context.tenant()?;
        report::run(self.json, |progress| {
            tenant.ingest(&self.model, &mut input, now_ms, progress)
        })
    }
}
