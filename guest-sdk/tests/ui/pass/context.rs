// A described context function next to a source.
mod described {
    use spark_guest::{Event, Invocation, Value, json};

    #[derive(serde::Deserialize)]
    struct Challenge {
        id: u64,
        donations: u32,
    }

    #[spark_guest::source]
    fn events(challenge: Challenge) -> Vec<Event> {
        vec![spark_guest::event("challenge_created", challenge.id, json!({}))]
    }

    #[spark_guest::context(donations = "donations so far", "owner.email" = "the owner")]
    fn context(challenge: Challenge, _inv: &Invocation) -> Result<Value, String> {
        Ok(json!({ "donations": challenge.donations }))
    }
}

fn main() {}
