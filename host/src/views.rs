//! The JSON shape of each thing a face shows: what `--json` prints a line of and what
//! the HTTP API answers with, written once so that both use the same field names.

use serde_json::{Value, json};
use spark_host::{
    DeadLetter, Effect, Event, Forgotten, Generator, IngestDryRun, LedgerEntry, MailSettings,
    ModelDescription, ModuleSummary, OutboxItem, OutboxPayload, PendingDelivery, Step,
    TenantSettings, Trace, Trial, TrialOutput, format_time,
};

/// A JSON text parsed for embedding in JSON output (it was checked when stored).
pub fn raw_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// An event of the ledger: key, group, created_at, context, and its trace (null for
/// an event seen before traces were kept).
pub fn event(entry: &LedgerEntry) -> Value {
    json!({
        "key": entry.key,
        "group": entry.group,
        "created_at": format_time(entry.created_at_ms),
        "context": raw_json(&entry.context),
        "trace": entry.trace.as_ref().map(trace),
    })
}

/// What happened to an event: where it came from, the handlers its group matched,
/// and each delivery.
pub fn trace(trace: &Trace) -> Value {
    json!({
        "origin": trace.origin,
        "handlers": trace.handlers,
        "steps": trace.steps.iter().map(step).collect::<Vec<_>>(),
        "dropped": trace.dropped,
    })
}

fn step(step: &Step) -> Value {
    json!({
        "handler": step.handler,
        "attempt": step.attempt,
        "at": format_time(step.at_ms),
        "micros": step.micros,
        "fuel": step.fuel,
        "outcome": step.outcome,
        "error": step.error,
        "effects": step.effects,
        "emitted": step.emitted,
        "emitted_keys": step.emitted_keys,
        "log": step.log,
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

/// A tenant's settings, as `spark apply` and `settings set` keep them (`mail`, `retry`,
/// `limits`, and `outputs` and `schedule` when there are any).
pub fn settings(settings: &TenantSettings) -> Value {
    serde_json::to_value(settings).expect("settings are JSON objects with text keys")
}

/// What forgetting events did: keys `forgotten`, their deliveries waiting for a retry
/// (`pending`) and dead letters (`dead`) dropped, their unsent outbox items `cancelled`
/// (when asked) and `kept`.
pub fn forgotten(forgotten: &Forgotten, cancelled: u64) -> Value {
    let unsent = forgotten.unsent.len() as u64;
    json!({
        "forgotten": forgotten.forgotten,
        "pending": forgotten.pending,
        "dead": forgotten.dead,
        "cancelled": cancelled,
        "kept": unsent.saturating_sub(cancelled),
    })
}

/// What an ingest would do: the fields of its report, `dry_run: true`, the mails and
/// outputs it would put in the outbox, and under `sample` the first new `events` and
/// `outbox` items.
pub fn ingest_dry_run(dry_run: &IngestDryRun, defaults: &MailSettings) -> Value {
    let mut value = json!(dry_run.report);
    value["dry_run"] = json!(true);
    value["mails"] = json!(dry_run.mails);
    value["outputs"] = json!(dry_run.outputs);
    value["sample"] = json!({
        "events": dry_run.events.iter().map(event).collect::<Vec<_>>(),
        "outbox": dry_run
            .outbox
            .iter()
            .map(|item| outbox_item(item, defaults))
            .collect::<Vec<_>>(),
    });
    value
}

/// An event a module returned: group, key, context.
pub fn returned_event(event: &Event) -> Value {
    json!({ "group": event.group, "key": event.key, "context": raw_json(&event.context) })
}

/// An effect a handler returned, tagged by `kind`: `emit` (an event), `mail` (as the
/// handler gave it, before templates and the tenant's defaults) or `output`.
pub fn effect(effect: &Effect) -> Value {
    match effect {
        Effect::Emit(event) => json!({ "kind": "emit", "event": returned_event(event) }),
        Effect::Mail(mail) => {
            let mut mail = json!(mail);
            mail["context"] = mail["context"].as_str().map_or(Value::Null, raw_json);
            json!({ "kind": "mail", "mail": mail })
        }
        Effect::Output { channel, payload } => {
            json!({ "kind": "output", "channel": channel, "payload": raw_json(payload) })
        }
    }
}

/// One trial call of a module (`spark call`): `ok`, the `events` (a source's) or
/// `effects` (a handler's) it returned, its `error` (`kind` and `message`), `log`,
/// `fuel`, `fuel_limit` and `micros`.
pub fn trial(trial: &Trial) -> Value {
    let mut shown = json!({
        "ok": trial.outcome.is_ok(),
        "error": trial.outcome.as_ref().err().map(|error| json!({
            "kind": error.kind(),
            "message": error.to_string(),
        })),
        "log": trial.log,
        "fuel": trial.fuel,
        "fuel_limit": trial.limits.fuel,
        "micros": trial.micros,
    });
    match &trial.outcome {
        Ok(TrialOutput::Events(events)) => {
            shown["events"] = events.iter().map(returned_event).collect();
        }
        Ok(TrialOutput::Effects(effects)) => {
            shown["effects"] = effects.iter().map(effect).collect();
        }
        Err(_) => {}
    }
    shown
}
