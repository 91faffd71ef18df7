//! The challenges example, end to end: the django-spark README rules for a fixed day.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{Spark, count, guests};

const DATA: &str = include_str!("../../examples/challenges/challenges.jsonl");

const MANIFEST: &str = include_str!("../../examples/challenges/spark.toml");

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/challenges")
}

/// The example's manifest, with the paths of the modules built for the tests.
fn example() -> Spark {
    let spark = Spark::new();
    let manifest = MANIFEST
        .replace(
            "../../target/wasm32-wasip2/release/challenges_source.wasm",
            guests::CHALLENGES_SOURCE,
        )
        .replace(
            "../../target/wasm32-wasip2/release/challenges_mailer.wasm",
            guests::CHALLENGES_MAILER,
        )
        .replace(
            "templates = \"templates\"",
            &format!("templates = {:?}", examples().join("templates")),
        )
        .replace("file:../../target/example-mails", "file:mails");
    let manifest = spark.write("spark.toml", manifest);
    spark.run(&["apply", manifest.to_str().unwrap()]).ok();
    spark
}

/// Ingests the example's challenges at `now`: the `--json` summary.
pub fn ingest(spark: &Spark, now: &str) -> Value {
    let data = spark.write("challenges.jsonl", DATA);
    spark
        .run(&[
            "ingest",
            "--model",
            "challenge",
            data.to_str().unwrap(),
            "--now",
            now,
            "--json",
        ])
        .ok()
        .json()
}

/// The rules of the django-spark README, restated from its text for `today`.
fn expected_keys(today: &str) -> BTreeSet<String> {
    let today: jiff::civil::Date = today.parse().unwrap();
    let mut keys = BTreeSet::new();
    for line in DATA.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        if !record["is_active"].as_bool().unwrap() {
            continue;
        }
        let id = record["id"].as_u64().unwrap();
        let start: jiff::civil::Date = record["start_date"].as_str().unwrap().parse().unwrap();
        let end: jiff::civil::Date = record["end_date"].as_str().unwrap().parse().unwrap();
        let started_days_ago = today.duration_since(start).as_hours() / 24;
        let ends_in_days = end.duration_since(today).as_hours() / 24;
        keys.insert(format!("challenge_created_{id}"));
        if started_days_ago > 2 && record["donations"].as_u64().unwrap() < 2 {
            keys.insert(format!("challenge_inactivity_2d_{id}"));
        }
        if ends_in_days <= 2 {
            keys.insert(format!("challenge_ends_2d_{id}"));
        }
        if end < today {
            keys.insert(format!("challenge_ended_{id}"));
        }
    }
    keys
}

#[test]
fn the_example_yields_the_readme_events_for_a_fixed_day() {
    let spark = example();
    let summary = ingest(&spark, "2024-05-10");
    let keys: BTreeSet<String> = spark.event_keys().into_iter().collect();
    assert_eq!(keys, expected_keys("2024-05-10"));
    assert_eq!(count(&summary, "records"), 40);
    assert_eq!(count(&summary, "new"), keys.len() as u64);
    assert_eq!(count(&summary, "duplicates"), 0);
    assert_eq!(count(&summary, "deliveries"), keys.len() as u64);

    // The hand-picked records at the top of the data, one per rule and boundary.
    let groups_of = |id: u64| -> Vec<String> {
        [
            "challenge_created",
            "challenge_inactivity_2d",
            "challenge_ends_2d",
            "challenge_ended",
        ]
        .iter()
        .filter(|group| keys.contains(&format!("{group}_{id}")))
        .map(|group| group.to_string())
        .collect()
    };
    assert_eq!(groups_of(1), ["challenge_created"], "started today");
    assert_eq!(groups_of(2), ["challenge_created"], "started 2 days ago");
    assert_eq!(
        groups_of(3),
        ["challenge_created", "challenge_inactivity_2d"]
    );
    assert_eq!(groups_of(4), ["challenge_created"], "2 donations");
    assert_eq!(
        groups_of(6),
        ["challenge_created", "challenge_ends_2d"],
        "ends in 2 days"
    );
    assert_eq!(
        groups_of(7),
        ["challenge_created", "challenge_ends_2d"],
        "ends today"
    );
    assert_eq!(
        groups_of(8),
        ["challenge_created", "challenge_ends_2d", "challenge_ended"],
        "ended yesterday"
    );
    assert_eq!(
        groups_of(9),
        [
            "challenge_created",
            "challenge_inactivity_2d",
            "challenge_ends_2d",
            "challenge_ended"
        ]
    );
    assert!(groups_of(10).is_empty(), "inactive");
    assert!(groups_of(11).is_empty(), "inactive");
}

