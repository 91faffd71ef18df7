//! `spark new rust|python|javascript NAME`: a module project to start from, in
//! `./NAME`: a source and/or a handler, a test of them, the helper of its language and
//! a README with the commands that set it up, build, test and load it.
//!
//! The templates are files of `new/`, embedded in the binary; so are the helpers and
//! the WIT the Python and JavaScript projects build against (a copy, so that a project
//! builds without a Spark checkout). A Rust project depends on the SDK by path:
//! `spark-guest` is not on crates.io yet, so `--sdk` names a checkout's `guest-sdk/`,
//! by default the one this `spark` was built from, if it is still there.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{Outcome, output};

/// Write a module project into ./NAME: a source of MODEL and/or a handler, with a test
/// of each, that builds with one command (its README says which).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark new rust orders --source order --handler '^order_'\n  spark new python reminders --handler '^order_late$'\n  spark new javascript audit --source order --json"
)]
pub struct New {
    /// The module's language.
    language: Language,
    /// The project's name and directory (./NAME, new or empty): a lowercase letter,
    /// then lowercase letters, digits, `-` and `_`; at most 64 characters.
    name: String,
    /// The model whose records the module turns into events (its source).
    #[arg(long, value_name = "MODEL")]
    source: Option<String>,
    /// A regex of the event groups the module handles (its handler), as `module add`
    /// takes it; it goes into the README's `module add` command.
    #[arg(long, value_name = "REGEX")]
    handler: Option<String>,
    /// Rust only: the `guest-sdk/` directory of a Spark checkout, which the crate
    /// depends on by path (spark-guest is not on crates.io yet) [default: the checkout
    /// this spark was built from, if it is still there].
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
    /// Print one JSON object: the directory, the files written and the commands.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Language {
    Rust,
    Python,
    #[value(alias = "js")]
    Javascript,
}

impl Language {
    fn title(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Javascript => "JavaScript",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Javascript => "javascript",
        }
    }

    fn guide(self) -> &'static str {
        match self {
            Language::Rust => "guest-sdk/README.md",
            Language::Python => "guest-sdk/python.md",
            Language::Javascript => "guest-sdk/javascript.md",
        }
    }
}

/// The WIT of `spark:engine`, which every project's component implements.
const ENGINE_WIT: &str = include_str!("../../../guest-sdk/wit/engine.wit");

mod templates {
    pub const README: &str = include_str!("new/README.md");
    pub const RUST_CARGO: &str = include_str!("new/rust/Cargo.toml");
    pub const RUST_LIB: &str = include_str!("new/rust/lib.rs");
    pub const PYTHON_APP: &str = include_str!("new/python/app.py");
    pub const PYTHON_TEST: &str = include_str!("new/python/test_app.py");
    pub const PYTHON_HELPER: &str =
        include_str!("../../../guest-sdk/python/spark_guest/__init__.py");
    pub const JS_APP: &str = include_str!("new/javascript/app.js");
    pub const JS_TEST: &str = include_str!("new/javascript/app.test.js");
    pub const JS_PACKAGE: &str = include_str!("new/javascript/package.json");
    pub const JS_HELPER: &str = include_str!("../../../guest-sdk/javascript/spark-guest/index.js");
    pub const JS_HELPER_PACKAGE: &str =
        include_str!("../../../guest-sdk/javascript/spark-guest/package.json");
    pub const JS_WIT: &str = include_str!("../../../guest-sdk/javascript/wit/javascript.wit");
    pub const JS_WASI_IO: &str = include_str!("../../../guest-sdk/javascript/wit/deps/wasi-io.wit");
    pub const JS_WASI_CLI: &str =
        include_str!("../../../guest-sdk/javascript/wit/deps/wasi-cli.wit");
}

/// The most a project's name may have.
const MAX_NAME_LEN: usize = 64;

/// Names cargo refuses for a package or its library, or that clash with the SDK.
const RUST_RESERVED: &str = "abstract alloc as async await become box break const continue \
    core crate do dyn else enum extern false final fn for gen if impl in let loop macro match \
    mod move mut override priv proc_macro proc-macro pub ref return self spark-guest \
    spark_guest static std struct super test trait true try type typeof unsafe unsized use \
    virtual where while yield";

