//! `spark apply`: a tenant's set-up declared in a TOML file.
//!
//! ```toml
//! [limits]                 # the tenant's defaults over the engine's (optional)
//! fuel = 50_000_000
//!
//! [retry]                  # optional
//! attempts = 3
//! backoff-ms = 100
//!
//! [[modules]]
//! name = "challenges"
//! path = "challenges_source.wasm"   # relative to this file
//! sources = ["challenge"]
//! clock = "day"            # its calls see the run's day, not the time (default: exact)
//!
//! [[modules]]
//! name = "mailer"
//! path = "challenges_mailer.wasm"
//! handlers = ["^challenge"]
//! limits = { memory-bytes = 16_777_216 }
//!
//! [mails]                  # optional
//! from = "Challenges <challenges@example.com>"
//! reply-to = "help@example.com"
//! transport = "file:mails"  # for `spark outbox send` without --transport (a relative
//!                           # directory is the manifest's)
//! templates = "templates"   # GROUP.txt files; when given, the tenant's templates
//!
//! [outputs]                # optional: the transport of each output channel
//! audit = "file:audit"     # a relative directory is the manifest's
//! slack = "https://hooks.example.com/T0/B1"
//!
//! [schedule]               # optional: what `spark serve` runs by itself (UTC)
//! process-sources = "every 1h"
//! generate = "daily 03:00"
//!
//! [[generators]]
//! name = "popular"
//! group = "challenge_popular"
//! model = "challenge"
//! when = ["donations >= 3"]
//! active = true            # the default
//! ```
//!
//! Applying makes the tenant match the file: declared modules are added or replaced
//! (in the file's order), modules and generators not declared are removed, generators
//! and settings are replaced.
//! Everything is checked before anything changes, so a bad file changes nothing.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::event::check_channel;
use crate::generators::Generator;
use crate::limits::LimitOverrides;
use crate::mail::check_template;
use crate::modules::{ModuleChange, ModuleCode, ModuleSpec, Modules, PreparedModule};
use crate::outbox::OutboxKind;
use crate::registration::is_native;
use crate::schedule::Schedules;
use crate::settings::{MailSettings, RetryPolicy, TenantSettings};
use crate::time::Clock;
use crate::transport::Transport;

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub limits: LimitOverrides,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub modules: Vec<ModuleEntry>,
    #[serde(default)]
    pub generators: Vec<GeneratorEntry>,
    #[serde(default)]
    pub mails: MailsEntry,
    /// The transport of each output channel, for `spark outbox send`.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// When `spark serve` runs `process-sources` and `generate` by itself.
    #[serde(default)]
    pub schedule: Schedules,
}

/// The `[mails]` table: the tenant's mail settings and its templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MailsEntry {
    /// The sender of mails that name none.
    pub from: Option<String>,
    /// The reply address of mails that name none.
    pub reply_to: Option<String>,
    /// What `spark outbox send` uses when not told.
    pub transport: Option<String>,
    /// A directory of templates, relative to the manifest: `GROUP.txt` is the template
    /// of the event group `GROUP`. When given, the tenant's templates become exactly
    /// these; when not, they are left as they are.
    pub templates: Option<PathBuf>,
}

