//! Guests in Python and JavaScript, built from source by their own tools (installed by
//! `scripts/test`: componentize-py from PyPI, componentize-qjs from npm) and cached in
//! the target dir by the hash of what went in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn workspace() -> PathBuf {
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

/// The text of every file under `dir` of the workspace, in path order, for a
/// fingerprint.
fn tree(dir: &str) -> Vec<u8> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if !path
                .components()
                .any(|part| part.as_os_str() == "__pycache__")
            {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace().join(dir), &mut files);
    files.sort();
    files
        .iter()
        .flat_map(|file| {
            let name = file.strip_prefix(workspace()).unwrap();
            let mut bytes = name.to_string_lossy().into_owned().into_bytes();
            bytes.extend(std::fs::read(file).unwrap());
            bytes
        })
        .collect()
}

/// Builds (or reuses) the component at `name`-HASH.wasm with `build(out)`.
fn cached(name: &str, inputs: &[&[u8]], build: impl FnOnce(&Path) -> Command) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("polyglot-guests");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}-{:016x}.wasm", fingerprint(inputs)));
    if out.exists() {
        return out;
    }
    // A name of its own per build: tests of one process may build the same guest at
    // once, and each renames its own file into place (the same bytes either way).
    static BUILDS: AtomicU64 = AtomicU64::new(0);
    let build_id = BUILDS.fetch_add(1, Ordering::Relaxed);
    let partial = dir.join(format!(".{name}-{}-{build_id}.wasm", std::process::id()));
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
pub fn componentize_py() -> PathBuf {
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

/// A Python component: module `module` of `dir`, for `world`, with the helper package
/// `spark_guest` (guest-sdk/python) on its path.
pub fn python(dir: &Path, module: &str, world: &str) -> PathBuf {
    let source = std::fs::read(dir.join(format!("{module}.py"))).unwrap();
    cached(
        &format!("py-{module}"),
        &[&source, &wit(), &tree("guest-sdk/python"), world.as_bytes()],
        |out| {
            let mut command = Command::new(componentize_py());
            command
                .arg("-d")
                .arg(workspace().join("guest-sdk/wit"))
                .args(["-w", world, "componentize", "-p"])
                .arg(dir)
                .arg("-p")
                .arg(workspace().join("guest-sdk/python"))
                .arg(module)
                .arg("-o")
                .arg(out);
            command
        },
    )
}

/// A JavaScript component: `file` for `world` of guest-sdk/javascript/wit, built with
/// the example's componentize-qjs; it may import the helper (guest-sdk/javascript) by
/// a relative path within the workspace.
pub fn javascript(file: &Path, world: &str) -> PathBuf {
    let source = std::fs::read(file).unwrap();
    let name = file.file_stem().unwrap().to_str().unwrap();
    cached(
        &format!("js-{name}"),
        &[&source, &tree("guest-sdk/javascript"), world.as_bytes()],
        |out| {
            let mut command = Command::new(componentize_qjs());
            command
                .arg("--wit")
                .arg(workspace().join("guest-sdk/javascript/wit"))
                .arg("--module-root")
                .arg(workspace())
                .arg("--js")
                .arg(file)
                .args(["-n", world, "--sync", "-o"])
                .arg(out);
            command
        },
    )
}

/// componentize-qjs as `npm ci` installed it for the example (scripts/test does).
pub fn componentize_qjs() -> PathBuf {
    workspace().join("examples/challenges/js/node_modules/.bin/componentize-qjs")
}

pub fn examples() -> PathBuf {
    workspace().join("examples/challenges")
}

pub fn test_guests() -> PathBuf {
    workspace().join("tests/guests")
}