#[test]
fn each_event_becomes_one_mail_to_the_owner_with_the_group_template() {
    let spark = example();
    ingest(&spark, "2024-05-10");
    let events = spark.events();
    let outbox = spark.outbox();
    assert_eq!(outbox.len(), events.len());
    for event in &events {
        let key = event["key"].as_str().unwrap();
        let mails: Vec<&Value> = outbox.iter().filter(|item| item["event"] == key).collect();
        assert_eq!(mails.len(), 1, "one mail for {key}");
        let mail = mails[0];
        assert_eq!(mail["kind"], "mail");
        assert_eq!(mail["handler"], "challenge-mails");
        let owner = &event["context"]["challenge"]["owner"]["email"];
        assert_eq!(mail["data"]["to"], serde_json::json!([owner]));
        assert_eq!(mail["data"]["template"], event["group"]);
        // The handler gives the mail no context of its own: the template renders with
        // the event's.
        assert!(mail["data"]["context"].is_null(), "{mail}");
        assert_eq!(mail["data"]["from"], "Challenges <challenges@example.com>");
        // Rendered with the example's template of the event's group (no render error)
        // and the event's context (the title and the owner's name are in it).
        let title = event["context"]["challenge"]["title"].as_str().unwrap();
        let subject = mail["data"]["subject"].as_str().unwrap();
        assert!(subject.contains(&format!("\"{title}\"")), "{subject}");
        assert!(mail["data"]["render_error"].is_null(), "{mail}");
        let body = mail["data"]["body"].as_str().unwrap();
        let name = event["context"]["challenge"]["owner"]["name"]
            .as_str()
            .unwrap();
        assert!(body.starts_with(&format!("Hello {name},")), "{body}");
        assert!(body.ends_with("The Challenges team"), "{body}");
    }
    let ids: Vec<u64> = outbox
        .iter()
        .map(|item| item["id"].as_u64().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "outbox ids are unique and increasing");

    // The manifest's transport writes one .eml per mail into a directory next to it.
    let report = spark.run(&["outbox", "send", "--json"]).ok().json();
    assert_eq!(count(&report, "sent") as usize, outbox.len());
    let written = std::fs::read_dir(spark.data_dir().with_file_name("mails"))
        .unwrap()
        .count();
    assert_eq!(written, outbox.len());
}

