//! `ingest --dry-run`: what an ingest would do, with nothing stored.

use serde_json::{Value, json};

use crate::support::{Spark, count, guests, jsonl};

fn input() -> String {
    let mail = json!({ "to": "ada@example.com", "subject": "Hi {{ name }}", "body": "Hello" });
    jsonl(&[
        json!({ "id": 1, "events": [{ "group": "job", "id": 1, "context": { "mail": mail } }] }),
        json!({ "id": 2, "events": [{ "group": "job", "id": 2 }, { "group": "late", "id": 2 }] }),
        // The same event again, in the same input: a duplicate, as in a real run.
        json!({ "id": 3, "events": [{ "group": "job", "id": 1 }] }),
    ])
}

fn ingest(spark: &Spark, extra: &[&str]) -> Value {
    let mut args = vec![
        "ingest",
        "--model",
        "thing",
        "--now",
        "2024-05-01",
        "--json",
    ];
    args.extend_from_slice(extra);
    spark.run_with_input(&args, &input()).ok().json()
}

#[test]
fn a_dry_run_says_what_an_ingest_would_do_and_stores_nothing() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "audit", &["--handler", "^job$"]);

    let dry = ingest(&spark, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert!(spark.events().is_empty(), "a dry run stores no event");
    assert!(spark.outbox().is_empty(), "a dry run stores no outbox item");

    // The same counts as the real ingest that follows.
    let real = ingest(&spark, &[]);
    for field in [
        "records",
        "events",
        "new",
        "duplicates",
        "unrouted",
        "deliveries",
        "failed",
        "pending",
    ] {
        assert_eq!(dry[field], real[field], "`{field}`: {dry} against {real}");
    }
    assert_eq!(count(&dry, "new"), 3);
    assert_eq!(count(&dry, "duplicates"), 1);
    assert_eq!(count(&dry, "unrouted"), 1);
    // Each job made an output `seen`; job 1 a mail too.
    assert_eq!(count(&dry, "outputs"), 2);
    assert_eq!(count(&dry, "mails"), 1);
    assert_eq!(
        spark.outbox().len(),
        3,
        "the real run made what the dry one showed"
    );

    let keys: Vec<&str> = dry["sample"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["job_1", "job_2", "late_2"]);
    let late = &dry["sample"]["events"][2];
    assert_eq!(late["trace"]["handlers"], json!([]));
    let mail = dry["sample"]["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["kind"] == "mail")
        .expect("the mail is shown");
    assert_eq!(mail["data"]["to"], json!(["ada@example.com"]));
    assert_eq!(mail["id"], 0, "no id is given to what is not stored");

    // Once ingested, a dry run finds nothing new.
    let again = ingest(&spark, &["--dry-run"]);
    assert_eq!(count(&again, "new"), 0);
    assert_eq!(count(&again, "duplicates"), 4);
    assert_eq!(count(&again, "mails") + count(&again, "outputs"), 0);
}

#[test]
fn a_dry_run_reads_as_a_list_of_events_and_what_each_handler_made() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "audit", &["--handler", "^job$"]);
    let failing = jsonl(&[json!({ "id": 9, "events": [
        { "group": "job", "id": 9, "context": { "fail": "no luck" } },
    ]})]);
    let input = format!("{}{failing}", input());
    let run = spark
        .run_with_input(&["ingest", "--model", "thing", "--dry-run"], &input)
        // A delivery that fails makes the run's exit status 1, as a real run's.
        .code(1);
    for line in [
        "new events (the first 4):",
        "  job_1 (job): `audit` made 2 outbox items",
        "  late_2 (late): no handler matched",
        "  job_9 (job): `audit` failed: the module returned an error: no luck",
        "outbox items (the first 3):",
        "  mail from `audit` for job_1: to ada@example.com: Hi",
        "dry run, nothing stored: 4 records, 5 events (4 new, 1 duplicate)",
        "it would put 1 mail and 2 outputs in the outbox",
    ] {
        assert!(run.stdout.contains(line), "no {line:?} in:\n{}", run.stdout);
    }
    assert!(spark.events().is_empty());
    assert!(spark.dead().is_empty(), "no dead letter is kept either");
}
