use serde_json::Value;

use crate::Event;

/// What a handler asks the host to do. A handler acts only by returning effects; the
/// host commits them together with the event, so they happen once.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A new event, processed like one from a source (ledger, then handlers).
    Emit(Event),
    /// A mail, kept in the host's outbox until a transport sends it.
    Mail(Mail),
    /// A payload for an operator-defined channel, kept in the outbox.
    Output {
        /// The channel's name, e.g. `webhook`.
        channel: String,
        /// The payload, JSON by convention.
        payload: String,
    },
}

impl Effect {
    /// An output effect with a JSON payload.
    ///
    /// ```
    /// # use spark_guest::{Effect, json};
    /// let effect = Effect::output("audit", json!({ "seen": "challenge_created_1" }));
    /// ```
    pub fn output(channel: impl Into<String>, payload: Value) -> Self {
        Effect::Output {
            channel: channel.into(),
            payload: crate::json_text(&payload),
        }
    }
}

impl From<Event> for Effect {
    fn from(event: Event) -> Self {
        Effect::Emit(event)
    }
}

impl From<Mail> for Effect {
    fn from(mail: Mail) -> Self {
        Effect::Mail(mail)
    }
}

/// A mail, built step by step.
///
/// Give a literal subject and body, or a template name and its context (the host keeps
/// the templates of each tenant and renders them when the mail is sent; subject and
/// body then serve as the fallback).
///
/// ```
/// # use spark_guest::{Mail, json};
/// let mail = Mail::to("owner@example.com")
///     .subject("Your challenge ends soon")
///     .body("Two days left.")
///     .template("challenge_ends_2d")
///     .context(json!({ "title": "Run" }));
/// assert_eq!(mail.recipients(), ["owner@example.com"]);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mail {
    /// Recipient addresses.
    pub to: Vec<String>,
    /// The subject line (the fallback when a template renders one).
    pub subject: String,
    /// The plain-text body (the fallback when a template renders one).
    pub body: String,
    /// The tenant's template to render, by name (an event group).
    pub template: Option<String>,
    /// The template's variables, a JSON object; none: the event's context.
    pub context: Option<Value>,
}

impl Mail {
    /// A mail to one recipient.
    pub fn to(address: impl Into<String>) -> Self {
        Self {
            to: vec![address.into()],
            ..Self::default()
        }
    }

    /// Adds a recipient.
    pub fn and_to(mut self, address: impl Into<String>) -> Self {
        self.to.push(address.into());
        self
    }

    /// Sets the subject line.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Sets the plain-text body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Names the tenant's template to render this mail with.
    pub fn template(mut self, name: impl Into<String>) -> Self {
        self.template = Some(name.into());
        self
    }

    /// Sets the template's variables (a JSON object). Without it the template renders
    /// with the event's context.
    pub fn context(mut self, context: Value) -> Self {
        self.context = Some(context);
        self
    }

    /// The recipients so far.
    pub fn recipients(&self) -> &[String] {
        &self.to
    }
}
