//! Every limit in pairs: the same call obeying it and breaking it, the breach a typed
//! error naming the limit and its value, and the engine serving the next event.

use serde_json::{Value, json};
use spark_host::{
    CallError, Limit, LimitOverrides, MAX_CONTEXT_BYTES, MAX_GROUP_BYTES, MAX_KEY_BYTES, Problem,
    RunReport,
};

use crate::host::{
    Host, delivery_errors, fuel_alone, source_errors, with_hostile_source, with_recorder_source,
};
use crate::support::guests;

/// A record whose source (the recorder) yields one event per `(group, context)`.
fn record(id: u64, events: &[(&str, Value)]) -> Value {
    let events: Vec<Value> = events
        .iter()
        .map(|(group, context)| json!({ "group": group, "id": id, "context": context }))
        .collect();
    json!({ "id": id, "events": events })
}

/// A job for the hostile handler (`do` says what to do), then an ordinary one.
fn job_then_ordinary(action: &str) -> Vec<Value> {
    vec![
        record(1, &[("job", json!({ "do": action }))]),
        record(2, &[("job", json!({}))]),
    ]
}

/// The hostile module as the handler of `job`, under its own `limits`; runs a job
/// doing `action`, then an ordinary one.
fn hostile_job(action: &str, limits: LimitOverrides) -> RunReport {
    let mut host = with_recorder_source();
    host.add(guests::HOSTILE, "hostile", &[], &["^job"], limits);
    host.ingest(&job_then_ordinary(action))
}

/// Like [`hostile_job`], but the module is registered under the defaults and the
/// tenant's limits change afterwards: how a limit that stops a module from starting at
/// all shows at run time. The source keeps the defaults as its own limits.
fn hostile_job_after_tenant_limits(action: &str, limits: LimitOverrides) -> RunReport {
    let mut host = Host::new();
    let defaults = LimitOverrides::from(spark_host::Limits::default());
    host.add(guests::RECORDER, "source", &["thing"], &[], defaults);
    host.add(
        guests::HOSTILE,
        "hostile",
        &[],
        &["^job"],
        LimitOverrides::default(),
    );
    host.set_limits(limits);
    host.ingest(&job_then_ordinary(action))
}

/// Asserts that the ordinary job after the first was served.
#[track_caller]
fn assert_next_served(report: &RunReport) {
    assert_eq!(report.deliveries, 1, "{report:?}");
    assert_eq!(report.failed, 1, "{report:?}");
}

/// Asserts that a module cannot even be registered under `limits`, for `limit`.
#[track_caller]
fn assert_refused_at_registration(limits: LimitOverrides, limit: Limit, max: u64) {
    let mut host = with_recorder_source();
    let error = host
        .try_add(guests::HOSTILE, "hostile", &[], &["^job"], limits)
        .expect_err("registration must be refused");
    match error {
        spark_host::Error::ModuleCannotStart { error, .. } => assert_breach(&[error], limit, max),
        other => panic!("expected ModuleCannotStart, got {other:?}"),
    }
}

/// Asserts that the run's one failure is a breach of `limit` with maximum `max`.
#[track_caller]
fn assert_breach(errors: &[CallError], limit: Limit, max: u64) {
    match errors {
        [
            CallError::Limit {
                limit: hit,
                max: hit_max,
                ..
            },
        ] => {
            assert_eq!((*hit, *hit_max), (limit, max), "{errors:?}");
            let message = errors[0].to_string();
            assert!(
                message.starts_with(&format!("{limit} limit of {max} exceeded")),
                "{message}"
            );
        }
        other => panic!("expected one breach of {limit}, got {other:?}"),
    }
}

fn limits(set: impl FnOnce(&mut LimitOverrides)) -> LimitOverrides {
    let mut limits = LimitOverrides::default();
    set(&mut limits);
    limits
}

