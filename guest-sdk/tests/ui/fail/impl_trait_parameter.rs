use spark_guest::Event;

#[spark_guest::source]
fn events(record: impl serde::de::DeserializeOwned) -> Vec<Event> {
    let _ = record;
    Vec::new()
}

fn main() {}
