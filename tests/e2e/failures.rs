//! Handler failures lose nothing: retried with backoff, parked as dead, delivered
//! again by `dead retry` once the module is fixed.

use serde_json::{Value, json};

use crate::support::{Spark, count, guests, jsonl};

fn job(id: u64, context: Value) -> Value {
    json!({ "id": id, "events": [{ "group": "job", "id": id, "context": context }] })
}

#[test]
fn a_failing_handler_is_retried_then_dead_then_delivered_after_a_fix() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "audit", &["--handler", "^job"]);
    // The broken version of `mailer` panics on jobs that ask for it.
    spark.add(guests::HOSTILE, "mailer", &["--handler", "^job"]);

    let input = jsonl(&[job(1, json!({ "do": "panic" })), job(2, json!({}))]);
    let run = spark
        .run_with_input(
            &[
                "ingest",
                "--model",
                "thing",
                "--now",
                "2024-05-01",
                "--json",
            ],
            &input,
        )
        .code(1)
        .stderr_has("attempt 1, will be retried")
        .stderr_has("attempt 3, parked as dead")
        .stderr_has("hostile panic for job_1");
    let summary = run.json();
    assert_eq!(count(&summary, "new"), 2);
    assert_eq!(count(&summary, "failed"), 1);
    assert_eq!(count(&summary, "retried"), 2);
    // audit ran for both jobs, mailer for job 2.
    assert_eq!(count(&summary, "deliveries"), 3);

    let dead = spark.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["event"], "job_1");
    assert_eq!(dead[0]["handler"], "mailer");
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["error_kind"], "trap");
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .contains("hostile panic for job_1")
    );

    // The event is seen: ingesting it again does not deliver it again.
    let again = spark
        .run_with_input(&["ingest", "--model", "thing", "--json"], &input)
        .ok()
        .json();
    assert_eq!(count(&again, "duplicates"), 2);
    assert_eq!(spark.dead().len(), 1);

    // The operator fixes `mailer` and retries: the dead letter reaches the new version.
    spark.add(
        guests::RECORDER,
        "mailer",
        &["--handler", "^job", "--replace"],
    );
    let retry = spark.run(&["dead", "retry", "--json"]).ok().json();
    assert_eq!(count(&retry, "deliveries"), 1);
    assert!(spark.dead().is_empty());
    let delivered: Vec<Value> = spark
        .outbox()
        .into_iter()
        .filter(|item| item["handler"] == "mailer" && item["event"] == "job_1")
        .collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0]["data"]["payload"]["attempt"], 4,
        "the attempt counts on"
    );
    assert_eq!(
        spark.run(&["dead", "retry"]).ok().stdout,
        "no dead letters to retry\n"
    );
}

#[test]
fn a_retry_that_succeeds_commits_the_effects_once() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "flaky", &["--handler", "^job"]);
    let input = jsonl(&[job(1, json!({ "fail_before_attempt": 3 }))]);
    let summary = spark
        .run_with_input(&["ingest", "--model", "thing", "--json"], &input)
        .ok()
        .stderr_has("attempt 2 is too early")
        .json();
    assert_eq!(count(&summary, "retried"), 2);
    assert_eq!(count(&summary, "deliveries"), 1);
    assert_eq!(count(&summary, "failed"), 0);
    let outbox = spark.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["data"]["payload"]["attempt"], 3);
    assert!(spark.dead().is_empty());
}

#[test]
fn the_retry_policy_comes_from_the_manifest() {
    let retry = "[retry]\nattempts = 1\nbackoff-ms = 5";
    let spark = Spark::with_job_handler("mailer", guests::RECORDER, retry);
    let input = jsonl(&[job(1, json!({ "fail": "no route to the moon" }))]);
    let summary = spark
        .run_with_input(&["ingest", "--model", "thing", "--json"], &input)
        .code(1)
        .json();
    assert_eq!(count(&summary, "retried"), 0);
    assert_eq!(count(&summary, "failed"), 1);
    let dead = spark.dead();
    assert_eq!(dead[0]["attempts"], 1);
    assert_eq!(dead[0]["error_kind"], "guest-error");
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .contains("no route to the moon")
    );
}

#[test]
fn dead_retry_of_a_removed_handler_keeps_the_letter() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::HOSTILE, "mailer", &["--handler", "^job"]);
    spark
        .run_with_input(
            &["ingest", "--model", "thing"],
            &jsonl(&[job(1, json!({ "do": "fail" }))]),
        )
        .code(1);
    spark.run(&["module", "remove", "mailer"]).ok();
    spark
        .run(&["dead", "retry", "job_1"])
        .code(1)
        .stderr_has("not registered as a handler");
    let dead = spark.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["error_kind"], "no-such-handler");
    assert_eq!(dead[0]["attempts"], 4);
    spark
        .run(&["dead", "retry", "no_such_event"])
        .code(2)
        .stderr_has("no dead letters match");
}
