//! Bad input never loses data: each mistake is named, valid input still goes through,
//! nothing stored is damaged, and the exit status says what happened.

use serde_json::{Value, json};

use crate::support::{Spark, count, guests, jsonl};

/// A data dir with the recorder registered and one record ingested.
fn populated() -> Spark {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "handler", &["--handler", "."]);
    spark
        .run_with_input(
            &["ingest", "--model", "thing"],
            &jsonl(&[json!({ "id": 1, "events": [{ "group": "a", "id": 1 }] })]),
        )
        .ok();
    spark
}

/// Everything an operator can list, to compare before and after.
fn state(spark: &Spark) -> (Vec<Value>, Vec<Value>, String) {
    let modules = spark.run(&["module", "list", "--json"]).ok().stdout;
    (spark.events(), spark.outbox(), modules)
}

#[test]
fn bad_lines_are_reported_by_number_and_good_ones_go_through() {
    let spark = populated();
    let input = [
        json!({ "id": 2, "events": [{ "group": "a", "id": 2 }] }).to_string(),
        "{\"id\": 3, \"events\": [".to_owned(),
        json!({ "title": "no id", "events": [{ "group": "a", "id": 4 }] }).to_string(),
        String::new(),
        "[1, 2, 3]".to_owned(),
        json!({ "id": 1.5 }).to_string(),
        json!({ "id": 6, "events": [{ "group": "a", "id": 6 }] }).to_string(),
    ]
    .join("\n");
    let run = spark
        .run_with_input(&["ingest", "--model", "thing", "--json"], &input)
        .code(1)
        .stderr_has("line 2: it is not valid JSON")
        .stderr_has("line 3: the record has no `id`")
        .stderr_has("line 5: it is not a JSON object")
        .stderr_has("line 6: `id` must be a string or an integer");
    let summary = run.json();
    assert_eq!(count(&summary, "records"), 2);
    assert_eq!(count(&summary, "invalid"), 4);
    assert_eq!(spark.event_keys(), ["a_1", "a_2", "a_6"]);
}

#[test]
fn an_unknown_model_is_refused_before_anything_is_stored() {
    let spark = populated();
    let before = state(&spark);
    spark
        .run_with_input(
            &["ingest", "--model", "thnig"],
            &jsonl(&[json!({ "id": 9, "events": [{ "group": "a", "id": 9 }] })]),
        )
        .code(2)
        .stderr_has("unknown model `thnig`: known models: thing");
    spark
        .run(&["process-sources", "--model", "thnig"])
        .code(2)
        .stderr_has("unknown model `thnig`");
    assert_eq!(state(&spark), before);
    // process-sources did not store the record under `thnig` either.
    let summary = spark.run(&["process-sources", "--json"]).ok().json();
    assert_eq!(count(&summary, "records"), 1);
}

#[test]
fn registrations_that_cannot_work_are_refused_with_the_reason() {
    let spark = populated();
    let before = state(&spark);
    let garbage = spark.write("garbage.wasm", "hello, world");
    let core = spark.write("core.wasm", wat::parse_str("(module)").unwrap());
    let recorder = std::fs::read(guests::RECORDER).unwrap();
    let truncated = spark.write("truncated.wasm", &recorder[..recorder.len() / 2]);
    let empty = spark.write("empty.wasm", wat::parse_str("(component)").unwrap());
    let foreign = spark.write(
        "foreign.wasm",
        wat::parse_str(r#"(component (import "acme:db/query" (instance)))"#).unwrap(),
    );
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![path(&garbage), "--handler".into(), "a".into()],
            "not a WebAssembly file",
        ),
        (
            vec![path(&core), "--handler".into(), "a".into()],
            "core WebAssembly module, not a component",
        ),
        (
            vec![path(&truncated), "--handler".into(), "a".into()],
            "does not compile",
        ),
        (
            vec![path(&empty), "--handler".into(), "a".into()],
            "exports none of",
        ),
        (
            vec![path(&foreign), "--handler".into(), "a".into()],
            "imports `acme:db/query`",
        ),
        (
            vec![
                guests::RECORDER.into(),
                "--handler".into(),
                "(unclosed".into(),
            ],
            "invalid group regex `(unclosed`",
        ),
        (vec![guests::RECORDER.into()], "registered for nothing"),
        (
            vec![
                guests::CHALLENGES_MAILER.into(),
                "--source".into(),
                "x".into(),
            ],
            "does not export a source",
        ),
        (
            vec![
                guests::CHALLENGES_SOURCE.into(),
                "--handler".into(),
                "x".into(),
            ],
            "does not export a handler",
        ),
        (
            vec![
                guests::RECORDER.into(),
                "--source".into(),
                "bad model".into(),
            ],
            "invalid model name",
        ),
        (
            vec!["/no/such/file.wasm".into(), "--handler".into(), "a".into()],
            "cannot read module `/no/such/file.wasm`: No such file or directory",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["module", "add", "--name", "new"];
        full.extend(args.iter().map(String::as_str));
        spark.run(&full).code(2).stderr_has(expected);
    }
    spark
        .run(&[
            "module",
            "add",
            guests::RECORDER,
            "--name",
            "../evil",
            "--handler",
            "a",
        ])
        .code(2)
        .stderr_has("invalid module name `../evil`");
    assert_eq!(state(&spark), before);
    // `spark check` says the same without a data dir.
    spark
        .run(&["check", &path(&empty)])
        .code(2)
        .stderr_has("exports none of");
    let checked = spark
        .run(&["check", guests::RECORDER, "--json"])
        .ok()
        .json();
    assert_eq!(checked["source"], true);
    assert_eq!(checked["handler"], true);
    assert_eq!(checked["interface"], "spark:engine@0.1.0");
}