#[test]
fn fuel() {
    let obeyed = hostile_job("behave", limits(|l| l.fuel = Some(10_000_000)));
    assert!(delivery_errors(&obeyed).is_empty());
    let looping = hostile_job(
        "loop",
        limits(|l| {
            l.fuel = Some(10_000_000);
            l.deadline_ms = fuel_alone().deadline_ms;
        }),
    );
    assert_breach(&delivery_errors(&looping), Limit::Fuel, 10_000_000);
    assert_next_served(&looping);
    // Too little for even an ordinary call (instantiation is fuelled too).
    let starved = hostile_job_after_tenant_limits("behave", limits(|l| l.fuel = Some(1_000)));
    assert_eq!(starved.failed, 2);
    assert_breach(&delivery_errors(&starved)[..1], Limit::Fuel, 1_000);
}

#[test]
fn deadline() {
    let generous_fuel = |deadline| {
        limits(|l| {
            // The most fuel may be: minutes of work, far beyond the deadline.
            l.fuel = Some(1_000_000_000_000);
            l.deadline_ms = Some(deadline);
        })
    };
    let obeyed = hostile_job("behave", generous_fuel(200));
    assert!(delivery_errors(&obeyed).is_empty());
    let started = std::time::Instant::now();
    let broken = hostile_job("loop", generous_fuel(200));
    assert_breach(&delivery_errors(&broken), Limit::DeadlineMs, 200);
    assert_next_served(&broken);
    // Not a timing assertion on the engine: only that it did not wait for ever.
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn memory() {
    let obeyed = hostile_job("behave", limits(|l| l.memory_bytes = Some(16 << 20)));
    assert!(delivery_errors(&obeyed).is_empty());
    let allocating = hostile_job("alloc", limits(|l| l.memory_bytes = Some(16 << 20)));
    assert_breach(&delivery_errors(&allocating), Limit::MemoryBytes, 16 << 20);
    assert_next_served(&allocating);
    // Too little to start: refused when added, and failing every call when the tenant's
    // limit drops below it later.
    let tiny = limits(|l| l.memory_bytes = Some(64 << 10));
    assert_refused_at_registration(tiny, Limit::MemoryBytes, 64 << 10);
    let starved = hostile_job_after_tenant_limits("behave", tiny);
    assert_eq!(starved.failed, 2);
    assert_breach(
        &delivery_errors(&starved)[..1],
        Limit::MemoryBytes,
        64 << 10,
    );
}

#[test]
fn table_elements() {
    let obeyed = hostile_job("behave", limits(|l| l.table_elements = Some(10_000)));
    assert!(delivery_errors(&obeyed).is_empty());
    let one = limits(|l| l.table_elements = Some(1));
    assert_refused_at_registration(one, Limit::TableElements, 1);
    let broken = hostile_job_after_tenant_limits("behave", one);
    assert_eq!(broken.failed, 2);
    assert_breach(&delivery_errors(&broken)[..1], Limit::TableElements, 1);
}

#[test]
fn instances() {
    let obeyed = hostile_job("behave", limits(|l| l.instances = Some(16)));
    assert!(delivery_errors(&obeyed).is_empty());
    let one = limits(|l| l.instances = Some(1));
    assert_refused_at_registration(one, Limit::Instances, 1);
    let broken = hostile_job_after_tenant_limits("behave", one);
    assert_eq!(broken.failed, 2);
    assert_breach(&delivery_errors(&broken)[..1], Limit::Instances, 1);
}

#[test]
fn input_bytes() {
    let context = json!({ "do": "behave", "padding": "x".repeat(2_000) });
    let run = |max| {
        let mut host = with_recorder_source();
        host.add(
            guests::HOSTILE,
            "hostile",
            &[],
            &["^job"],
            limits(|l| l.input_bytes = Some(max)),
        );
        host.ingest(&[
            record(1, &[("job", context.clone())]),
            record(2, &[("job", json!({}))]),
        ])
    };
    assert!(delivery_errors(&run(4_096)).is_empty());
    let broken = run(1_024);
    assert_breach(&delivery_errors(&broken), Limit::InputBytes, 1_024);
    assert_eq!(broken.deliveries, 1);
}

#[test]
fn output_bytes() {
    // The ordinary output is `{"key":"job_N"}` on the channel `ok`: about 20 bytes.
    let obeyed = hostile_job("behave", limits(|l| l.output_bytes = Some(100)));
    assert!(delivery_errors(&obeyed).is_empty());
    let broken = hostile_job("behave", limits(|l| l.output_bytes = Some(10)));
    assert_eq!(broken.failed, 2);
    assert_breach(&delivery_errors(&broken)[..1], Limit::OutputBytes, 10);
    let huge = hostile_job("huge-output", LimitOverrides::default());
    assert_breach(&delivery_errors(&huge), Limit::OutputBytes, 1 << 20);
    assert_next_served(&huge);
}

#[test]
fn events_per_call() {
    let three = record(1, &[("a", json!({})), ("b", json!({})), ("c", json!({}))]);
    let run = |max| {
        let mut host = Host::new();
        host.add(
            guests::RECORDER,
            "source",
            &["thing"],
            &[],
            limits(|l| l.events_per_call = Some(max)),
        );
        host.ingest(&[three.clone(), record(2, &[("d", json!({}))])])
    };
    let obeyed = run(3);
    assert!(source_errors(&obeyed).is_empty());
    assert_eq!(obeyed.new, 4);
    let broken = run(2);
    assert_breach(&source_errors(&broken), Limit::EventsPerCall, 2);
    assert_eq!(broken.new, 1, "the next record is served");
    assert!(matches!(
        &broken.problems[0],
        Problem::SourceFailed { module, .. } if module == "source"
    ));
    let many = hostile_job_source("many");
    assert_breach(&source_errors(&many), Limit::EventsPerCall, 100);
}

/// The hostile module as a source: a record doing `action`, then an ordinary one.
fn hostile_job_source(action: &str) -> RunReport {
    let mut host = with_hostile_source();
    let report = host.ingest(&[json!({ "id": 1, "do": action }), json!({ "id": 2 })]);
    assert_eq!(report.new, 1, "the ordinary record is served: {report:?}");
    report
}

#[test]
fn effects_per_call() {
    // The recorder's handler returns its `seen` output plus one effect per emit.
    let emitting = record(
        1,
        &[(
            "job",
            json!({ "emit": [{ "group": "x", "id": 1 }, { "group": "y", "id": 1 }] }),
        )],
    );
    let run = |max| {
        let mut host = with_recorder_source();
        host.add(
            guests::RECORDER,
            "handler",
            &[],
            &["^job"],
            limits(|l| l.effects_per_call = Some(max)),
        );
        host.ingest(&[emitting.clone(), record(2, &[("job", json!({}))])])
    };
    assert!(delivery_errors(&run(3)).is_empty());
    let broken = run(2);
    assert_breach(&delivery_errors(&broken), Limit::EffectsPerCall, 2);
    assert_eq!(broken.deliveries, 1);
    let many = hostile_job("many", LimitOverrides::default());
    assert_breach(&delivery_errors(&many), Limit::EffectsPerCall, 100);
    assert_next_served(&many);
}

#[test]
fn log_bytes_cut_the_log_without_failing() {
    let panic_log =
        |max| match delivery_errors(&hostile_job("panic", limits(|l| l.log_bytes = Some(max))))
            .as_slice()
        {
            [CallError::Trap { log, .. }] => log.clone(),
            other => panic!("expected a trap, got {other:?}"),
        };
    let full = panic_log(4_096);
    assert!(full.contains("hostile panic for job_1"), "{full}");
    assert!(!full.contains("cut off"), "{full}");
    let cut = panic_log(10);
    assert!(cut.ends_with(" [log cut off at 10 bytes]"), "{cut}");
    assert_eq!(cut.len(), 10 + " [log cut off at 10 bytes]".len());
}

/// The recorder's source makes an event with this group and key.
fn event_with(group: &str, key: &str, context: Value) -> RunReport {
    let mut host = with_recorder_source();
    host.ingest(&[
        json!({ "id": 1, "events": [{ "group": group, "key": key, "context": context }] }),
        json!({ "id": 2, "events": [{ "group": "ok", "id": 2 }] }),
    ])
}

#[test]
fn key_bytes() {
    let obeyed = event_with("g", &"k".repeat(MAX_KEY_BYTES), json!({}));
    assert!(source_errors(&obeyed).is_empty());
    let broken = event_with("g", &"k".repeat(MAX_KEY_BYTES + 1), json!({}));
    assert_breach(
        &source_errors(&broken),
        Limit::KeyBytes,
        MAX_KEY_BYTES as u64,
    );
    assert_eq!(broken.new, 1);
}

#[test]
fn group_bytes() {
    let obeyed = event_with(&"g".repeat(MAX_GROUP_BYTES), "k", json!({}));
    assert!(source_errors(&obeyed).is_empty());
    let broken = event_with(&"g".repeat(MAX_GROUP_BYTES + 1), "k", json!({}));
    assert_breach(
        &source_errors(&broken),
        Limit::GroupBytes,
        MAX_GROUP_BYTES as u64,
    );
}

#[test]
fn context_bytes() {
    let padding = |n| json!({ "p": "x".repeat(n) });
    let obeyed = event_with("g", "k", padding(MAX_CONTEXT_BYTES - 100));
    assert!(source_errors(&obeyed).is_empty());
    let broken = event_with("g", "k", padding(MAX_CONTEXT_BYTES));
    assert_breach(
        &source_errors(&broken),
        Limit::ContextBytes,
        MAX_CONTEXT_BYTES as u64,
    );
}

/// Runs one hostile job per action, the module under `calls_per_instance`, and returns
/// the number each job reported under `field`.
fn reported(actions: &[&str], calls_per_instance: Option<u64>, field: &str) -> Vec<u64> {
    let mut host = with_recorder_source();
    assert!(
        host.spark().instance_pool().is_some(),
        "instances come from the pool, whose slots are reused"
    );
    let limits = limits(|l| l.calls_per_instance = calls_per_instance);
    host.add(guests::HOSTILE, "hostile", &[], &["^job"], limits);
    let jobs: Vec<Value> = actions
        .iter()
        .zip(1..)
        .map(|(action, id)| record(id, &[("job", json!({ "do": action }))]))
        .collect();
    let report = host.ingest(&jobs);
    assert!(report.problems.is_empty(), "{report:?}");
    host.tenant()
        .outbox()
        .map(|item| {
            item.unwrap().payload.as_output().unwrap().payload[field]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn calls_per_instance_replaces_the_instance_and_its_state() {
    let run = |max| reported(&["count"; 4], max, "calls");
    // One instance serves all four calls and keeps its count...
    assert_eq!(run(None), [1, 2, 3, 4]);
    // ...two calls each, then a fresh one...
    assert_eq!(run(Some(2)), [1, 2, 1, 2]);
    // ...or a fresh instance for every call.
    assert_eq!(run(Some(1)), [1, 1, 1, 1]);
}

#[test]
fn a_fresh_instance_finds_nothing_an_earlier_one_left_in_memory() {
    // `leave` fills a static and 2 MiB of heap with a pattern; `snoop` counts the
    // pattern in all of its memory, after growing it by 4 MiB.
    let run = |max| reported(&["leave", "snoop", "leave", "snoop"], max, "traces");
    // The same instance sees what it left (so `snoop` can find traces), and the second
    // `leave` adds to it...
    let [left, seen, left_again, seen_again] = run(None)[..] else {
        panic!("four outputs")
    };
    assert!(left > 0 && seen == left, "{left} {seen}");
    assert!(left_again > left && seen_again == left_again);
    // ...a fresh one, in a slot an earlier instance wrote, sees none of it.
    assert_eq!(run(Some(1)), [left, 0, left, 0]);
}
