//! The JSON shape of each thing a face shows: what `--json` prints a line of and what
//! the HTTP API answers with, written once so that both use the same field names.

use serde_json::{Value, json};
use spark_host::{
    DeadLetter, Generator, LedgerEntry, MailSettings, ModelDescription, ModuleSummary, OutboxItem,
    OutboxPayload, PendingDelivery, format_time,
};

/// A JSON text parsed for embedding in JSON output (it was checked when stored).
pub fn raw_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// An event of the ledger: key, group, created_at, context.
pub fn event(entry: &LedgerEntry) -> Value {
    json!({
        "key": entry.key,
        "group": entry.group,
        "created_at": format_time(entry.created_at_ms),
        "context": raw_json(&entry.context),
    })
}

/// An outbox item; a mail as it will be sent, with the tenant's sender filled in
/// (`defaults`).
pub fn outbox_item(item: &OutboxItem, defaults: &MailSettings) -> Value {
    json!({
        "id": item.id,
        "event": item.event,
        "handler": item.handler,
        "kind": item.kind(),
        "data": match &item.payload {
            OutboxPayload::Mail(mail) => json!(mail.clone().with_defaults(defaults)),
            OutboxPayload::Output(output) => json!(output),
        },
        "created_at": format_time(item.created_at_ms),
        "status": item.status,
        "attempts": item.attempts,
        "error": item.error,
    })
}

/// A dead letter: a delivery that failed every attempt.
pub fn dead_letter(letter: &DeadLetter) -> Value {
    json!({
        "event": letter.event,
        "handler": letter.handler,
        "attempts": letter.attempts,
        "error": letter.error.to_string(),
        "error_kind": letter.error.kind(),
        "dead_at": format_time(letter.dead_at_ms),
    })
}

/// A delivery waiting for its next attempt.
pub fn pending_delivery(delivery: &PendingDelivery) -> Value {
    json!({
        "event": delivery.event,
        "handler": delivery.handler,
        "attempts": delivery.attempts,
        "error": delivery.error.to_string(),
        "error_kind": delivery.error.kind(),
        "next_at": format_time(delivery.next_at_ms),
    })
}

/// A registered module, with its effective limits and since when it runs.
pub fn module(module: &ModuleSummary) -> Value {
    let limits: serde_json::Map<String, Value> = module
        .limits
        .entries()
        .into_iter()
        .map(|(limit, value)| (limit.name().to_owned(), json!(value)))
        .collect();
    json!({
        "name": module.registration.name,
        "exports": module.registration.exports,
        "sources": module.registration.sources,
        "handlers": module.registration.handlers,
        "hash": module.registration.code,
        "clock": module.registration.clock,
        "limits": limits,
        "since": module.registration.since_ms.map(format_time),
    })
}

/// A generator.
pub fn generator(generator: &Generator) -> Value {
    let conditions: Vec<String> = generator
        .conditions
        .iter()
        .map(ToString::to_string)
        .collect();
    json!({
        "name": generator.name,
        "group": generator.group,
        "model": generator.model,
        "conditions": conditions,
        "active": generator.active,
    })
}

/// What a model's generator conditions can test: the variables of the context a
/// module computes (`context_from: "module"`), or the fields of a stored record
/// (`context_from: "record"`).
pub fn model_description(model: &str, description: &ModelDescription) -> Value {
    let pairs = |pairs: &[(String, String)], second: &str| -> Vec<Value> {
        pairs
            .iter()
            .map(|(name, other)| json!({ "name": name, second: other }))
            .collect()
    };
    match description {
        ModelDescription::Module { module, variables } => json!({
            "model": model,
            "context_from": "module",
            "module": module,
            "variables": pairs(variables, "description"),
        }),
        ModelDescription::Record { fields } => json!({
            "model": model,
            "context_from": "record",
            "fields": pairs(fields, "type"),
        }),
    }
}