#[test]
fn a_bad_manifest_changes_nothing() {
    let spark = populated();
    let before = state(&spark);
    let cases = [
        (
            format!(
                "[[modules]]\nname = \"x\"\npath = {:?}\nhandlers = [\"[\"]\n",
                guests::RECORDER
            ),
            "invalid group regex",
        ),
        (
            "[[modules]]\nname = \"x\"\npath = \"missing.wasm\"\nhandlers = [\"a\"]\n".to_owned(),
            "cannot read module",
        ),
        (
            "[limits]\nfuel = 0\n".to_owned(),
            "`fuel` must be greater than 0",
        ),
        ("[limits]\nfule = 10\n".to_owned(), "unknown field `fule`"),
        ("not toml at all [".to_owned(), "spark.toml"),
    ];
    for (text, expected) in cases {
        let manifest = spark.write("spark.toml", text);
        spark
            .run(&["apply", manifest.to_str().unwrap()])
            .code(2)
            .stderr_has(expected);
        assert_eq!(state(&spark), before);
    }
}

#[test]
fn bad_times_and_tenants_are_refused() {
    let spark = populated();
    spark
        .run(&["ingest", "--model", "thing", "--now", "yesterday"])
        .code(2)
        .stderr_has("invalid time `yesterday`");
    for tenant in ["../other", "Upper", "", "a/b"] {
        spark
            .run(&["--tenant", tenant, "events", "list"])
            .code(2)
            .stderr_has("invalid tenant name");
    }
    spark
        .run(&["events", "show", "nope"])
        .code(2)
        .stderr_has("no event with key `nope`");
    spark
        .run(&["module", "remove", "nope"])
        .code(2)
        .stderr_has("no module named `nope`");
    spark.run(&["no-such-command"]).code(2);
    spark.run(&["--help"]).ok();
}

#[test]
fn the_store_cache_is_a_size_in_mib_from_the_flag_or_the_environment() {
    let spark = populated();
    for size in ["0", "65537", "lots"] {
        spark
            .run(&["--store-cache", size, "events", "list"])
            .code(2)
            .stderr_has("--store-cache");
        spark
            .run_with_env(&[("SPARK_STORE_CACHE", size)], &["events", "list"], "")
            .code(2)
            .stderr_has("--store-cache");
    }
    // Any size works the same, small or large, for a command and a server alike.
    let record = jsonl(&[json!({ "id": 2, "events": [{ "group": "a", "id": 2 }] })]);
    spark
        .run_with_input(
            &["--store-cache", "1", "ingest", "--model", "thing"],
            &record,
        )
        .ok();
    let listed = spark
        .run_with_env(&[("SPARK_STORE_CACHE", "4096")], &["events", "list"], "")
        .ok();
    assert!(listed.stdout.contains("a_2"), "{}", listed.stdout);
    // (SIGTERM at once after `listening on`: a graceful stop, exit 0, not a kill.)
    let mut server = crate::serve::Server::start(&spark, &["--store-cache", "8"]);
    assert_eq!(
        server.signal("TERM", std::time::Duration::from_secs(60)),
        Some(0)
    );
    assert_eq!(spark.event_keys(), ["a_1", "a_2"]);
}

