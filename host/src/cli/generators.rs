//! `spark generators ...`: declarative events from stored records.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use spark_host::{Generator, wall_clock_ms};

use super::output::{self, Listing, Table, text, texts};
use super::remote::{Remote, Request, segment};
use super::{Context, Outcome};
use crate::views;

/// Generators: "make an event of group G for every record of model M whose context
/// satisfies these conditions", without code. `spark generate` runs them.
#[derive(Debug, Subcommand)]
pub enum GeneratorsCommand {
    Add(Add),
    List(List),
    #[command(after_help = "Examples:\n  spark generators show late")]
    Show(Name),
    #[command(after_help = "Examples:\n  spark generators remove late")]
    Remove(Name),
    #[command(after_help = "Examples:\n  spark generators activate late")]
    Activate(Name),
    #[command(after_help = "Examples:\n  spark generators deactivate late")]
    Deactivate(Name),
    Describe(Describe),
}

/// Define a generator; its model becomes known, so its records can be ingested.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark generators add late --group challenge_late --model challenge --when 'days_left <= 2'\n  spark generators add all --group everyone --model user --inactive"
)]
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
#[command(after_help = "Examples:\n  spark generators list\n  spark generators list --json")]
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
#[command(after_help = "Examples:\n  spark generators describe --model challenge")]
pub struct Describe {
    #[arg(long)]
    model: String,
}

impl GeneratorsCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        if let Some(remote) = context.remote() {
            return self.run_remote(remote);
        }
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
                let mut listing = Listing::new(list.json, &HEADER);
                for generator in &tenant.generators()? {
                    listing.item(&views::generator(generator), row)?;
                }
                listing.finish("no generators")?;
            }
            GeneratorsCommand::Show(Name { name }) => {
                show(&views::generator(&tenant.generator(&name)?))?;
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
                let description = tenant.describe_model(&model, wall_clock_ms())?;
                describe(&model, &views::model_description(&model, &description))?;
            }
        }
        Ok(Outcome::Done)
    }

    /// Through a server's `generators` and `models` routes; the server checks the
    /// conditions.
    fn run_remote(self, remote: &Remote) -> anyhow::Result<Outcome> {
        let path = |name: &str| remote.path(&format!("/generators/{}", segment(name)));
        match self {
            GeneratorsCommand::Add(add) => {
                let body = json!({
                    "group": add.group,
                    "model": add.model,
                    "conditions": add.conditions,
                    "active": !add.inactive,
                })
                .to_string();
                let request = Request::new("PUT", path(&add.name))
                    .query_opt("replace", add.replace.then_some("true"))
                    .header("Content-Type", "application/json")
                    .body(body.as_bytes());
                remote.call(&request)?;
                output::line(format!("defined generator `{}`", add.name))?;
            }
            GeneratorsCommand::List(list) => {
                let mut listing = Listing::new(list.json, &HEADER);
                remote.each(
                    Request::new("GET", remote.path("/generators")),
                    |generator| Ok(listing.item(generator, row)?),
                )?;
                listing.finish("no generators")?;
            }
            GeneratorsCommand::Show(Name { name }) => {
                show(&remote.call(&Request::new("GET", path(&name)))?)?;
            }
            GeneratorsCommand::Remove(Name { name }) => {
                remote.call(&Request::new("DELETE", path(&name)))?;
                output::line(format!("removed generator `{name}`"))?;
            }
            GeneratorsCommand::Activate(Name { name }) => {
                remote.call(&Request::new("POST", format!("{}/activate", path(&name))))?;
                output::line(format!("generator `{name}` is active"))?;
            }
            GeneratorsCommand::Deactivate(Name { name }) => {
                remote.call(&Request::new("POST", format!("{}/deactivate", path(&name))))?;
                output::line(format!("generator `{name}` is inactive"))?;
            }
            GeneratorsCommand::Describe(Describe { model }) => {
                let description = remote.get(&format!("/models/{}", segment(&model)))?;
                describe(&model, &description)?;
            }
        }
        Ok(Outcome::Done)
    }
}

const HEADER: [&str; 5] = ["NAME", "ACTIVE", "MODEL", "GROUP", "WHEN"];

/// A generator's row (as `views.rs` shows it).
fn row(generator: &Value) -> Vec<String> {
    vec![
        text(generator, "name"),
        if generator["active"] == true {
            "yes"
        } else {
            "no"
        }
        .to_owned(),
        text(generator, "model"),
        text(generator, "group"),
        conditions(generator),
    ]
}

fn show(generator: &Value) -> anyhow::Result<()> {
    output::line(format!("name:   {}", text(generator, "name")))?;
    output::line(format!("active: {}", generator["active"] == true))?;
    output::line(format!("model:  {}", text(generator, "model")))?;
    output::line(format!("group:  {}", text(generator, "group")))?;
    output::line(format!("when:   {}", conditions(generator)))?;
    Ok(())
}

/// What conditions on `model`'s records can test, from its description (as
/// `views::model_description` shows it).
fn describe(model: &str, description: &Value) -> anyhow::Result<()> {
    let pairs = |list: &str, second: &str| -> Vec<Vec<String>> {
        description[list]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|item| vec![text(item, "name"), text(item, second)])
                    .collect()
            })
            .unwrap_or_default()
    };
    if description["context_from"] == "module" {
        output::line(format!(
            "the context of `{model}` records comes from module `{}`:",
            text(description, "module")
        ))?;
        let mut table = Table::new(&["VARIABLE", "DESCRIPTION"]);
        for row in pairs("variables", "description") {
            table.row(row);
        }
        table.print("(it describes no variables)")?;
    } else {
        output::line(format!(
            "no module computes a context for `{model}`: conditions test the record's own \
             fields (dotted paths reach into objects)"
        ))?;
        let mut table = Table::new(&["FIELD", "TYPE (IN ONE RECORD)"]);
        for row in pairs("fields", "type") {
            table.row(row);
        }
        table.print("(no records are stored yet)")?;
    }
    Ok(())
}

/// The conditions, joined with `and`, or `(every record)`.
fn conditions(generator: &Value) -> String {
    let joined = texts(generator, "conditions", " and ");
    if joined.is_empty() {
        "(every record)".to_owned()
    } else {
        joined
    }
}
