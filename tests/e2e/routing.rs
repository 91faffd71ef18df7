//! Regex routing: unanchored search, registration order, once per handler per event.

use serde_json::{Value, json};

use crate::support::{Spark, guests, jsonl};

/// A record that makes the recorder's source emit one event per group.
fn record(id: u64, groups: &[&str]) -> Value {
    let events: Vec<Value> = groups
        .iter()
        .map(|group| json!({ "group": group, "id": id }))
        .collect();
    json!({ "id": id, "events": events })
}

/// (event key, handler) for each `seen` output, in outbox order.
fn deliveries(spark: &Spark) -> Vec<(String, String)> {
    spark
        .outbox()
        .iter()
        .filter(|item| item["data"]["channel"] == "seen")
        .map(|item| {
            (
                item["event"].as_str().unwrap().to_owned(),
                item["handler"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn handlers_match_unanchored_in_registration_order_and_run_once() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "zeta", &["--handler", "challenge"]);
    spark.add(guests::RECORDER, "anchored", &["--handler", "^challenge"]);
    spark.add(
        guests::RECORDER,
        "twice",
        &["--handler", "created$", "--handler", "^challenge_"],
    );
    spark.add(
        guests::RECORDER,
        "exact",
        &["--handler", "^challenge_ended$"],
    );

    let input = jsonl(&[
        record(1, &["challenge_created"]),
        record(2, &["old_challenge_x"]),
        record(3, &["user_created"]),
        record(4, &["challenge_ended"]),
        record(5, &["Challenge_created"]),
        record(6, &["nobody_listens"]),
    ]);
    spark
        .run_with_input(
            &["ingest", "--model", "thing", "-", "--now", "2024-05-01"],
            &input,
        )
        .ok();

    let got = deliveries(&spark);
    let expected: Vec<(String, String)> = [
        ("challenge_created_1", "zeta"),
        ("challenge_created_1", "anchored"),
        ("challenge_created_1", "twice"),
        ("old_challenge_x_2", "zeta"),
        ("user_created_3", "twice"),
        ("challenge_ended_4", "zeta"),
        ("challenge_ended_4", "anchored"),
        ("challenge_ended_4", "twice"),
        ("challenge_ended_4", "exact"),
        ("Challenge_created_5", "twice"),
    ]
    .iter()
    .map(|(key, handler)| (key.to_string(), handler.to_string()))
    .collect();
    assert_eq!(got, expected);

    // An event no handler matches is still recorded as seen.
    assert!(spark.event_keys().contains(&"nobody_listens_6".to_owned()));
}

#[test]
fn a_replaced_module_keeps_its_place_in_the_order() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "first", &["--handler", "."]);
    spark.add(guests::RECORDER, "second", &["--handler", "."]);
    spark
        .run(&[
            "module",
            "add",
            guests::RECORDER,
            "--name",
            "first",
            "--handler",
            "^e",
        ])
        .code(2)
        .stderr_has("already registered");
    spark.add(guests::RECORDER, "first", &["--handler", "^e", "--replace"]);
    spark
        .run_with_input(
            &["ingest", "--model", "thing"],
            &jsonl(&[record(1, &["e"])]),
        )
        .ok();
    let handlers: Vec<String> = deliveries(&spark).into_iter().map(|(_, h)| h).collect();
    assert_eq!(handlers, ["first", "second"]);
}

#[test]
fn events_list_filters_by_group_regex() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark
        .run_with_input(
            &["ingest", "--model", "thing"],
            &jsonl(&[record(
                1,
                &["challenge_created", "user_created", "challenge_ended"],
            )]),
        )
        .ok();
    let listed = spark
        .run(&["events", "list", "--group", "^challenge", "--json"])
        .ok()
        .json_lines();
    let keys: Vec<&str> = listed.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["challenge_created_1", "challenge_ended_1"]);
    for event in &listed {
        assert!(event["context"].is_object(), "{event}");
        assert!(event["created_at"].is_string(), "{event}");
    }
    spark
        .run(&["events", "list", "--group", "(bad"])
        .code(2)
        .stderr_has("invalid group regex `(bad`");
}
