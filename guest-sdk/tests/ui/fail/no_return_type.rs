use spark_guest::Event;

#[spark_guest::handler]
fn handle(event: &Event) {
    let _ = event;
}

fn main() {}
