//! The built-in mail handler, django-spark's `spark_mails` convention: an event whose
//! context holds a `spark_mail` object becomes a mail with its fields (`to`, `cc`,
//! `bcc`, `subject`, `body`, `from_email` or `from`, `reply_to`), rendered with the
//! template of the event's exact group; an event without one produces nothing.
//!
//! Operators register it like a module, under a name and group regexes:
//! `spark module add builtin:mails --name mails --handler '^challenge'`.

use serde_json::Value;

use crate::error::CallError;
use crate::event::{Effect, Event, Invocation, Mail};
use crate::native::NativeModule;

/// The "path" that names the built-in mail handler in `module add` and manifests.
pub const BUILTIN_MAILS: &str = "builtin:mails";

/// The built-in mail handler as a native module.
pub(crate) struct BuiltinMails;

impl NativeModule for BuiltinMails {
    fn exports(&self) -> Vec<&'static str> {
        vec!["handler"]
    }

    fn handle(&self, event: &Event, _inv: &Invocation) -> Result<Vec<Effect>, CallError> {
        handle(event)
    }
}

/// The mail an event asks for, if any.
pub(crate) fn handle(event: &Event) -> Result<Vec<Effect>, CallError> {
    let invalid = |why: String| CallError::InvalidOutput {
        what: format!("`spark_mail` of event `{}`", event.key),
        why,
    };
    let context: Value = serde_json::from_str(&event.context)
        .map_err(|error| invalid(format!("the context is not JSON: {error}")))?;
    let Some(spec) = context.get("spark_mail") else {
        return Ok(Vec::new());
    };
    let Value::Object(spec) = spec else {
        return Err(invalid("it is not an object".to_owned()));
    };
    let text = |name: &str| -> Result<Option<String>, CallError> {
        match spec.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(invalid(format!("`{name}` is not text"))),
        }
    };
    // Django's EmailMessage takes lists of addresses; a single address is accepted too.
    let addresses = |name: &str| -> Result<Vec<String>, CallError> {
        match spec.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(address)) => Ok(vec![address.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_owned).ok_or_else(|| {
                        invalid(format!("`{name}` holds something that is not text"))
                    })
                })
                .collect(),
            Some(_) => Err(invalid(format!(
                "`{name}` is neither an address nor a list of them"
            ))),
        }
    };
    let to = addresses("to")?;
    if to.is_empty() {
        return Err(invalid("it has no `to`".to_owned()));
    }
    let reply_to = addresses("reply_to")?.into_iter().next();
    Ok(vec![Effect::Mail(Mail {
        to,
        cc: addresses("cc")?,
        bcc: addresses("bcc")?,
        subject: text("subject")?.unwrap_or_default(),
        body: text("body")?.unwrap_or_default(),
        from: text("from_email")?.or(text("from")?),
        reply_to,
        template: Some(event.group.clone()),
        context: None,
    })])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(context: &str) -> Event {
        Event {
            group: "user_welcome".to_owned(),
            key: "user_welcome_1".to_owned(),
            context: context.to_owned(),
        }
    }

    #[test]
    fn an_event_with_spark_mail_becomes_a_mail_of_its_group() {
        let effects = handle(&event(
            r#"{"user": "ada", "spark_mail": {"to": ["ada@example.com"], "cc": "cc@example.com",
               "subject": "Hi", "body": "Text", "from_email": "team@example.com", "reply_to": ["r@example.com"]}}"#,
        ))
        .unwrap();
        let [Effect::Mail(mail)] = effects.as_slice() else {
            panic!("one mail expected: {effects:?}");
        };
        assert_eq!(mail.to, ["ada@example.com"]);
        assert_eq!(mail.cc, ["cc@example.com"]);
        assert_eq!(mail.subject, "Hi");
        assert_eq!(mail.from.as_deref(), Some("team@example.com"));
        assert_eq!(mail.reply_to.as_deref(), Some("r@example.com"));
        assert_eq!(mail.template.as_deref(), Some("user_welcome"));
        assert_eq!(mail.context, None, "rendered with the event's context");
    }

    #[test]
    fn an_event_without_spark_mail_produces_nothing() {
        assert!(handle(&event(r#"{"user": "ada"}"#)).unwrap().is_empty());
    }

    #[test]
    fn a_broken_spark_mail_is_an_error() {
        for context in [
            r#"{"spark_mail": "ada@example.com"}"#,
            r#"{"spark_mail": {}}"#,
            r#"{"spark_mail": {"to": 5}}"#,
            r#"{"spark_mail": {"to": ["a@example.com", 5]}}"#,
            r#"{"spark_mail": {"to": "a@example.com", "subject": ["x"]}}"#,
        ] {
            let error = handle(&event(context)).expect_err(context);
            assert_eq!(error.kind(), "invalid-output", "{context}: {error}");
        }
    }
}
