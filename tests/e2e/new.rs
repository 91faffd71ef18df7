//! `spark new`: a project in each language, tested, built and loaded the way its README
//! says, then run: the same events and outputs from all three.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::polyglot::{componentize_py, componentize_qjs, workspace};
use crate::support::{Spark, cache_dir};

/// `spark new LANGUAGE signup-mails` in a fresh directory, with a source of `signup`
/// and a handler of `^signup_`: what it printed (`--json`) and where it wrote.
fn new(language: &str, extra: &[&str]) -> (Value, tempfile::TempDir) {
    let parent = tempfile::tempdir().unwrap();
    let spark = Spark::new();
    let mut command = spark.command(&[
        "new",
        language,
        "signup-mails",
        "--source",
        "signup",
        "--handler",
        "^signup_",
        "--json",
    ]);
    let output = command
        .args(extra)
        .current_dir(parent.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "spark new {language} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut fields: Vec<String> = printed.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, readme_fields());
    (printed, parent)
}

/// The fields the README lists for `new --json`.
fn readme_fields() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let bullet = readme
        .split("\n- `new`: ")
        .nth(1)
        .expect("the README lists the fields of `new --json`");
    let bullet = bullet
        .split("\n- ")
        .next()
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let mut fields: Vec<String> = bullet
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// Runs one of the project's commands in a shell, as a reader of its README would.
fn shell(dir: &Path, command: &str, path: &str, data_dir: &Path) -> String {
    let output = Command::new("sh")
        .arg("-ec")
        .arg(command)
        .current_dir(dir)
        .env("PATH", path)
        .env("SPARK_DATA_DIR", data_dir)
        .env("SPARK_CACHE_DIR", cache_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("SPARK_TENANT")
        .env_remove("SPARK_SERVER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`{command}` failed in {}:\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The project `printed` describes, tested, built and registered with its README's
/// commands, with `tools` (directories) first on PATH; then a record ingested through
/// it: the ledger, the outbox and what `spark -v` showed of the module's log.
fn build_and_run(printed: &Value, tools: &[PathBuf]) -> (Vec<Value>, Vec<Value>, String) {
    let dir = PathBuf::from(printed["dir"].as_str().unwrap());
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for file in printed["files"].as_array().unwrap() {
        assert!(
            dir.join(file.as_str().unwrap()).is_file(),
            "{file} was written"
        );
    }
    for step in ["setup", "build", "test", "add"] {
        let command = printed[step].as_str().unwrap();
        assert!(readme.contains(command), "the README says `{command}`");
    }

    let spark = Spark::new();
    let spark_dir = Path::new(env!("CARGO_BIN_EXE_spark")).parent().unwrap();
    let path = std::env::join_paths(
        tools
            .iter()
            .map(PathBuf::as_path)
            .chain([spark_dir])
            .map(Path::to_owned)
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let path = path.to_str().unwrap();
    shell(
        &dir,
        printed["test"].as_str().unwrap(),
        path,
        &spark.data_dir(),
    );
    shell(
        &dir,
        printed["build"].as_str().unwrap(),
        path,
        &spark.data_dir(),
    );
    let component = dir.join(printed["component"].as_str().unwrap());
    assert!(
        component.is_file(),
        "the build made {}",
        component.display()
    );
    let check = shell(
        &dir,
        &format!("spark check {}", printed["component"].as_str().unwrap()),
        path,
        &spark.data_dir(),
    );
    assert!(check.contains("a source+handler module"), "{check}");
    shell(
        &dir,
        printed["add"].as_str().unwrap(),
        path,
        &spark.data_dir(),
    );

    let ingest = spark
        .run_with_input(
            &["-v", "ingest", "--model", "signup"],
            "{\"id\": 1, \"email\": \"ada@example.com\"}\n",
        )
        .ok();
    let ledger = spark
        .events()
        .into_iter()
        .map(|event| json!({ "key": event["key"], "group": event["group"], "context": event["context"] }))
        .collect();
    let outbox = spark
        .outbox()
        .into_iter()
        .map(|item| json!({ "event": item["event"], "handler": item["handler"], "data": item["data"] }))
        .collect();
    (ledger, outbox, ingest.stderr)
}

/// What every project does with `{"id": 1, ...}`: one event, whose context is the
/// record, and one output of the handler on the project's channel; and a log line.
fn assert_runs(run: (Vec<Value>, Vec<Value>, String)) {
    let (ledger, outbox, log) = run;
    assert_eq!(
        ledger,
        [json!({
            "key": "signup_created_1",
            "group": "signup_created",
            "context": { "id": 1, "email": "ada@example.com" },
        })]
    );
    assert_eq!(
        outbox,
        [json!({
            "event": "signup_created_1",
            "handler": "signup-mails",
            "data": {
                "channel": "signup-mails",
                "payload": { "key": "signup_created_1", "group": "signup_created" },
            },
        })]
    );
    assert!(log.contains("handling signup_created_1"), "{log}");
}

#[test]
fn a_new_rust_project_builds_tests_and_runs() {
    let sdk = workspace().join("guest-sdk");
    let (printed, _parent) = new("rust", &["--sdk", sdk.to_str().unwrap()]);
    assert_eq!(
        printed["build"],
        "cargo build --target wasm32-wasip2 --release"
    );
    let dir = PathBuf::from(printed["dir"].as_str().unwrap());
    // The versions this repository tested, as a copy of its lock file pins them; and a
    // target dir kept between runs, where the README expects it.
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("new-rust-target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&target, dir.join("target")).unwrap();
    assert_runs(build_and_run(&printed, &[]));
}

#[test]
fn a_new_python_project_builds_tests_and_runs() {
    let (printed, _parent) = new("python", &[]);
    // componentize-py where pip put it (scripts/test installs it).
    let tool = componentize_py();
    let tools: Vec<PathBuf> = tool.parent().map(Path::to_owned).into_iter().collect();
    assert_runs(build_and_run(&printed, &tools));
}

#[test]
fn a_new_javascript_project_builds_tests_and_runs() {
    let (printed, _parent) = new("javascript", &[]);
    // `npm install` would fetch componentize-qjs; the example's copy (scripts/test
    // installs it) is the same version, as the unit tests of `spark new` check.
    let dir = PathBuf::from(printed["dir"].as_str().unwrap());
    let node_modules = componentize_qjs().ancestors().nth(2).unwrap().to_owned();
    std::os::unix::fs::symlink(node_modules, dir.join("node_modules")).unwrap();
    assert_runs(build_and_run(&printed, &[]));
}

#[test]
fn a_new_project_goes_only_into_a_new_or_empty_directory() {
    let parent = tempfile::tempdir().unwrap();
    let spark = Spark::new();
    let run = |args: &[&str]| {
        let output = spark
            .command(args)
            .current_dir(parent.path())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    std::fs::create_dir(parent.path().join("empty")).unwrap();
    assert_eq!(
        run(&["new", "python", "empty", "--source", "signup"]).0,
        Some(0)
    );
    let (code, stderr) = run(&["new", "javascript", "empty", "--source", "signup"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("`empty` exists and is not empty"),
        "{stderr}"
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["new", "python", "Signups", "--source", "s"],
            "invalid project name `Signups`",
        ),
        (
            &["new", "python", "a/b", "--source", "s"],
            "invalid project name `a/b`",
        ),
        (
            &["new", "rust", "test", "--source", "s"],
            "invalid project name `test`",
        ),
        (&["new", "python", "x"], "say what the module does"),
        (
            &["new", "python", "x", "--source", "a b"],
            "invalid model name `a b`",
        ),
        (
            &["new", "python", "x", "--handler", "("],
            "invalid group regex",
        ),
        (
            &["new", "python", "x", "--source", "s", "--sdk", "."],
            "--sdk is for Rust",
        ),
        (
            &["new", "rust", "x", "--source", "s", "--sdk", "."],
            "is not spark-guest",
        ),
        (
            &["new", "cobol", "x", "--source", "s"],
            "invalid value 'cobol'",
        ),
    ];
    for (args, expected) in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(
        !parent.path().join("x").exists(),
        "nothing is written when refused"
    );
}
