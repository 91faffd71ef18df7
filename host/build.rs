//! Builds the mail template renderer (`host/renderer`, crate `spark-renderer`) from
//! source for wasm32-wasip2, the way `tests/guests/build.rs` builds the test guests,
//! and leaves it in OUT_DIR as `renderer.wasm` for `include_bytes!`: the `spark` binary
//! carries its renderer and needs no file beside it. Also sets `SPARK_RENDERER_SHA256`,
//! the component's hash, which names its compiled form in the compile cache.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ is one level below the workspace");
    // A target dir of its own: the outer cargo holds the lock on the main one.
    let target_dir = workspace.join("target").join("renderer");

    for path in [
        "host/renderer/src",
        "host/renderer/wit",
        "host/renderer/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }

    build(workspace, &target_dir);

    let built = target_dir
        .join("wasm32-wasip2")
        .join("release")
        .join("spark_renderer.wasm");
    let bytes = std::fs::read(&built)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", built.display()));
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("renderer.wasm");
    std::fs::write(&out, &bytes)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", out.display()));
    let hash: String = Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    println!("cargo:rustc-env=SPARK_RENDERER_SHA256={hash}");
}

fn build(workspace: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "spark-renderer",
            "--target-dir",
        ])
        .arg(target_dir);
    // Flags meant for this build script's own compilation must not reach the renderer.
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
        .expect("cannot run cargo to build the template renderer (host/renderer)");
    assert!(
        status.success(),
        "building the template renderer (host/renderer) for wasm32-wasip2 failed; is the \
         target installed? (rustup target add wasm32-wasip2)"
    );
}
