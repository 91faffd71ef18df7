use spark_guest::{Effect, Event, Invocation};

#[spark_guest::handler]
fn handle(event: &Event, inv: &Invocation, extra: u32) -> Vec<Effect> {
    let _ = (event, inv, extra);
    Vec::new()
}

fn main() {}