impl MailsEntry {
    fn settings(&self) -> MailSettings {
        MailSettings {
            from: self.from.clone(),
            reply_to: self.reply_to.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// `transport` checked to carry items of `kind`, as it is stored: a relative `file:`
/// directory made the manifest's (`base`), like module paths, and absolute, so that
/// `outbox send` finds it from anywhere.
fn resolve_transport(base: &Path, transport: &str, kind: OutboxKind) -> Result<String, Error> {
    let transport = match transport.parse()? {
        Transport::File(dir) if dir.is_relative() => {
            let dir = base.join(dir);
            let absolute = std::path::absolute(&dir).map_err(|source| Error::Io {
                what: "cannot resolve the transport directory",
                path: dir,
                error: source,
            })?;
            Transport::File(absolute)
        }
        transport => transport,
    };
    transport.check_carries(kind)?;
    Ok(transport.to_string())
}

/// The templates in `dir`: `GROUP.txt` files, each checked. Hidden files are ignored;
/// anything else is refused, so that a misnamed template is not silently unused.
fn read_templates(dir: &Path) -> Result<Vec<(String, String)>, Error> {
    let io = |source| Error::Io {
        what: "cannot read the templates directory",
        path: dir.to_owned(),
        error: source,
    };
    let mut templates = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let Some(group) = name.strip_suffix(".txt").filter(|group| !group.is_empty()) else {
            return Err(Error::InvalidTemplate {
                group: name.to_owned(),
                why: format!("`{}` is not named GROUP.txt", path.display()),
            });
        };
        let source = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            what: "cannot read template",
            path: path.clone(),
            error: source,
        })?;
        check_template(&source).map_err(|why| Error::InvalidTemplate {
            group: group.to_owned(),
            why,
        })?;
        templates.push((group.to_owned(), source));
    }
    templates.sort();
    Ok(templates)
}

/// One `[[generators]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorEntry {
    pub name: String,
    pub group: String,
    pub model: String,
    /// Conditions, all of which must hold.
    #[serde(default)]
    pub when: Vec<String>,
    #[serde(default = "active_by_default")]
    pub active: bool,
}

fn active_by_default() -> bool {
    true
}

/// One `[[modules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleEntry {
    pub name: String,
    /// The component, relative to the manifest's directory.
    pub path: PathBuf,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub handlers: Vec<String>,
    #[serde(default)]
    pub limits: LimitOverrides,
    /// How coarsely its calls read the run's time (`exact` unless given).
    #[serde(default)]
    pub clock: Clock,
}

/// What applying a manifest changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Each declared module and what happened to it, in the file's order.
    pub modules: Vec<(String, ModuleChange)>,
    /// Modules that were registered but are not declared.
    pub removed: Vec<String>,
    /// The generators declared (all replaced).
    pub generators: Vec<String>,
    /// Generators that were defined but are not declared.
    pub removed_generators: Vec<String>,
    /// The groups whose templates the manifest's directory set.
    pub templates: Vec<String>,
}

impl Manifest {
    /// Reads and parses a manifest file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            what: "cannot read the manifest",
            path: path.to_owned(),
            error: source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses manifest text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let manifest: Manifest = toml::from_str(text).map_err(|error| Error::Manifest {
            path: path.to_owned(),
            why: error.to_string().trim_end().to_owned(),
        })?;
        let twice = |what: &str, name: &str| Error::Manifest {
            path: path.to_owned(),
            why: format!("{what} `{name}` is declared twice"),
        };
        let mut names = HashSet::new();
        for module in &manifest.modules {
            if !names.insert(module.name.as_str()) {
                return Err(twice("module", &module.name));
            }
        }
        let mut names = HashSet::new();
        for generator in &manifest.generators {
            if !names.insert(generator.name.as_str()) {
                return Err(twice("generator", &generator.name));
            }
        }
        Ok(manifest)
    }
}

/// A manifest resolved against its directory and checked in full, ready to apply:
/// nothing of it is stored yet.
#[derive(Debug)]
pub(crate) struct Setup {
    pub(crate) settings: TenantSettings,
    /// The declared modules, compiled and checked, in the file's order.
    pub(crate) modules: Vec<PreparedModule>,
    pub(crate) generators: Vec<Generator>,
    /// The templates of `[mails] templates`, when the manifest names a directory.
    pub(crate) templates: Option<Vec<(String, String)>>,
}

