//! How a run (ingest, process-sources, dead retry) is reported: problems on stderr,
//! a summary on stdout (one JSON object with `--json`), progress on a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use spark_host::{Problem, RunReport, parse_time, wall_clock_ms};

use super::{Outcome, output};

/// The logical time of a run: `--now` if given, else the wall clock.
pub fn logical_now(now: Option<&str>) -> anyhow::Result<i64> {
    Ok(match now {
        Some(text) => parse_time(text)?,
        None => wall_clock_ms(),
    })
}

/// Runs a pipeline command with a progress line on a terminal, then reports it.
pub fn run(
    json: bool,
    command: impl FnOnce(&mut dyn FnMut(&RunReport)) -> Result<RunReport, spark_host::Error>,
) -> anyhow::Result<Outcome> {
    let progress = Progress::new();
    let report = command(&mut |report| progress.update(report))?;
    drop(progress);
    finish(&report, json)
}

/// Prints each problem to stderr, then the summary; the outcome follows the failures.
pub fn finish(report: &RunReport, json: bool) -> anyhow::Result<Outcome> {
    for problem in &report.problems {
        let level = match problem {
            Problem::DeliveryFailed { dead: false, .. } | Problem::ConditionMismatch { .. } => {
                "warning"
            }
            _ => "error",
        };
        eprintln!("{level}: {problem}");
    }
    if json {
        output::json_line(report)?;
    } else {
        output::line(summary(report))?;
    }
    Ok(Outcome::from_failures(report.has_failures()))
}

fn summary(report: &RunReport) -> String {
    let mut text = format!(
        "{} records ({} invalid), {} events ({} new, {} duplicates), {} deliveries ({} failed)",
        report.records,
        report.invalid,
        report.events,
        report.new,
        report.duplicates,
        report.deliveries,
        report.failed,
    );
    for (count, what) in [
        (report.source_errors, "source errors"),
        (
            report.sources_skipped,
            "source calls skipped (records unchanged)",
        ),
        (report.mismatches, "candidates skipped for a type mismatch"),
        (report.retried, "retries"),
        (report.pending, "deliveries waiting for a retry"),
    ] {
        if count > 0 {
            text.push_str(&format!(", {count} {what}"));
        }
    }
    text
}

/// A progress line on stderr when it is a terminal; nothing in pipes and files.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { bar }
    }

    /// Called after each record; redraws at most a few times a second (indicatif
    /// rate-limits drawing, and the message is only built every 256 records).
    fn update(&self, report: &RunReport) {
        if self.bar.is_hidden() || !report.records.is_multiple_of(256) {
            return;
        }
        self.bar.set_message(format!(
            "{} records, {} new events, {} duplicates",
            report.records, report.new, report.duplicates
        ));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_mentions_extras_only_when_present() {
        let mut report = RunReport {
            records: 2,
            events: 3,
            new: 2,
            duplicates: 1,
            deliveries: 2,
            ..RunReport::default()
        };
        assert_eq!(
            summary(&report),
            "2 records (0 invalid), 3 events (2 new, 1 duplicates), 2 deliveries (0 failed)"
        );
        report.retried = 2;
        assert!(summary(&report).ends_with(", 2 retries"));
    }
}
