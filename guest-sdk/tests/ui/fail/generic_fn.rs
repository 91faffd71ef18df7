use spark_guest::Event;

#[spark_guest::source]
fn events<T: serde::de::DeserializeOwned>(record: T) -> Vec<Event> {
    let _ = record;
    Vec::new()
}

fn main() {}
