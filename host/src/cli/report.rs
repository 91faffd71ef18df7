//! How a run (ingest, process-sources, dead retry) is reported: problems on stderr,
//! a summary on stdout (one JSON object with `--json`), progress on a terminal. A run
//! a server did (`--server`) is reported from the object its API answers, the same
//! counts, with the same summary and exit status.

use serde::Deserialize as _;
use serde_json::Value;
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
    finish_served(report, false, json)
}

/// [`finish`], saying after the problems found here that the server had failures of
/// its own (`served_failures`), which its API counts without naming them.
pub fn finish_served(
    report: &RunReport,
    served_failures: bool,
    json: bool,
) -> anyhow::Result<Outcome> {
    print_problems(report);
    if served_failures {
        eprintln!(
            "error: the server counts its failures without naming them (see the summary): \
             its log names each, and `spark dead list` shows the deliveries parked as dead"
        );
    }
    if report.unrouted > 0 && !json {
        // Not a failure (a group may be meant for no handler yet), but the usual answer
        // to "why did nothing happen?": a handler's regex that misses its group.
        eprintln!(
            "note: {} matched no handler's regex: `spark events list --json` shows their \
             groups, `spark module list` the handlers' regexes",
            counted(report.unrouted, "new event", "new events")
        );
    }
    if json {
        output::json_line(report)?;
    } else {
        output::line(summary(report))?;
    }
    Ok(Outcome::from_failures(report.has_failures()))
}

/// Prints each problem of a run to stderr, as an error or a warning.
fn print_problems(report: &RunReport) {
    for problem in &report.problems {
        let level = match problem {
            Problem::DeliveryFailed { dead: false, .. } | Problem::ConditionMismatch { .. } => {
                "warning"
            }
            _ => "error",
        };
        eprintln!("{level}: {}", spark_host::printable(&problem.to_string()));
    }
}

/// Reports an ingest's dry run: its problems (those found here; a server's answer
/// names none), then `shown` (`views::ingest_dry_run`) as one JSON object, or its new
/// events, outbox items and summary for a person.
/// A delivery that failed counts as a failure even while it would still be retried:
/// a dry run does not retry, and its status is what a script checks.
pub fn finish_dry_run(report: &RunReport, shown: &Value, json: bool) -> anyhow::Result<Outcome> {
    print_problems(report);
    let outcome = Outcome::from_failures(report.has_failures() || report.pending > 0);
    if json {
        output::json_line(shown)?;
        return Ok(outcome);
    }
    let events = shown["sample"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !events.is_empty() {
        output::line(format!("new events (the first {}):", events.len()))?;
    }
    for event in events {
        output::line(spark_host::printable(&format!("  {}", dry_run_event(event))).into_owned())?;
    }
    let outbox = shown["sample"]["outbox"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !outbox.is_empty() {
        output::line(format!("outbox items (the first {}):", outbox.len()))?;
    }
    for item in outbox {
        output::line(
            spark_host::printable(&format!(
                "  {} from `{}` for {}: {}",
                output::text(item, "kind"),
                output::text(item, "handler"),
                output::text(item, "event"),
                super::outbox::summary(item)
            ))
            .into_owned(),
        )?;
    }
    output::line(format!(
        "dry run, nothing stored: {}; it would put {} and {} in the outbox",
        summary(report),
        counted(shown["mails"].as_u64().unwrap_or(0), "mail", "mails"),
        counted(shown["outputs"].as_u64().unwrap_or(0), "output", "outputs"),
    ))?;
    Ok(outcome)
}

/// A new event of a dry run in a line: its key and group, and what each handler did.
fn dry_run_event(event: &Value) -> String {
    let key = output::text(event, "key");
    let group = output::text(event, "group");
    let steps = event["trace"]["steps"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if steps.is_empty() {
        return format!("{key} ({group}): no handler matched");
    }
    let calls: Vec<String> = steps
        .iter()
        .map(|step| {
            let handler = output::text(step, "handler");
            match step["error"].as_str() {
                Some(error) => format!("`{handler}` failed: {error}"),
                None => format!("`{handler}` made {}", made(step)),
            }
        })
        .collect();
    format!("{key} ({group}): {}", calls.join("; "))
}

/// What a successful delivery made: outbox items and emitted events.
fn made(step: &Value) -> String {
    let effects = step["effects"].as_u64().unwrap_or(0);
    let emitted = step["emitted"].as_u64().unwrap_or(0);
    let mut made = counted(effects, "outbox item", "outbox items");
    if emitted > 0 {
        made.push_str(&format!(
            " and emitted {}",
            counted(emitted, "event", "events")
        ));
    }
    made
}

/// The report of a run a server did, from its API's answer (the fields of `--json`;
/// it has no problems, which the API does not give).
pub fn from_answer(answer: &Value) -> anyhow::Result<RunReport> {
    RunReport::deserialize(answer)
        .map_err(|error| anyhow::anyhow!("the server's report is not one ({error}): {answer}"))
}

/// Reports a run a server did, from its API's answer.
pub fn finish_remote(answer: &Value, json: bool) -> anyhow::Result<Outcome> {
    let report = from_answer(answer)?;
    finish_served(&report, report.has_failures(), json)
}

fn summary(report: &RunReport) -> String {
    // Lines that are not records are counted apart: "6 records (2 invalid)" for 8
    // lines read as 6 in all.
    let mut text = counted(report.records, "record", "records");
    if report.invalid > 0 {
        text.push_str(&format!(
            " and {}",
            counted(report.invalid, "invalid line", "invalid lines")
        ));
    }
    text.push_str(&format!(
        ", {} ({} new, {}), {} ({} failed)",
        counted(report.events, "event", "events"),
        report.new,
        counted(report.duplicates, "duplicate", "duplicates"),
        counted(report.deliveries, "delivery", "deliveries"),
        report.failed,
    ));
    for (count, one, many) in [
        (
            report.unrouted,
            "new event matched no handler",
            "new events matched no handler",
        ),
        (report.source_errors, "source error", "source errors"),
        (
            report.sources_skipped,
            "source call skipped (record unchanged)",
            "source calls skipped (records unchanged)",
        ),
        (
            report.mismatches,
            "candidate skipped for a type mismatch",
            "candidates skipped for a type mismatch",
        ),
        (report.retried, "retry", "retries"),
        (
            report.pending,
            "delivery waiting for a retry",
            "deliveries waiting for a retry",
        ),
    ] {
        if count > 0 {
            text.push_str(&format!(", {}", counted(count, one, many)));
        }
    }
    text
}

/// `count` with its noun, singular for one.
fn counted(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
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
            "2 records, 3 events (2 new, 1 duplicate), 2 deliveries (0 failed)"
        );
        report.retried = 2;
        assert!(summary(&report).ends_with(", 2 retries"));
        report.unrouted = 1;
        assert!(
            summary(&report).contains(", 1 new event matched no handler, "),
            "{}",
            summary(&report)
        );
        report.invalid = 2;
        report.records = 1;
        assert!(
            summary(&report).starts_with("1 record and 2 invalid lines, "),
            "{}",
            summary(&report)
        );
    }
}
