//! A suite of hostile guests, each contained: the call fails with the error an operator
//! can act on (or is denied what it reached for), and the engine serves the next event.

use serde_json::{Value, json};
use spark_host::{CallError, Limit, LimitOverrides, OutboxItem, Problem};

use crate::host::{
    Host, delivery_errors, fuel_alone, source_errors, with_hostile_source, with_recorder_source,
};
use crate::support::guests;

/// What a misbehaving call must end in.
#[derive(Debug)]
enum Expect {
    Limit(Limit),
    Trap(&'static str),
    /// A trap whose message holds the first text and not the second.
    TrapWithout(&'static str, &'static str),
    Invalid(&'static str),
    Guest(&'static str),
}

const MISBEHAVIOURS: &[(&str, Expect)] = &[
    ("loop", Expect::Limit(Limit::Fuel)),
    // A Rust guest's stack lives in its linear memory; overflowing it ends in an
    // out-of-bounds access rather than the engine's stack limit, which the error
    // explains when the backtrace is one function calling itself...
    (
        "recurse",
        Expect::Trap(
            "out of bounds memory access, with `test_hostile::recurse` calling itself over \
             and over: most likely the module's stack overflowed",
        ),
    ),
    // ...and only then.
    (
        "out-of-bounds",
        Expect::TrapWithout("out of bounds memory access", "stack"),
    ),
    ("alloc", Expect::Limit(Limit::MemoryBytes)),
    ("huge-output", Expect::Limit(Limit::OutputBytes)),
    ("panic", Expect::Trap("hostile panic for")),
    // WASI 0.2 has only success and failure: `exit(3)` arrives as exit(1).
    ("exit", Expect::Trap("the module called exit(1)")),
    ("fail", Expect::Guest("asked to fail")),
    ("array-context", Expect::Invalid("not a JSON object")),
    ("empty-key", Expect::Invalid("it is empty")),
    ("control-key", Expect::Invalid("control characters")),
    ("long-key", Expect::Limit(Limit::KeyBytes)),
    ("empty-group", Expect::Invalid("it is empty")),
    ("long-group", Expect::Limit(Limit::GroupBytes)),
    ("huge-context", Expect::Limit(Limit::ContextBytes)),
    ("bad-utf8", Expect::Trap("utf-8")),
];

#[track_caller]
fn check(action: &str, expect: &Expect, errors: &[CallError]) {
    let [error] = errors else {
        panic!("{action}: expected one failure, got {errors:?}");
    };
    let text = error.to_string();
    let fits = match (expect, error) {
        (Expect::Limit(limit), CallError::Limit { limit: hit, .. }) => limit == hit,
        (Expect::Trap(needle), CallError::Trap { message, log }) => {
            message.contains(needle) || log.contains(needle)
        }
        (Expect::TrapWithout(needle, absent), CallError::Trap { message, .. }) => {
            message.contains(needle) && !message.contains(absent)
        }
        (Expect::Invalid(needle), CallError::InvalidOutput { .. }) => text.contains(needle),
        (Expect::Guest(needle), CallError::Guest { message }) => message.contains(needle),
        _ => false,
    };
    assert!(fits, "{action}: expected {expect:?}, got {error:?}");
}

#[test]
fn hostile_handlers_are_contained_and_the_next_event_is_served() {
    for (action, expect) in MISBEHAVIOURS {
        let mut host = with_recorder_source();
        host.add(guests::HOSTILE, "hostile", &[], &["^job"], fuel_alone());
        let report = host.ingest(&[
            json!({ "id": 1, "events": [{ "group": "job", "id": 1, "context": { "do": action } }] }),
            json!({ "id": 2, "events": [{ "group": "job", "id": 2 }] }),
        ]);
        // A handler that emits a bad event fails as a whole; this is a handler failure,
        // not an event of the ledger.
        check(action, expect, &delivery_errors(&report));
        assert_eq!(
            (report.failed, report.deliveries),
            (1, 1),
            "{action}: {report:?}"
        );
        let outputs = outbox(&mut host);
        assert_eq!(
            outputs.len(),
            1,
            "{action}: only the ordinary job has effects"
        );
        assert_eq!(outputs[0].event, "job_2");
        assert_eq!(event_keys(&mut host), ["job_1", "job_2"], "{action}");
    }
}

#[test]
fn hostile_sources_are_contained_and_the_next_record_is_served() {
    for (action, expect) in MISBEHAVIOURS {
        let mut host = with_hostile_source();
        let report = host.ingest(&[json!({ "id": 1, "do": action }), json!({ "id": 2 })]);
        check(action, expect, &source_errors(&report));
        assert_eq!(report.source_errors, 1, "{action}: {report:?}");
        assert_eq!(
            event_keys(&mut host),
            ["ok_2"],
            "{action}: nothing of the failed call is kept"
        );
        assert!(matches!(
            &report.problems[0],
            Problem::SourceFailed { module, .. } if module == "hostile"
        ));
    }
}

/// What the hostile handler reports for a job doing `action`.
fn report_of(action: &str, id: u64) -> Value {
    let mut host = with_recorder_source();
    host.add(
        guests::HOSTILE,
        "hostile",
        &[],
        &["^job"],
        LimitOverrides::default(),
    );
    let report = host.ingest(&[json!({
        "id": id,
        "events": [{ "group": "job", "id": id, "context": { "do": action } }],
    })]);
    assert!(report.problems.is_empty(), "{action}: {report:?}");
    let outputs = outbox(&mut host);
    assert_eq!(outputs.len(), 1);
    outputs[0].payload.as_output().unwrap().payload.clone()
}

#[test]
fn the_clock_reads_the_invocation_time_and_sleeping_costs_no_time() {
    let started = std::time::Instant::now();
    let report = report_of("clock", 1);
    let expected = spark_host::parse_time("2024-05-01").unwrap();
    assert_eq!(report["now_ms"], json!(expected));
    assert_eq!(
        report["slept_ms"],
        json!(3_600_000),
        "the guest's clock moved on"
    );
    // The guest asked to sleep an hour; the host did not (no timing beyond that claim).
    assert!(started.elapsed().as_secs() < 600);
}

#[test]
fn random_numbers_are_the_same_for_the_same_call() {
    let first = report_of("random", 1);
    let again = report_of("random", 1);
    let other = report_of("random", 2);
    assert_eq!(first, again);
    assert_ne!(first["bytes"], other["bytes"]);
}

#[test]
fn files_sockets_and_the_environment_are_denied() {
    let files = report_of("files", 1);
    for what in ["read", "list", "create"] {
        assert!(
            files[what].as_str().unwrap().starts_with("Err("),
            "{what}: {files}"
        );
    }
    assert!(!std::path::Path::new("escape.txt").exists());
    let env = report_of("env", 1);
    assert_eq!(env["vars"], 0);
    assert_eq!(env["args"], 0);
    assert_eq!(env["home"], "Err(NotPresent)");
    let sockets = report_of("socket", 1);
    for what in ["tcp", "udp", "dns"] {
        assert!(
            sockets[what].as_str().unwrap().starts_with("Err("),
            "{what}: {sockets}"
        );
    }
}

#[test]
fn contexts_that_are_not_json_objects_are_refused_from_sources_and_handlers() {
    let mut host = Host::new();
    host.add(
        guests::RAW,
        "raw",
        &["thing"],
        &["^raw"],
        LimitOverrides::default(),
    );
    let report = host.ingest(&[
        json!({ "id": 1, "context": "{oops" }),
        json!({ "id": 2, "context": "\"text\"" }),
        json!({ "id": 3, "context": "{\"emit_context\": \"[1\"}" }),
        json!({ "id": 4, "context": "{\"fine\": true}" }),
    ]);
    let sources = source_errors(&report);
    assert!(
        matches!(&sources[0], CallError::InvalidOutput { why, .. } if why.contains("not valid JSON")),
        "{sources:?}"
    );
    assert!(
        matches!(&sources[1], CallError::InvalidOutput { why, .. } if why.contains("not a JSON object")),
        "{sources:?}"
    );
    assert_eq!(sources.len(), 2);
    let handlers = delivery_errors(&report);
    assert!(
        matches!(&handlers[..], [CallError::InvalidOutput { .. }]),
        "{handlers:?}"
    );
    assert_eq!(event_keys(&mut host), ["raw_3", "raw_4"]);
    assert_eq!(outbox(&mut host).len(), 1, "the fine event is served");
}

fn outbox(host: &mut Host) -> Vec<OutboxItem> {
    host.tenant().outbox().map(Result::unwrap).collect()
}

fn event_keys(host: &mut Host) -> Vec<String> {
    host.tenant().events().map(|e| e.unwrap().key).collect()
}
