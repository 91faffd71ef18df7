//! Transactional mails: templates per event group, the built-in mail handler, what goes
//! into the outbox, and how one is sent.
//!
//! A mail is rendered when its handler's effects are committed, so the outbox holds the
//! subject and body that will be sent. Precedence, lowest first: the tenant's defaults,
//! the mail's own fields (a module's mail effect, or an event's `spark_mail`), the
//! rendered template (when it renders a non-empty subject or body).

pub(crate) mod builtin;
mod render;
mod send;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::Mail;
use crate::store::OutboxData;

pub use render::{Rendered, Templates, check_template};
pub(crate) use send::MailSender;

/// A tenant's mail settings (`[mails]` in the manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MailSettings {
    /// The sender of mails that name none, e.g. `Challenges <hello@example.com>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The reply address of mails that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// How `spark outbox send` sends mails when not told: `file:DIR`,
    /// `smtp://HOST:PORT`, `smtps://HOST:PORT` or `stdout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

/// The outbox data of a mail, composed when the commit is written (see [`OutboxData`]):
/// the mail and the context its template would use are moved into it.
pub(crate) fn compose_later(
    mail: Mail,
    event_context: &str,
    settings: Arc<MailSettings>,
    templates: Arc<Templates>,
) -> OutboxData {
    let event_context = mail.context.is_none().then(|| event_context.to_owned());
    OutboxData::Later(Box::new(move || {
        compose(
            &mail,
            event_context.as_deref().unwrap_or("{}"),
            &settings,
            &templates,
        )
    }))
}

/// A mail as the outbox keeps it (`OutboxItem::data`).
#[derive(Serialize)]
struct Composed<'a> {
    from: Option<&'a str>,
    reply_to: Option<&'a str>,
    to: &'a [String],
    cc: &'a [String],
    bcc: &'a [String],
    subject: &'a str,
    body: &'a str,
    template: Option<&'a str>,
    /// The mail's own context, copied as the text it is.
    context: Option<&'a RawValue>,
    render_error: Option<String>,
}

/// The outbox data of a mail, as JSON text: the mail with defaults applied and its
/// template rendered. `event_context` is the template's context when the mail names
/// none. Written straight as text: building a [`Value`] tree per mail only to
/// serialise it was wasted work on the commit thread.
pub(crate) fn compose(
    mail: &Mail,
    event_context: &str,
    settings: &MailSettings,
    templates: &Templates,
) -> Box<RawValue> {
    // Modules' mail contexts were checked to be JSON objects; anything else is kept as
    // null and renders as an empty context.
    let own_context = mail
        .context
        .as_deref()
        .and_then(|text| serde_json::from_str::<&RawValue>(text).ok());
    let mut subject = mail.subject.as_str();
    let mut body = mail.body.as_str();
    let rendered;
    let mut render_error = None;
    if let Some(template) = mail.template.as_ref().filter(|name| templates.has(name)) {
        let context = own_context.map_or(event_context, RawValue::get);
        match templates.render(template, context) {
            None => {}
            Some(Ok(done)) => {
                rendered = done;
                if !rendered.subject.is_empty() {
                    subject = &rendered.subject;
                }
                if !rendered.body.is_empty() {
                    body = &rendered.body;
                }
            }
            Some(Err(why)) => {
                tracing::warn!(
                    template,
                    "mail template failed to render, sending the fallback: {why}"
                );
                render_error = Some(why);
            }
        }
    }
    let composed = Composed {
        from: mail.from.as_deref().or(settings.from.as_deref()),
        reply_to: mail.reply_to.as_deref().or(settings.reply_to.as_deref()),
        to: &mail.to,
        cc: &mail.cc,
        bcc: &mail.bcc,
        subject,
        body,
        template: mail.template.as_deref(),
        context: own_context,
        render_error,
    };
    serde_json::value::to_raw_value(&composed).expect("strings and JSON text always encode")
}

impl crate::Tenant {
    /// Saves the mail template of an exact event group, after checking its syntax.
    pub fn set_template(&mut self, group: &str, source: &str) -> Result<(), crate::Error> {
        check_template(source).map_err(|why| crate::Error::InvalidTemplate {
            group: group.to_owned(),
            why,
        })?;
        self.store.put_template(group, source)
    }

    /// The mail templates, as (group, source), in group order.
    pub fn templates(&self) -> Result<Vec<(String, String)>, crate::Error> {
        self.store.templates()
    }

