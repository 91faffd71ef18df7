//! How a run (ingest, process-sources, dead retry) is reported: problems on stderr,
//! a summary on stdout (one JSON object with `--json`), progress on a terminal.

use spark_host::{Problem, RunReport, parse_time, wall_clock_ms};

use super::progress::Progress;
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
    // Called after each record: the message is only built every 256 records.
    let report = command(&mut |report| {
        if report.records.is_multiple_of(256) {
            progress.show(|| {
                format!(
                    "{} records, {} new events, {} duplicates",
                    report.records, report.new, report.duplicates
                )
            });
        }
    })?;
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
        eprintln!("{level}: {}", spark_host::printable(&problem.to_string()));
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
