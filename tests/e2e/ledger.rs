//! The ledger: each key once, across runs, groups and batches; emitted events.

use serde_json::{Value, json};

use crate::support::{Spark, count, guests, jsonl};

fn recorder() -> Spark {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "handler", &["--handler", "."]);
    spark
}

fn ingest(spark: &Spark, records: &[Value]) -> Value {
    spark
        .run_with_input(
            &[
                "ingest",
                "--model",
                "thing",
                "--now",
                "2024-05-01",
                "--json",
            ],
            &jsonl(records),
        )
        .ok()
        .json()
}

#[test]
fn a_key_is_processed_once_whatever_its_group_and_whenever_it_comes() {
    let spark = recorder();
    let first = ingest(
        &spark,
        &[
            json!({ "id": 1, "events": [
                { "group": "a", "key": "k1" },
                { "group": "b", "key": "k1" },
            ]}),
            json!({ "id": 2, "events": [{ "group": "c", "key": "k1" }, { "group": "a", "key": "k2" }]}),
        ],
    );
    assert_eq!(count(&first, "events"), 4);
    assert_eq!(count(&first, "new"), 2);
    assert_eq!(count(&first, "duplicates"), 2);
    assert_eq!(count(&first, "deliveries"), 2);
    let events = spark.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["key"], "k1");
    assert_eq!(events[0]["group"], "a", "the first group seen is kept");

    let second = ingest(
        &spark,
        &[json!({ "id": 3, "events": [{ "group": "z", "key": "k2" }]})],
    );
    assert_eq!(count(&second, "new"), 0);
    assert_eq!(count(&second, "duplicates"), 1);
    assert_eq!(spark.outbox().len(), 2);
}

#[test]
fn records_keep_their_latest_version() {
    let spark = recorder();
    ingest(
        &spark,
        &[json!({ "id": 1, "events": [{ "group": "a", "id": 1 }] })],
    );
    ingest(
        &spark,
        &[json!({ "id": 1, "events": [{ "group": "a", "id": 2 }] })],
    );
    // process-sources sees only the latest version of record 1: event a_2, seen already.
    let summary = spark.run(&["process-sources", "--json"]).ok().json();
    assert_eq!(count(&summary, "records"), 1);
    assert_eq!(count(&summary, "events"), 1);
    assert_eq!(count(&summary, "duplicates"), 1);

    // Within one input the last line wins, even when it equals what was stored before.
    let newer = json!({ "id": 1, "events": [{ "group": "b", "id": 3 }] });
    let stored = json!({ "id": 1, "events": [{ "group": "a", "id": 2 }] });
    ingest(&spark, &[newer, stored.clone()]);
    // A generator's event carries the stored record as its context.
    spark
        .run(&[
            "generators",
            "add",
            "all",
            "--group",
            "stored",
            "--model",
            "thing",
        ])
        .ok();
    spark.run(&["generate"]).ok();
    let shown = spark
        .run(&["events", "show", "stored_1", "--json"])
        .ok()
        .json();
    assert_eq!(shown["context"], stored);
}

#[test]
fn emitted_events_are_processed_in_turn() {
    let spark = recorder();
    let summary = ingest(
        &spark,
        &[json!({ "id": 1, "events": [{
            "group": "order",
            "id": 1,
            "context": { "emit": [
                { "group": "invoice", "id": 1, "context": { "emit": [{ "group": "receipt", "id": 1 }] } },
                { "group": "order", "id": 1 },
            ]},
        }]})],
    );
    assert_eq!(spark.event_keys(), ["invoice_1", "order_1", "receipt_1"]);
    // order_1 emitted again by its own handler is a duplicate.
    assert_eq!(count(&summary, "events"), 4);
    assert_eq!(count(&summary, "duplicates"), 1);
    assert_eq!(count(&summary, "deliveries"), 3);
}

/// An event that emits a chain of `depth` more events.
fn chain(depth: usize) -> Value {
    let mut context = json!({});
    for level in (1..=depth).rev() {
        context = json!({ "emit": [{ "group": "chain", "id": level, "context": context }] });
    }
    json!({ "group": "chain", "id": 0, "context": context })
}

#[test]
fn emitting_stops_at_the_depth_limit() {
    let limit = spark_host::MAX_EMIT_DEPTH as usize;
    let within = recorder();
    let summary = ingest(&within, &[json!({ "id": 1, "events": [chain(limit)] })]);
    assert_eq!(count(&summary, "new") as usize, limit + 1);
    assert_eq!(count(&summary, "failed"), 0);

    let beyond = recorder();
    let run = beyond.run_with_input(
        &["ingest", "--model", "thing", "--json"],
        &jsonl(&[json!({ "id": 1, "events": [chain(limit + 1)] })]),
    );
    let run = run.code(1).stderr_has("emit depth limit");
    assert_eq!(count(&run.json(), "failed"), 1);
    let dead = beyond.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["event"], format!("chain_{limit}"));
    assert_eq!(dead[0]["error_kind"], "emit-depth");
    // Nothing of the failed delivery was committed: no output for its event.
    let outputs = beyond.outbox();
    assert!(
        !outputs
            .iter()
            .any(|item| item["event"] == format!("chain_{limit}"))
    );
}
