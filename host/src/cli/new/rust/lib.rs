//! {{name}}: a Spark module: {{what}}.
//!
//! `cargo build --target wasm32-wasip2 --release` builds the component and
//! `cargo test` runs the tests below natively; README.md has the rest.

{{#both}}
use spark_guest::{Effect, Event, Invocation, Value, event, json};
{{/both}}
{{#source-only}}
use spark_guest::{Event, Invocation, Value, event};
{{/source-only}}
{{#handler-only}}
use spark_guest::{Effect, Event, Invocation, json};
{{/handler-only}}
{{#source}}

/// The events of a record of the model `{{model}}` (as ingested with
/// `spark ingest --model {{model}}`): one `{{group}}` per record, whose context is the
/// record. Take the record as a type of your own that implements `serde::Deserialize`
/// to have it checked.
#[spark_guest::source]
fn events(record: Value, _inv: &Invocation) -> Vec<Event> {
    // An id is a string or an integer.
    let id = match &record["id"] {
        Value::String(id) => id.clone(),
        id => id.to_string(),
    };
    vec![event("{{group}}", id, record)]
}
{{/source}}
{{#handler}}

/// What a new event of the groups the module handles leads to: here, a line in the
/// log (`spark -v` shows it) and an output for the channel `{{name}}`.
#[spark_guest::handler]
fn handle(event: &Event, _inv: &Invocation) -> Vec<Effect> {
    println!("handling {}", event.key);
    let payload = json!({ "key": event.key, "group": event.group });
    vec![Effect::output("{{name}}", payload)]
}
{{/handler}}

#[cfg(test)]
mod tests {
    use super::*;
{{#source-only}}
    use spark_guest::json;
{{/source-only}}
{{#handler-only}}
    use spark_guest::event;
{{/handler-only}}

    fn inv() -> Invocation {
        Invocation::new("test", "2024-05-01T00:00:00Z".parse().unwrap())
    }
{{#source}}

    #[test]
    fn a_record_is_one_event() {
        let events = events(json!({ "id": 7, "name": "Ada" }), &inv());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].key, "{{group}}_7");
        assert_eq!(events[0].context["name"], "Ada");
    }
{{/source}}
{{#handler}}

    #[test]
    fn an_event_is_one_output() {
        let effects = handle(&event("{{group}}", 7, json!({})), &inv());
        let payload = json!({ "key": "{{group}}_7", "group": "{{group}}" });
        assert_eq!(effects, [Effect::output("{{name}}", payload)]);
    }
{{/handler}}
}
