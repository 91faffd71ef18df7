use spark_guest::{Effect, Event};

#[spark_guest::handler]
async fn handle(event: &Event) -> Vec<Effect> {
    let _ = event;
    Vec::new()
}

fn main() {}
