//! `spark generators ...`: declarative events from stored records.

use clap::{Args, Subcommand};
use spark_host::{Generator, ModelDescription, wall_clock_ms};

use super::output::{self, Table};
use super::{Context, Outcome};

/// Generators: "make an event of group G for every record of model M whose context
/// satisfies these conditions", without code. `spark generate` runs them.
#[derive(Debug, Subcommand)]
pub enum GeneratorsCommand {
    Add(Add),
    List(List),
    Show(Name),
    Remove(Name),
    Activate(Name),
    Deactivate(Name),
    Describe(Describe),
}

/// Define a generator; its model becomes known, so its records can be ingested.
#[derive(Debug, Args)]
pub struct Add {
    /// The generator's name.
    name: String,
    /// The group of the events it makes (their keys are `{group}_{record id}`).
    #[arg(long)]
    group: String,
    /// The model whose stored records are its candidates.
    #[arg(long)]
    model: String,
    /// A condition, `variable operator value` (e.g. 'donations >= 3', "owner.name =
    /// 'Ada'"); repeatable, all must hold. Operators: > < >= <= = !=.
    #[arg(long = "when", value_name = "CONDITION")]
    conditions: Vec<String>,
    /// Define it switched off.
    #[arg(long)]
    inactive: bool,
    /// Replace a generator of the same name.
    #[arg(long)]
    replace: bool,
}

/// List the generators.
#[derive(Debug, Args)]
pub struct List {
    /// One JSON object per line: name, group, model, conditions, active.
    #[arg(long)]
    json: bool,
}

/// A generator, by name.
#[derive(Debug, Args)]
pub struct Name {
    name: String,
}

/// What conditions on a model's records can test: the variables its context module
/// describes, or the fields of its records.
#[derive(Debug, Args)]
pub struct Describe {
    #[arg(long)]
    model: String,
}

impl GeneratorsCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut tenant = match self {
            GeneratorsCommand::Add(_) => context.tenant_to_set_up()?,
            _ => context.tenant()?,
        };
        match self {
            GeneratorsCommand::Add(add) => {
                let generator = Generator::new(
                    &add.name,
                    &add.group,
                    &add.model,
                    &add.conditions,
                    !add.inactive,
                )?;
                tenant.add_generator(generator, add.replace)?;
                output::line(format!("defined generator `{}`", add.name))?;
            }
            GeneratorsCommand::List(list) => {
                let generators = tenant.generators()?;
                if list.json {
                    for generator in &generators {
                        output::json_line(&crate::views::generator(generator))?;
                    }
                } else {
                    let mut table = Table::new(&["NAME", "ACTIVE", "MODEL", "GROUP", "WHEN"]);
                    for generator in &generators {
                        table.row(vec![
                            generator.name.clone(),
                            if generator.active { "yes" } else { "no" }.to_owned(),
                            generator.model.clone(),
                            generator.group.clone(),
                            conditions(generator),
                        ]);
                    }
                    table.print("no generators")?;
                }
            }
            GeneratorsCommand::Show(Name { name }) => {
                let generator = tenant.generator(&name)?;
                output::line(format!("name:   {}", generator.name))?;
                output::line(format!("active: {}", generator.active))?;
                output::line(format!("model:  {}", generator.model))?;
                output::line(format!("group:  {}", generator.group))?;
                output::line(format!("when:   {}", conditions(&generator)))?;
            }
            GeneratorsCommand::Remove(Name { name }) => {
                tenant.remove_generator(&name)?;
                output::line(format!("removed generator `{name}`"))?;
            }
            GeneratorsCommand::Activate(Name { name }) => {
                tenant.set_generator_active(&name, true)?;
                output::line(format!("generator `{name}` is active"))?;
            }
            GeneratorsCommand::Deactivate(Name { name }) => {
                tenant.set_generator_active(&name, false)?;
                output::line(format!("generator `{name}` is inactive"))?;
            }
            GeneratorsCommand::Describe(Describe { model }) => {
                match tenant.describe_model(&model, wall_clock_ms())? {
                    ModelDescription::Module { module, variables } => {
                        output::line(format!(
                            "the context of `{model}` records comes from module `{module}`:"
                        ))?;
                        let mut table = Table::new(&["VARIABLE", "DESCRIPTION"]);
                        for (name, description) in variables {
                            table.row(vec![name, description]);
                        }
                        table.print("(it describes no variables)")?;
                    }
                    ModelDescription::Record { fields } => {
                        output::line(format!(
                            "no module computes a context for `{model}`: conditions test the \
                             record's own fields (dotted paths reach into objects)"
                        ))?;
                        let mut table = Table::new(&["FIELD", "TYPE (IN ONE RECORD)"]);
                        for (name, kind) in fields {
                            table.row(vec![name, kind]);
                        }
                        table.print("(no records are stored yet)")?;
                    }
                }
            }
        }
        Ok(Outcome::Done)
    }
}

fn conditions(generator: &Generator) -> String {
    if generator.conditions.is_empty() {
        return "(every record)".to_owned();
    }
    generator
        .conditions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}
