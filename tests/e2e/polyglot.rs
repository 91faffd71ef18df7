//! Guests in Python and JavaScript, built from source by their own tools (installed by
//! `scripts/test`: componentize-py from PyPI, componentize-qjs from npm) and cached in
//! the target dir by the hash of what went in.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// FNV-1a over the inputs: enough to tell when a cached component is stale.
fn fingerprint(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|part| part.iter())
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

fn wit() -> Vec<u8> {
    std::fs::read(workspace().join("guest-sdk/wit/engine.wit")).unwrap()
}

/// Builds (or reuses) the component at `name`-HASH.wasm with `build(out)`.
fn cached(name: &str, inputs: &[&[u8]], build: impl FnOnce(&Path) -> Command) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("polyglot-guests");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}-{:016x}.wasm", fingerprint(inputs)));
    if out.exists() {
        return out;
    }
    let partial = dir.join(format!(".{name}-{}.wasm", std::process::id()));
    let mut command = build(&partial);
    let output = command.output().unwrap_or_else(|error| {
        panic!("cannot run {command:?} ({error}); scripts/test installs the tools")
    });
    assert!(
        output.status.success(),
        "building {name} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, &out).unwrap();
    out
}

/// componentize-py as pip installed it: in the scripts directory of `python3` (found
/// there rather than on PATH, which may lag behind an install, as with pyenv's shims).
fn componentize_py() -> PathBuf {
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    match scripts.map(|dir| dir.join("componentize-py")) {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("componentize-py"),
    }
}

/// A Python component: module `module` of `dir`, for `world`.
pub fn python(dir: &Path, module: &str, world: &str) -> PathBuf {
    let source = std::fs::read(dir.join(format!("{module}.py"))).unwrap();
    cached(
        &format!("py-{module}"),
        &[&source, &wit(), world.as_bytes()],
        |out| {
            let mut command = Command::new(componentize_py());
            command
                .arg("-d")
                .arg(workspace().join("guest-sdk/wit"))
                .args(["-w", world, "componentize", "-p"])
                .arg(dir)
                .arg(module)
                .arg("-o")
                .arg(out);
            command
        },
    )
}

/// A JavaScript component: `file` for `world`, built with the example's componentize-qjs.
pub fn javascript(file: &Path, world: &str) -> PathBuf {
    let source = std::fs::read(file).unwrap();
    let name = file.file_stem().unwrap().to_str().unwrap();
    let tool = workspace().join("examples/challenges/js/node_modules/.bin/componentize-qjs");
    cached(
        &format!("js-{name}"),
        &[&source, &wit(), world.as_bytes()],
        |out| {
            let mut command = Command::new(tool);
            command
                .arg("--wit")
                .arg(workspace().join("guest-sdk/wit"))
                .arg("--js")
                .arg(file)
                .args(["-n", world, "--sync", "-o"])
                .arg(out);
            command
        },
    )
}

pub fn examples() -> PathBuf {
    workspace().join("examples/challenges")
}

pub fn test_guests() -> PathBuf {
    workspace().join("tests/guests")
}
