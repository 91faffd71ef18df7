//! Mail templates that once hung or aborted the host (issue 15): rendered in the
//! sandbox, each ends at a limit it names, in `mails preview` and in every ingest, and
//! the mails go out with their own subject and body.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Spark, guests, jsonl};

/// How long a run may take before the test calls it endless: far beyond the one-second
/// time limit of a render (and the first run's compiling of the renderer), so that a
/// slow machine does not fail the test, while a run that never ends still does.
const BOUND: Duration = Duration::from_secs(120);

/// Formats a billion numbers in one instruction: natively it ran for ever.
const FORMAT_A_BILLION: &str = "Subject\n\n{{ [[[1]*1000]*1000]*1000 }}\n";
/// Joins 4 GB in one instruction: natively it aborted the process (exit 134).
const JOIN_FOUR_GB: &str = "Subject\n\n{{ ([\"x\"*10000000]*400)|join|length }}\n";
/// Compares a billion numbers in one instruction and writes nothing.
const COMPARE_A_BILLION: &str =
    "Subject\n\n{{ [[[1]*1000]*1000]*1000 == [[[1]*1000]*1000]*1000 }}\n";

/// `{% set %}` captures a string that doubles twelve times: 4 GB, one `~` at a time.
fn doubling() -> String {
    let mut source = "Subject\n\n{% set a = \"x\" * 1000000 %}".to_owned();
    for _ in 0..12 {
        source.push_str("{% set a = a ~ a %}");
    }
    source + "{{ a|length }}\n"
}

const OUTPUT_LIMIT: &str = "output limit of 1 MiB";
/// 64 MiB, and 1 MiB for a small template.
const MEMORY_LIMIT: &str = "memory limit of 65 MiB";

/// The recorder as source of `thing`, the built-in mail handler for `^user`, and
/// `template` as the template of `user_welcome`.
fn mailer(template: &str) -> Spark {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add("builtin:mails", "mails", &["--handler", "^user"]);
    set_template(&spark, template);
    spark
}

fn set_template(spark: &Spark, template: &str) {
    let file = spark.write("welcome.txt", template);
    spark
        .run(&["mails", "set", "user_welcome", file.to_str().unwrap()])
        .ok();
}

/// Records whose events `user_welcome_ID` each make a mail.
fn welcomes(ids: &[u64]) -> String {
    let records: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({ "id": id, "events": [{ "group": "user_welcome", "id": id, "context": {
                "user": "test",
                "spark_mail": {
                    "to": ["test@example.com"],
                    "subject": "Own subject",
                    "body": "Own body",
                },
            }}]})
        })
        .collect();
    jsonl(&records)
}

/// Ingests the welcomes of `ids`, which must end, and with exit status 0.
fn ingest(spark: &Spark, ids: &[u64]) {
    spark
        .run_bounded(BOUND, &["ingest", "--model", "thing"], &welcomes(ids))
        .ok();
}

/// The mails in the outbox, in id order.
fn mails(spark: &Spark) -> Vec<Value> {
    spark
        .outbox()
        .into_iter()
        .filter(|item| item["kind"] == "mail")
        .map(|item| item["data"].clone())
        .collect()
}

/// What `limit` says: the text an error about it contains.
type Names = fn(&str) -> bool;

/// The whole story of one bomb: `mails preview` ends and names the limit; ingests
/// that render it end with exit status 0, each mail with its own subject and body and
/// a `render_error` that names the limit; a later ingest too; and once the template is
/// mended, mails render again.
fn defused(bomb: &str, names_the_limit: Names) {
    let spark = mailer(bomb);
    let preview = spark
        .run_bounded(BOUND, &["mails", "preview", "user_welcome"], "")
        .code(2)
        .stderr_has("the template for `user_welcome` does not render");
    assert!(names_the_limit(&preview.stderr), "{}", preview.stderr);

    // Two mails in one run: the second renders in the instance that replaced the one
    // the first one's trap dropped.
    ingest(&spark, &[1, 2]);
    ingest(&spark, &[3]);
    let fallen_back = mails(&spark);
    assert_eq!(fallen_back.len(), 3);
    for mail in &fallen_back {
        assert_eq!(mail["subject"], "Own subject");
        assert_eq!(mail["body"], "Own body");
        let why = mail["render_error"].as_str().unwrap();
        assert!(names_the_limit(why), "{why}");
    }

    set_template(&spark, "Dear {{ user }}\n\nWelcome.\n");
    ingest(&spark, &[4]);
    let all = mails(&spark);
    let mended = all.last().unwrap();
    assert_eq!(mended["subject"], "Dear test");
    assert_eq!(mended["body"], "Welcome.");
    assert!(mended["render_error"].is_null(), "{mended}");
}

#[test]
fn formatting_a_billion_numbers_ends_at_the_output_limit() {
    defused(FORMAT_A_BILLION, |text| text.contains(OUTPUT_LIMIT));
}

#[test]
fn joining_four_gigabytes_ends_at_the_memory_limit() {
    defused(JOIN_FOUR_GB, |text| text.contains(MEMORY_LIMIT));
}

#[test]
fn doubling_a_string_ends_at_the_memory_limit() {
    defused(&doubling(), |text| text.contains(MEMORY_LIMIT));
}

#[test]
fn comparing_a_billion_numbers_ends_at_the_time_limit() {
    // The deadline ends it wherever the engine's epoch thread runs; fuel would, a
    // little later, where it did not.
    defused(COMPARE_A_BILLION, |text| {
        text.contains("time limit of 1000 ms") || text.contains("fuel limit of 5000000000")
    });
}