#[test]
fn the_example_templates_parse_and_the_sample_context_previews() {
    let spark = example();
    let templates = spark.run(&["mails", "list", "--json"]).ok().json_lines();
    let groups: Vec<&str> = templates
        .iter()
        .map(|t| t["group"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            "challenge_created",
            "challenge_ended",
            "challenge_ends_2d",
            "challenge_inactivity_2d",
            "challenge_stalled"
        ]
    );
    let context = examples().join("sample-context.json");
    let preview = spark
        .run(&[
            "mails",
            "preview",
            "challenge_ended",
            "--context",
            context.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    assert!(
        preview.starts_with("Subject: \"Walk 10k steps\" has ended\n\nHello Ada,"),
        "{preview}"
    );
    assert!(preview.contains("with 5\ndonations."), "{preview}");
}

#[test]
fn a_second_ingest_finds_only_duplicates() {
    let spark = example();
    let first = ingest(&spark, "2024-05-10");
    let outbox_before = spark.outbox();
    let second = ingest(&spark, "2024-05-10");
    assert_eq!(count(&second, "new"), 0);
    assert_eq!(count(&second, "duplicates"), count(&first, "new"));
    assert_eq!(count(&second, "deliveries"), 0);
    // The manifest gives the source the `day` clock: no record went through it again.
    assert_eq!(count(&second, "sources_skipped"), count(&first, "records"));
    assert_eq!(spark.outbox(), outbox_before);
}

#[test]
fn later_runs_add_only_the_events_time_has_brought() {
    let spark = example();
    ingest(&spark, "2024-05-10");
    let before: BTreeSet<String> = spark.event_keys().into_iter().collect();
    let summary = spark
        .run(&["process-sources", "--now", "2024-05-20", "--json"])
        .ok()
        .json();
    let after: BTreeSet<String> = spark.event_keys().into_iter().collect();
    let mut expected = expected_keys("2024-05-10");
    expected.extend(expected_keys("2024-05-20"));
    assert_eq!(after, expected);
    assert_eq!(count(&summary, "new") as usize, after.len() - before.len());
    assert!(count(&summary, "new") > 0);
    // The events first seen on the 20th carry that date.
    for event in spark.events() {
        let key = event["key"].as_str().unwrap();
        let expected_day = if before.contains(key) {
            "2024-05-10"
        } else {
            "2024-05-20"
        };
        assert!(
            event["created_at"]
                .as_str()
                .unwrap()
                .starts_with(expected_day),
            "{event}"
        );
    }
}

#[test]
fn the_example_generator_finds_stalled_challenges() {
    let spark = example();
    ingest(&spark, "2024-05-10");
    let summary = spark
        .run(&["generate", "--now", "2024-05-10", "--json"])
        .ok()
        .json();
    let today: jiff::civil::Date = "2024-05-10".parse().unwrap();
    let mut expected = BTreeSet::new();
    for line in DATA.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let start: jiff::civil::Date = record["start_date"].as_str().unwrap().parse().unwrap();
        let running = today.duration_since(start).as_hours() / 24;
        if record["is_active"] == true && running > 7 && record["donations"] == 0 {
            expected.insert(format!("challenge_stalled_{}", record["id"]));
        }
    }
    assert!(
        !expected.is_empty(),
        "the sample data has stalled challenges"
    );
    let stalled: BTreeSet<String> = spark
        .event_keys()
        .into_iter()
        .filter(|key| key.starts_with("challenge_stalled_"))
        .collect();
    assert_eq!(stalled, expected);
    assert_eq!(count(&summary, "records"), 40);
    assert_eq!(
        count(&summary, "deliveries") as usize,
        expected.len(),
        "each gets a mail"
    );
    // Its template says for how long: the mail sees the generator's whole context.
    let running = regex::Regex::new(r"has been running for \d+ days").unwrap();
    for mail in spark
        .outbox()
        .iter()
        .filter(|item| expected.contains(item["event"].as_str().unwrap()))
    {
        let body = mail["data"]["body"].as_str().unwrap();
        assert!(running.is_match(body), "{body}");
    }
    let described = spark
        .run(&["generators", "describe", "--model", "challenge"])
        .ok()
        .stdout;
    assert!(described.contains("days_running"), "{described}");
}

#[test]
fn the_example_manifest_names_the_modules_the_readme_builds() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/challenges/spark.toml");
    let manifest = spark_host::Manifest::load(&path).unwrap();
    let modules: Vec<(&str, &str)> = manifest
        .modules
        .iter()
        .map(|m| (m.name.as_str(), m.path.to_str().unwrap()))
        .collect();
    assert_eq!(
        modules,
        [
            (
                "challenges",
                "../../target/wasm32-wasip2/release/challenges_source.wasm"
            ),
            (
                "challenge-mails",
                "../../target/wasm32-wasip2/release/challenges_mailer.wasm"
            ),
        ]
    );
    assert_eq!(manifest.modules[0].sources, ["challenge"]);
    assert_eq!(manifest.modules[1].handlers, ["^challenge"]);
}
