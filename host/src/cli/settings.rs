//! `spark settings show|set`: a tenant's settings from the command line, for an
//! operator without a manifest at hand (`apply` sets them all at once).
//!
//! `set` changes only what it is told, as a JSON merge patch on the settings
//! (`Tenant::patch_settings` on a data dir, `PATCH .../settings` through a server), so
//! that both check the result alike and a setting not named is kept as it is.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use spark_host::Transport;

use super::outbox::channel_transport;
use super::output::{self, text};
use super::remote::Request;
use super::{Context, Outcome};
use crate::views;

/// A tenant's settings: its mail sender, reply address and transport, where each
/// output channel goes, its retry policy, limits and schedule.
#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    Show(Show),
    Set(Set),
}

/// Show the tenant's settings.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  spark --tenant acme settings show")]
pub struct Show {
    /// Print them as one JSON object, as the API's `GET .../settings` answers: mail
    /// (from, reply-to, transport), outputs, retry, limits, schedule.
    #[arg(long)]
    json: bool,
}

/// Change the tenant's mail sender, reply address and transport, and where output
/// channels go; every other setting is kept. Checked as a manifest's are (addresses,
/// transports) before anything is kept. Mails already queued that name no sender go
/// out with the new one: a sender is filled in when a mail is sent.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  spark settings set --mail-from 'Shop <shop@example.com>' \
                        --reply-to help@example.com \\\n    --mail-transport smtp://localhost:25 \
                        --output audit=file:/var/lib/spark/audit"
)]
pub struct Set {
    /// The sender of mails that name none, e.g. `Shop <shop@example.com>`.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_mail_from")]
    mail_from: Option<String>,
    /// Remove the sender: mails that name none wait until one is set.
    #[arg(long)]
    no_mail_from: bool,
    /// The reply address of mails that name none.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_reply_to")]
    reply_to: Option<String>,
    /// Remove the reply address.
    #[arg(long)]
    no_reply_to: bool,
    /// How `outbox send` (and a server) sends mails: `file:DIR`, `smtp://HOST:PORT`,
    /// `smtps://HOST:PORT` or `stdout`. A relative DIR is taken from here.
    #[arg(long, value_name = "TRANSPORT", conflicts_with = "no_mail_transport")]
    mail_transport: Option<String>,
    /// Remove the mail transport: mails wait for one.
    #[arg(long)]
    no_mail_transport: bool,
    /// Where the outputs of CHANNEL go: `http(s)://…`, `file:DIR` or `stdout`. Repeat
    /// for several channels.
    #[arg(long = "output", value_name = "CHANNEL=TRANSPORT", value_parser = channel_transport)]
    outputs: Vec<(String, Transport)>,
    /// Remove the transport of CHANNEL: its outputs wait for one. Repeat for several.
    #[arg(long = "no-output", value_name = "CHANNEL")]
    no_outputs: Vec<String>,
    /// Print the settings as one JSON object once changed (as `settings show --json`).
    #[arg(long)]
    json: bool,
}

impl SettingsCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        match self {
            SettingsCommand::Show(show) => show.run(context),
            SettingsCommand::Set(set) => set.run(context),
        }
    }
}

impl Show {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let settings = match context.remote() {
            Some(remote) => remote.get("/settings")?,
            None => views::settings(&context.tenant()?.settings()?),
        };
        print_settings(&settings, self.json)?;
        Ok(Outcome::Done)
    }
}

