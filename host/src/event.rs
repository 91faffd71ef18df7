//! Events, effects and invocations as the host sees them, and the checks every event
//! passes before it reaches the ledger.

use serde::{Deserialize, Serialize};

use crate::error::CallError;
use crate::limits::{Limit, MAX_CHANNEL_BYTES, MAX_CONTEXT_BYTES, MAX_GROUP_BYTES, MAX_KEY_BYTES};

/// Something that happened: a group, a key unique across groups, and a context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The kind of event; handlers are routed by regexes on it.
    pub group: String,
    /// The identity of the event: each key is processed once.
    pub key: String,
    /// A JSON object, as text.
    pub context: String,
}

/// What every module call is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The tenant the call serves.
    pub tenant: String,
    /// The logical time of the run, in milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// 1 on the first delivery, 2 on the first retry, ...
    pub attempt: u32,
}

/// A mail returned by a handler.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// The name of the tenant's template (an event group) to render.
    pub template: Option<String>,
    /// The template's variables: a JSON object, as text; none: the event's context.
    pub context: Option<String>,
    /// Set by the built-in mail handler (from `spark_mail`); a module's mails get the
    /// tenant's defaults.
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
}

/// What a handler asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A new event, processed like one from a source.
    Emit(Event),
    /// A mail for the outbox.
    Mail(Mail),
    /// A payload for an operator-defined channel, for the outbox.
    Output { channel: String, payload: String },
}

impl Event {
    /// Refuses what the ledger must not hold: empty or overlong keys and groups, and
    /// contexts that are not JSON objects or are too large. Keys and groups are Rust
    /// strings, so they are valid UTF-8 by construction; control characters are refused
    /// because they would corrupt every listing that shows them.
    pub fn validate(&self) -> Result<(), CallError> {
        self.validate_after(None)
    }

    /// [`validate`](Self::validate), for an event that follows `previous`, which passed:
    /// a context the same as its context is not checked again. A source's events often
    /// share one (the SDK writes a shared context's text once), and comparing is cheaper
    /// than parsing.
    pub(crate) fn validate_after(&self, previous: Option<&Event>) -> Result<(), CallError> {
        check_name("key", &self.key, Limit::KeyBytes, MAX_KEY_BYTES)?;
        check_name("group", &self.group, Limit::GroupBytes, MAX_GROUP_BYTES)?;
        if previous.is_some_and(|previous| previous.context == self.context) {
            return Ok(());
        }
        check_context(&self.context, || format!("context of event `{}`", self.key))
    }
}

/// Refuses a context that is too large or not a JSON object; `what` names it.
pub(crate) fn check_context(context: &str, what: impl FnOnce() -> String) -> Result<(), CallError> {
    if context.len() > MAX_CONTEXT_BYTES {
        return Err(CallError::Limit {
            limit: Limit::ContextBytes,
            max: MAX_CONTEXT_BYTES as u64,
            actual: Some(context.len() as u64),
        });
    }
    check_json_object(context).map_err(|why| CallError::InvalidOutput { what: what(), why })
}