    /// The template of one group.
    pub fn template(&self, group: &str) -> Result<String, crate::Error> {
        self.store
            .templates()?
            .into_iter()
            .find(|(name, _)| name == group)
            .map(|(_, source)| source)
            .ok_or_else(|| crate::Error::UnknownTemplate(group.to_owned()))
    }

    /// Removes the template of a group.
    pub fn remove_template(&mut self, group: &str) -> Result<(), crate::Error> {
        if self.store.remove_template(group)? {
            Ok(())
        } else {
            Err(crate::Error::UnknownTemplate(group.to_owned()))
        }
    }

    /// The subject and body the template of `group` renders for `context`, or why it
    /// does not render.
    pub fn preview(&self, group: &str, context: &Value) -> Result<Rendered, crate::Error> {
        let source = self.template(group)?;
        let templates = Templates::new([(group.to_owned(), source)]).map_err(|why| {
            crate::Error::InvalidTemplate {
                group: group.to_owned(),
                why,
            }
        })?;
        match templates.render(group, &context.to_string()) {
            Some(Ok(rendered)) => Ok(rendered),
            Some(Err(why)) => Err(crate::Error::InvalidTemplate {
                group: group.to_owned(),
                why: format!("it does not render: {why}"),
            }),
            None => Err(crate::Error::UnknownTemplate(group.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`compose`] writes, parsed.
    fn composed(
        mail: &Mail,
        event_context: &str,
        settings: &MailSettings,
        templates: &Templates,
    ) -> Value {
        let text = compose(mail, event_context, settings, templates);
        serde_json::from_str(text.get()).unwrap()
    }

    fn templates(source: &str) -> Templates {
        Templates::new([("hello".to_owned(), source.to_owned())]).unwrap()
    }

    fn mail() -> Mail {
        Mail {
            to: vec!["ada@example.com".to_owned()],
            subject: "Fallback subject".to_owned(),
            body: "Fallback body".to_owned(),
            template: Some("hello".to_owned()),
            ..Mail::default()
        }
    }

    #[test]
    fn the_template_wins_over_the_mail_and_the_mail_over_the_defaults() {
        let settings = MailSettings {
            from: Some("Team <team@example.com>".to_owned()),
            reply_to: Some("help@example.com".to_owned()),
            transport: None,
        };
        let data = composed(
            &mail(),
            r#"{"name": "Ada"}"#,
            &settings,
            &templates("Hi {{ name }}\n\nWelcome."),
        );
        assert_eq!(data["subject"], "Hi Ada");
        assert_eq!(data["body"], "Welcome.");
        assert_eq!(data["from"], "Team <team@example.com>");
        assert_eq!(data["reply_to"], "help@example.com");
        let own = Mail {
            from: Some("me@example.com".to_owned()),
            ..mail()
        };
        assert_eq!(
            composed(&own, "{}", &settings, &templates("x"))["from"],
            "me@example.com"
        );
    }

    #[test]
    fn empty_renderings_and_failures_fall_back() {
        let settings = MailSettings::default();
        let empty = composed(&mail(), "{}", &settings, &templates(""));
        assert_eq!(
            (empty["subject"].as_str(), empty["body"].as_str()),
            (Some("Fallback subject"), Some("Fallback body"))
        );
        let subject_only = composed(&mail(), "{}", &settings, &templates("New subject"));
        assert_eq!(subject_only["subject"], "New subject");
        assert_eq!(subject_only["body"], "Fallback body");
        let failing = composed(&mail(), "{}", &settings, &templates("{{ 1 // 0 }}"));
        assert_eq!(failing["subject"], "Fallback subject");
        assert!(failing["render_error"].is_string());
        let missing = Mail {
            template: Some("absent".to_owned()),
            ..mail()
        };
        assert_eq!(
            composed(&missing, "{}", &settings, &templates("x"))["subject"],
            "Fallback subject"
        );
    }

    #[test]
    fn the_mail_context_is_preferred_to_the_events() {
        let with_context = Mail {
            context: Some(r#"{"name": "Grace"}"#.to_owned()),
            ..mail()
        };
        let data = composed(
            &with_context,
            r#"{"name": "Ada"}"#,
            &MailSettings::default(),
            &templates("Hi {{ name }}"),
        );
        assert_eq!(data["subject"], "Hi Grace");
        assert_eq!(data["context"]["name"], "Grace");
    }
}
