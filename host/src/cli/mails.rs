//! `spark mails ...`: mail templates per event group.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{self, Table};
use super::{Context, Outcome};

/// Mail templates, one per exact event group, in Jinja syntax: the first non-empty line
/// rendered is the subject, the rest the body.
#[derive(Debug, Subcommand)]
pub enum MailsCommand {
    Set(Set),
    List(List),
    Show(Group),
    Remove(Group),
    Preview(Preview),
}

/// Save the template of a group (its syntax is checked first).
#[derive(Debug, Args)]
pub struct Set {
    /// The exact event group, e.g. `challenge_ended`.
    group: String,
    /// The template file.
    file: PathBuf,
}

/// List the templates.
#[derive(Debug, Args)]
pub struct List {
    /// One JSON object per line: group, template.
    #[arg(long)]
    json: bool,
}

/// A group.
#[derive(Debug, Args)]
pub struct Group {
    group: String,
}

/// Print the subject and body a template renders for a context, or why it does not.
#[derive(Debug, Args)]
pub struct Preview {
    group: String,
    /// A JSON object to render with (default: an empty one).
    #[arg(long, value_name = "FILE.json")]
    context: Option<PathBuf>,
}

impl MailsCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let mut tenant = match self {
            MailsCommand::Set(_) => context.tenant_to_set_up()?,
            _ => context.tenant()?,
        };
        match self {
            MailsCommand::Set(Set { group, file }) => {
                let source = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read `{}`", file.display()))?;
                tenant.set_template(&group, &source)?;
                output::line(format!("saved the template of `{group}`"))?;
            }
            MailsCommand::List(List { json }) => {
                let templates = tenant.templates()?;
                if json {
                    for (group, source) in &templates {
                        output::json_line(&json!({ "group": group, "template": source }))?;
                    }
                } else {
                    let mut table = Table::new(&["GROUP", "FIRST LINE"]);
                    for (group, source) in &templates {
                        let first = source
                            .lines()
                            .find(|line| !line.trim().is_empty())
                            .unwrap_or("");
                        table.row(vec![group.clone(), output::cell(first, 70)]);
                    }
                    table.print("no templates")?;
                }
            }
            MailsCommand::Show(Group { group }) => {
                output::line(tenant.template(&group)?.trim_end())?;
            }
            MailsCommand::Remove(Group { group }) => {
                tenant.remove_template(&group)?;
                output::line(format!("removed the template of `{group}`"))?;
            }
            MailsCommand::Preview(Preview {
                group,
                context: file,
            }) => {
                let values = match &file {
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read `{}`", path.display()))?;
                        let value: serde_json::Value = serde_json::from_str(&text)
                            .with_context(|| format!("`{}` is not JSON", path.display()))?;
                        anyhow::ensure!(
                            value.is_object(),
                            "`{}` is not a JSON object",
                            path.display()
                        );
                        value
                    }
                    None => json!({}),
                };
                let rendered = tenant.preview(&group, &values)?;
                output::line(format!(
                    "Subject: {}\n\n{}",
                    rendered.subject, rendered.body
                ))?;
            }
        }
        Ok(Outcome::Done)
    }
}
