// A crate with a source and a handler, in the shapes the guide shows.
use spark_guest::{Effect, Event, Invocation, Mail, event, json};

#[derive(serde::Deserialize)]
struct Signup {
    id: u64,
    email: String,
}

#[spark_guest::source]
fn signups(signup: Signup, inv: &Invocation) -> spark_guest::Result<Vec<Event>> {
    let _ = inv.today();
    Ok(vec![event("signup_created", signup.id, json!({ "email": signup.email }))])
}

#[spark_guest::handler]
fn welcome(event: &Event, _inv: &Invocation) -> spark_guest::Result<Vec<Effect>> {
    let email: String = event.field("email")?;
    Ok(vec![Mail::to(email).subject("Welcome").into()])
}

fn main() {}
