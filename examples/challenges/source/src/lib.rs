//! The django-spark README example as a Spark source: events from a challenge.
//!
//! For an active challenge, at the run's logical date `today`:
//! - `challenge_created`, always;
//! - `challenge_inactivity_2d` when it started more than 2 days ago with fewer than 2
//!   donations;
//! - `challenge_ends_2d` when it ends in 2 days or less (as in django-spark, this
//!   includes challenges that have already ended);
//! - `challenge_ended` when it ended before today.
//!
//! An inactive challenge yields nothing. Each event's context is `{"challenge": ...}`,
//! the record itself, and its key is `{group}_{id}`, so each fires once per challenge.
//!
//! For generators, the context function adds `days_running` and `days_left`, so that
//! operators can declare rules such as "no donations after a week" without code.

use serde::{Deserialize, Serialize};
use spark_guest::jiff::civil::Date;
use spark_guest::{Context, Event, Invocation, Result, Value, event, json};

// Small allocations, freed soon: a list per size serves them faster than the default.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: spark_guest::SizeClasses = spark_guest::SizeClasses::new();

/// A challenge record, as ingested with `spark ingest --model challenge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    pub id: u64,
    pub title: String,
    pub owner: Owner,
    pub is_active: bool,
    pub start_date: Date,
    pub end_date: Date,
    /// How many donations the challenge has received.
    pub donations: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Owner {
    pub name: String,
    pub email: String,
}

/// What each event of a challenge carries: the challenge, as `{"challenge": ...}`.
#[derive(Serialize)]
struct ChallengeContext<'a> {
    challenge: &'a Challenge,
}

/// Whole days from `from` to `to` (negative when `to` is earlier).
fn days(from: Date, to: Date) -> i64 {
    to.duration_since(from).as_hours() / 24
}

/// For generators: what conditions on a challenge can test, as of the run's day.
#[spark_guest::context(
    "challenge.donations" = "donations received so far",
    "challenge.is_active" = "whether the challenge is active",
    "challenge.owner.email" = "the owner's address",
    days_running = "days since the challenge started",
    days_left = "days until it ends (negative once it has ended)",
)]
pub fn challenge_context(challenge: Challenge, inv: &Invocation) -> Value {
    let today = inv.today();
    json!({
        "days_running": days(challenge.start_date, today),
        "days_left": days(today, challenge.end_date),
        "challenge": challenge,
    })
}

#[spark_guest::source]
pub fn challenge_events(challenge: Challenge, inv: &Invocation) -> Result<Vec<Event>> {
    if !challenge.is_active {
        return Ok(Vec::new());
    }
    let today = inv.today();
    let id = challenge.id;
    // One context for all of the record's events, written straight to its text (no
    // `json!` value in between); clones share it.
    let context = Context::of(&ChallengeContext {
        challenge: &challenge,
    })?;
    let mut events = vec![event("challenge_created", id, context.clone())];
    if days(challenge.start_date, today) > 2 && challenge.donations < 2 {
        events.push(event("challenge_inactivity_2d", id, context.clone()));
    }
    if days(today, challenge.end_date) <= 2 {
        events.push(event("challenge_ends_2d", id, context.clone()));
    }
    if challenge.end_date < today {
        events.push(event("challenge_ended", id, context));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(start: &str, end: &str, donations: u32, is_active: bool) -> Challenge {
        Challenge {
            id: 7,
            title: "Run".to_owned(),
            owner: Owner {
                name: "Ada".to_owned(),
                email: "ada@example.com".to_owned(),
            },
            is_active,
            start_date: start.parse().unwrap(),
            end_date: end.parse().unwrap(),
            donations,
        }
    }

    fn groups(challenge: Challenge, today: &str) -> Vec<String> {
        let inv = Invocation::new("test", format!("{today}T12:00:00Z").parse().unwrap());
        challenge_events(challenge, &inv)
            .unwrap()
            .into_iter()
            .map(|event| event.group)
            .collect()
    }

    #[test]
    fn each_rule_at_its_boundary() {
        let today = "2024-05-10";
        // Started exactly 2 days ago: not yet inactive; ends in 3 days: not yet ending.
        assert_eq!(
            groups(challenge("2024-05-08", "2024-05-13", 0, true), today),
            ["challenge_created"]
        );
        // Started 3 days ago with 1 donation: inactive.
        assert_eq!(
            groups(challenge("2024-05-07", "2024-05-13", 1, true), today),
            ["challenge_created", "challenge_inactivity_2d"]
        );
        // Two donations are enough.
        assert_eq!(
            groups(challenge("2024-05-01", "2024-05-13", 2, true), today),
            ["challenge_created"]
        );
        // Ends in 2 days, and today.
        assert_eq!(
            groups(challenge("2024-05-09", "2024-05-12", 5, true), today),
            ["challenge_created", "challenge_ends_2d"]
        );
        assert_eq!(
            groups(challenge("2024-05-09", "2024-05-10", 5, true), today),
            ["challenge_created", "challenge_ends_2d"]
        );
        // Ended yesterday: ending within 2 days too, as in django-spark.
        assert_eq!(
            groups(challenge("2024-05-09", "2024-05-09", 5, true), today),
            ["challenge_created", "challenge_ends_2d", "challenge_ended"]
        );
        // Inactive challenges yield nothing.
        assert!(groups(challenge("2024-01-01", "2024-01-02", 0, false), today).is_empty());
    }

    #[test]
    fn the_context_counts_days_both_ways() {
        let inv = Invocation::new("test", "2024-05-10T00:00:00Z".parse().unwrap());
        let context = challenge_context(challenge("2024-05-03", "2024-05-08", 1, true), &inv);
        assert_eq!(context["days_running"], 7);
        assert_eq!(context["days_left"], -2);
        assert_eq!(context["challenge"]["donations"], 1);
    }

    #[test]
    fn keys_follow_django_spark() {
        let inv = Invocation::new("test", "2024-05-10T00:00:00Z".parse().unwrap());
        let events =
            challenge_events(challenge("2024-05-09", "2024-06-01", 5, true), &inv).unwrap();
        assert_eq!(events[0].key, "challenge_created_7");
        assert_eq!(
            events[0].context["challenge"]["owner"]["email"],
            "ada@example.com"
        );
    }
}
