use spark_guest::Event;

#[spark_guest::source]
fn events(record: &serde_json::Value) -> Vec<Event> {
    let _ = record;
    Vec::new()
}

fn main() {}