/// A project to write: its files (relative path, text) and the commands of its README.
struct Project {
    files: Vec<(&'static str, String)>,
    setup: &'static str,
    build: String,
    test: &'static str,
    /// Where the build puts the component, relative to the project.
    component: String,
}

impl New {
    pub fn run(self) -> anyhow::Result<Outcome> {
        check_name(&self.name, self.language)?;
        if let Some(model) = &self.source {
            spark_host::validate_name(model)
                .map_err(|why| anyhow::anyhow!("invalid model name `{model}`: {why}"))?;
        }
        if let Some(regex) = &self.handler {
            spark_host::compile_regex(regex)?;
        }
        anyhow::ensure!(
            self.source.is_some() || self.handler.is_some(),
            "say what the module does: --source MODEL (a source of the model's records), \
             --handler REGEX (a handler of the event groups it matches), or both"
        );
        let sdk = match self.language {
            Language::Rust => Some(sdk(self.sdk.as_deref())?),
            _ if self.sdk.is_some() => {
                anyhow::bail!(
                    "--sdk is for Rust projects: a {} project carries its helper",
                    self.language.title()
                )
            }
            _ => None,
        };
        let dir = PathBuf::from(&self.name);
        ensure_empty(&dir)?;

        let project = self.project(sdk.as_deref())?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the directory `{}`", dir.display()))?;
        for (path, text) in &project.files {
            write_new(&dir.join(path), text)?;
        }
        let dir = dir.canonicalize().unwrap_or(dir);
        let add = self.module_add(&project.component);
        if self.json {
            output::json_line(&json!({
                "language": self.language.id(),
                "name": self.name,
                "dir": dir,
                "files": project.files.iter().map(|(path, _)| path).collect::<Vec<_>>(),
                "setup": project.setup,
                "build": project.build,
                "test": project.test,
                "component": project.component,
                "add": add,
            }))?;
        } else {
            output::line(format!(
                "created {}/, a {} module: {}",
                self.name,
                self.language.title(),
                self.what()
            ))?;
            for (path, _) in &project.files {
                output::line(format!("  {path}"))?;
            }
            output::line(format!(
                "then, in {}/ (README.md says the same):",
                self.name
            ))?;
            output::line(format!("  {}    (once)", project.setup))?;
            for command in [project.build.as_str(), project.test, add.as_str()] {
                output::line(format!("  {command}"))?;
            }
        }
        Ok(Outcome::Done)
    }

    /// What the module does, in a few words.
    fn what(&self) -> String {
        match (&self.source, &self.handler) {
            (Some(model), Some(_)) => format!("the source of the model `{model}` and a handler"),
            (Some(model), None) => format!("the source of the model `{model}`"),
            _ => "a handler".to_owned(),
        }
    }

    /// The world of `spark:engine` its component implements.
    fn world(&self) -> &'static str {
        match (&self.source, &self.handler) {
            (Some(_), Some(_)) => "spark-module",
            (Some(_), None) => "source-module",
            _ => "handler-module",
        }
    }

    /// The command that registers the built component, as the README shows it.
    fn module_add(&self, component: &str) -> String {
        let mut command = format!("spark module add {component} --name {}", self.name);
        if let Some(model) = &self.source {
            command.push_str(&format!(" --source {model}"));
        }
        if let Some(regex) = &self.handler {
            command.push_str(&format!(" --handler {}", shell_quote(regex)));
        }
        command
    }

