//! `spark module add|list|remove`: a tenant's modules.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use spark_host::{
    Clock, LimitOverrides, Limits, ModuleChange, ModuleCode, ModuleSpec, RegisteredCode,
};

use super::output::{self, Table};
use super::{Context, Outcome};

/// Register, list and remove a tenant's modules.
#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    Add(Add),
    List(List),
    Remove(Remove),
}

/// Register a module as a source for models and/or a handler for event groups.
#[derive(Debug, Args)]
pub struct Add {
    /// The component (built with `cargo build --target wasm32-wasip2`), or
    /// `builtin:mails` for the built-in mail handler.
    file: PathBuf,
    /// The name to register it under; dead letters are kept by this name.
    #[arg(long)]
    name: String,
    /// A model whose records this module turns into events (repeatable).
    #[arg(long = "source", value_name = "MODEL")]
    sources: Vec<String>,
    /// A regex searched in event groups (unanchored, like `re.search`): the module
    /// handles events whose group matches one of them (repeatable).
    #[arg(long = "handler", value_name = "REGEX")]
    handlers: Vec<String>,
    /// How coarsely its calls read the run's time: exact, minute, hour or day (the
    /// run's time rounded down to the start of its UTC minute, hour or day). A source
    /// with a coarse clock is called once per record and period: a record ingested
    /// again unchanged in the same period skips it.
    #[arg(long, default_value = "exact", value_name = "CLOCK")]
    clock: Clock,
    /// Replace a module registered under the same name (it keeps its place in the
    /// handler order).
    #[arg(long)]
    replace: bool,
}

/// List the tenant's modules in registration order (the order handlers run in).
#[derive(Debug, Args)]
pub struct List {
    /// One JSON object per line, with every limit.
    #[arg(long)]
    json: bool,
}

/// Unregister a module. Its dead letters stay until a module of that name retries them.
#[derive(Debug, Args)]
pub struct Remove {
    name: String,
}

impl ModuleCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            ModuleCommand::Add(add) => add.run(context),
            ModuleCommand::List(list) => list.run(context),
            ModuleCommand::Remove(remove) => remove.run(context),
        }
    }
}

impl Add {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let code = ModuleCode::load(&self.file)?;
        let mut tenant = context.tenant_to_set_up()?;
        let spec = ModuleSpec {
            name: self.name.clone(),
            code,
            sources: self.sources,
            handlers: self.handlers,
            limits: LimitOverrides::default(),
            clock: self.clock,
        };
        let change = tenant.add_module(spec, self.replace)?;
        let verb = match change {
            ModuleChange::Added => "added",
            ModuleChange::Replaced => "replaced",
            ModuleChange::Unchanged => "unchanged:",
        };
        output::line(format!(
            "{verb} module `{}` of tenant `{}`",
            self.name,
            tenant.name()
        ))?;
        Ok(Outcome::Done)
    }
}

impl List {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let tenant = context.tenant()?;
        let modules = tenant.modules()?;
        if self.json {
            for module in &modules {
                output::json_line(&crate::views::module(module))?;
            }
            return Ok(Outcome::Done);
        }
        let mut table = Table::new(&[
            "NAME",
            "EXPORTS",
            "SOURCE FOR",
            "HANDLES",
            "CLOCK",
            "LIMITS (NOT DEFAULT)",
            "SHA256",
        ]);
        let defaults = Limits::default().entries();
        for module in &modules {
            // The tenant's and the module's own changes; --json shows every limit.
            let own: Vec<String> = module
                .limits
                .entries()
                .into_iter()
                .zip(&defaults)
                .filter(|((_, value), (_, default))| value != default)
                .map(|((limit, value), _)| format!("{limit}={value}"))
                .collect();
            table.row(vec![
                module.registration.name.clone(),
                module.registration.exports.join("+"),
                module.registration.sources.join(", "),
                module.registration.handlers.join(", "),
                module.registration.clock.to_string(),
                if own.is_empty() {
                    "-".to_owned()
                } else {
                    own.join(" ")
                },
                match &module.registration.code {
                    RegisteredCode::Component { sha256 } => sha256[..12].to_owned(),
                    RegisteredCode::Native { name } => name.clone(),
                },
            ]);
        }
        table.print(&format!("tenant `{}` has no modules", tenant.name()))?;
        Ok(Outcome::Done)
    }
}

impl Remove {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut tenant = context.tenant()?;
        tenant.remove_module(&self.name)?;
        output::line(format!(
            "removed module `{}` of tenant `{}`",
            self.name,
            tenant.name()
        ))?;
        Ok(Outcome::Done)
    }
}
