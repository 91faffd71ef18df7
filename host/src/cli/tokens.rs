//! `spark tokens add`, `list` and `revoke`: the access tokens `spark serve` checks.

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{self, Table};
use super::{Context, Outcome};
use crate::serve::tokens::{Scope, TokenRecord, Tokens};

/// Access tokens for `spark serve`, kept in DATA_DIR/tokens/ (only their SHA-256; the
/// token is shown once, when made).
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    Add(Add),
    List(List),
    Revoke(Revoke),
}

/// Make a token and print it, alone on the last line. It is shown this once: only its
/// hash is kept.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark tokens add --tenant acme --scope ingest --name shop\n  spark tokens add --tenant acme --scope read --scope admin --name ops\n  spark tokens add --operator --name deploy"
)]
#[command(group = clap::ArgGroup::new("holder").args(["tenant", "operator"]).required(true))]
pub struct Add {
    /// The one tenant the token acts on, given here after `add` (never taken from
    /// SPARK_TENANT). It need not exist yet: the token works on it once it does.
    #[arg(long, requires = "scopes")]
    tenant: Option<String>,
    /// What the token may do on its tenant; repeat for several. `admin` allows what
    /// `read` and `ingest` allow too.
    #[arg(long = "scope", value_name = "SCOPE", conflicts_with = "operator")]
    scopes: Vec<Scope>,
    /// An operator token instead: every tenant, every scope, and managing tenants.
    #[arg(long)]
    operator: bool,
    /// A label for `tokens list` and `tokens revoke` (several tokens may share one).
    #[arg(long)]
    name: Option<String>,
}

/// List the tokens, oldest first (never the tokens themselves nor their hashes).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  spark tokens list\n  spark tokens list --json")]
pub struct List {
    /// One JSON object per line: id, name, tenant (null for an operator), scopes,
    /// created_at.
    #[arg(long)]
    json: bool,
}

/// Revoke a token: it stops working on `spark serve`'s next request.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark tokens revoke shop\n  spark tokens revoke 3f2a9c1d0b7e4a55"
)]
pub struct Revoke {
    /// The token's id, or its name if no other token has that name.
    #[arg(value_name = "ID_OR_NAME")]
    token: String,
    /// Print the revoked token as one JSON object: id, name, tenant, scopes, created_at.
    #[arg(long)]
    json: bool,
}

impl TokensCommand {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let tokens = Tokens::new(context.data_dir());
        match self {
            TokensCommand::Add(add) => {
                // `tenant` shares its id with the global `--tenant`, so that it replaces
                // it here; clap checks the combination before the global's value (from
                // SPARK_TENANT or its default) is copied in, which fills `tenant` even for
                // `--operator`: `operator` decides.
                let tenant = if add.operator {
                    None
                } else {
                    add.tenant.as_deref()
                };
                let (record, token) = tokens.add(tenant, &add.scopes, add.name.as_deref())?;
                let holder = match &record.tenant {
                    Some(tenant) => format!("tenant `{tenant}` ({})", scopes(&record)),
                    None => "the operator (every tenant, every scope)".to_owned(),
                };
                output::line(format!(
                    "made token {} for {holder}; it is shown this once, keep it secret:",
                    record.id
                ))?;
                output::line(token)?;
            }
            TokensCommand::List(List { json }) => {
                let records = tokens.list()?;
                if json {
                    for record in &records {
                        output::json_line(&record_json(record))?;
                    }
                } else {
                    let mut table = Table::new(&["ID", "NAME", "TENANT", "SCOPES", "CREATED AT"]);
                    for record in &records {
                        table.row(vec![
                            record.id.clone(),
                            output::cell(record.name.as_deref().unwrap_or("-"), 40),
                            record.tenant.as_deref().unwrap_or("*operator*").to_owned(),
                            scopes(record),
                            record.created_at.clone(),
                        ]);
                    }
                    table.print("no tokens")?;
                }
            }
            TokensCommand::Revoke(Revoke { token, json }) => {
                let record = tokens.revoke(&token)?;
                if json {
                    output::json_line(&record_json(&record))?;
                } else {
                    let name = record.name.as_ref().map(|name| format!(" (`{name}`)"));
                    output::line(format!(
                        "revoked token {}{}",
                        record.id,
                        name.unwrap_or_default()
                    ))?;
                }
            }
        }
        Ok(Outcome::Done)
    }
}

/// A record as `--json` shows it: without its hash.
fn record_json(record: &TokenRecord) -> serde_json::Value {
    json!({
        "id": record.id,
        "name": record.name,
        "tenant": record.tenant,
        "scopes": record.scopes,
        "created_at": record.created_at,
    })
}

fn scopes(record: &TokenRecord) -> String {
    let names: Vec<&str> = record.scopes.iter().map(|scope| scope.as_str()).collect();
    names.join(",")
}