fn check_name(what: &str, value: &str, limit: Limit, max: usize) -> Result<(), CallError> {
    if value.is_empty() {
        return Err(CallError::InvalidOutput {
            what: format!("event {what}"),
            why: "it is empty".to_owned(),
        });
    }
    if value.len() > max {
        return Err(CallError::Limit {
            limit,
            max: max as u64,
            actual: Some(value.len() as u64),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(CallError::InvalidOutput {
            what: format!("event {what} {value:?}"),
            why: "it contains control characters".to_owned(),
        });
    }
    Ok(())
}

/// Checks that `text` is one JSON object, without building it.
pub(crate) fn check_json_object(text: &str) -> Result<(), String> {
    if !text.trim_start().starts_with('{') {
        return Err("it is not a JSON object".to_owned());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|error| format!("it is not valid JSON: {error}"))
}

impl Effect {
    /// The number of bytes of text this effect carries (for the output limit).
    pub(crate) fn text_len(&self) -> usize {
        match self {
            Effect::Emit(event) => event.text_len(),
            Effect::Mail(mail) => {
                mail.to
                    .iter()
                    .chain(&mail.cc)
                    .chain(&mail.bcc)
                    .map(String::len)
                    .sum::<usize>()
                    + mail.from.as_ref().map_or(0, String::len)
                    + mail.reply_to.as_ref().map_or(0, String::len)
                    + mail.subject.len()
                    + mail.body.len()
                    + mail.template.as_ref().map_or(0, String::len)
                    + mail.context.as_ref().map_or(0, String::len)
            }
            Effect::Output { channel, payload } => channel.len() + payload.len(),
        }
    }

    /// Refuses effects the outbox must not hold.
    pub(crate) fn validate(&self) -> Result<(), CallError> {
        match self {
            Effect::Emit(event) => event.validate(),
            Effect::Mail(mail) => {
                if mail.to.is_empty() || mail.to.iter().any(|to| to.trim().is_empty()) {
                    return Err(CallError::InvalidOutput {
                        what: "mail".to_owned(),
                        why: "it needs at least one recipient and no empty ones".to_owned(),
                    });
                }
                if let Some(context) = &mail.context {
                    check_json_object(context).map_err(|why| CallError::InvalidOutput {
                        what: "mail context".to_owned(),
                        why,
                    })?;
                }
                Ok(())
            }
            Effect::Output { channel, .. } => {
                check_channel(channel).map_err(|why| CallError::InvalidOutput {
                    what: "output".to_owned(),
                    why: format!("its {why}"),
                })
            }
        }
    }
}

/// Refuses a channel name that is not a name: the channel routes an output to a
/// transport (`[outputs]` in the manifest) and is shown in listings and warnings, so it
/// is one, like a group.
pub fn check_channel(channel: &str) -> Result<(), String> {
    if channel.is_empty() {
        Err("channel name is empty".to_owned())
    } else if channel.len() > MAX_CHANNEL_BYTES {
        Err(format!("channel name is over {MAX_CHANNEL_BYTES} bytes"))
    } else if channel.chars().any(char::is_control) {
        Err(format!(
            "channel name {channel:?} contains control characters"
        ))
    } else {
        Ok(())
    }
}

impl Event {
    pub(crate) fn text_len(&self) -> usize {
        self.group.len() + self.key.len() + self.context.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(group: &str, key: &str, context: &str) -> Event {
        Event {
            group: group.to_owned(),
            key: key.to_owned(),
            context: context.to_owned(),
        }
    }

    #[test]
    fn valid_events_pass() {
        assert_eq!(event("g", "g_1", "{}").validate(), Ok(()));
        assert_eq!(event("g", "g_ü", r#" {"a": [1, 2]} "#).validate(), Ok(()));
    }

    #[test]
    fn bad_events_are_refused_with_the_reason() {
        let cases = [
            (event("", "k", "{}"), "invalid-output"),
            (event("g", "", "{}"), "invalid-output"),
            (event("g", "a\nb", "{}"), "invalid-output"),
            (event("g", "k", "[1]"), "invalid-output"),
            (event("g", "k", "{"), "invalid-output"),
            (event("g", "k", "not json"), "invalid-output"),
            (event("g", "k", "{} {}"), "invalid-output"),
            (event("g", &"k".repeat(MAX_KEY_BYTES + 1), "{}"), "limit"),
            (event(&"g".repeat(MAX_GROUP_BYTES + 1), "k", "{}"), "limit"),
        ];
        for (event, kind) in cases {
            let error = event
                .validate()
                .expect_err(&format!("{event:?} must be refused"));
            assert_eq!(error.kind(), kind, "{event:?}: {error}");
        }
    }

    #[test]
    fn a_context_is_checked_again_only_when_it_differs_from_the_one_before() {
        let first = event("g", "g_1", r#"{"a": 1}"#);
        // The same context after one that passed: only the names are checked.
        assert_eq!(
            event("g", "g_2", r#"{"a": 1}"#).validate_after(Some(&first)),
            Ok(())
        );
        assert_eq!(
            event("", "g_2", r#"{"a": 1}"#)
                .validate_after(Some(&first))
                .unwrap_err()
                .kind(),
            "invalid-output"
        );
        // A different one is checked, however close.
        for context in [r#"{"a": 1}x"#, "[1]", r#"{"a": 1"#] {
            let error = event("g", "g_2", context)
                .validate_after(Some(&first))
                .expect_err(context);
            assert_eq!(error.kind(), "invalid-output", "{context}: {error}");
        }
    }

    #[test]
    fn context_size_is_bounded() {
        let big = format!(r#"{{"a": "{}"}}"#, "x".repeat(MAX_CONTEXT_BYTES));
        let error = event("g", "k", &big).validate().unwrap_err();
        assert!(matches!(
            error,
            CallError::Limit {
                limit: Limit::ContextBytes,
                ..
            }
        ));
        let at_limit = format!(r#"{{"a": "{}"}}"#, "x".repeat(MAX_CONTEXT_BYTES - 10));
        assert_eq!(event("g", "k", &at_limit).validate(), Ok(()));
    }

    #[test]
    fn output_channels_are_names() {
        let output = |channel: &str| Effect::Output {
            channel: channel.to_owned(),
            payload: "{}".to_owned(),
        };
        assert_eq!(output("audit.v2").validate(), Ok(()));
        assert_eq!(output(&"c".repeat(MAX_CHANNEL_BYTES)).validate(), Ok(()));
        for (channel, why) in [
            ("", "empty"),
            ("a\u{1b}[2Jb", "control characters"),
            (&"c".repeat(MAX_CHANNEL_BYTES + 1), "over 128 bytes"),
        ] {
            let error = output(channel).validate().unwrap_err();
            assert_eq!(error.kind(), "invalid-output", "{error}");
            assert!(error.to_string().contains(why), "{error}");
        }
    }

    #[test]
    fn mails_need_recipients() {
        let mail = |to: Vec<&str>| {
            Effect::Mail(Mail {
                to: to.into_iter().map(str::to_owned).collect(),
                subject: "s".to_owned(),
                body: "b".to_owned(),
                ..Mail::default()
            })
        };
        assert!(mail(vec!["a@example.com"]).validate().is_ok());
        assert!(mail(vec![]).validate().is_err());
        assert!(mail(vec![" "]).validate().is_err());
    }
}