impl Manifest {
    /// Resolves this manifest, read from `path` (module paths and `file:` transports
    /// are relative to its directory), and checks everything in it: every module is
    /// compiled and started by `modules`, after `checking` is told its name and its
    /// place (n of all) first. Any error names the manifest.
    pub(crate) fn resolve(
        &self,
        path: &Path,
        modules: &mut Modules,
        checking: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<Setup, Error> {
        let base = path.parent().unwrap_or(Path::new("."));
        let in_manifest = |error: Error| Error::Manifest {
            path: path.to_owned(),
            why: error.to_string(),
        };
        let mut mail = self.mails.settings();
        if let Some(transport) = &mail.transport {
            let resolved = resolve_transport(base, transport, OutboxKind::Mail);
            mail.transport = Some(resolved.map_err(in_manifest)?);
        }
        let mut outputs = BTreeMap::new();
        for (channel, transport) in &self.outputs {
            check_channel(channel).map_err(|why| Error::Manifest {
                path: path.to_owned(),
                why: format!("[outputs]: the {why}"),
            })?;
            let resolved = resolve_transport(base, transport, OutboxKind::Output);
            outputs.insert(channel.clone(), resolved.map_err(in_manifest)?);
        }
        let settings = TenantSettings {
            limits: self.limits,
            retry: self.retry,
            mail,
            outputs,
            schedule: self.schedule,
        };
        settings.validate().map_err(in_manifest)?;
        let mut prepared = Vec::new();
        for (n, entry) in self.modules.iter().enumerate() {
            checking(&entry.name, n + 1, self.modules.len());
            let path = if entry.path.to_str().is_some_and(is_native) {
                entry.path.clone()
            } else {
                base.join(&entry.path)
            };
            let spec = ModuleSpec {
                name: entry.name.clone(),
                code: ModuleCode::load(&path).map_err(in_manifest)?,
                sources: entry.sources.clone(),
                handlers: entry.handlers.clone(),
                limits: entry.limits,
                clock: entry.clock,
            };
            prepared.push(
                modules
                    .prepare(spec, &settings.limits)
                    .map_err(in_manifest)?,
            );
        }
        let generators = self
            .generators
            .iter()
            .map(|entry| {
                Generator::new(
                    &entry.name,
                    &entry.group,
                    &entry.model,
                    &entry.when,
                    entry.active,
                )
                .map_err(in_manifest)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let templates = match &self.mails.templates {
            Some(dir) => Some(read_templates(&base.join(dir)).map_err(in_manifest)?),
            None => None,
        };
        Ok(Setup {
            settings,
            modules: prepared,
            generators,
            templates,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_manifest_parses() {
        let manifest = Manifest::parse(
            Path::new("spark.toml"),
            r#"
            [limits]
            fuel = 5

            [retry]
            attempts = 2
            backoff-ms = 10

            [[modules]]
            name = "source"
            path = "a.wasm"
            sources = ["challenge"]

            [[modules]]
            name = "mailer"
            path = "b.wasm"
            handlers = ["^challenge"]
            limits = { memory-bytes = 1024 }
            "#,
        )
        .unwrap();
        assert_eq!(manifest.limits.fuel, Some(5));
        assert_eq!(manifest.retry.attempts, 2);
        assert_eq!(manifest.modules.len(), 2);
        assert_eq!(manifest.modules[1].limits.memory_bytes, Some(1024));
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                "[[modules]]\nname = \"a\"\npath = \"a.wasm\"\nsource = [\"x\"]",
                "source",
            ),
            ("[limits]\nfeul = 1", "feul"),
            ("[[modules]]\nname = \"a\"", "path"),
            (
                "[[modules]]\nname = \"a\"\npath = \"a.wasm\"\n[[modules]]\nname = \"a\"\npath = \"b.wasm\"",
                "declared twice",
            ),
            ("modules = 3", "modules"),
        ];
        for (text, expected) in cases {
            let error = Manifest::parse(Path::new("spark.toml"), text).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, Error::Manifest { .. }), "{text}");
            assert!(message.contains(expected), "{text}: {message}");
        }
    }
}
