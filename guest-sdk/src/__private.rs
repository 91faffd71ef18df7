//! Support for the code that `#[source]` and `#[handler]` generate. Not an API.

use std::fmt::Display;

use serde::de::DeserializeOwned;

use crate::{Context, Effect, Event, Invocation, Mail};

pub use wit_bindgen;

/// Parses a record into the source function's parameter type.
pub fn parse_record<T: DeserializeOwned>(data: &str) -> Result<T, String> {
    serde_json::from_str(data).map_err(|error| {
        format!(
            "record does not fit `{}`: {error}",
            std::any::type_name::<T>()
        )
    })
}

/// An event from the host. Its context stays text until the handler reads it: the
/// host delivers only JSON objects it has checked.
pub fn host_event(group: String, key: String, context: String) -> Event {
    Event {
        group,
        key,
        context: Context::from_text(context),
    }
}

pub fn invocation(tenant: String, now_ms: i64, attempt: u32, model: Option<String>) -> Invocation {
    Invocation::__from_host(tenant, now_ms, attempt, model)
}

/// What a source function may return.
#[diagnostic::on_unimplemented(
    message = "a source returns `Vec<Event>` or `Result<I, E>` (I: IntoIterator<Item = Event>, E: Display), not `{Self}`",
    label = "this return type"
)]
pub trait SourceOutput {
    fn into_events(self) -> Result<Vec<Event>, String>;
}

impl SourceOutput for Vec<Event> {
    fn into_events(self) -> Result<Vec<Event>, String> {
        Ok(self)
    }
}

impl<I: IntoIterator<Item = Event>, E: Display> SourceOutput for Result<I, E> {
    fn into_events(self) -> Result<Vec<Event>, String> {
        self.map(|events| events.into_iter().collect())
            .map_err(|error| error.to_string())
    }
}

/// What a handler function may return.
#[diagnostic::on_unimplemented(
    message = "a handler returns `Vec<Effect>` or `Result<I, E>` (I: IntoIterator<Item = Effect>, E: Display), not `{Self}`",
    label = "this return type"
)]
pub trait HandlerOutput {
    fn into_effects(self) -> Result<Vec<Effect>, String>;
}

impl HandlerOutput for Vec<Effect> {
    fn into_effects(self) -> Result<Vec<Effect>, String> {
        Ok(self)
    }
}

impl<I: IntoIterator<Item = Effect>, E: Display> HandlerOutput for Result<I, E> {
    fn into_effects(self) -> Result<Vec<Effect>, String> {
        self.map(|effects| effects.into_iter().collect())
            .map_err(|error| error.to_string())
    }
}

/// What a context function may return.
#[diagnostic::on_unimplemented(
    message = "a context function returns `Value` or `Result<Value, E>` (E: Display), not `{Self}`",
    label = "this return type"
)]
pub trait ContextOutput {
    fn into_context(self) -> Result<String, String>;
}

impl ContextOutput for serde_json::Value {
    fn into_context(self) -> Result<String, String> {
        Ok(crate::json_text(&self))
    }
}

impl<E: Display> ContextOutput for Result<serde_json::Value, E> {
    fn into_context(self) -> Result<String, String> {
        self.map(|value| crate::json_text(&value))
            .map_err(|error| error.to_string())
    }
}

/// An event as the three strings of the WIT record.
pub fn event_parts(event: Event) -> (String, String, String) {
    (event.group, event.key, event.context.into_text())
}

/// An effect in the shape of the WIT variant, with the WIT types chosen by the caller.
pub enum EffectParts {
    Emit(String, String, String),
    Mail(MailParts),
    Output(String, String),
}

pub struct MailParts {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub template: Option<String>,
    pub context: Option<String>,
}

pub fn effect_parts(effect: Effect) -> EffectParts {
    match effect {
        Effect::Emit(event) => {
            let (group, key, context) = event_parts(event);
            EffectParts::Emit(group, key, context)
        }
        Effect::Mail(Mail {
            to,
            subject,
            body,
            template,
            context,
        }) => EffectParts::Mail(MailParts {
            to,
            subject,
            body,
            template,
            context: context.map(|context| crate::json_text(&context)),
        }),
        Effect::Output { channel, payload } => EffectParts::Output(channel, payload),
    }
}
