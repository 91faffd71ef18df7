//! Generators: declarative events from stored records, with conditions; django-spark's
//! own generator cases first.

use serde_json::{Value, json};

use crate::support::{Spark, count, guests, jsonl};

/// The recorder as source (no events) and context function (adds `key_length`) of
/// `word`, with ten words of lengths 1 to 10.
fn words() -> Spark {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "words", &["--source", "word"]);
    let records: Vec<Value> = (1..=10)
        .map(|n| json!({ "id": n, "key": "k".repeat(n) }))
        .collect();
    spark
        .run_with_input(&["ingest", "--model", "word"], &jsonl(&records))
        .ok();
    spark
}

fn generate(spark: &Spark) -> Value {
    spark
        .run(&["generate", "--now", "2024-05-01", "--json"])
        .ok()
        .json()
}

#[test]
fn key_length_over_five_yields_five_events_once() {
    let spark = words();
    spark
        .run(&[
            "generators",
            "add",
            "long",
            "--group",
            "long_key",
            "--model",
            "word",
            "--when",
            "key_length > 5",
        ])
        .ok();
    let first = generate(&spark);
    assert_eq!(count(&first, "records"), 10);
    assert_eq!(count(&first, "new"), 5);
    assert_eq!(
        spark.event_keys(),
        [
            "long_key_10",
            "long_key_6",
            "long_key_7",
            "long_key_8",
            "long_key_9"
        ]
    );
    // The event's context is the one the context function computed.
    assert_eq!(spark.events()[1]["context"]["key_length"], 6);
    let second = generate(&spark);
    assert_eq!(count(&second, "new"), 0);
    assert_eq!(count(&second, "duplicates"), 5);
}

#[test]
fn a_condition_on_a_missing_variable_yields_nothing() {
    let spark = words();
    spark
        .run(&[
            "generators",
            "add",
            "ghost",
            "--group",
            "g",
            "--model",
            "word",
            "--when",
            "no_such_thing > 1",
        ])
        .ok();
    let summary = generate(&spark);
    assert_eq!(count(&summary, "events"), 0);
    assert_eq!(
        count(&summary, "mismatches"),
        0,
        "missing is not a mismatch"
    );
}

#[test]
fn two_generators_on_one_model_read_it_once() {
    let spark = words();
    spark
        .run(&[
            "generators",
            "add",
            "one",
            "--group",
            "group1",
            "--model",
            "word",
        ])
        .ok();
    spark
        .run(&[
            "generators",
            "add",
            "two",
            "--group",
            "group2",
            "--model",
            "word",
            "--when",
            "key_length <= 2",
        ])
        .ok();
    let summary = generate(&spark);
    assert_eq!(count(&summary, "records"), 10, "each record read once");
    assert_eq!(count(&summary, "new"), 12);
    let keys = spark.event_keys();
    assert!(keys.contains(&"group1_7".to_owned()));
    assert!(keys.contains(&"group2_2".to_owned()));
    assert!(!keys.contains(&"group2_3".to_owned()));
}

#[test]
fn an_inactive_generator_yields_nothing_until_activated() {
    let spark = words();
    spark
        .run(&[
            "generators",
            "add",
            "later",
            "--group",
            "later",
            "--model",
            "word",
            "--inactive",
        ])
        .ok();
    assert_eq!(count(&generate(&spark), "events"), 0);
    let listed = spark
        .run(&["generators", "list", "--json"])
        .ok()
        .json_lines();
    assert_eq!(listed[0]["active"], false);
    spark.run(&["generators", "activate", "later"]).ok();
    assert_eq!(count(&generate(&spark), "new"), 10);
    spark.run(&["generators", "deactivate", "later"]).ok();
    spark.run(&["generators", "remove", "later"]).ok();
    spark
        .run(&["generators", "show", "later"])
        .code(2)
        .stderr_has("no generator named `later`");
}

#[test]
fn bad_definitions_are_refused_when_saved() {
    let spark = words();
    spark
        .run(&["generators", "add", "g", "--group", "g", "--model", "word"])
        .ok();
    let cases: &[(&str, &str, &str, &str)] = &[
        ("h", "word", "key_length ~ 5", "no operator"),
        ("h", "word", "key_length >", "the value is missing"),
        ("h", "word", "key length > 5", "is not a variable"),
        ("h", "word", "flag > true", "booleans can only be compared"),
        ("h", "word", "name = 'open", "not closed"),
        ("", "word", "n > 1", "its group"),
        ("h", "not a model", "n > 1", "its model"),
    ];
    for (group, model, condition, expected) in cases {
        spark
            .run(&[
                "generators",
                "add",
                "h",
                "--group",
                group,
                "--model",
                model,
                "--when",
                condition,
            ])
            .code(2)
            .stderr_has(expected);
    }
    spark
        .run(&[
            "generators",
            "add",
            "g",
            "--group",
            "other",
            "--model",
            "word",
        ])
        .code(2)
        .stderr_has("a generator named `g` already exists");
    let listed = spark
        .run(&["generators", "list", "--json"])
        .ok()
        .json_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["group"], "g");
    spark
        .run(&[
            "generators",
            "add",
            "g",
            "--group",
            "other",
            "--model",
            "word",
            "--replace",
        ])
        .ok();
}

