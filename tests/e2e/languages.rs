//! The challenges example in Rust, Python and JavaScript: the same events and the same
//! mails from the same data, and the sandbox's limits holding for an interpreted guest.

use std::path::Path;

use serde_json::{Value, json};

use crate::host::FUEL_ALONE;
use crate::polyglot::{examples, javascript, python, test_guests};
use crate::support::{Spark, guests, jsonl};

const DATA: &str = include_str!("../../examples/challenges/challenges.jsonl");

/// The ledger and the outbox after ingesting the example's data with `source` and
/// `handler`, for comparing: everything but the ids and times.
fn run(source: &Path, handler: &Path) -> (Vec<Value>, Vec<Value>) {
    let spark = Spark::new();
    spark.add(
        source.to_str().unwrap(),
        "challenges",
        &["--source", "challenge"],
    );
    spark.add(
        handler.to_str().unwrap(),
        "mails",
        &["--handler", "^challenge"],
    );
    let data = spark.write("challenges.jsonl", DATA);
    spark
        .run(&[
            "ingest",
            "--model",
            "challenge",
            data.to_str().unwrap(),
            "--now",
            "2024-05-10",
        ])
        .ok();
    // A second day brings more events through the same code paths.
    spark.run(&["process-sources", "--now", "2024-05-20"]).ok();
    let outbox = spark
        .outbox()
        .into_iter()
        .map(|item| json!({ "event": item["event"], "kind": item["kind"], "data": item["data"] }))
        .collect();
    (spark.events(), outbox)
}

#[test]
fn rust_python_and_javascript_make_the_same_events_and_mails() {
    let rust = run(
        guests::CHALLENGES_SOURCE.as_ref(),
        guests::CHALLENGES_MAILER.as_ref(),
    );
    assert!(rust.0.len() > 50, "the example yields events");
    let python_dir = examples().join("python");
    let python = run(
        &python(&python_dir, "source", "source-module"),
        &python(&python_dir, "handler", "handler-module"),
    );
    assert_eq!(python.0, rust.0, "Python's ledger");
    assert_eq!(python.1, rust.1, "Python's outbox");
    let js_dir = examples().join("js");
    let javascript = run(
        &javascript(&js_dir.join("source.js"), "source-module"),
        &javascript(&js_dir.join("handler.js"), "handler-module"),
    );
    assert_eq!(javascript.0, rust.0, "JavaScript's ledger");
    assert_eq!(javascript.1, rust.1, "JavaScript's outbox");
}

#[test]
fn a_hostile_python_guest_is_stopped_and_the_next_event_is_served() {
    let hostile = python(&test_guests().join("python"), "hostile", "handler-module");
    let hostile = hostile.to_str().unwrap();
    let spark = Spark::with_job_handler(
        "python",
        hostile,
        &format!("[retry]\nattempts = 1\n\n{FUEL_ALONE}"),
    );
    let job = |id: u64, action: &str| json!({ "id": id, "events": [{ "group": "job", "id": id, "context": { "do": action } }] });
    spark
        .run_with_input(
            &["ingest", "--model", "thing", "--json"],
            &jsonl(&[
                job(1, "loop"),
                job(2, "alloc"),
                job(3, "raise"),
                job(4, "fail"),
                job(5, "behave"),
            ]),
        )
        .code(1);
    let dead = spark.dead();
    let error = |event: &str| -> (String, String) {
        let letter = dead
            .iter()
            .find(|d| d["event"] == event)
            .unwrap_or_else(|| panic!("{event} is dead: {dead:?}"));
        (
            letter["error_kind"].as_str().unwrap().to_owned(),
            letter["error"].as_str().unwrap().to_owned(),
        )
    };
    let (kind, message) = error("job_1");
    assert_eq!(kind, "limit");
    assert!(
        message.starts_with("fuel limit of 100000000 exceeded"),
        "{message}"
    );
    let (kind, message) = error("job_2");
    assert_eq!(kind, "limit");
    assert!(
        message.starts_with("memory-bytes limit of 67108864 exceeded"),
        "{message}"
    );
    let (kind, message) = error("job_3");
    assert_eq!(kind, "trap");
    assert!(
        message.contains("hostile exception for job_3"),
        "the traceback is kept: {message}"
    );
    let (kind, message) = error("job_4");
    assert_eq!(kind, "guest-error");
    assert!(message.contains("asked to fail for job_4"), "{message}");
    let outbox = spark.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["event"], "job_5");
}

/// Each code block of a guide is code of the example it describes, so that the guide
/// shows code that is built and tested.
fn assert_blocks_are_from(guide: &str, fence: &str, sources: &[&str]) {
    let blocks: Vec<&str> = guide
        .split(&format!("```{fence}\n"))
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert!(!blocks.is_empty());
    for block in blocks {
        for line in block.lines().filter(|line| !line.trim().is_empty()) {
            assert!(
                sources
                    .iter()
                    .any(|source| source.lines().any(|l| l == line)),
                "a {fence} line of the guide is in no example file: {line:?}"
            );
        }
    }
}

#[test]
fn the_python_and_javascript_guides_show_the_examples_code() {
    assert_blocks_are_from(
        include_str!("../../guest-sdk/python.md"),
        "python",
        &[
            include_str!("../../examples/challenges/python/source.py"),
            include_str!("../../examples/challenges/python/handler.py"),
        ],
    );
    assert_blocks_are_from(
        include_str!("../../guest-sdk/javascript.md"),
        "js",
        &[
            include_str!("../../examples/challenges/js/source.js"),
            include_str!("../../examples/challenges/js/handler.js"),
        ],
    );
}
