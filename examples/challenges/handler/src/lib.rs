//! The django-spark README example's mail handler as a Spark handler: one mail per
//! challenge event, to the challenge's owner.
//!
//! The mail names a template per event group (the group itself, e.g.
//! `challenge_ended`), rendered by the host with the event's context
//! (`{"challenge": ...}`); the subject and body given here are the fallback when the
//! tenant has no such template.

use serde::Deserialize;
use spark_guest::{Effect, Event, Invocation, Mail, Result};

// Small allocations, freed soon: a list per size serves them faster than the default.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: spark_guest::SizeClasses = spark_guest::SizeClasses::new();

#[derive(Deserialize)]
struct Context {
    challenge: Challenge,
}

#[derive(Deserialize)]
struct Challenge {
    title: String,
    end_date: String,
    owner: Owner,
}

#[derive(Deserialize)]
struct Owner {
    name: String,
    email: String,
}

#[spark_guest::handler]
pub fn challenge_mail(event: &Event, _inv: &Invocation) -> Result<Vec<Effect>> {
    let Context { challenge } = event.context_as()?;
    let title = &challenge.title;
    let subject = match event.group.as_str() {
        "challenge_created" => format!("Your challenge \"{title}\" is live"),
        "challenge_inactivity_2d" => format!("Your challenge \"{title}\" needs a push"),
        "challenge_ends_2d" => format!("Your challenge \"{title}\" ends on {}", challenge.end_date),
        "challenge_ended" => format!("Your challenge \"{title}\" has ended"),
        other => format!("News about your challenge \"{title}\" ({other})"),
    };
    let body = format!(
        "Hello {},\n\n{subject}.\n\nThe Challenges team",
        challenge.owner.name
    );
    // No context of its own: the host renders the template with the event's whole
    // context, as django-spark's spark_mails does (a generator's event holds what its
    // context function computed too: `days_running` for `challenge_stalled`).
    let mail = Mail::to(challenge.owner.email)
        .subject(subject)
        .body(body)
        .template(event.group.clone());
    Ok(vec![mail.into()])
}

#[cfg(test)]
mod tests {
    use spark_guest::json;

    use super::*;

    #[test]
    fn one_mail_to_the_owner_with_the_group_template() {
        let event = spark_guest::event(
            "challenge_ended",
            3,
            json!({ "challenge": {
                "id": 3, "title": "Swim", "end_date": "2024-05-01",
                "owner": { "name": "Grace", "email": "grace@example.com" }
            }}),
        );
        let inv = Invocation::new("test", "2024-05-10T00:00:00Z".parse().unwrap());
        let effects = challenge_mail(&event, &inv).unwrap();
        let [Effect::Mail(mail)] = effects.as_slice() else {
            panic!("expected one mail, got {effects:?}");
        };
        assert_eq!(mail.recipients(), ["grace@example.com"]);
        let expected = Mail::to("grace@example.com")
            .subject("Your challenge \"Swim\" has ended")
            .body("Hello Grace,\n\nYour challenge \"Swim\" has ended.\n\nThe Challenges team")
            .template("challenge_ended");
        assert_eq!(mail, &expected);
    }

    #[test]
    fn an_event_without_a_challenge_is_an_error() {
        let event = spark_guest::event("challenge_created", 1, json!({}));
        let inv = Invocation::new("test", "2024-05-10T00:00:00Z".parse().unwrap());
        let error = challenge_mail(&event, &inv).unwrap_err();
        assert!(error.to_string().contains("challenge"), "{error}");
    }
}
