//! The outbox as data: what a handler's mail and output effects become once committed,
//! and how far sending each has come. Sending them is `crate::send`'s job.
//!
//! An item is stored (and printed by `outbox list --json`) as `kind` and `data`: a
//! composed mail, or an output's channel and payload. [`OutboxPayload`] is that pair as
//! one type, so the two cannot disagree, and every reader gets a typed value.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::settings::MailSettings;

/// What an outbox item is: its payload's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    Mail,
    Output,
}

/// Whether an outbox item has gone out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Waiting to be sent (again, after a failure its transport may get over).
    #[default]
    Pending,
    Sent,
    /// Set aside: it failed in a way that sending it again will not mend (an address
    /// that can never be valid, a receiver's permanent refusal). `outbox send` passes
    /// it by; `outbox retry` makes it pending again.
    Failed,
}

/// An effect waiting for a transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredItem")]
pub struct OutboxItem {
    /// Stable and unique within the tenant, increasing in the order items were added.
    pub id: u64,
    /// The key of the event whose handler returned it.
    pub event: String,
    /// The name of the module whose handler returned it.
    pub handler: String,
    /// What goes out: `kind` and `data` when stored.
    #[serde(flatten)]
    pub payload: OutboxPayload,
    pub created_at_ms: i64,
    /// Pending until a transport sent it.
    pub status: OutboxStatus,
    /// Sending attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed, while it is pending.
    pub error: Option<String>,
    /// When it was sent (wall-clock unix ms).
    pub sent_at_ms: Option<i64>,
}

impl OutboxItem {
    /// A new item, never tried.
    pub fn new(
        id: u64,
        event: String,
        handler: String,
        payload: OutboxPayload,
        created_at_ms: i64,
    ) -> Self {
        OutboxItem {
            id,
            event,
            handler,
            payload,
            created_at_ms,
            status: OutboxStatus::Pending,
            attempts: 0,
            error: None,
            sent_at_ms: None,
        }
    }

    pub fn kind(&self) -> OutboxKind {
        self.payload.kind()
    }
}

/// What an outbox item carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "lowercase")]
pub enum OutboxPayload {
    /// A mail, composed when its handler's effects were committed.
    Mail(ComposedMail),
    /// An output for the operator's route of its channel.
    Output(OutputPayload),
}

impl OutboxPayload {
    pub fn kind(&self) -> OutboxKind {
        match self {
            OutboxPayload::Mail(_) => OutboxKind::Mail,
            OutboxPayload::Output(_) => OutboxKind::Output,
        }
    }

    /// The mail, if it is one.
    pub fn as_mail(&self) -> Option<&ComposedMail> {
        match self {
            OutboxPayload::Mail(mail) => Some(mail),
            OutboxPayload::Output(_) => None,
        }
    }

    /// The output, if it is one.
    pub fn as_output(&self) -> Option<&OutputPayload> {
        match self {
            OutboxPayload::Mail(_) => None,
            OutboxPayload::Output(output) => Some(output),
        }
    }

    /// The payload of an output effect: JSON text stays structured in listings and is
    /// sent as JSON; anything else is text.
    pub fn from_output(channel: &str, payload: &str) -> Self {
        OutboxPayload::Output(OutputPayload {
            channel: channel.to_owned(),
            payload: serde_json::from_str(payload)
                .unwrap_or_else(|_| Value::String(payload.to_owned())),
        })
    }
}

/// A mail as the outbox keeps it: the module's mail with its template rendered. `from`
/// and `reply_to` are the mail's own; the tenant's defaults fill them in when it is sent
/// ([`ComposedMail::with_defaults`]). Every field has a default, so items stored by any
/// earlier version read (those kept the defaults of their day in `from`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ComposedMail {
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub body: String,
    /// The template it was rendered with, if it named one.
    pub template: Option<String>,
    /// The mail's own context (a JSON object), kept as the text it is.
    pub context: Option<Box<RawValue>>,
    /// Why its template did not render (the mail then has its own subject and body).
    pub render_error: Option<String>,
}

impl ComposedMail {
    /// The mail as it is sent: its own sender and reply address, or else the tenant's
    /// `defaults` as they are now. Taken when it is sent, not when it was queued, so
    /// that setting a sender mends the mails already waiting.
    pub fn with_defaults(mut self, defaults: &MailSettings) -> Self {
        self.from = self.from.or_else(|| defaults.from.clone());
        self.reply_to = self.reply_to.or_else(|| defaults.reply_to.clone());
        self
    }
}