    fn project(&self, sdk: Option<&Path>) -> anyhow::Result<Project> {
        let group = match &self.source {
            Some(model) => format!("{model}_created"),
            None => "example".to_owned(),
        };
        let mut sections = BTreeSet::new();
        match (self.source.is_some(), self.handler.is_some()) {
            (true, true) => sections.extend(["source", "handler", "both"]),
            (true, false) => sections.extend(["source", "source-only"]),
            _ => sections.extend(["handler", "handler-only"]),
        }
        let what = self.what();
        let vars: Vec<(&str, String)> = vec![
            ("name", self.name.clone()),
            ("model", self.source.clone().unwrap_or_default()),
            ("group", group),
            ("world", self.world().to_owned()),
            ("what", what),
            (
                "sdk",
                sdk.map(|sdk| toml::Value::String(sdk.display().to_string()).to_string())
                    .unwrap_or_default(),
            ),
        ];
        let fill = |template: &str| render(template, &vars, &sections);
        let mut project = match self.language {
            Language::Rust => Project {
                files: vec![
                    ("Cargo.toml", fill(templates::RUST_CARGO)),
                    ("src/lib.rs", fill(templates::RUST_LIB)),
                    (".gitignore", "/target\n".to_owned()),
                ],
                setup: "rustup target add wasm32-wasip2",
                build: "cargo build --target wasm32-wasip2 --release".to_owned(),
                test: "cargo test",
                component: format!(
                    "target/wasm32-wasip2/release/{}.wasm",
                    self.name.replace('-', "_")
                ),
            },
            Language::Python => Project {
                files: vec![
                    ("app.py", fill(templates::PYTHON_APP)),
                    ("test_app.py", fill(templates::PYTHON_TEST)),
                    (
                        "spark_guest/__init__.py",
                        templates::PYTHON_HELPER.to_owned(),
                    ),
                    ("wit/engine.wit", ENGINE_WIT.to_owned()),
                    (".gitignore", "__pycache__/\n*.wasm\n".to_owned()),
                ],
                setup: "python3 -m pip install componentize-py==0.25.1",
                build: format!(
                    "componentize-py -d wit -w {} componentize app -o {}.wasm",
                    self.world(),
                    self.name
                ),
                test: "python3 -m unittest",
                component: format!("{}.wasm", self.name),
            },
            Language::Javascript => Project {
                files: vec![
                    ("package.json", fill(templates::JS_PACKAGE)),
                    ("app.js", fill(templates::JS_APP)),
                    ("app.test.js", fill(templates::JS_TEST)),
                    ("spark-guest/index.js", templates::JS_HELPER.to_owned()),
                    (
                        "spark-guest/package.json",
                        templates::JS_HELPER_PACKAGE.to_owned(),
                    ),
                    ("wit/javascript.wit", templates::JS_WIT.to_owned()),
                    ("wit/deps/engine.wit", ENGINE_WIT.to_owned()),
                    ("wit/deps/wasi-io.wit", templates::JS_WASI_IO.to_owned()),
                    ("wit/deps/wasi-cli.wit", templates::JS_WASI_CLI.to_owned()),
                    (".gitignore", "node_modules/\n*.wasm\n".to_owned()),
                ],
                setup: "npm install",
                build: "npm run build".to_owned(),
                test: "npm test",
                component: format!("{}.wasm", self.name),
            },
        };
        let readme = render(
            templates::README,
            &[
                ("name", self.name.clone()),
                ("language", self.language.title().to_owned()),
                ("what", self.what()),
                ("guide", self.language.guide().to_owned()),
                ("setup", project.setup.to_owned()),
                ("build", project.build.clone()),
                ("test", project.test.to_owned()),
                ("component", project.component.clone()),
                ("add", self.module_add(&project.component)),
            ],
            &BTreeSet::new(),
        );
        project.files.insert(0, ("README.md", readme));
        Ok(project)
    }
}

/// Refuses a name that is no good as a directory, a package (cargo's, npm's) or a
/// channel name.
fn check_name(name: &str, language: Language) -> anyhow::Result<()> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 64 characters")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it does not start with a lowercase letter")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        Some("use lowercase letters, digits, `-` and `_` only")
    } else if language == Language::Rust
        && RUST_RESERVED.split_whitespace().any(|word| word == name)
    {
        Some("cargo does not take it as a crate's name")
    } else {
        None
    };
    match why {
        Some(why) => anyhow::bail!("invalid project name `{name}`: {why}"),
        None => Ok(()),
    }
}

/// The SDK a Rust project depends on, as an absolute path: `given`, or the checkout
/// this binary was built from.
fn sdk(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (dir, named) = match given {
        Some(dir) => (dir.to_owned(), true),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
            false,
        ),
    };
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    let is_sdk = manifest
        .lines()
        .any(|line| line.replace(' ', "") == "name=\"spark-guest\"");
    match (is_sdk, named) {
        (true, _) => Ok(dir.canonicalize()?),
        (false, true) => anyhow::bail!(
            "`{}` is not spark-guest: --sdk names the guest-sdk/ directory of a Spark checkout",
            dir.display()
        ),
        (false, false) => anyhow::bail!(
            "a Rust module depends on spark-guest, which is not on crates.io yet: pass --sdk \
             with the guest-sdk/ directory of a Spark checkout"
        ),
    }
}

