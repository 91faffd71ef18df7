//! `spark call`: one call of a module on a sample record or event, under its limits,
//! showing what it returned, logged and used; nothing is stored.

use serde_json::json;

use crate::support::{Spark, guests};

#[test]
fn a_registered_handler_is_called_with_an_event_and_nothing_is_stored() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "audit", &["--handler", "^job"]);
    let event = json!({ "group": "job", "key": "job_1", "context": {
        "emit": [{ "group": "child", "id": 1 }],
        "mail": { "to": "ada@example.com", "subject": "Hi", "body": "Hello" },
    }});
    let file = spark.write("event.json", event.to_string());
    let file = file.to_str().unwrap();

    let shown = spark
        .run(&["call", "audit", "--event", file, "--json"])
        .ok()
        .json();
    assert_eq!(shown["ok"], true);
    assert_eq!(shown["error"], serde_json::Value::Null);
    assert!(shown["fuel"].as_u64().unwrap() > 0);
    let kinds: Vec<&str> = shown["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|effect| effect["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["output", "emit", "mail"]);
    assert_eq!(
        shown["effects"][0]["payload"],
        json!({ "key": "job_1", "group": "job", "attempt": 1 })
    );
    assert_eq!(shown["effects"][1]["event"]["key"], "child_1");
    assert_eq!(
        shown["effects"][2]["mail"]["to"],
        json!(["ada@example.com"])
    );

    let text = spark.run(&["call", "audit", "--event", file]).ok().stdout;
    for line in [
        "`audit` (handler) returned 3 effects in ",
        " fuel\n",
        "  output `seen`: {",
        "  emit child_1 (group child): {}",
        "  mail to ada@example.com: Hi",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(spark.events().is_empty(), "a call stores no event");
    assert!(spark.outbox().is_empty(), "a call stores no effect");
}

#[test]
fn a_source_is_called_with_a_record_from_stdin() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    let record = json!({ "id": 7, "events": [{ "group": "job", "id": 7, "context": { "n": 1 } }] });
    let shown = spark
        .run_with_input(
            &[
                "call", "source", "--model", "thing", "--record", "-", "--json",
            ],
            &record.to_string(),
        )
        .ok()
        .json();
    assert_eq!(
        shown["events"],
        json!([{ "group": "job", "key": "job_7", "context": { "n": 1 } }])
    );
    assert!(spark.events().is_empty());
}

#[test]
fn a_component_file_is_called_before_it_is_registered_without_a_data_dir() {
    let spark = Spark::new();
    let event = json!({ "group": "job", "key": "job_1" });
    let run = spark
        .run_with_input(
            &["call", guests::RECORDER, "--event", "-", "--json"],
            &event.to_string(),
        )
        .ok();
    assert_eq!(run.json()["effects"][0]["kind"], "output");
    assert!(
        !spark.data_dir().exists(),
        "trying a file makes no data dir"
    );
}

#[test]
fn a_failing_call_exits_1_with_its_error_and_what_it_logged() {
    let spark = Spark::new();
    spark.add(guests::HOSTILE, "broken", &["--handler", "^job"]);
    let event = json!({ "group": "job", "key": "job_1", "context": { "do": "panic" } });
    let file = spark.write("event.json", event.to_string());
    let file = file.to_str().unwrap();
    spark
        .run(&["call", "broken", "--event", file])
        .code(1)
        .stderr_has("error: `broken` (handler) failed after ")
        .stderr_has("the module trapped");
    let shown = spark
        .run(&["call", "broken", "--event", file, "--json"])
        .code(1)
        .json();
    assert_eq!(shown["ok"], false);
    assert_eq!(shown["error"]["kind"], "trap");
    assert!(
        shown["log"]
            .as_str()
            .unwrap()
            .contains("hostile panic for job_1"),
        "{shown}"
    );
    assert!(spark.dead().is_empty(), "a failed call parks nothing");
}

#[test]
fn bad_input_and_the_wrong_interface_exit_2_with_what_to_do() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(
        guests::CHALLENGES_MAILER,
        "handler-only",
        &["--handler", "^job"],
    );
    let no_id = spark.write("no-id.json", r#"{"name": "x"}"#);
    spark
        .run(&[
            "call",
            "source",
            "--model",
            "thing",
            "--record",
            no_id.to_str().unwrap(),
        ])
        .code(2)
        .stderr_has("invalid input: the record");
    let event = spark.write("event.json", r#"{"group": "job"}"#);
    spark
        .run(&["call", "handler-only", "--event", event.to_str().unwrap()])
        .code(2)
        .stderr_has("invalid input: the event is not");
    let record = spark.write("record.json", r#"{"id": 1}"#);
    spark
        .run(&[
            "call",
            "handler-only",
            "--model",
            "thing",
            "--record",
            record.to_str().unwrap(),
        ])
        .code(2)
        .stderr_has("module `handler-only` does not export a source");
    spark
        .run(&[
            "call",
            "nobody",
            "--model",
            "thing",
            "--record",
            record.to_str().unwrap(),
        ])
        .code(2)
        .stderr_has("no module named `nobody` is registered");
    spark.run(&["call", "source"]).code(2);
}
