//! Module clocks: a module with a coarse clock sees the run's time rounded down, and
//! its source is called once per record and period (unchanged records skip it).

use serde_json::{Value, json};
use spark_host::parse_time;

use crate::support::{Spark, count, guests, jsonl};

fn ingest(spark: &Spark, now: &str, records: &[Value]) -> Value {
    spark
        .run_with_input(
            &["ingest", "--model", "thing", "--now", now, "--json"],
            &jsonl(records),
        )
        .json()
}

fn thing(id: u64, groups: &[&str]) -> Value {
    let events: Vec<Value> = groups
        .iter()
        .map(|group| json!({ "group": group, "id": id }))
        .collect();
    json!({ "id": id, "stamp_now": true, "events": events })
}

fn day_clock_recorder() -> Spark {
    let spark = Spark::new();
    spark.add(
        guests::RECORDER,
        "source",
        &["--source", "thing", "--clock", "day"],
    );
    spark.add(guests::RECORDER, "handler", &["--handler", "."]);
    spark
}

#[test]
fn a_day_clock_source_sees_the_day_and_is_called_once_per_record_and_day() {
    let spark = day_clock_recorder();
    let failing = json!({ "id": 3, "fail": "not today" });
    let records = [thing(1, &["a"]), thing(2, &["b"]), failing.clone()];

    let first = ingest(&spark, "2024-05-01T08:00:00Z", &records);
    assert_eq!(count(&first, "new"), 2);
    assert_eq!(count(&first, "sources_skipped"), 0);
    assert_eq!(count(&first, "source_errors"), 1);
    let midnight = parse_time("2024-05-01").unwrap();
    for event in spark.events() {
        assert_eq!(event["context"]["now_ms"], midnight, "{event}");
    }

    // Later the same day: the two records whose call succeeded skip it; their events
    // count as duplicates. The failed call left no memo, so it is made again.
    let later = ingest(&spark, "2024-05-01T20:00:00Z", &records);
    assert_eq!(count(&later, "sources_skipped"), 2);
    assert_eq!(count(&later, "events"), 2);
    assert_eq!(count(&later, "duplicates"), 2);
    assert_eq!(count(&later, "new"), 0);
    assert_eq!(count(&later, "deliveries"), 0);
    assert_eq!(count(&later, "source_errors"), 1);

    // A changed record is not skipped, and its new event is found.
    let changed = ingest(
        &spark,
        "2024-05-01T21:00:00Z",
        &[thing(1, &["a"]), thing(2, &["b", "c"])],
    );
    assert_eq!(count(&changed, "sources_skipped"), 1);
    assert_eq!(count(&changed, "new"), 1);
    assert_eq!(count(&changed, "duplicates"), 2);
    // Changed back, it is not skipped either: the memo is of the last call.
    let back = ingest(&spark, "2024-05-01T22:00:00Z", &[thing(2, &["b"])]);
    assert_eq!(count(&back, "sources_skipped"), 0);
    assert_eq!(count(&back, "duplicates"), 1);

    // The next day, every source is called again.
    let next_day = ingest(&spark, "2024-05-02T00:00:00Z", &records[..2]);
    assert_eq!(count(&next_day, "sources_skipped"), 0);
    assert_eq!(count(&next_day, "duplicates"), 2);

    // process-sources reads the stored records: the same memo applies.
    let reprocessed = spark
        .run(&["process-sources", "--now", "2024-05-02T12:00:00Z", "--json"])
        .json();
    assert_eq!(count(&reprocessed, "records"), 3);
    assert_eq!(count(&reprocessed, "sources_skipped"), 2);
    assert_eq!(count(&reprocessed, "source_errors"), 1);
    assert_eq!(spark.outbox().len(), 3, "each new event was handled once");
}

#[test]
fn an_exact_clock_source_is_called_for_every_record() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    let records = [thing(1, &["a"]), thing(2, &["b"])];
    let now = "2024-05-01T08:00:00.123Z";
    ingest(&spark, now, &records);
    let again = ingest(&spark, now, &records);
    assert_eq!(count(&again, "sources_skipped"), 0);
    assert_eq!(count(&again, "duplicates"), 2);
    let exact = parse_time(now).unwrap();
    for event in spark.events() {
        assert_eq!(event["context"]["now_ms"], exact, "{event}");
    }
}

fn replace_source(spark: &Spark, wasm: &str, clock: &str) {
    spark.add(
        wasm,
        "source",
        &["--source", "thing", "--clock", clock, "--replace"],
    );
}

#[test]
fn replacing_the_module_or_changing_its_clock_calls_the_source_again() {
    let spark = day_clock_recorder();
    let records = [thing(1, &["a"])];
    ingest(&spark, "2024-05-01T08:00:00Z", &records);
    // Another component under the same name: its code is part of the memo's input, so
    // it is called (and fails: a thing is no challenge).
    replace_source(&spark, guests::CHALLENGES_SOURCE, "day");
    let other_code = ingest(&spark, "2024-05-01T08:30:00Z", &records);
    assert_eq!(count(&other_code, "sources_skipped"), 0);
    assert_eq!(count(&other_code, "source_errors"), 1);
    replace_source(&spark, guests::RECORDER, "day");
    // The failed call left no memo: the first code is called again, then skipped.
    let first_code = ingest(&spark, "2024-05-01T09:00:00Z", &records);
    assert_eq!(count(&first_code, "sources_skipped"), 0);
    assert_eq!(count(&first_code, "duplicates"), 1);
    let same_code = ingest(&spark, "2024-05-01T09:10:00Z", &records);
    assert_eq!(count(&same_code, "sources_skipped"), 1);

    replace_source(&spark, guests::RECORDER, "hour");
    let hourly = ingest(&spark, "2024-05-01T09:30:00Z", &records);
    assert_eq!(
        count(&hourly, "sources_skipped"),
        0,
        "it sees 09:00, not midnight"
    );
    let modules = spark.run(&["module", "list", "--json"]).ok().json_lines();
    assert_eq!(modules[0]["clock"], "hour");
    assert_eq!(modules[1]["clock"], "exact");
}

#[test]
fn an_unknown_clock_is_refused() {
    let spark = Spark::new();
    let run = spark
        .run(&[
            "module",
            "add",
            guests::RECORDER,
            "--name",
            "source",
            "--source",
            "thing",
            "--clock",
            "daily",
        ])
        .code(2);
    assert!(
        run.stderr.contains("expected exact, minute, hour or day"),
        "{}",
        run.stderr
    );
    let manifest = spark.write(
        "spark.toml",
        format!(
            "[[modules]]\nname = \"source\"\npath = {:?}\nsources = [\"thing\"]\nclock = \"daily\"\n",
            guests::RECORDER
        ),
    );
    let run = spark.run(&["apply", manifest.to_str().unwrap()]).code(2);
    assert!(run.stderr.contains("daily"), "{}", run.stderr);
    // Nothing was set up: the refused manifest did not even make the tenant.
    spark
        .run(&["module", "list", "--json"])
        .code(2)
        .stderr_has("there is no tenant `default`");
}