/// Refuses a `dir` that exists and is not an empty directory.
fn ensure_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => anyhow::ensure!(
            entries.next().is_none(),
            "the directory `{}` exists and is not empty: choose another name, or remove it",
            dir.display()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) if dir.exists() => anyhow::bail!(
            "`{}` exists and is not a directory: choose another name",
            dir.display()
        ),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read `{}`", dir.display()));
        }
    }
    Ok(())
}

/// Writes a file that must not exist yet, making its directory.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the directory `{}`", parent.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// `template` with `{{var}}` replaced and the lines between `{{#section}}` and
/// `{{/section}}` kept only for the sections given (sections nest; their marker lines
/// go).
fn render(template: &str, vars: &[(&str, String)], sections: &BTreeSet<&str>) -> String {
    let mut text = String::new();
    let mut open: Vec<bool> = Vec::new();
    for line in template.lines() {
        let marker = line.trim();
        if let Some(section) = marker
            .strip_prefix("{{#")
            .and_then(|m| m.strip_suffix("}}"))
        {
            open.push(sections.contains(section));
            continue;
        }
        if marker.starts_with("{{/") && marker.ends_with("}}") {
            open.pop();
            continue;
        }
        if open.iter().all(|kept| *kept) {
            text.push_str(line);
            text.push('\n');
        }
    }
    for (name, value) in vars {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    text
}

/// `text` as one word for a POSIX shell: as it is when that is safe, else in single
/// quotes.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(language: Language, source: Option<&str>, handler: Option<&str>) -> New {
        New {
            language,
            name: "signups".to_owned(),
            source: source.map(str::to_owned),
            handler: handler.map(str::to_owned),
            sdk: None,
            json: false,
        }
    }

    #[test]
    fn every_template_renders_whole_for_every_kind_of_module() {
        let sdk = Path::new("/checkout/guest-sdk");
        for language in [Language::Rust, Language::Python, Language::Javascript] {
            for (source, handler) in [
                (Some("signup"), Some("^signup_")),
                (Some("signup"), None),
                (None, Some("^signup_")),
            ] {
                let project = new(language, source, handler).project(Some(sdk)).unwrap();
                for (path, text) in &project.files {
                    assert!(
                        !text.contains("{{"),
                        "{language:?} {path} keeps a marker:\n{text}"
                    );
                    assert!(!text.contains("\n\n\n\n"), "{language:?} {path}:\n{text}");
                }
                let code = project
                    .files
                    .iter()
                    .find(|(path, _)| ["src/lib.rs", "app.py", "app.js"].contains(path))
                    .map(|(_, text)| text)
                    .unwrap();
                assert_eq!(code.contains("signup_created"), source.is_some(), "{code}");
                assert_eq!(code.contains("handling"), handler.is_some(), "{code}");
            }
        }
    }

    #[test]
    fn sections_nest_and_vars_fill() {
        let sections = BTreeSet::from(["a"]);
        let template = "x {{v}}\n{{#a}}\na\n{{#b}}\nab\n{{/b}}\n{{/a}}\n{{#b}}\nb\n{{/b}}\nend\n";
        let vars = [("v", "1".to_owned())];
        assert_eq!(render(template, &vars, &sections), "x 1\na\nend\n");
    }

    #[test]
    fn names_are_checked() {
        for good in ["signups", "a", "mail-2", "x_y"] {
            check_name(good, Language::Rust).unwrap();
        }
        for bad in [
            "",
            "Signups",
            "2fa",
            "-x",
            "a b",
            "a/b",
            "..",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad, Language::Python).is_err(), "{bad:?}");
        }
        assert!(check_name("test", Language::Rust).is_err());
        check_name("test", Language::Python).unwrap();
    }

    #[test]
    fn regexes_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("signup"), "signup");
        assert_eq!(shell_quote("^signup_"), "'^signup_'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    /// The tools a project installs are those the tests run.
    #[test]
    fn the_pinned_tools_are_the_tested_ones() {
        let requirements = include_str!("../../../tests/requirements.txt");
        let project = new(Language::Python, Some("signup"), None)
            .project(None)
            .unwrap();
        let pin = project.setup.rsplit(' ').next().unwrap();
        assert!(requirements.lines().any(|line| line == pin), "{pin}");
        let example = include_str!("../../../examples/challenges/js/package.json");
        let pin = templates::JS_PACKAGE
            .lines()
            .find(|line| line.contains("\"componentize-qjs\":"))
            .unwrap();
        assert!(example.lines().any(|line| line == pin), "{pin}");
    }
}
