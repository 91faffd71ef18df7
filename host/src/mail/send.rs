//! Sending the outbox's mails: the transports, and the bookkeeping that makes each mail
//! go out once and never vanish.
//!
//! Each pending mail is sent, then marked sent. A failure leaves it pending, with its
//! error and attempt count, for the next `spark outbox send`. A crash between sending
//! and marking sends it again with the same Message-ID (`<spark.TENANT.ID@DOMAIN>`, from
//! the outbox id), so the receiving side can recognise the repeat.

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport as _};
use serde_json::Value;

use crate::error::Error;
use crate::store::{OutboxItem, OutboxKind, OutboxStatus};
use crate::tenant::Tenant;
use crate::time::wall_clock_ms;

/// Where `spark outbox send` sends mails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `file:DIR`: one RFC 5322 message per mail, `DIR/ID.eml`.
    File(PathBuf),
    /// `smtp://HOST:PORT` (STARTTLS when the server offers it, or as
    /// `SPARK_SMTP_TLS` says) or `smtps://HOST:PORT` (TLS from the start).
    /// Credentials come from `SPARK_SMTP_USERNAME` and `SPARK_SMTP_PASSWORD`, never
    /// from the command line, where other users could see them.
    Smtp {
        host: String,
        port: u16,
        implicit_tls: bool,
    },
    /// `stdout`: each message printed, for a look or a pipe.
    Stdout,
}

impl FromStr for Transport {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::InvalidTransport {
            transport: text.to_owned(),
            why: why.to_owned(),
        };
        if text == "stdout" {
            return Ok(Transport::Stdout);
        }
        if let Some(dir) = text.strip_prefix("file:") {
            if dir.is_empty() {
                return Err(invalid("name a directory: file:DIR"));
            }
            return Ok(Transport::File(PathBuf::from(dir)));
        }
        let (rest, implicit_tls) = if let Some(rest) = text.strip_prefix("smtp://") {
            (rest, false)
        } else if let Some(rest) = text.strip_prefix("smtps://") {
            (rest, true)
        } else {
            return Err(invalid(
                "use file:DIR, smtp://HOST:PORT, smtps://HOST:PORT or stdout",
            ));
        };
        if rest.contains('@') {
            return Err(invalid(
                "credentials do not go on the command line; set SPARK_SMTP_USERNAME and SPARK_SMTP_PASSWORD",
            ));
        }
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or_else(|| invalid("give the port: smtp://HOST:PORT"))?;
        let port = port
            .parse()
            .map_err(|_| invalid("the port is not a number"))?;
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        Ok(Transport::Smtp {
            host: host.to_owned(),
            port,
            implicit_tls,
        })
    }
}

/// What `send_outbox` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SendReport {
    /// Mails sent now.
    pub sent: u64,
    /// Mails that failed now; they stay pending.
    pub failed: u64,
    /// (outbox id, why) for each failure; not part of `--json`.
    #[serde(skip)]
    pub problems: Vec<(u64, String)>,
}

/// A connected way to send, built once per `send_outbox`.
enum Sender {
    File(PathBuf),
    Smtp(SmtpTransport),
    Stdout,
}

impl Sender {
    fn new(transport: &Transport) -> Result<Self, Error> {
        Ok(match transport {
            Transport::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    what: "cannot create the mail directory",
                    path: dir.clone(),
                    error: source,
                })?;
                Sender::File(dir.clone())
            }
            Transport::Stdout => Sender::Stdout,
            Transport::Smtp {
                host,
                port,
                implicit_tls,
            } => Sender::Smtp(smtp(host, *port, *implicit_tls)?),
        })
    }

    fn send(&self, id: u64, message: &Message) -> Result<(), String> {
        match self {
            Sender::File(dir) => {
                let path = dir.join(format!("{id}.eml"));
                let partial = dir.join(format!(".{id}.eml.partial"));
                std::fs::write(&partial, message.formatted())
                    .and_then(|()| std::fs::rename(&partial, &path))
                    .map_err(|error| format!("cannot write `{}`: {error}", path.display()))
            }
            Sender::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&message.formatted())
                    .and_then(|()| writeln!(out, "\n"))
                    .map_err(|error| format!("cannot write to stdout: {error}"))
            }
            Sender::Smtp(transport) => transport.send(message).map(drop).map_err(|error| {
                let mut why = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    why.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                why
            }),
        }
    }
}

fn smtp(host: &str, port: u16, implicit_tls: bool) -> Result<SmtpTransport, Error> {
    let invalid = |why: String| Error::InvalidTransport {
        transport: format!("smtp://{host}:{port}"),
        why,
    };
    let parameters =
        || TlsParameters::new(host.to_owned()).map_err(|error| invalid(format!("TLS: {error}")));
    let tls = if implicit_tls {
        Tls::Wrapper(parameters()?)
    } else {
        match std::env::var("SPARK_SMTP_TLS").as_deref() {
            Ok("required") => Tls::Required(parameters()?),
            Ok("off") => Tls::None,
            Ok("opportunistic") | Err(_) => Tls::Opportunistic(parameters()?),
            Ok(other) => {
                return Err(invalid(format!(
                    "SPARK_SMTP_TLS is `{other}`; use required, opportunistic or off"
                )));
            }
        }
    };
    let mut builder = SmtpTransport::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)));
    if let Ok(username) = std::env::var("SPARK_SMTP_USERNAME") {
        let password = std::env::var("SPARK_SMTP_PASSWORD").unwrap_or_default();
        builder = builder.credentials(Credentials::new(username, password));
    }
    Ok(builder.build())
}

