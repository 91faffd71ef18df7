//! `spark apply MANIFEST.toml`: a tenant's modules and settings from a file.

use std::path::PathBuf;

use clap::Args;
use spark_host::{Manifest, ModuleChange};

use super::progress::Progress;
use super::{Context, Outcome, output};

/// Make the tenant match a manifest: declared modules are added or replaced, others
/// removed, limits and retry settings replaced. A bad manifest changes nothing.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark apply examples/challenges/spark.toml\n  spark --tenant acme apply acme/spark.toml"
)]
pub struct Apply {
    /// The manifest (TOML); module paths in it are relative to its directory.
    manifest: PathBuf,
}

impl Apply {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let manifest = Manifest::load(&self.manifest)?;
        let mut tenant = context.tenant_to_set_up()?;
        // Compiling a module takes seconds (a Python one, tens): say which, on a terminal.
        let progress = Progress::new();
        let report = tenant.apply_showing(&manifest, &self.manifest, &mut |name, n, all| {
            progress.show(|| format!("checking and compiling module `{name}` ({n} of {all})"));
        })?;
        drop(progress);
        for (name, change) in &report.modules {
            let verb = match change {
                ModuleChange::Added => "added",
                ModuleChange::Replaced => "replaced",
                ModuleChange::Unchanged => "unchanged",
            };
            output::line(format!("{verb:<9} {name}"))?;
        }
        for name in &report.removed {
            output::line(format!("{:<9} {name}", "removed"))?;
        }
        for name in &report.generators {
            output::line(format!("{:<9} generator {name}", "defined"))?;
        }
        for name in &report.removed_generators {
            output::line(format!("{:<9} generator {name}", "removed"))?;
        }
        for group in &report.templates {
            output::line(format!("{:<9} template {group}", "set"))?;
        }
        output::line(format!(
            "tenant `{}` matches `{}`",
            tenant.name(),
            self.manifest.display()
        ))?;
        super::module::warn_unmatched_handlers(&tenant)?;
        Ok(Outcome::Done)
    }
}
