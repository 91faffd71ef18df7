//! "Why did nothing happen?": each event keeps a trace (where it came from, the
//! handlers its group matched, each delivery's outcome, time, fuel and log), `events
//! show` prints it, an ingest says when new events matched no handler, and `module
//! add` warns of a handler regex that matches no group seen.

use serde_json::{Value, json};

use crate::support::{Spark, count, guests, jsonl};

fn show(spark: &Spark, key: &str) -> Value {
    spark.run(&["events", "show", key, "--json"]).ok().json()
}

#[test]
fn an_events_trace_tells_which_handlers_ran_how_and_what_they_logged() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "audit", &["--handler", "^job"]);
    // `noisy` prints 100 long lines and one on stderr for each job it handles.
    spark.add(guests::HOSTILE, "noisy", &["--handler", "^job"]);
    let record = json!({ "id": 1, "events": [{ "group": "job", "id": 1, "context": {
        "fail_before_attempt": 2,
        "emit": [{ "group": "child", "id": 1 }],
        "do": "print",
    }}]});
    let run = spark
        .run_with_input(
            &["ingest", "--model", "thing", "--now", "2024-05-01"],
            &jsonl(&[record]),
        )
        .ok()
        .stderr_has("note: 1 new event matched no handler's regex");
    assert!(
        run.stdout.contains("1 new event matched no handler"),
        "{}",
        run.stdout
    );

    let job = show(&spark, "job_1");
    let trace = &job["trace"];
    assert_eq!(
        trace["origin"],
        json!({ "kind": "source", "module": "source" })
    );
    assert_eq!(trace["handlers"], json!(["audit", "noisy"]));
    let steps = trace["steps"].as_array().unwrap();
    let summary: Vec<(&str, u64, &str)> = steps
        .iter()
        .map(|step| {
            (
                step["handler"].as_str().unwrap(),
                step["attempt"].as_u64().unwrap(),
                step["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("audit", 1, "retry"),
            ("noisy", 1, "done"),
            ("audit", 2, "done")
        ]
    );
    assert_eq!(
        steps[0]["error"],
        "the module returned an error: attempt 1 is too early"
    );
    assert_eq!(steps[0]["effects"], 0);
    // The retry made the output and the child; the first attempt made neither.
    assert_eq!(steps[2]["effects"], 1);
    assert_eq!(steps[2]["emitted"], 1);
    assert_eq!(steps[2]["emitted_keys"], json!(["child_1"]));
    for step in steps {
        assert!(step["fuel"].as_u64().unwrap() > 0, "{step}");
    }
    // The log is kept bounded, by its end (the sandbox cut it first, and says so).
    let log = steps[1]["log"].as_str().unwrap();
    assert!(log.starts_with('…') && log.contains("spam spam"), "{log}");
    assert!(log.ends_with("[log cut off at 4096 bytes]"), "{log}");
    assert!(log.len() <= 2048 + '…'.len_utf8(), "{} bytes", log.len());

    let child = show(&spark, "child_1");
    assert_eq!(
        child["trace"]["origin"],
        json!({ "kind": "emitted", "parent": "job_1", "handler": "audit" })
    );
    assert_eq!(child["trace"]["handlers"], json!([]));

    // The same, as a person reads it.
    let text = spark.run(&["events", "show", "job_1"]).ok().stdout;
    for line in [
        "from:       source `source`",
        "handlers:   `audit`, `noisy`",
        "delivery:   `audit` attempt 1 at ",
        "retry in ",
        ": the module returned an error: attempt 1 is too early",
        "1 outbox item, 1 event emitted (child_1)",
        "              | spam spam",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    let text = spark.run(&["events", "show", "child_1"]).ok().stdout;
    assert!(
        text.contains("handlers:   none: no handler's regex matches group `child`"),
        "{text}"
    );
}

#[test]
fn a_delivery_that_dies_and_is_retried_by_hand_shows_every_attempt() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::HOSTILE, "mailer", &["--handler", "^job"]);
    let record =
        json!({ "id": 1, "events": [{ "group": "job", "id": 1, "context": { "do": "panic" } }] });
    spark
        .run_with_input(&["ingest", "--model", "thing"], &jsonl(&[record]))
        .code(1);
    spark.add(
        guests::RECORDER,
        "mailer",
        &["--handler", "^job", "--replace"],
    );
    let retry = spark.run(&["dead", "retry", "--json"]).ok().json();
    assert_eq!(count(&retry, "deliveries"), 1);

    let steps = show(&spark, "job_1")["trace"]["steps"].clone();
    let outcomes: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "dead", "done"]);
    // A trap keeps what the module wrote before it: a Rust panic's message.
    assert!(
        steps[0]["log"]
            .as_str()
            .unwrap()
            .contains("hostile panic for job_1"),
        "{}",
        steps[0]
    );
    assert_eq!(steps[3]["attempt"], 4);
}

#[test]
fn a_handler_regex_that_matches_no_group_seen_is_warned_of() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    // Nothing seen yet: nothing to warn of.
    let quiet = spark.run(&[
        "module",
        "add",
        guests::RECORDER,
        "--name",
        "early",
        "--handler",
        "^order-late",
    ]);
    assert!(!quiet.ok().stderr.contains("warning"));
    let record = json!({ "id": 1, "events": [{ "group": "order_late", "id": 1 }] });
    spark
        .run_with_input(&["ingest", "--model", "thing"], &jsonl(&[record]))
        .ok()
        .stderr_has("note: 1 new event matched no handler's regex");
    spark
        .run(&[
            "module",
            "add",
            guests::RECORDER,
            "--name",
            "late",
            "--handler",
            "^order-late",
        ])
        .ok()
        .stderr_has(
            "warning: handler regex `^order-late` of module `early` matches no group seen \
             so far (`order_late`)",
        )
        .stderr_has("warning: handler regex `^order-late` of module `late`");
    // A regex that matches says nothing.
    let fixed = spark
        .run(&[
            "module",
            "add",
            guests::RECORDER,
            "--name",
            "late",
            "--handler",
            "^order_late",
            "--replace",
        ])
        .ok();
    assert!(!fixed.stderr.contains("module `late`"), "{}", fixed.stderr);
}
