// A crate has at most one source and one handler: each is a component export.
use spark_guest::Event;

#[spark_guest::source]
fn first(record: serde_json::Value) -> Vec<Event> {
    let _ = record;
    Vec::new()
}

#[spark_guest::source]
fn second(record: serde_json::Value) -> Vec<Event> {
    let _ = record;
    Vec::new()
}

fn main() {}
