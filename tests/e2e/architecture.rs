//! The house rules of `host/src`, checked on its source so that they stay true:
//! the top-level modules import each other without circles, each seam to a foreign
//! crate (sled, wasmtime) stays in its one room, and every file ARCHITECTURE.md names
//! exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace")
        .to_owned()
}

/// Every `.rs` file under `dir`, as (path relative to `dir`, text).
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.push((relative, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// The code of a file: without its tests and without comments (which may name any
/// module in prose or links).
fn code(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
    before_tests
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file of `host/src` belongs to (`store` for `store/sled.rs`).
fn top_module(relative: &str) -> &str {
    let first = relative.split('/').next().unwrap_or(relative);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// Which top-level modules each one uses, through `crate::NAME`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let used = regex::Regex::new(r"crate::([a-z_]+)").unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (relative, text) in sources(&workspace().join("host/src")) {
        let module = top_module(&relative);
        if matches!(module, "lib" | "main" | "cli") {
            continue; // the root and the binary sit above every room
        }
        let uses = graph.entry(module.to_owned()).or_default();
        for capture in used.captures_iter(&code(&text)) {
            if &capture[1] != module {
                uses.insert(capture[1].to_owned());
            }
        }
    }
    graph
}

/// A circle in `graph`, if there is one, as the modules along it.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on_path| on_path == module) {
            let mut found = path[start..].to_vec();
            found.push(module.to_owned());
            return Some(found);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_of_the_host_import_each_other_without_circles() {
    let graph = imports();
    assert!(graph.contains_key("pipeline") && graph.contains_key("store"));
    if let Some(found) = circle(&graph) {
        panic!("an import circle: {}", found.join(" -> "));
    }
}

#[test]
fn the_circle_check_finds_a_circle() {
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(circle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let mut line = graph.clone();
    line.get_mut("c").unwrap().clear();
    assert_eq!(circle(&line), None);
}

#[test]
fn sled_and_wasmtime_stay_in_their_rooms() {
    // A path that starts with the crate's name, not one inside a module of ours
    // (`self::sled::SledStore`).
    let foreign = regex::Regex::new(r"(?:^|[^:\w])(sled|wasmtime|wasmtime_wasi)::").unwrap();
    for (relative, text) in sources(&workspace().join("host/src")) {
        for capture in foreign.captures_iter(&code(&text)) {
            let room = if &capture[1] == "sled" {
                "store/sled"
            } else {
                "wasm/"
            };
            assert!(
                relative.starts_with(room),
                "{relative} uses {}: only {room} may",
                &capture[1]
            );
        }
    }
}

#[test]
fn every_file_the_architecture_notes_name_exists() {
    let notes = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let named =
        regex::Regex::new(r"`([a-z_\-./]+/[a-z_\-./]*|[a-z_\-]+\.(?:rs|md|toml))`").unwrap();
    let mut checked = 0;
    for capture in named.captures_iter(&notes) {
        let path = capture[1].trim_end_matches('/');
        // Files of host/src are named from there, the rest from the workspace.
        let exists = [
            workspace().join(path),
            workspace().join("host/src").join(path),
        ]
        .iter()
        .any(|candidate| candidate.exists());
        assert!(
            exists,
            "ARCHITECTURE.md names `{path}`, which does not exist"
        );
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} paths found in ARCHITECTURE.md"
    );
}