#[test]
fn a_tenant_in_use_by_another_process_is_refused_and_undamaged() {
    let spark = populated();
    let before = state(&spark);
    let host = spark_host::Spark::open(spark.data_dir()).unwrap();
    let held = host.tenant("default").unwrap();
    spark
        .run_with_input(
            &["ingest", "--model", "thing"],
            &jsonl(&[json!({ "id": 5, "events": [{ "group": "a", "id": 5 }] })]),
        )
        .code(2)
        .stderr_has("tenant `default`")
        .stderr_has("is in use by another spark process");
    // Another tenant of the same data dir is free (reading it needs it to exist).
    spark.add(
        guests::RECORDER,
        "source",
        &["--tenant", "other", "--source", "thing"],
    );
    spark.run(&["--tenant", "other", "events", "list"]).ok();
    drop(held);
    assert_eq!(state(&spark), before);
}

#[test]
fn text_from_modules_cannot_forge_lines_or_escape_into_the_terminal() {
    let spark = populated();
    let forged = "oops\u{1b}[2J\nerror: everything is fine";
    let run = spark
        .run_with_input(
            &["ingest", "--model", "thing"],
            &jsonl(&[json!({ "id": 9, "events": [
                { "group": "a", "id": 9, "context": { "fail": forged } }] })]),
        )
        .code(1)
        .stderr_has("oops\\u{1b}[2J");
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    assert!(
        !run.stderr
            .lines()
            .any(|line| line.starts_with("error: everything")),
        "a module's text passed for a line of Spark's own:\n{}",
        run.stderr
    );
}

#[test]
fn reading_a_tenant_that_does_not_exist_makes_none() {
    let spark = populated();
    for args in [
        &["--tenant", "typo", "events", "list"][..],
        &[
            "--tenant",
            "typo",
            "outbox",
            "send",
            "--transport",
            "stdout",
        ],
        &["--tenant", "typo", "ingest", "--model", "thing"],
    ] {
        spark
            .run(args)
            .code(2)
            .stderr_has("there is no tenant `typo`");
    }
    assert!(!spark.data_dir().join("tenants/typo").exists());
    // The commands that set a tenant up still make it.
    spark.add(
        guests::RECORDER,
        "source",
        &["--tenant", "new", "--source", "thing"],
    );
    assert!(spark.data_dir().join("tenants/new").is_dir());
}

#[test]
fn ids_are_bounded_and_one_id_is_one_record_however_it_is_written() {
    let spark = populated();
    let long = "i".repeat(128);
    let run = spark
        .run_with_input(
            &["ingest", "--model", "thing", "--json"],
            &jsonl(&[
                json!({ "id": 5001, "events": [{ "group": "a", "id": "x" }] }),
                json!({ "id": "5001", "events": [{ "group": "a", "id": "y" }] }),
                json!({ "id": long }),
            ]),
        )
        .code(1)
        .stderr_has("line 3: `id` is longer than 127 bytes");
    assert_eq!(count(&run.json(), "records"), 2);
}

#[test]
fn limits_beyond_their_most_and_files_that_are_not_modules_are_refused() {
    let spark = populated();
    let manifest = spark.write(
        "spark.toml",
        format!(
            "[limits]\nmemory-bytes = {}\n\n[[modules]]\nname = \"source\"\npath = {:?}\n\
             sources = [\"thing\"]\n",
            u64::MAX,
            guests::RECORDER
        ),
    );
    let before = state(&spark);
    spark
        .run(&["apply", manifest.to_str().unwrap()])
        .code(2)
        .stderr_has("`memory-bytes` must be at most 4294967296");
    assert_eq!(state(&spark), before);
    for args in [
        &["check", "/dev/zero"][..],
        &[
            "module",
            "add",
            "/dev/zero",
            "--name",
            "zero",
            "--source",
            "thing",
        ],
    ] {
        spark
            .run(args)
            .code(2)
            .stderr_has("it is not a regular file");
    }
}

#[test]
fn check_uses_the_data_dirs_compile_cache_and_makes_no_data_dir() {
    let spark = Spark::new();
    let cached = |dir: &std::path::Path| {
        std::fs::read_dir(dir.join("cache")).map_or(0, |entries| {
            entries
                .filter(|entry| {
                    let name = entry.as_ref().unwrap().file_name();
                    name.to_string_lossy().ends_with(".cwasm")
                })
                .count()
        })
    };
    // No data dir: the check makes none (it needs none).
    let mut check = spark.command(&["check", guests::RECORDER]);
    check.env_remove("SPARK_CACHE_DIR");
    assert!(check.output().unwrap().status.success());
    assert!(!spark.data_dir().exists(), "a check made a data dir");
    // A data dir: the check compiles into its cache, where `module add` finds it.
    std::fs::create_dir_all(spark.data_dir()).unwrap();
    let mut check = spark.command(&["check", guests::RECORDER]);
    check.env_remove("SPARK_CACHE_DIR");
    assert!(check.output().unwrap().status.success());
    assert_eq!(cached(&spark.data_dir()), 1);
}
