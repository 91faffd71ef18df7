use spark_guest::Event;

#[spark_guest::source]
fn events() -> Vec<Event> {
    Vec::new()
}

fn main() {}
