//! A module written against the WIT without the SDK, returning context text exactly as
//! the record gives it: `{"id": 1, "context": "{oops"}` makes an event `raw_1` whose
//! context is `{oops`. Its handler emits an event with the text in its event's context
//! under `emit_context`.

wit_bindgen::generate!({
    path: "../../../guest-sdk/wit",
    world: "spark-module",
});

use exports::spark::engine::{handler, source};
use spark::engine::types::{Effect, Event, Invocation};

struct Raw;

fn text_field(json: &str, name: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value.get(name)?.as_str().map(str::to_owned)
}

impl source::Guest for Raw {
    fn events(_model: String, data: String, _inv: Invocation) -> Result<Vec<Event>, String> {
        let value: serde_json::Value = serde_json::from_str(&data).map_err(|e| e.to_string())?;
        let id = value["id"].to_string();
        let context = text_field(&data, "context").unwrap_or_else(|| "{}".to_owned());
        Ok(vec![Event {
            group: "raw".to_owned(),
            key: format!("raw_{id}"),
            context,
        }])
    }
}

impl handler::Guest for Raw {
    fn handle(event: Event, _inv: Invocation) -> Result<Vec<Effect>, String> {
        Ok(match text_field(&event.context, "emit_context") {
            Some(context) => vec![Effect::Emit(Event {
                group: "emitted".to_owned(),
                key: format!("emitted_{}", event.key),
                context,
            })],
            None => vec![Effect::Output(("raw".to_owned(), event.context))],
        })
    }
}

export!(Raw);
