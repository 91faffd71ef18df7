//! Builds the example and test guests from source for wasm32-wasip2 and writes their
//! paths as constants (`guests.rs` in OUT_DIR), so tests always run the guests as the
//! sources in this checkout say.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant, package, artifact)
const GUESTS: &[(&str, &str, &str)] = &[
    (
        "CHALLENGES_SOURCE",
        "challenges-source",
        "challenges_source",
    ),
    (
        "CHALLENGES_MAILER",
        "challenges-mailer",
        "challenges_mailer",
    ),
    ("RECORDER", "test-recorder", "test_recorder"),
    ("HOSTILE", "test-hostile", "test_hostile"),
    ("RAW", "test-raw", "test_raw"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("tests/guests is two levels below the workspace");
    // A target dir of its own: the outer cargo holds the lock on the main one.
    let target_dir = workspace.join("target").join("test-guests");

    for dir in [
        "guest-sdk/src",
        "guest-sdk/macros/src",
        "guest-sdk/wit",
        "examples/challenges/source/src",
        "examples/challenges/handler/src",
        "tests/guests/recorder/src",
        "tests/guests/hostile/src",
        "tests/guests/raw/src",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (_, package, _) in GUESTS {
        command.args(["-p", package]);
    }
    // Flags meant for this build script's own compilation must not reach the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .expect("cannot run cargo to build the test guests");
    assert!(
        status.success(),
        "building the test guests failed; is the target installed? (rustup target add wasm32-wasip2)"
    );

    let mut constants = String::new();
    for (name, _, artifact) in GUESTS {
        let path = target_dir
            .join("wasm32-wasip2")
            .join("release")
            .join(format!("{artifact}.wasm"));
        assert!(path.exists(), "{} was not built", path.display());
        constants.push_str(&format!(
            "pub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("guests.rs");
    std::fs::write(out, constants).expect("cannot write guests.rs");
}
