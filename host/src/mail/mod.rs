//! Transactional mails: templates per event group, the built-in mail handler, and what
//! goes into the outbox. Sending a mail is `crate::send`'s job.
//!
//! A mail is rendered when its handler's effects are committed, so the outbox holds the
//! subject and body that will be sent. Precedence, lowest first: the tenant's defaults
//! (its sender and reply address, filled in when the mail is sent), the mail's own fields
//! (a module's mail effect, or an event's `spark_mail`), the rendered template (when it
//! renders a non-empty subject or body).

pub(crate) mod builtin;
mod render;

use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{Error, RenderError};
use crate::event::Mail;
use crate::outbox::ComposedMail;
use crate::store::NewPayload;
use crate::wasm::WasmEngine;

pub use render::{Rendered, Templates, check_template};

/// The outbox payload of a mail, composed when the commit is written (see
/// [`NewPayload`]): the mail and the context its template would use are moved into it.
pub(crate) fn compose_later(
    mail: Mail,
    event_context: &str,
    templates: Arc<Templates>,
) -> NewPayload {
    let event_context = mail.context.is_none().then(|| event_context.to_owned());
    NewPayload::LaterMail(Box::new(move || {
        compose(mail, event_context.as_deref().unwrap_or("{}"), &templates)
    }))
}

