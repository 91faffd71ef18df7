use spark_guest::Event;

#[spark_guest::handler]
fn handle(event: &Event) -> String {
    event.key.clone()
}

fn main() {}
