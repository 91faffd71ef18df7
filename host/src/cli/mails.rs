//! `spark mails ...`: mail templates per event group.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{self, Listing, text};
use super::remote::{ApiError, Remote, Request, segment};
use super::{Context, Outcome};

/// Mail templates, one per exact event group, in Jinja syntax: the first non-empty line
/// rendered is the subject, the rest the body.
#[derive(Debug, Subcommand)]
pub enum MailsCommand {
    Set(Set),
    List(List),
    #[command(after_help = "Examples:\n  spark mails show challenge_created")]
    Show(Group),
    #[command(after_help = "Examples:\n  spark mails remove challenge_created")]
    Remove(Group),
    Preview(Preview),
}

/// Save the template of a group (its syntax is checked first).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark mails set challenge_created templates/challenge_created.txt"
)]
pub struct Set {
    /// The exact event group, e.g. `challenge_ended`.
    group: String,
    /// The template file.
    file: PathBuf,
}

/// List the templates.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  spark mails list\n  spark mails list --json")]
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
#[command(
    after_help = "Examples:\n  spark mails preview challenge_created\n  spark mails preview challenge_created --context examples/challenges/sample-context.json"
)]
pub struct Preview {
    group: String,
    /// A JSON object to render with (default: an empty one).
    #[arg(long, value_name = "FILE.json")]
    context: Option<PathBuf>,
}

impl MailsCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        if let Some(remote) = context.remote() {
            return self.run_remote(remote);
        }
        let mut tenant = match self {
            MailsCommand::Set(_) => context.tenant_to_set_up()?,
            _ => context.tenant()?,
        };
        match self {
            MailsCommand::Set(Set { group, file }) => {
                tenant.set_template(&group, &read_template(&file)?)?;
                output::line(format!("saved the template of `{group}`"))?;
            }
            MailsCommand::List(List { json }) => {
                let templates = tenant.templates()?;
                let templates: Vec<Value> = templates
                    .iter()
                    .map(|(group, source)| json!({ "group": group, "template": source }))
                    .collect();
                print_list(&templates, json)?;
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
                let values = read_context(file.as_deref())?;
                let rendered = tenant.preview(&group, &values)?;
                print_preview(&rendered.subject, &rendered.body)?;
            }
        }
        Ok(Outcome::Done)
    }

    /// Through a server's `templates` routes. `show` reads the list (there is no route
    /// for one template) and says what `show` on a data dir says of a missing one.
    fn run_remote(self, remote: &Remote) -> anyhow::Result<Outcome> {
        let path = |group: &str| remote.path(&format!("/templates/{}", segment(group)));
        match self {
            MailsCommand::Set(Set { group, file }) => {
                let source = read_template(&file)?;
                remote.call(&Request::new("PUT", path(&group)).body(source.as_bytes()))?;
                output::line(format!("saved the template of `{group}`"))?;
            }
            MailsCommand::List(List { json }) => {
                print_list(&remote.all("/templates")?, json)?;
            }
            MailsCommand::Show(Group { group }) => {
                let template = match remote.call(&Request::new("GET", path(&group))) {
                    // Said as on a data dir.
                    Err(error)
                        if error
                            .downcast_ref::<ApiError>()
                            .is_some_and(|error| error.kind == "unknown_template") =>
                    {
                        return Err(spark_host::Error::UnknownTemplate(group).into());
                    }
                    answer => answer?,
                };
                output::line(text(&template, "template").trim_end())?;
            }
            MailsCommand::Remove(Group { group }) => {
                remote.call(&Request::new("DELETE", path(&group)))?;
                output::line(format!("removed the template of `{group}`"))?;
            }
            MailsCommand::Preview(Preview {
                group,
                context: file,
            }) => {
                let values = read_context(file.as_deref())?.to_string();
                let request = Request::new("POST", format!("{}/preview", path(&group)))
                    .header("Content-Type", "application/json")
                    .body(values.as_bytes());
                let rendered = remote.call(&request)?;
                print_preview(&text(&rendered, "subject"), &text(&rendered, "body"))?;
            }
        }
        Ok(Outcome::Done)
    }
}

fn read_template(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read `{}`", file.display()))
}

/// The JSON object of `--context`, or an empty one.
fn read_context(file: Option<&Path>) -> anyhow::Result<Value> {
    let Some(path) = file else {
        return Ok(json!({}));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", path.display()))?;
    anyhow::ensure!(
        value.is_object(),
        "`{}` is not a JSON object",
        path.display()
    );
    Ok(value)
}

/// The templates, each `{"group", "template"}`.
fn print_list(templates: &[Value], json: bool) -> anyhow::Result<()> {
    let mut listing = Listing::new(json, &["GROUP", "FIRST LINE"]);
    for template in templates {
        listing.item(template, |template| {
            let source = text(template, "template");
            let first = source
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("");
            vec![text(template, "group"), output::cell(first, 70)]
        })?;
    }
    listing.finish("no templates")?;
    Ok(())
}

fn print_preview(subject: &str, body: &str) -> anyhow::Result<()> {
    output::line(format!("Subject: {subject}\n\n{body}"))?;
    Ok(())
}
