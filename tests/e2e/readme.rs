//! README.md says what the code does: its manifest parses, its command table names
//! real commands and flags, its JSON field lists match the output.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;

use crate::support::{Spark, guests, jsonl, shell_words};

const README: &str = include_str!("../../README.md");

#[test]
fn the_readme_manifest_parses() {
    let blocks: Vec<&str> = README
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 1);
    let manifest = spark_host::Manifest::parse("README.md".as_ref(), blocks[0]).unwrap();
    assert_eq!(manifest.limits.fuel, Some(50_000_000));
    assert_eq!(manifest.modules.len(), 2);
    assert_eq!(manifest.modules[1].limits.memory_bytes, Some(16 << 20));
    assert_eq!(manifest.generators.len(), 1);
    assert_eq!(manifest.outputs.len(), 2);
    for transport in manifest.outputs.values() {
        transport.parse::<spark_host::Transport>().unwrap();
    }
    for condition in &manifest.generators[0].when {
        spark_host::Condition::parse(condition).unwrap();
    }
}

#[test]
fn every_command_in_the_table_exists_with_its_flags() {
    let spark = Spark::new();
    let rows: Vec<&str> = README
        .lines()
        .filter_map(|line| line.strip_prefix("| `spark "))
        .map(|rest| rest.split('`').next().unwrap())
        .collect();
    assert!(rows.len() >= 12, "{rows:?}");
    for row in rows {
        let words: Vec<&str> = row
            .split_whitespace()
            .take_while(|word| {
                !word.starts_with('-') && word.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
            .collect();
        let mut args = words.clone();
        args.push("--help");
        let help = spark.run(&args).ok().stdout;
        for flag in row.split(|c: char| c.is_whitespace() || c == '[' || c == ']') {
            if flag.starts_with("--") {
                assert!(
                    help.contains(flag),
                    "`spark {}` has no {flag}:\n{help}",
                    words.join(" ")
                );
            }
        }
    }
}

/// The field names the README lists in the bullet that starts with `start`, without
/// the words in `not_fields` (command names, values and nested fields it also quotes).
fn listed_fields(start: &str, not_fields: &[&str]) -> BTreeSet<String> {
    let bullet = README
        .split("\n- ")
        .find(|item| item.starts_with(start))
        .unwrap_or_else(|| panic!("no bullet for {start}"));
    let bullet = bullet.split("\n\n").next().unwrap();
    bullet
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .filter(|word| !not_fields.contains(word))
        .map(str::to_owned)
        .collect()
}

fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_json_fields_are_the_ones_the_readme_lists() {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "handler", &["--handler", "."]);
    spark.add(guests::HOSTILE, "broken", &["--handler", "."]);
    let summary = spark
        .run_with_input(
            &["ingest", "--model", "thing", "--json"],
            &jsonl(&[
                json!({ "id": 1, "events": [{ "group": "g", "id": 1, "context": { "do": "fail" } }] }),
                json!({ "id": 2, "events": [{ "group": "g", "id": 2, "context": {
                    "mail": { "to": "a@example.com", "subject": "s", "body": "b" } } }] }),
            ]),
        )
        .code(1)
        .json();

    let listed = listed_fields(
        "`ingest`, `process-sources`, `generate`, `dead retry`",
        &["ingest", "generate"],
    );
    assert_eq!(keys(&summary), listed);

    let event = &spark.events()[0];
    assert_eq!(keys(event), listed_fields("`events list`", &[]));
    let trace = listed_fields("an event's trace", &[]);
    let step = &event["trace"]["steps"][0];
    for object in [&event["trace"], &event["trace"]["origin"], step] {
        assert!(keys(object).is_subset(&trace), "{object} against {trace:?}");
    }

    let input = jsonl(&[json!({ "id": 3, "events": [{ "group": "g", "id": 3 }] })]);
    let dry = spark
        .run_with_input(
            &["ingest", "--model", "thing", "--dry-run", "--json"],
            &input,
        )
        .ok()
        .json();
    let mut expected = keys(&summary);
    expected.extend(listed_fields(
        "`ingest --dry-run`",
        &["events", "outbox", "id"],
    ));
    assert_eq!(keys(&dry), expected);
    assert_eq!(
        keys(&dry["sample"]),
        ["events", "outbox"].map(str::to_owned).into()
    );

    let call_event = spark.write("event.json", r#"{"group": "g", "key": "g_9"}"#);
    let called = spark
        .run(&[
            "call",
            "handler",
            "--event",
            call_event.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    let mut expected = keys(&called);
    expected.insert("events".to_owned());
    let effect_kinds = ["call", "kind", "emit", "mail", "output", "message"];
    assert_eq!(expected, listed_fields("`call`", &effect_kinds));

    let values = ["mail", "output", "pending", "sent", "failed"];
    let mail_data = [
        "from",
        "reply_to",
        "to",
        "cc",
        "bcc",
        "subject",
        "body",
        "template",
        "context",
        "render_error",
    ];
    let output_data = ["channel", "payload"];
    let nested: Vec<&str> = values
        .iter()
        .chain(&mail_data)
        .chain(&output_data)
        .copied()
        .collect();
    let outbox = spark.outbox();
    assert_eq!(keys(&outbox[0]), listed_fields("`outbox list`", &nested));
    let mail = outbox
        .iter()
        .find(|item| item["kind"] == "mail")
        .expect("a mail");
    assert_eq!(
        keys(&mail["data"]),
        mail_data.iter().map(|f| f.to_string()).collect()
    );
    let output = outbox
        .iter()
        .find(|item| item["kind"] == "output")
        .expect("an output");
    assert_eq!(
        keys(&output["data"]),
        output_data.iter().map(|f| f.to_string()).collect()
    );
    let listed = listed_fields("`outbox list`", &[]);
    assert!(
        mail_data
            .iter()
            .chain(&output_data)
            .all(|f| listed.contains(*f))
    );

    let mails = spark.data_dir().with_file_name("mails");
    let sent = spark
        .run(&[
            "outbox",
            "send",
            "--transport",
            &format!("file:{}", mails.display()),
            "--json",
        ])
        .code(1)
        .json();
    assert_eq!(keys(&sent), listed_fields("`outbox send`", &["stdout"]));
    let retried = spark.run(&["outbox", "retry", "--json"]).ok().json();
    assert_eq!(keys(&retried), listed_fields("`outbox retry`", &[]));
    let pruned = spark.run(&["outbox", "prune", "--json"]).ok().json();
    assert_eq!(keys(&pruned), listed_fields("`outbox prune`", &[]));

    let template = spark.write("t.txt", "Hello");
    spark
        .run(&["mails", "set", "g", template.to_str().unwrap()])
        .ok();
    let listed_template = &spark.run(&["mails", "list", "--json"]).ok().json_lines()[0];
    assert_eq!(keys(listed_template), listed_fields("`mails list`", &[]));

    let dead = &spark.dead()[0];
    let kinds = ["trap", "limit", "host"];
    assert_eq!(keys(dead), listed_fields("`dead list`", &kinds));

    let module = &spark.run(&["module", "list", "--json"]).ok().json_lines()[0];
    assert_eq!(keys(module), listed_fields("`module list`", &[]));

    spark
        .run(&[
            "generators",
            "add",
            "all",
            "--group",
            "all",
            "--model",
            "thing",
        ])
        .ok();
    let generator = &spark
        .run(&["generators", "list", "--json"])
        .ok()
        .json_lines()[0];
    assert_eq!(keys(generator), listed_fields("`generators list`", &[]));
}

#[test]
fn the_limits_table_lists_every_limit_with_its_default() {
    let defaults = spark_host::Limits::default().entries();
    let rows: Vec<(&str, &str)> = README
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once("` | ")?;
            let (default, _) = rest.split_once(" | ")?;
            Some((name, default))
        })
        .filter(|(name, _)| !name.starts_with("spark "))
        .collect();
    for (limit, value) in defaults {
        let (_, written) = rows
            .iter()
            .find(|(name, _)| *name == limit.name())
            .unwrap_or_else(|| panic!("README.md's limits table lacks `{limit}`"));
        let (number, unit) = written.split_once(' ').unwrap_or((written, ""));
        let number: u64 = number
            .replace(',', "")
            .parse()
            .unwrap_or_else(|_| panic!("{written}"));
        let factor = match unit {
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            _ => 1,
        };
        assert_eq!(
            number * factor,
            value,
            "README.md gives `{limit}` as {written}"
        );
    }
}

/// The README's code blocks of one language, in order.
fn blocks(language: &str) -> Vec<&'static str> {
    README
        .split(&format!("```{language}\n"))
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect()
}

/// The commands of a shell snippet: lines continued with `\` joined, each split into
/// words as a shell would (single quotes keep spaces).
fn shell_commands(snippet: &str) -> Vec<Vec<String>> {
    snippet
        .replace("\\\n", " ")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(shell_words)
        .collect()
}

#[test]
fn the_readme_manifest_applies_with_the_example_modules() {
    let spark = Spark::new();
    let dir = spark.data_dir().with_file_name("project");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::copy(
        guests::CHALLENGES_SOURCE,
        dir.join("challenges_source.wasm"),
    )
    .unwrap();
    std::fs::copy(
        guests::CHALLENGES_MAILER,
        dir.join("challenges_mailer.wasm"),
    )
    .unwrap();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/challenges/templates");
    for template in std::fs::read_dir(templates).unwrap() {
        let template = template.unwrap().path();
        std::fs::copy(
            &template,
            dir.join("templates").join(template.file_name().unwrap()),
        )
        .unwrap();
    }
    let manifest = dir.join("spark.toml");
    std::fs::write(&manifest, blocks("toml")[0]).unwrap();
    spark.run(&["apply", manifest.to_str().unwrap()]).ok();
    let modules = spark.run(&["module", "list", "--json"]).ok().json_lines();
    assert_eq!(modules.len(), 2);
    assert_eq!(modules[1]["limits"]["memory-bytes"], 16 << 20);
    assert_eq!(modules[0]["clock"], "day");
    let generators = spark
        .run(&["generators", "list", "--json"])
        .ok()
        .json_lines();
    assert_eq!(generators[0]["name"], "stalled");
    let templates = spark.run(&["mails", "list", "--json"]).ok().json_lines();
    assert_eq!(templates.len(), 5);
}

#[test]
fn the_readme_generator_snippet_runs_as_written() {
    let snippet = blocks("sh")
        .into_iter()
        .find(|block| block.contains("generators add"))
        .expect("the README shows a generator");
    let spark = Spark::new();
    spark.add(
        guests::CHALLENGES_SOURCE,
        "challenges",
        &["--source", "challenge", "--clock", "day"],
    );
    crate::example::ingest(&spark, "2024-05-10");
    let mut last = String::new();
    for command in shell_commands(snippet) {
        assert_eq!(command[0], "spark", "{command:?}");
        let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
        last = spark.run(&args).ok().stdout;
    }
    // The last command lists the stalled challenges (the example's test counts them).
    assert!(last.contains("challenge_stalled_"), "{last}");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_itself() {
    let spark = Spark::new();
    let bash = spark.run(&["completions", "bash"]).ok().stdout;
    for word in ["_spark()", "ingest", "outbox", "retry", "--tenant"] {
        assert!(bash.contains(word), "bash completions lack {word}");
    }
    for shell in ["zsh", "fish"] {
        assert!(
            spark
                .run(&["completions", shell])
                .ok()
                .stdout
                .contains("ingest")
        );
    }
    spark
        .run(&["completions", "tcsh"])
        .code(2)
        .stderr_has("possible values");
    let man = spark.run(&["man"]).ok().stdout;
    assert!(man.contains(".TH spark 1"), "{man}");
    assert!(man.contains("ingest"), "the man page lists the commands");
}

#[test]
fn the_readme_serve_snippet_runs_as_written() {
    let snippet = blocks("sh")
        .into_iter()
        .find(|block| block.contains("spark serve"))
        .expect("the README shows spark serve");
    let spark = Spark::new();
    let dir = spark.data_dir().with_file_name("work");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        guests::CHALLENGES_SOURCE,
        dir.join("challenges_source.wasm"),
    )
    .unwrap();
    // The README's port, unless taken here: a free one in its place.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let snippet = snippet
        .replace("/var/lib/spark", spark.data_dir().to_str().unwrap())
        .replace("127.0.0.1:7411", &format!("127.0.0.1:{port}"));
    // The server started in the background is stopped (SIGTERM) and waited for.
    let script = format!("set -euo pipefail\ntrap 'kill %1; wait' EXIT\n{snippet}");
    let binary = Path::new(env!("CARGO_BIN_EXE_spark"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let output = std::process::Command::new("bash")
        .args(["-c", &script])
        .current_dir(&dir)
        .env("PATH", path)
        .env_remove("SPARK_TENANT")
        .env_remove("SPARK_LISTEN")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{stderr}"
    );
    // The module's registration, the ingest's report, then the event it made.
    assert!(stdout.contains(r#""name":"challenges""#), "{stdout}");
    assert!(stdout.contains(r#""new":1"#), "{stdout}");
    assert!(
        stdout.contains(r#""key":"challenge_created_42""#),
        "{stdout}"
    );
}
