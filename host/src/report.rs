//! What a run reports: its counters (what `--json` prints) and each failure.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::CallError;

/// What a run did. The counters are what `--json` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// Records stored and run through their sources.
    pub records: u64,
    /// Input lines refused (not JSON, no id, ...).
    pub invalid: u64,
    /// Events produced by sources and handlers, new or not.
    pub events: u64,
    /// Events whose key was new.
    pub new: u64,
    /// Events whose key was seen before.
    pub duplicates: u64,
    /// Source calls skipped: the record was unchanged since the source's last call in
    /// the same period of its clock (their events are counted as duplicates).
    pub sources_skipped: u64,
    /// New events whose group matched no handler: kept in the ledger, delivered to
    /// nobody (often a handler's regex that does not match the group it was meant for).
    #[serde(default)]
    pub unrouted: u64,
    /// Handler calls whose effects were committed.
    pub deliveries: u64,
    /// Deliveries parked as dead in this run.
    pub failed: u64,
    /// Source calls that failed (the record is stored; its other sources ran).
    pub source_errors: u64,
    /// Retry attempts made in this run.
    pub retried: u64,
    /// Deliveries still waiting for a retry when the run ended.
    pub pending: u64,
    /// Generator candidates skipped because a variable's type did not fit a condition.
    pub mismatches: u64,
    /// What went wrong, one entry per failure; not part of `--json`.
    #[serde(skip)]
    pub problems: Vec<Problem>,
    /// The module calls made, by module name; not part of `--json` (a server's
    /// metrics count them).
    #[serde(skip)]
    pub calls: BTreeMap<String, ModuleCalls>,
}

/// The calls of one module in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleCalls {
    pub calls: u64,
    /// Calls that failed (an error, a trap, a limit...).
    pub failed: u64,
    /// Their time in all, as the host saw it (instantiating included).
    pub time: Duration,
    /// Calls stopped by a limit, by the limit's name.
    pub breaches: BTreeMap<&'static str, u64>,
}

impl RunReport {
    /// Adds the counters of `other` (a part of the same work) to these.
    pub fn add(&mut self, other: &RunReport) {
        self.records += other.records;
        self.invalid += other.invalid;
        self.events += other.events;
        self.new += other.new;
        self.duplicates += other.duplicates;
        self.sources_skipped += other.sources_skipped;
        self.unrouted += other.unrouted;
        self.deliveries += other.deliveries;
        self.failed += other.failed;
        self.source_errors += other.source_errors;
        self.retried += other.retried;
        self.pending += other.pending;
        self.mismatches += other.mismatches;
    }

    /// Counts a call of `module` that took `time` and failed with `error`, if it did.
    pub(crate) fn note_call(&mut self, module: &str, time: Duration, error: Option<&CallError>) {
        let calls = match self.calls.get_mut(module) {
            Some(calls) => calls,
            None => self.calls.entry(module.to_owned()).or_default(),
        };
        calls.calls += 1;
        calls.time += time;
        calls.failed += u64::from(error.is_some());
        if let Some(CallError::Limit { limit, .. }) = error {
            *calls.breaches.entry(limit.name()).or_default() += 1;
        }
    }

    /// Whether anything failed: the CLI exits with status 1 then.
    pub fn has_failures(&self) -> bool {
        self.invalid > 0 || self.failed > 0 || self.source_errors > 0 || self.mismatches > 0
    }
}

/// One failure of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An input line that is not a record.
    InvalidRecord { line: u64, why: String },
    /// A source call that failed.
    SourceFailed {
        record: RecordOrigin,
        module: String,
        error: CallError,
    },
    /// A generator's candidate whose context has a variable of another type than a
    /// condition's value: skipped.
    ConditionMismatch {
        generator: String,
        record: RecordOrigin,
        why: String,
    },
    /// A generator could not make its event for a candidate (its context could not be
    /// computed, or the event is invalid).
    GeneratorFailed {
        generator: String,
        record: RecordOrigin,
        error: CallError,
    },
    /// A handler call that failed; `dead` when it will not be retried.
    DeliveryFailed {
        event: String,
        handler: String,
        attempts: u32,
        dead: bool,
        error: CallError,
    },
}

/// Where a record came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOrigin {
    /// A line of the ingested input.
    Line(u64),
    /// A stored record (`process-sources`).
    Stored { model: String, id: String },
}

impl fmt::Display for RecordOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordOrigin::Line(line) => write!(f, "line {line}"),
            RecordOrigin::Stored { model, id } => write!(f, "record `{id}` of `{model}`"),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::InvalidRecord { line, why } => write!(f, "line {line}: {why}"),
            Problem::SourceFailed {
                record,
                module,
                error,
            } => write!(f, "{record}: source `{module}` failed: {error}"),
            Problem::ConditionMismatch {
                generator,
                record,
                why,
            } => write!(f, "{record}: generator `{generator}` skipped it: {why}"),
            Problem::GeneratorFailed {
                generator,
                record,
                error,
            } => write!(f, "{record}: generator `{generator}` failed: {error}"),
            Problem::DeliveryFailed {
                event,
                handler,
                attempts,
                dead,
                error,
            } => {
                let fate = if *dead {
                    "parked as dead (see `spark dead list`)"
                } else {
                    "will be retried"
                };
                write!(
                    f,
                    "event `{event}`: handler `{handler}` failed (attempt {attempts}, {fate}): {error}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_well() {
        let problem = Problem::DeliveryFailed {
            event: "challenge_created_1".to_owned(),
            handler: "mailer".to_owned(),
            attempts: 3,
            dead: true,
            error: CallError::Guest {
                message: "no owner".to_owned(),
            },
        };
        assert_eq!(
            problem.to_string(),
            "event `challenge_created_1`: handler `mailer` failed (attempt 3, parked as dead \
             (see `spark dead list`)): the module returned an error: no owner"
        );
    }
}