/// A mail as the outbox keeps it: with its template rendered. `event_context` is the
/// template's context when the mail names none. The tenant's sender and reply address
/// are not filled in here but when it is sent, so that changing them mends the queue.
pub(crate) fn compose(mail: Mail, event_context: &str, templates: &Templates) -> ComposedMail {
    // Modules' mail contexts were checked to be JSON objects; anything else is kept as
    // null and renders as an empty context.
    let own_context = mail
        .context
        .and_then(|text| RawValue::from_string(text).ok());
    let mut subject = mail.subject;
    let mut body = mail.body;
    let mut render_error = None;
    if let Some(template) = mail.template.as_ref().filter(|name| templates.has(name)) {
        let context = own_context.as_deref().map_or(event_context, RawValue::get);
        match templates.render(template, context) {
            None => {}
            Some(Ok(rendered)) => {
                if !rendered.subject.is_empty() {
                    subject = rendered.subject;
                }
                if !rendered.body.is_empty() {
                    body = rendered.body;
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
    ComposedMail {
        from: mail.from,
        reply_to: mail.reply_to,
        to: mail.to,
        cc: mail.cc,
        bcc: mail.bcc,
        subject,
        body,
        template: mail.template,
        context: own_context,
        render_error,
    }
}

/// What rendering a queued mail again did ([`recompose`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recomposed {
    /// Its template rendered: the subject and body are the template's now (where it
    /// rendered them non-empty).
    Rendered,
    /// Its template did not render (why): the mail keeps its subject and body, and
    /// `render_error` says why.
    Failed(String),
    /// It names no template, or one the tenant has no longer: unchanged.
    NoTemplate,
}

/// Renders a queued mail again with `templates` (the tenant's now), as [`compose`] did
/// when it was queued: with its own context, else `event_context` (its event's, `None`
/// when the event is no longer in the ledger). The mail's own fallback subject and body
/// are not kept once a template rendered, so a failure now keeps what it has.
pub(crate) fn recompose(
    mail: &mut ComposedMail,
    event_context: Option<&str>,
    templates: &Templates,
) -> Recomposed {
    let Some(template) = mail.template.clone().filter(|name| templates.has(name)) else {
        return Recomposed::NoTemplate;
    };
    let context = match (&mail.context, event_context) {
        (Some(own), _) => own.get().to_owned(),
        (None, Some(event)) => event.to_owned(),
        (None, None) => {
            let why = "its event is no longer in the ledger, so there is no context to render \
                       its template with"
                .to_owned();
            mail.render_error = Some(why.clone());
            return Recomposed::Failed(why);
        }
    };
    match templates.render(&template, &context) {
        Some(Ok(rendered)) => {
            if !rendered.subject.is_empty() {
                mail.subject = rendered.subject;
            }
            if !rendered.body.is_empty() {
                mail.body = rendered.body;
            }
            mail.render_error = None;
            Recomposed::Rendered
        }
        Some(Err(why)) => {
            mail.render_error = Some(why.clone());
            Recomposed::Failed(why)
        }
        None => Recomposed::NoTemplate,
    }
}

/// The subject and body the template `source` of `group` renders for `context`, or why
/// it does not render (a limit it hit is named with its value).
pub(crate) fn preview(
    engine: &WasmEngine,
    group: &str,
    source: String,
    context: &Value,
) -> Result<Rendered, Error> {
    let does_not_render = |error| Error::TemplateDoesNotRender {
        group: group.to_owned(),
        error,
    };
    let templates =
        Templates::new(engine, [(group.to_owned(), source)]).map_err(|error| match error {
            RenderError::Template(why) => Error::InvalidTemplate {
                group: group.to_owned(),
                why,
            },
            error => does_not_render(error),
        })?;
    match templates.try_render(group, &context.to_string()) {
        Some(Ok(rendered)) => Ok(rendered),
        Some(Err(error)) => Err(does_not_render(error)),
        None => Err(Error::UnknownTemplate(group.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::MailSettings;

    /// What [`compose`] writes, with the tenant's `settings` filled in as when it is
    /// sent, as JSON.
    fn composed(
        mail: &Mail,
        event_context: &str,
        settings: &MailSettings,
        templates: &Templates,
    ) -> Value {
        let composed = compose(mail.clone(), event_context, templates).with_defaults(settings);
        serde_json::to_value(composed).unwrap()
    }

    fn templates(source: &str) -> Templates {
        let engine = WasmEngine::new(None).unwrap();
        Templates::new(&engine, [("hello".to_owned(), source.to_owned())]).unwrap()
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
    fn the_outbox_keeps_only_the_mails_own_sender() {
        let kept = compose(mail(), "{}", &templates("x"));
        assert_eq!((kept.from, kept.reply_to), (None, None));
        let own = Mail {
            from: Some("me@example.com".to_owned()),
            ..mail()
        };
        assert_eq!(
            compose(own, "{}", &templates("x")).from.as_deref(),
            Some("me@example.com")
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
    fn a_template_that_hits_a_limit_falls_back_and_says_which() {
        let data = composed(
            &mail(),
            "{}",
            &MailSettings::default(),
            &templates("{{ [[[1]*1000]*1000]*1000 }}"),
        );
        assert_eq!(data["subject"], "Fallback subject");
        assert_eq!(data["body"], "Fallback body");
        let why = data["render_error"].as_str().unwrap();
        assert!(why.contains("output limit of 1 MiB"), "{why}");
    }

    #[test]
    fn preview_names_the_limit_a_template_hits() {
        let engine = WasmEngine::new(None).unwrap();
        let bomb = r#"{{ (["x"*10000000]*400)|join|length }}"#.to_owned();
        let error = preview(&engine, "g", bomb, &serde_json::json!({})).unwrap_err();
        assert!(
            matches!(
                error,
                Error::TemplateDoesNotRender {
                    error: RenderError::Memory { .. },
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with(
                "the template for `g` does not render: rendering needed more than its \
                 memory limit of 65 MiB"
            ),
            "{error}"
        );
        let broken = preview(&engine, "g", "{% if %}".to_owned(), &serde_json::json!({}));
        assert!(
            matches!(broken, Err(Error::InvalidTemplate { .. })),
            "{broken:?}"
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

    #[test]
    fn a_queued_mail_is_rendered_again_with_the_templates_of_now() {
        // Queued while its template did not render: its own subject and body.
        let mut queued = compose(mail(), r#"{"name": "Ada"}"#, &templates("{{ 1 // 0 }}"));
        assert!(queued.render_error.is_some());
        let mended = templates("Hi {{ name }}\n\nWelcome.");
        assert_eq!(
            recompose(&mut queued, Some(r#"{"name": "Ada"}"#), &mended),
            Recomposed::Rendered
        );
        assert_eq!(
            (queued.subject.as_str(), queued.body.as_str()),
            ("Hi Ada", "Welcome.")
        );
        assert_eq!(queued.render_error, None);
        // A template that fails now keeps what the mail has, and says why.
        let failed = recompose(&mut queued, Some("{}"), &templates("{{ 1 // 0 }}"));
        assert!(matches!(failed, Recomposed::Failed(_)), "{failed:?}");
        assert_eq!(queued.subject, "Hi Ada");
        assert!(queued.render_error.is_some());
        // Without its event's context there is nothing to render with.
        assert!(matches!(
            recompose(&mut queued, None, &mended),
            Recomposed::Failed(_)
        ));
        // No template of its group (any longer), or none named: unchanged.
        let before = queued.clone();
        let other = Templates::new(
            &WasmEngine::new(None).unwrap(),
            [("other".to_owned(), "x".to_owned())],
        )
        .unwrap();
        assert_eq!(
            recompose(&mut queued, Some("{}"), &other),
            Recomposed::NoTemplate
        );
        assert_eq!(queued, before);
        let mut plain = compose(
            Mail {
                template: None,
                ..mail()
            },
            "{}",
            &mended,
        );
        assert_eq!(
            recompose(&mut plain, Some("{}"), &mended),
            Recomposed::NoTemplate
        );
    }
}
