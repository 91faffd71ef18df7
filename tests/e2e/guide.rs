//! The author guide (`guest-sdk/README.md`), followed to the letter: its files written
//! into an empty directory, its build-and-load commands run in a shell.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Spark;

const GUIDE: &str = include_str!("../../guest-sdk/README.md");

/// The fenced blocks of the guide that follow `<!-- file: NAME -->` or
/// `<!-- append: NAME -->`, as (NAME, text), with rustdoc's hidden `# ` lines removed;
/// an appended block is added to the end of the file of that name.
fn files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    let mut lines = GUIDE.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line
            .strip_prefix("<!-- ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let (name, append) = match (rest.strip_prefix("file: "), rest.strip_prefix("append: ")) {
            (Some(name), _) => (name, false),
            (_, Some(name)) => (name, true),
            _ => continue,
        };
        assert!(lines.next().is_some_and(|fence| fence.starts_with("```")));
        let text: String = lines
            .by_ref()
            .take_while(|line| !line.starts_with("```"))
            .filter(|line| !line.starts_with("# "))
            .map(|line| format!("{line}\n"))
            .collect();
        if append {
            let file = files
                .iter_mut()
                .find(|(file, _)| file == name)
                .unwrap_or_else(|| panic!("`{name}` is appended to before it is written"));
            file.1.push('\n');
            file.1.push_str(&text);
        } else {
            files.push((name.to_owned(), text));
        }
    }
    files
}

/// The shell block under the heading that starts with `heading`.
fn shell_block(heading: &str) -> String {
    let section = GUIDE
        .split("\n## ")
        .find(|section| section.starts_with(heading))
        .unwrap_or_else(|| panic!("the guide has no section `{heading}`"));
    let start = section.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let end = start + section[start..].find("```").expect("the block ends");
    section[start..end].to_owned()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

#[test]
fn the_author_guide_goes_from_an_empty_directory_to_a_loaded_module() {
    let spark = Spark::new();
    let crate_dir = spark.data_dir().with_file_name("signups");
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    let files = files();
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["Cargo.toml", "src/lib.rs"]);
    for (name, text) in &files {
        let sdk = workspace().join("guest-sdk");
        let text = text.replace("../spark/guest-sdk", sdk.to_str().unwrap());
        std::fs::write(crate_dir.join(name), text).unwrap();
    }
    // Pin dependencies to the versions this repository tested, as a copy of a lock file
    // would; and build in a target dir kept between runs, linked where the guide expects.
    std::fs::copy(workspace().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guide-target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&target, crate_dir.join("target")).unwrap();

    let spark_dir = Path::new(env!("CARGO_BIN_EXE_spark")).parent().unwrap();
    let path = format!("{}:{}", spark_dir.display(), std::env::var("PATH").unwrap());
    let run = |section: &str| {
        let output = Command::new("sh")
            .arg("-ec")
            .arg(shell_block(section))
            .current_dir(&crate_dir)
            .env("PATH", &path)
            .env("SPARK_DATA_DIR", spark.data_dir())
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("SPARK_TENANT")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the guide's commands of `{section}` failed:\n{stdout}\n{stderr}"
        );
        stdout
    };
    let stdout = run("3. Build, check, load");
    assert!(
        stdout.contains("a source+handler module for spark:engine@0.1.0"),
        "{stdout}"
    );
    // The test of the section Testing, appended to src/lib.rs, runs natively.
    let tested = run("Testing");
    assert!(
        tested.contains("a_newsletter_signup_is_two_events ... ok"),
        "{tested}"
    );

    assert_eq!(
        spark.event_keys(),
        ["newsletter_subscribed_1", "signup_created_1"]
    );
    let outbox = spark.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["event"], "signup_created_1");
    assert_eq!(
        outbox[0]["data"]["to"],
        serde_json::json!(["ada@example.com"])
    );
    assert_eq!(outbox[0]["data"]["subject"], "Welcome");
}