#[test]
fn conditions_on_plain_records_with_every_type_and_path() {
    let spark = Spark::new();
    // No module at all: the generator makes the model known.
    spark
        .run(&[
            "generators",
            "add",
            "bernese",
            "--group",
            "bernese",
            "--model",
            "person",
            "--when",
            "age >= 18",
            "--when",
            "address.city = 'Bern'",
            "--when",
            "score > 2.5",
            "--when",
            "member = true",
        ])
        .ok();
    let people = [
        json!({ "id": "ada", "age": 36, "address": { "city": "Bern" }, "score": 3.1, "member": true }),
        json!({ "id": "bob", "age": 17, "address": { "city": "Bern" }, "score": 3.1, "member": true }),
        json!({ "id": "cy", "age": 40, "address": { "city": "Basel" }, "score": 3.1, "member": true }),
        json!({ "id": "di", "age": 40, "address": { "city": "Bern" }, "score": 2.5, "member": true }),
        json!({ "id": "ed", "age": 40, "address": { "city": "Bern" }, "score": 9, "member": false }),
        json!({ "id": "flo", "age": "40", "address": { "city": "Bern" }, "score": 9, "member": true }),
        json!({ "id": "gus", "address": { "city": "Bern" }, "score": 9, "member": true }),
    ];
    spark
        .run_with_input(&["ingest", "--model", "person", "--json"], &jsonl(&people))
        .ok();
    let run = spark
        .run(&["generate", "--json"])
        .code(1)
        .stderr_has("record `flo` of `person`: generator `bernese` skipped it: `age` is a string");
    let summary = run.json();
    assert_eq!(count(&summary, "records"), 7);
    assert_eq!(count(&summary, "mismatches"), 1);
    assert_eq!(spark.event_keys(), ["bernese_ada"]);
    assert_eq!(spark.events()[0]["context"]["address"]["city"], "Bern");

    let described = spark
        .run(&["generators", "describe", "--model", "person"])
        .ok()
        .stdout;
    assert!(
        described.contains("conditions test the record's own fields"),
        "{described}"
    );
    assert!(
        described.contains("address") && described.contains("an object"),
        "{described}"
    );
}

#[test]
fn describe_lists_the_variables_of_the_context_module() {
    let spark = words();
    let described = spark
        .run(&["generators", "describe", "--model", "word"])
        .ok()
        .stdout;
    assert!(described.contains("module `words`"), "{described}");
    assert!(
        described.contains("key_length") && described.contains("the length of the record's `key`"),
        "{described}"
    );
    spark
        .run(&["generators", "describe", "--model", "nope"])
        .code(2)
        .stderr_has("unknown model `nope`");
}

#[test]
fn generated_events_reach_handlers_and_generators_come_from_the_manifest() {
    let spark = Spark::new();
    let manifest = |generators: &str| {
        spark.write(
            "spark.toml",
            format!(
                "[[modules]]\nname = \"words\"\npath = {:?}\nsources = [\"word\"]\n\n\
                 [[modules]]\nname = \"seen\"\npath = {:?}\nhandlers = [\"^long\"]\n\n{generators}",
                guests::RECORDER,
                guests::RECORDER
            ),
        )
    };
    let with_two = manifest(
        "[[generators]]\nname = \"long\"\ngroup = \"long_key\"\nmodel = \"word\"\nwhen = [\"key_length > 8\"]\n\n\
         [[generators]]\nname = \"short\"\ngroup = \"short_key\"\nmodel = \"word\"\nwhen = [\"key_length < 2\"]\nactive = false\n",
    );
    spark
        .run(&["apply", with_two.to_str().unwrap()])
        .ok()
        .stdout
        .contains("defined   generator long");
    let records: Vec<Value> = (1..=10)
        .map(|n| json!({ "id": n, "key": "k".repeat(n) }))
        .collect();
    spark
        .run_with_input(&["ingest", "--model", "word"], &jsonl(&records))
        .ok();
    let summary = spark.run(&["generate", "--json"]).ok().json();
    assert_eq!(count(&summary, "new"), 2);
    assert_eq!(count(&summary, "deliveries"), 2);
    let handled: Vec<String> = spark
        .outbox()
        .iter()
        .map(|item| item["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(handled, ["long_key_10", "long_key_9"]);

    let with_one = manifest(
        "[[generators]]\nname = \"short\"\ngroup = \"short_key\"\nmodel = \"word\"\nwhen = [\"key_length < 2\"]\n",
    );
    let applied = spark
        .run(&["apply", with_one.to_str().unwrap()])
        .ok()
        .stdout;
    assert!(applied.contains("removed   generator long"), "{applied}");
    let listed = spark
        .run(&["generators", "list", "--json"])
        .ok()
        .json_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["active"], true);
    assert_eq!(listed[0]["conditions"], json!(["key_length < 2"]));

    let bad = manifest(
        "[[generators]]\nname = \"x\"\ngroup = \"x\"\nmodel = \"word\"\nwhen = [\"key_length ! 2\"]\n",
    );
    spark
        .run(&["apply", bad.to_str().unwrap()])
        .code(2)
        .stderr_has("invalid generator `x`");
    assert_eq!(
        spark
            .run(&["generators", "list", "--json"])
            .ok()
            .json_lines()
            .len(),
        1
    );
}