impl Set {
    fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let remote = context.remote();
        let patch = self.patch(remote.is_some())?;
        let settings = match remote {
            Some(remote) => {
                if !self.no_outputs.is_empty() {
                    self.check_outputs(&remote.get("/settings")?)?;
                }
                let body = patch.to_string();
                let request = Request::new("PATCH", remote.path("/settings")).body(body.as_bytes());
                remote.call(&request)?
            }
            None => {
                let mut tenant = context.tenant_to_set_up()?;
                self.check_outputs(&views::settings(&tenant.settings()?))?;
                views::settings(&tenant.patch_settings(&patch)?)
            }
        };
        print_settings(&settings, self.json)?;
        Ok(Outcome::Done)
    }

    /// The change as a JSON merge patch: a value sets, `null` removes. Through a
    /// server, a `file:` directory is the server's, so it must be absolute.
    fn patch(&self, remote: bool) -> anyhow::Result<Value> {
        let mut mail = Map::new();
        let mut set = |name: &str, value: Option<String>, remove: bool| {
            if let Some(value) = value {
                mail.insert(name.to_owned(), json!(value));
            } else if remove {
                mail.insert(name.to_owned(), Value::Null);
            }
        };
        set("from", self.mail_from.clone(), self.no_mail_from);
        set("reply-to", self.reply_to.clone(), self.no_reply_to);
        let transport = match &self.mail_transport {
            Some(transport) => Some(stored_transport(transport.parse()?, remote)?),
            None => None,
        };
        set("transport", transport, self.no_mail_transport);
        let mut outputs = Map::new();
        for channel in &self.no_outputs {
            outputs.insert(channel.clone(), Value::Null);
        }
        for (channel, transport) in &self.outputs {
            let transport = stored_transport(transport.clone(), remote)?;
            outputs.insert(channel.clone(), json!(transport));
        }
        let mut patch = Map::new();
        if !mail.is_empty() {
            patch.insert("mail".to_owned(), Value::Object(mail));
        }
        if !outputs.is_empty() {
            patch.insert("outputs".to_owned(), Value::Object(outputs));
        }
        anyhow::ensure!(
            !patch.is_empty(),
            "nothing to set: pass --mail-from, --reply-to, --mail-transport or --output \
             (or a --no-... to remove one); `spark settings set --help` lists them"
        );
        Ok(Value::Object(patch))
    }

    /// Refuses to remove a channel that has no transport: a mistyped name would
    /// otherwise change nothing, silently.
    fn check_outputs(&self, settings: &Value) -> anyhow::Result<()> {
        for channel in &self.no_outputs {
            anyhow::ensure!(
                settings["outputs"].get(channel).is_some(),
                "no output channel `{channel}` has a transport; `spark settings show` lists \
                 those that do"
            );
        }
        Ok(())
    }
}

/// A transport as the settings keep it: a relative `file:` directory made absolute from
/// here, as a manifest's is from its own directory, so that sending finds it from
/// anywhere. Through a server it would be the server's directory: refused.
fn stored_transport(transport: Transport, remote: bool) -> anyhow::Result<String> {
    let transport = match transport {
        Transport::File(dir) if dir.is_relative() => {
            anyhow::ensure!(
                !remote,
                "through --server, `file:{}` would be a directory of the server's: give an \
                 absolute path",
                dir.display()
            );
            let absolute = std::path::absolute(&dir)
                .with_context(|| format!("cannot resolve `{}`", dir.display()))?;
            Transport::File(absolute)
        }
        transport => transport,
    };
    Ok(transport.to_string())
}

/// Prints settings (their JSON, from the data dir or the API): one object with
/// `--json`, else a line per setting.
fn print_settings(settings: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        output::json_line(settings)?;
        return Ok(());
    }
    let or_none = |value: String| {
        if value.is_empty() {
            "(none)".to_owned()
        } else {
            value
        }
    };
    let mail = &settings["mail"];
    output::line(format!("mail from:       {}", or_none(text(mail, "from"))))?;
    output::line(format!(
        "mail reply-to:   {}",
        or_none(text(mail, "reply-to"))
    ))?;
    output::line(format!(
        "mail transport:  {}",
        or_none(text(mail, "transport"))
    ))?;
    match settings["outputs"]
        .as_object()
        .filter(|outputs| !outputs.is_empty())
    {
        None => output::line("outputs:         (none)")?,
        Some(outputs) => {
            for (channel, transport) in outputs {
                let name = format!("output {channel}:");
                output::line(format!("{name:<17}{}", text_of(transport)))?;
            }
        }
    }
    let retry = &settings["retry"];
    output::line(format!(
        "retry:           {} attempts, {} ms before the first retry",
        text(retry, "attempts"),
        text(retry, "backoff-ms")
    ))?;
    output::line(format!(
        "limits:          {}",
        pairs(&settings["limits"], "(defaults)")
    ))?;
    output::line(format!(
        "schedule:        {}",
        pairs(&settings["schedule"], "(none)")
    ))?;
    Ok(())
}

/// A JSON value as text: a string as it is.
fn text_of(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// An object's fields as `name = value, ...`, or `empty` when it has none.
fn pairs(object: &Value, empty: &str) -> String {
    match object.as_object().filter(|object| !object.is_empty()) {
        None => empty.to_owned(),
        Some(object) => object
            .iter()
            .map(|(name, value)| format!("{name} = {}", text_of(value)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
