// The optional parameter left out, the event by value, plain vectors, any `Display`
// error and any iterator of events.
mod source {
    use spark_guest::{Event, event, json};

    #[spark_guest::source]
    fn numbers(record: serde_json::Value) -> Result<impl IntoIterator<Item = Event>, String> {
        let id = record["id"].as_u64().ok_or("no id")?;
        Ok((0..id).map(|n| event("number", n, json!({}))))
    }
}

mod handler {
    use spark_guest::{Effect, Event, Invocation, json};

    #[spark_guest::handler]
    fn echo(event: Event, inv: Invocation) -> Vec<Effect> {
        vec![Effect::output("echo", json!({ "key": event.key, "attempt": inv.attempt() }))]
    }
}

fn main() {}
