//! A scriptable test module: records say which events to make, event contexts say which
//! effects to return, and the context function adds `key_length` for generators. End-to-end tests register it under several names and read the
//! outbox to see which handler ran for which event.

use serde::Deserialize;
use spark_guest::{Effect, Error, Event, Invocation, Mail, Value, json};

#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    events: Vec<EventSpec>,
    /// When present, the source fails with this message.
    fail: Option<String>,
    /// When set, each event's context gets `now_ms`: the time the source saw.
    #[serde(default)]
    stamp_now: bool,
}

#[derive(Deserialize)]
struct EventSpec {
    group: String,
    /// The key is `{group}_{id}` unless `key` is given.
    id: Option<Value>,
    key: Option<String>,
    #[serde(default = "empty_object")]
    context: Value,
}

fn empty_object() -> Value {
    json!({})
}

impl EventSpec {
    fn into_event(self) -> Event {
        let key = match (self.key, self.id) {
            (Some(key), _) => key,
            (None, Some(Value::String(id))) => format!("{}_{id}", self.group),
            (None, Some(id)) => format!("{}_{id}", self.group),
            (None, None) => self.group.clone(),
        };
        Event::new(self.group, key, self.context)
    }
}

#[spark_guest::source]
fn events(record: Record, inv: &Invocation) -> Result<Vec<Event>, Error> {
    if let Some(message) = record.fail {
        return Err(Error::msg(message));
    }
    let mut events = record.events;
    if record.stamp_now {
        for spec in &mut events {
            if let Some(context) = spec.context.as_object_mut() {
                context.insert("now_ms".to_owned(), json!(inv.now_ms()));
            }
        }
    }
    Ok(events.into_iter().map(EventSpec::into_event).collect())
}

/// For generators: the record itself, plus `key_length` when it has a text `key`
/// (django-spark's generator test case).
#[spark_guest::context(key_length = "the length of the record's `key`")]
fn context(record: Value) -> Result<Value, Error> {
    let mut context = record;
    let length = context
        .get("key")
        .and_then(Value::as_str)
        .map(|key| key.chars().count());
    if let (Some(length), Some(object)) = (length, context.as_object_mut()) {
        object.insert("key_length".to_owned(), json!(length));
    }
    Ok(context)
}

/// Returns an output `seen` naming the event and the attempt; a context may add
/// `emit` (a list of event specs), `mail` (`to`, `subject`, `body`), `fail` (an error
/// message) and `fail_before_attempt` (fail until that attempt).
#[spark_guest::handler]
fn handle(event: &Event, inv: &Invocation) -> Result<Vec<Effect>, Error> {
    if let Some(message) = event.context.get("fail").and_then(Value::as_str) {
        return Err(Error::msg(message));
    }
    if let Some(first_good) = event
        .context
        .get("fail_before_attempt")
        .and_then(Value::as_u64)
        && u64::from(inv.attempt()) < first_good
    {
        return Err(Error::msg(format!(
            "attempt {} is too early",
            inv.attempt()
        )));
    }
    let mut effects = vec![Effect::output(
        "seen",
        json!({ "key": event.key, "group": event.group, "attempt": inv.attempt() }),
    )];
    if let Some(specs) = event.context.get("emit") {
        let specs: Vec<EventSpec> = serde_json::from_value(specs.clone())?;
        effects.extend(specs.into_iter().map(|spec| spec.into_event().into()));
    }
    if let Some(mail) = event.context.get("mail") {
        let field = |name: &str| mail.get(name).and_then(Value::as_str).unwrap_or_default();
        effects.push(
            Mail::to(field("to"))
                .subject(field("subject"))
                .body(field("body"))
                .into(),
        );
    }
    Ok(effects)
}
