//! What happened to an event, kept with it in the ledger: where it came from, which
//! handlers its group matched, and each delivery's outcome, time, fuel and log.
//!
//! This is the answer to "why did nothing happen?": an event whose group matched no
//! handler says so, and a handler that failed says how, with what it logged. A trace
//! is bounded ([`MAX_STEPS`] steps, [`MAX_LOG_BYTES`] of log and [`MAX_EMITTED`]
//! emitted keys per step), because modules decide how much they log and retry.

use serde::{Deserialize, Serialize};

use crate::error::CallError;

/// Steps a trace keeps at most: the first ones and the latest ones are the telling
/// ones, so the oldest retries after the first step are dropped (and counted).
pub const MAX_STEPS: usize = 16;
/// Bytes of a call's log a step keeps at most: its end, where the last words are.
pub const MAX_LOG_BYTES: usize = 2048;
/// Keys of emitted events a step names at most (all are counted).
pub const MAX_EMITTED: usize = 8;

/// Where an event came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// A source's call on a record.
    Source { module: String },
    /// A generator's pass over stored records.
    Generator { generator: String },
    /// A handler emitted it while handling `parent`.
    Emitted { parent: String, handler: String },
    /// Not known: the event was seen before Spark kept traces.
    Unknown,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The handler returned its effects; they were kept.
    Done,
    /// It failed and waits for another attempt.
    Retry,
    /// It failed for the last time: a dead letter.
    Dead,
}

/// One delivery of the event to one handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub handler: String,
    pub attempt: u32,
    /// When the call started (wall clock, unix ms).
    pub at_ms: i64,
    /// How long the call took, in microseconds.
    pub micros: u64,
    /// WebAssembly fuel the call used; none for a native module or a call that never
    /// ran to an end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    pub outcome: Outcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Outbox items (mails, outputs) it made.
    #[serde(default)]
    pub effects: u32,
    /// Events it emitted: how many, and the first [`MAX_EMITTED`] keys.
    #[serde(default)]
    pub emitted: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emitted_keys: Vec<String>,
    /// The end of what the call wrote to stdout and stderr (at most [`MAX_LOG_BYTES`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log: String,
}

impl Step {
    /// Marks the call failed with `error`: for good when `dead`, else to be retried.
    pub(crate) fn failed(mut self, error: &CallError, dead: bool) -> Self {
        self.outcome = if dead { Outcome::Dead } else { Outcome::Retry };
        self.error = Some(error.to_string());
        self
    }

    /// Names the events a successful call emitted.
    pub(crate) fn with_emitted<'a>(mut self, keys: impl IntoIterator<Item = &'a str>) -> Self {
        for key in keys {
            self.emitted += 1;
            if self.emitted_keys.len() < MAX_EMITTED {
                self.emitted_keys.push(key.to_owned());
            }
        }
        self
    }
}

/// What happened to an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub origin: Origin,
    /// The handlers its group matched when it was first seen, in routing order.
    pub handlers: Vec<String>,
    pub steps: Vec<Step>,
    /// Steps dropped to keep the trace within [`MAX_STEPS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Trace {
    pub(crate) fn new(origin: Origin, handlers: Vec<String>) -> Self {
        Self {
            origin,
            handlers,
            steps: Vec::new(),
            dropped: 0,
        }
    }

    /// Adds a step; past [`MAX_STEPS`] the oldest step after the first makes room.
    pub(crate) fn push(&mut self, step: Step) {
        if self.steps.len() >= MAX_STEPS {
            self.steps.remove(1);
            self.dropped += 1;
        }
        self.steps.push(step);
    }
}

/// The end of `log`, at most [`MAX_LOG_BYTES`], cut at a character boundary.
pub(crate) fn log_tail(log: &str) -> String {
    let log = log.trim_end();
    if log.len() <= MAX_LOG_BYTES {
        return log.to_owned();
    }
    let mut start = log.len() - MAX_LOG_BYTES;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &log[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(attempt: u32) -> Step {
        Step {
            handler: "h".to_owned(),
            attempt,
            at_ms: 0,
            micros: 1,
            fuel: None,
            outcome: Outcome::Retry,
            error: Some("no".to_owned()),
            effects: 0,
            emitted: 0,
            emitted_keys: Vec::new(),
            log: String::new(),
        }
    }

    #[test]
    fn a_trace_keeps_its_first_and_latest_steps_and_counts_the_dropped() {
        let mut trace = Trace::new(
            Origin::Source {
                module: "s".to_owned(),
            },
            vec!["h".to_owned()],
        );
        for attempt in 1..=MAX_STEPS as u32 + 3 {
            trace.push(step(attempt));
        }
        assert_eq!(trace.steps.len(), MAX_STEPS);
        assert_eq!(trace.dropped, 3);
        assert_eq!(trace.steps[0].attempt, 1);
        assert_eq!(trace.steps[1].attempt, 5);
        assert_eq!(trace.steps.last().unwrap().attempt, MAX_STEPS as u32 + 3);
    }

    #[test]
    fn a_step_names_the_first_emitted_keys_and_counts_them_all() {
        let keys: Vec<String> = (0..20).map(|n| format!("k{n}")).collect();
        let step = step(1).with_emitted(keys.iter().map(String::as_str));
        assert_eq!(step.emitted, 20);
        assert_eq!(step.emitted_keys, keys[..MAX_EMITTED]);
    }

    #[test]
    fn a_long_log_keeps_its_end_at_a_character_boundary() {
        assert_eq!(log_tail("short\n"), "short");
        let long = format!(
            "{}é{}",
            "a".repeat(MAX_LOG_BYTES),
            "z".repeat(MAX_LOG_BYTES - 1)
        );
        let tail = log_tail(&long);
        assert!(tail.starts_with('…'));
        assert!(tail.ends_with('z'));
        assert!(tail.len() <= MAX_LOG_BYTES + '…'.len_utf8());
    }

    #[test]
    fn a_trace_reads_back_as_it_was_written() {
        let mut trace = Trace::new(
            Origin::Emitted {
                parent: "p".to_owned(),
                handler: "h".to_owned(),
            },
            vec!["h".to_owned()],
        );
        trace.push(step(1).with_emitted(["c"]));
        let json = serde_json::to_string(&trace).unwrap();
        assert_eq!(serde_json::from_str::<Trace>(&json).unwrap(), trace);
    }
}
