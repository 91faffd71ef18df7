//! The challenges example in Rust, Python and JavaScript: the same events and the same
//! mails from the same data, and the sandbox's limits holding for an interpreted guest.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::host::FUEL_ALONE;
use crate::polyglot::{
    componentize_py, componentize_qjs, examples, javascript, python, test_guests,
};
use crate::support::{Spark, cache_dir, count, guests, jsonl};

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
    (ledger(&spark), outbox(&spark))
}

/// The ledger without what differs from run to run (the trace's times and fuel).
fn ledger(spark: &Spark) -> Vec<Value> {
    spark
        .events()
        .into_iter()
        .map(|event| {
            json!({
                "key": event["key"],
                "group": event["group"],
                "created_at": event["created_at"],
                "context": event["context"],
            })
        })
        .collect()
}

/// The outbox without its ids and times.
fn outbox(spark: &Spark) -> Vec<Value> {
    spark
        .outbox()
        .into_iter()
        .map(|item| json!({ "event": item["event"], "kind": item["kind"], "data": item["data"] }))
        .collect()
}

/// The example's manifest (`examples/challenges/spark.toml`) with its modules at
/// `source` and `handler`, applied to a fresh data dir; the example's data ingested on
/// one day and its generator run ten days later: the ledger, the outbox, and what
/// `generators describe` says. A record that is no challenge is the source's own error.
fn run_manifest(source: &Path, handler: &Path) -> (Vec<Value>, Vec<Value>, String) {
    let spark = Spark::new();
    let example = include_str!("../../examples/challenges/spark.toml");
    let mut manifest = example.to_owned();
    for (from, to) in [
        (
            "\"../../target/wasm32-wasip2/release/challenges_source.wasm\"".to_owned(),
            format!("{source:?}"),
        ),
        (
            "\"../../target/wasm32-wasip2/release/challenges_mailer.wasm\"".to_owned(),
            format!("{handler:?}"),
        ),
        (
            "templates = \"templates\"".to_owned(),
            format!("templates = {:?}", examples().join("templates")),
        ),
    ] {
        assert!(
            manifest.contains(&from),
            "the example's manifest has {from}"
        );
        manifest = manifest.replace(&from, &to);
    }
    let manifest = spark.write("spark.toml", manifest);
    spark.run(&["apply", manifest.to_str().unwrap()]).ok();
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
    let generated = spark
        .run(&["generate", "--now", "2024-05-20", "--json"])
        .ok()
        .json();
    assert!(count(&generated, "new") > 0, "{generated}");
    let described = spark
        .run(&["generators", "describe", "--model", "challenge"])
        .ok()
        .stdout;
    let bad = spark
        .run_with_input(
            &["ingest", "--model", "challenge", "--json"],
            "{\"id\": 99, \"title\": \"No owner\"}\n",
        )
        .code(1)
        .stderr_has("the module returned an error");
    assert_eq!(count(&bad.json(), "source_errors"), 1);
    (ledger(&spark), outbox(&spark), described)
}

#[test]
fn the_manifests_generator_makes_the_same_events_in_every_language() {
    let rust = run_manifest(
        guests::CHALLENGES_SOURCE.as_ref(),
        guests::CHALLENGES_MAILER.as_ref(),
    );
    let stalled = |ledger: &[Value]| {
        ledger
            .iter()
            .filter(|event| event["group"] == "challenge_stalled")
            .count()
    };
    assert!(stalled(&rust.0) > 0, "the generator yields events");
    assert!(
        rust.2.contains("days_running") && rust.2.contains("days since the challenge started"),
        "{}",
        rust.2
    );
    let python_dir = examples().join("python");
    let python = run_manifest(
        &python(&python_dir, "source", "source-context-module"),
        &python(&python_dir, "handler", "handler-module"),
    );
    assert_eq!(python.0, rust.0, "Python's ledger");
    assert_eq!(python.1, rust.1, "Python's outbox");
    assert_eq!(python.2, rust.2, "Python's variables");
    let js_dir = examples().join("js");
    let javascript = run_manifest(
        &javascript(&js_dir.join("source.js"), "source-context-module"),
        &javascript(&js_dir.join("handler.js"), "handler-module"),
    );
    assert_eq!(javascript.0, rust.0, "JavaScript's ledger");
    assert_eq!(javascript.1, rust.1, "JavaScript's outbox");
    assert_eq!(javascript.2, rust.2, "JavaScript's variables");
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
        &python(&python_dir, "source", "source-context-module"),
        &python(&python_dir, "handler", "handler-module"),
    );
    assert_eq!(python.0, rust.0, "Python's ledger");
    assert_eq!(python.1, rust.1, "Python's outbox");
    let js_dir = examples().join("js");
    let javascript = run(
        &javascript(&js_dir.join("source.js"), "source-context-module"),
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
            include_str!("../../examples/challenges/python/test_challenges.py"),
        ],
    );
    assert_blocks_are_from(
        include_str!("../../guest-sdk/javascript.md"),
        "js",
        &[
            include_str!("../../examples/challenges/js/source.js"),
            include_str!("../../examples/challenges/js/handler.js"),
            include_str!("../../examples/challenges/js/challenges.test.js"),
        ],
    );
}

/// The shell block of `guide` under the heading that starts with `heading`.
fn shell_block(guide: &str, heading: &str) -> String {
    let section = guide
        .split("\n## ")
        .find(|section| section.starts_with(heading))
        .unwrap_or_else(|| panic!("the guide has no section `{heading}`"));
    let start = section.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let end = start + section[start..].find("```").expect("the block ends");
    section[start..end].to_owned()
}

