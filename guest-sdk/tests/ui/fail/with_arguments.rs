use spark_guest::{Effect, Event};

#[spark_guest::handler(groups = "^challenge")]
fn handle(event: &Event) -> Vec<Effect> {
    let _ = event;
    Vec::new()
}

fn main() {}