/// The RFC 5322 message of an outbox mail.
fn message(tenant: &str, item: &OutboxItem) -> Result<Message, String> {
    let data = &item.data;
    let text = |name: &str| data.get(name).and_then(Value::as_str);
    let mailbox = |address: &str| -> Result<Mailbox, String> {
        address
            .parse()
            .map_err(|error| format!("`{address}` is not a mail address: {error}"))
    };
    let list = |name: &str| -> Vec<&str> {
        data.get(name)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let from = mailbox(
        text("from")
            .ok_or("it has no sender; set `from` under [mails] in the tenant's manifest")?,
    )?;
    let message_id = format!("<spark.{tenant}.{}@{}>", item.id, from.email.domain());
    let mut builder = Message::builder()
        .message_id(Some(message_id))
        .from(from)
        .subject(text("subject").unwrap_or_default());
    for address in list("to") {
        builder = builder.to(mailbox(address)?);
    }
    for address in list("cc") {
        builder = builder.cc(mailbox(address)?);
    }
    for address in list("bcc") {
        builder = builder.bcc(mailbox(address)?);
    }
    if let Some(address) = text("reply_to") {
        builder = builder.reply_to(mailbox(address)?);
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(text("body").unwrap_or_default().to_owned())
        .map_err(|error| error.to_string())
}

impl Tenant {
    /// Sends every pending mail of the outbox with `transport`, marking each sent
    /// after it went out, or recording its error (it stays pending). Outputs are kept
    /// for operators; no transport sends them yet.
    pub fn send_outbox(&mut self, transport: &Transport) -> Result<SendReport, Error> {
        let sender = Sender::new(transport)?;
        let pending: Vec<OutboxItem> = self
            .store
            .outbox()
            .filter(|item| {
                item.as_ref().map_or(true, |item| {
                    item.kind == OutboxKind::Mail && item.status == OutboxStatus::Pending
                })
            })
            .collect::<Result<_, _>>()?;
        let mut report = SendReport::default();
        for mut item in pending {
            let result =
                message(&self.name, &item).and_then(|message| sender.send(item.id, &message));
            item.attempts += 1;
            match result {
                Ok(()) => {
                    item.status = OutboxStatus::Sent;
                    item.error = None;
                    item.sent_at_ms = Some(wall_clock_ms());
                    report.sent += 1;
                }
                Err(why) => {
                    item.error = Some(why.clone());
                    report.failed += 1;
                    report.problems.push((item.id, why));
                }
            }
            // Marked at once: a crash after this line never sends the mail again.
            self.store.update_outbox(&item)?;
        }
        self.store.flush()?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_and_refuse_clearly() {
        assert_eq!("stdout".parse::<Transport>().unwrap(), Transport::Stdout);
        assert_eq!(
            "file:out/mails".parse::<Transport>().unwrap(),
            Transport::File("out/mails".into())
        );
        assert_eq!(
            "smtp://localhost:2525".parse::<Transport>().unwrap(),
            Transport::Smtp {
                host: "localhost".to_owned(),
                port: 2525,
                implicit_tls: false
            }
        );
        assert!(matches!(
            "smtps://mail.example.com:465".parse::<Transport>().unwrap(),
            Transport::Smtp {
                implicit_tls: true,
                ..
            }
        ));
        for (text, why) in [
            (
                "smtp://user:secret@host:25",
                "credentials do not go on the command line",
            ),
            ("smtp://host", "give the port"),
            ("smtp://host:port", "not a number"),
            ("file:", "name a directory"),
            ("carrier-pigeon", "use file:DIR"),
        ] {
            let error = text.parse::<Transport>().unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    fn item(data: Value) -> OutboxItem {
        OutboxItem {
            id: 42,
            event: "e".to_owned(),
            handler: "h".to_owned(),
            kind: OutboxKind::Mail,
            data,
            created_at_ms: 0,
            status: OutboxStatus::Pending,
            attempts: 0,
            error: None,
            sent_at_ms: None,
        }
    }

    #[test]
    fn messages_carry_a_message_id_from_the_outbox_id() {
        let message = message(
            "acme",
            &item(serde_json::json!({
                "from": "Team <team@example.com>", "to": ["ada@example.com"], "cc": [],
                "bcc": ["audit@example.com"], "reply_to": "help@example.com",
                "subject": "Grüße", "body": "Line one\nLine two",
            })),
        )
        .unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("Message-ID: <spark.acme.42@example.com>"),
            "{text}"
        );
        assert!(text.contains("To: ada@example.com"), "{text}");
        assert!(text.contains("Reply-To: help@example.com"), "{text}");
        assert!(
            !text.contains("audit@example.com"),
            "Bcc is not a header: {text}"
        );
        let envelope: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(envelope, ["ada@example.com", "audit@example.com"]);
    }

    #[test]
    fn a_mail_without_sender_or_with_a_bad_address_is_not_sent() {
        let no_sender =
            message("t", &item(serde_json::json!({ "to": ["a@example.com"] }))).unwrap_err();
        assert!(no_sender.contains("no sender"), "{no_sender}");
        let bad = message(
            "t",
            &item(serde_json::json!({ "from": "t@example.com", "to": ["not an address"] })),
        )
        .unwrap_err();
        assert!(
            bad.contains("`not an address` is not a mail address"),
            "{bad}"
        );
    }
}