impl PartialEq for ComposedMail {
    fn eq(&self, other: &Self) -> bool {
        let context = |mail: &Self| mail.context.as_ref().map(|text| text.get().to_owned());
        (
            &self.from,
            &self.reply_to,
            &self.to,
            &self.cc,
            &self.bcc,
            &self.subject,
            &self.body,
            &self.template,
            &self.render_error,
        ) == (
            &other.from,
            &other.reply_to,
            &other.to,
            &other.cc,
            &other.bcc,
            &other.subject,
            &other.body,
            &other.template,
            &other.render_error,
        ) && context(self) == context(other)
    }
}

/// An output as the outbox keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputPayload {
    /// The channel the handler named; the operator routes each channel.
    pub channel: String,
    /// JSON if the handler's payload was JSON text, else a string.
    pub payload: Value,
}

/// An item as stored: `kind` and `data` side by side, the sending state defaulted for
/// items never tried. Read in two steps (the data as raw text, then by its kind) so
/// that the mail's context stays the text it is.
#[derive(Deserialize)]
struct StoredItem {
    id: u64,
    event: String,
    handler: String,
    kind: OutboxKind,
    data: Box<RawValue>,
    created_at_ms: i64,
    #[serde(default)]
    status: OutboxStatus,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    sent_at_ms: Option<i64>,
}

impl TryFrom<StoredItem> for OutboxItem {
    type Error = serde_json::Error;

    fn try_from(stored: StoredItem) -> Result<Self, Self::Error> {
        let data = stored.data.get();
        let payload = match stored.kind {
            OutboxKind::Mail => OutboxPayload::Mail(serde_json::from_str(data)?),
            OutboxKind::Output => OutboxPayload::Output(serde_json::from_str(data)?),
        };
        Ok(OutboxItem {
            id: stored.id,
            event: stored.event,
            handler: stored.handler,
            payload,
            created_at_ms: stored.created_at_ms,
            status: stored.status,
            attempts: stored.attempts,
            error: stored.error,
            sent_at_ms: stored.sent_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_read_and_write_kind_and_data_side_by_side() {
        let stored = r#"{"id":7,"event":"e","handler":"h","kind":"mail",
            "data":{"from":null,"reply_to":null,"to":["a@example.com"],"cc":[],"bcc":[],
                    "subject":"Hi","body":"Body","template":"t",
                    "context":{"name": "Ada"},"render_error":null},
            "created_at_ms":5}"#;
        let item: OutboxItem = serde_json::from_str(stored).unwrap();
        let OutboxPayload::Mail(mail) = &item.payload else {
            panic!("a mail: {item:?}");
        };
        assert_eq!(mail.to, ["a@example.com"]);
        assert_eq!(mail.context.as_ref().unwrap().get(), r#"{"name": "Ada"}"#);
        assert_eq!(item.status, OutboxStatus::Pending);
        let written: Value = serde_json::to_value(&item).unwrap();
        assert_eq!(written["kind"], "mail");
        assert_eq!(written["data"]["subject"], "Hi");
        assert_eq!(written["data"]["context"]["name"], "Ada");
        // Through text, as the store keeps it, the context stays the text it was.
        let again: OutboxItem =
            serde_json::from_str(&serde_json::to_string(&item).unwrap()).unwrap();
        assert_eq!(again, item);
    }

    #[test]
    fn outputs_keep_json_structured_and_anything_else_as_text() {
        let OutboxPayload::Output(json) = OutboxPayload::from_output("seen", r#"{"n": 1}"#) else {
            unreachable!()
        };
        assert_eq!(json.payload["n"], 1);
        let OutboxPayload::Output(text) = OutboxPayload::from_output("seen", "n = 1") else {
            unreachable!()
        };
        assert_eq!(text.payload, "n = 1");
        let item = OutboxItem::new(
            1,
            "e".into(),
            "h".into(),
            OutboxPayload::from_output("c", "1"),
            0,
        );
        let written = serde_json::to_string(&item).unwrap();
        assert!(
            written.contains(r#""kind":"output","data":{"channel":"c","payload":1}"#),
            "{written}"
        );
        assert_eq!(serde_json::from_str::<OutboxItem>(&written).unwrap(), item);
    }

    #[test]
    fn a_kind_and_data_that_disagree_do_not_read() {
        let stored = r#"{"id":1,"event":"e","handler":"h","kind":"mail",
            "data":{"to":"not a list"},"created_at_ms":0}"#;
        assert!(serde_json::from_str::<OutboxItem>(stored).is_err());
    }
}