/// Copies the files under `from` to `to` (a symbolic link's target as a file).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if ["node_modules", "__pycache__"].contains(&name.to_str().unwrap()) {
            continue;
        }
        if path.is_dir() {
            copy_tree(&path, &to.join(name));
        } else {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

/// Runs `commands` (a guide's shell block) from the root of a copy of the guides and
/// examples, as a reader of the guide would from a checkout, with `spark` and
/// componentize-py on PATH and the example's installed componentize-qjs: its stdout.
fn run_guide_block(spark: &Spark, commands: &str) -> String {
    let root = tempfile::tempdir().unwrap();
    let workspace = examples().join("../..");
    for dir in [
        "guest-sdk/wit",
        "guest-sdk/python",
        "guest-sdk/javascript",
        "examples/challenges",
    ] {
        copy_tree(&workspace.join(dir), &root.path().join(dir));
    }
    // What `npm ci` installs (scripts/test runs it for the example).
    let node_modules = componentize_qjs().ancestors().nth(2).unwrap().to_owned();
    std::os::unix::fs::symlink(
        node_modules,
        root.path().join("examples/challenges/js/node_modules"),
    )
    .unwrap();
    let spark_dir = Path::new(env!("CARGO_BIN_EXE_spark")).parent().unwrap();
    let tool = componentize_py();
    let path = std::env::join_paths(
        [spark_dir.to_owned()]
            .into_iter()
            .chain(tool.parent().map(Path::to_owned))
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let output = Command::new("sh")
        .arg("-ec")
        .arg(commands)
        .current_dir(root.path())
        .env("PATH", path)
        .env("SPARK_DATA_DIR", spark.data_dir())
        .env("SPARK_CACHE_DIR", cache_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("SPARK_TENANT")
        .env_remove("SPARK_SERVER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the guide's commands failed:\n{commands}\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

const PYTHON_GUIDE: &str = include_str!("../../guest-sdk/python.md");
const JAVASCRIPT_GUIDE: &str = include_str!("../../guest-sdk/javascript.md");

#[test]
fn the_python_and_javascript_guides_tests_run_as_they_say() {
    let spark = Spark::new();
    let python = run_guide_block(&spark, &shell_block(PYTHON_GUIDE, "Testing"));
    assert!(python.is_empty(), "unittest reports on stderr: {python}");
    let javascript = run_guide_block(&spark, &shell_block(JAVASCRIPT_GUIDE, "Testing"));
    assert!(javascript.contains("# fail 0"), "{javascript}");
    assert!(!javascript.contains("# pass 0"), "{javascript}");
}

#[test]
fn the_python_and_javascript_guides_build_and_load_as_they_say() {
    let loaded = |spark: &Spark| {
        let modules = spark.run(&["module", "list", "--json"]).ok().json_lines();
        assert_eq!(modules.len(), 1, "{modules:?}");
        assert_eq!(modules[0]["name"], "mails");
    };
    let spark = Spark::new();
    let python = run_guide_block(&spark, &shell_block(PYTHON_GUIDE, "Build and load"));
    assert!(python.contains("a handler module"), "{python}");
    loaded(&spark);
    // `npm ci` installed the example's tools once (scripts/test); the rest runs as
    // written.
    let block = shell_block(JAVASCRIPT_GUIDE, "Build and load");
    assert!(block.lines().any(|line| line == "npm ci"), "{block}");
    let block: String = block
        .lines()
        .filter(|line| *line != "npm ci")
        .map(|line| format!("{line}\n"))
        .collect();
    let spark = Spark::new();
    let javascript = run_guide_block(&spark, &block);
    assert!(javascript.contains("a handler module"), "{javascript}");
    loaded(&spark);
}

/// The JavaScript guide's claims about the WIT types and the helper's `console`, in a
/// component: `nowMs` is a number, and what `console.log` writes is the call's log.
#[test]
fn a_javascript_guest_logs_and_reads_the_time_as_a_number() {
    let probe = javascript(&test_guests().join("js/probe.js"), "handler-module");
    let spark = Spark::with_job_handler("probe", probe.to_str().unwrap(), "");
    let job = json!({ "id": 1, "events": [{ "group": "job", "id": 1, "context": {} }] });
    let ingest = spark
        .run_with_input(
            &["-v", "ingest", "--model", "thing", "--now", "2024-05-10"],
            &jsonl(&[job]),
        )
        .ok();
    assert!(
        ingest.stderr.contains("probed job_1 at 2024-05-10 é ✓"),
        "{}",
        ingest.stderr
    );
    assert!(ingest.stderr.contains("and on stderr"), "{}", ingest.stderr);
    let outbox = spark.outbox();
    assert_eq!(
        outbox[0]["data"]["payload"],
        json!({ "nowMs": "number", "nowMsValue": 1_715_299_200_000_i64 })
    );
}

#[test]
fn a_javascript_module_whose_export_is_misnamed_fails_check_and_registration() {
    let spark = Spark::new();
    // Under the workspace, where componentize-qjs takes its modules from.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("misnamed-js");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, export: &str| {
        let file = dir.join(name);
        let js = format!("export const {export} = {{ handle(event, inv) {{ return []; }} }};\n");
        std::fs::write(&file, js).unwrap();
        javascript(&file, "handler-module")
    };
    let wasm = write("misnamed.js", "handlr");
    let wasm = wasm.to_str().unwrap();
    spark
        .run(&["check", wasm])
        .code(2)
        .stderr_has("its JavaScript defines no `handler` export")
        .stderr_has("export const handler = ");
    spark
        .run(&["module", "add", wasm, "--name", "mails", "--handler", "."])
        .code(2)
        .stderr_has("defines no `handler` export");
    // The same module named right passes.
    let wasm = write("named.js", "handler");
    spark.run(&["check", wasm.to_str().unwrap()]).ok();
}
