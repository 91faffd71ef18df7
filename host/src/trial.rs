//! One call of a module outside any run, for an author trying it (`spark call`): a
//! record to its source or an event to its handler, under its limits, with what it
//! returned, logged and used. Nothing is stored and nothing it returns goes further.

use std::time::Instant;

use crate::error::{CallError, Error};
use crate::event::{Effect, Event, Invocation};
use crate::limits::Limits;
use crate::records::parse_record;
use crate::runner::Runner;

/// What a trial call is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialInput {
    /// A record of `model`, for the module's source: a JSON object with an `id`.
    Record { model: String, record: String },
    /// An event, for the module's handler.
    Event(Event),
}

impl TrialInput {
    /// A record of `model` from its JSON text, checked as an ingest checks a line.
    pub fn record(model: &str, json: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::InvalidInput(format!("the record {why}"));
        let record = parse_record(json.trim().as_bytes())
            .map_err(bad)?
            .ok_or_else(|| bad("is empty".to_owned()))?;
        Ok(TrialInput::Record {
            model: model.to_owned(),
            record: record.json,
        })
    }

    /// An event from its JSON text (`{"group": ..., "key": ..., "context": {...}}`),
    /// checked as the host checks what a source returns.
    pub fn event(json: &str) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Given {
            group: String,
            key: String,
            #[serde(default)]
            context: Option<Box<serde_json::value::RawValue>>,
        }
        let given: Given = serde_json::from_str(json).map_err(|error| {
            Error::InvalidInput(format!(
                "the event is not {{\"group\", \"key\", \"context\"}}: {error}"
            ))
        })?;
        let event = Event {
            group: given.group,
            key: given.key,
            context: given
                .context
                .map_or_else(|| "{}".to_owned(), |context| context.get().to_owned()),
        };
        event
            .validate()
            .map_err(|error| Error::InvalidInput(format!("the event is refused: {error}")))?;
        Ok(TrialInput::Event(event))
    }

    /// The interface the call needs: `source` or `handler`.
    pub fn interface(&self) -> &'static str {
        match self {
            TrialInput::Record { .. } => "source",
            TrialInput::Event(_) => "handler",
        }
    }
}

/// What a call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOutput {
    /// A source's events.
    Events(Vec<Event>),
    /// A handler's effects.
    Effects(Vec<Effect>),
}

/// One call and what came of it.
#[derive(Debug, Clone)]
pub struct Trial {
    /// What it returned, checked as a run checks it, or why it failed.
    pub outcome: Result<TrialOutput, CallError>,
    /// What it wrote to stdout and stderr (bounded by its `log-bytes` limit).
    pub log: String,
    /// WebAssembly fuel used; none for a native module.
    pub fuel: Option<u64>,
    /// How long the call took, instantiation not included.
    pub micros: u64,
    /// The limits it ran under.
    pub limits: Limits,
}

/// Refuses `input` for a module (named `name` in the error) that does not export the
/// interface it needs.
pub(crate) fn check_exports(name: &str, exports: &[&str], input: &TrialInput) -> Result<(), Error> {
    let needed = input.interface();
    if exports.contains(&needed) {
        return Ok(());
    }
    let given = match input {
        TrialInput::Record { .. } => "a record",
        TrialInput::Event(_) => "an event",
    };
    Err(Error::InvalidInput(format!(
        "{name} does not export a {needed}, so it cannot be given {given} (it exports: {})",
        if exports.is_empty() {
            "nothing Spark calls".to_owned()
        } else {
            exports.join(", ")
        }
    )))
}

/// Calls `runner` (or reports why there is none) with `input` as `inv` says.
pub(crate) fn run(
    runner: Result<Runner, CallError>,
    input: &TrialInput,
    inv: &Invocation,
    limits: Limits,
) -> Trial {
    let mut runner = match runner {
        Ok(runner) => runner,
        Err(error) => {
            return Trial {
                outcome: Err(error),
                log: String::new(),
                fuel: None,
                micros: 0,
                limits,
            };
        }
    };
    let started = Instant::now();
    let outcome = match input {
        TrialInput::Record { model, record } => runner
            .events(model, record, inv)
            .map(|output| TrialOutput::Events(output.value)),
        TrialInput::Event(event) => runner
            .handle(event, inv)
            .map(|output| TrialOutput::Effects(output.value)),
    };
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let last = runner.take_last_call();
    Trial {
        outcome,
        log: last.log,
        fuel: last.fuel,
        micros,
        limits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_checked_as_an_ingest_checks_it() {
        assert!(matches!(
            TrialInput::record("m", r#"{"id": 1, "a": 2}"#),
            Ok(TrialInput::Record { .. })
        ));
        for bad in ["", "[1]", r#"{"a": 1}"#, "{"] {
            assert!(
                matches!(TrialInput::record("m", bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_event_needs_a_group_and_a_key_and_an_object_context() {
        let Ok(TrialInput::Event(event)) = TrialInput::event(r#"{"group": "g", "key": "k"}"#)
        else {
            panic!("an event without a context is one with an empty context");
        };
        assert_eq!(event.context, "{}");
        for bad in [
            r#"{"group": "g"}"#,
            r#"{"group": "g", "key": ""}"#,
            r#"{"group": "g", "key": "k", "context": [1]}"#,
            r#"{"group": "g", "key": "k", "extra": 1}"#,
        ] {
            assert!(
                matches!(TrialInput::event(bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }
}
