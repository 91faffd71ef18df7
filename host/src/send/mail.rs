//! Sending one outbox mail: the RFC 5322 message and the transports that carry it.
//!
//! A crash between sending and marking sent (see `crate::send`) sends a mail again
//! with the same Message-ID (`<spark.TENANT.ID@DOMAIN>`, from the outbox id), so the
//! receiving side can recognise the repeat.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::Failure;
use crate::error::Error;
use crate::outbox::{ComposedMail, OutboxKind};
use crate::settings::MailSettings;
use crate::transport::{Transport, file_dir, write_file};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport as _};

/// A way to send mails, built once per `outbox send`, with the tenant's sender and
/// reply address of that moment for the mails that name none.
pub(crate) enum MailSender {
    File {
        dir: PathBuf,
        defaults: MailSettings,
    },
    Smtp {
        transport: SmtpTransport,
        defaults: MailSettings,
    },
    Stdout {
        defaults: MailSettings,
    },
}

impl MailSender {
    /// A sender keeping up to `connections` SMTP connections open for reuse.
    pub(crate) fn new(
        transport: &Transport,
        connections: usize,
        defaults: MailSettings,
    ) -> Result<Self, Error> {
        transport.check_carries(OutboxKind::Mail)?;
        Ok(match transport {
            Transport::File(dir) => MailSender::File {
                dir: file_dir(dir)?,
                defaults,
            },
            Transport::Stdout => MailSender::Stdout { defaults },
            Transport::Smtp {
                host,
                port,
                implicit_tls,
            } => MailSender::Smtp {
                transport: smtp(host, *port, *implicit_tls, connections)?,
                defaults,
            },
            Transport::Http(_) => unreachable!("refused by check_carries"),
        })
    }

    /// Sends the outbox mail `id` of `tenant`; the failure says why not, and whose
    /// fault it is.
    pub(crate) fn send(&self, tenant: &str, id: u64, mail: &ComposedMail) -> Result<(), Failure> {
        let defaults = match self {
            MailSender::File { defaults, .. }
            | MailSender::Smtp { defaults, .. }
            | MailSender::Stdout { defaults } => defaults,
        };
        let message = message(tenant, id, &mail.clone().with_defaults(defaults))?;
        match self {
            MailSender::File { dir, .. } => {
                write_file(dir, &format!("{id}.eml"), &message.formatted()).map_err(Failure::route)
            }
            MailSender::Stdout { .. } => {
                let mut out = std::io::stdout().lock();
                out.write_all(&message.formatted())
                    .and_then(|()| writeln!(out, "\n"))
                    .map_err(|error| Failure::route(format!("cannot write to stdout: {error}")))
            }
            MailSender::Smtp { transport, .. } => {
                transport.send(&message).map(drop).map_err(smtp_failure)
            }
        }
    }
}

/// An SMTP error, with its causes, as the item's fault when the server refused this
/// very message for good: a permanent (5xx) reply whose enhanced status code (RFC 3463)
/// is about the addressee (5.1.x: no such mailbox, a bad address; 5.2.x: a mailbox
/// full or disabled), the message's size (5.3.4) or its content (5.6.x), or, without an
/// enhanced code, a reply that names the address (501, 553). Anything else (a policy
/// refusal such as 5.7.x, authentication, a server that cannot be reached, any 4xx)
/// is the route's: every mail there would meet it, so the mails stay pending.
fn smtp_failure(error: lettre::transport::smtp::Error) -> Failure {
    let mut why = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        why.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    let code = error.status().map(u16::from);
    let item_fault = error.is_permanent()
        && match enhanced_status(&why) {
            Some((class, subject, detail)) => {
                class == 5 && (matches!(subject, 1 | 2 | 6) || (subject, detail) == (3, 4))
            }
            None => matches!(code, Some(501 | 553)),
        };
    if item_fault {
        Failure::item(why)
    } else {
        Failure::route(why)
    }
}

/// The first enhanced status code (`5.1.1`) in a server's reply text.
fn enhanced_status(text: &str) -> Option<(u16, u16, u16)> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .find_map(|word| {
            let mut parts = word.split('.');
            let class = parts
                .next()?
                .parse()
                .ok()
                .filter(|class| matches!(class, 2 | 4 | 5))?;
            let subject = parts.next()?.parse().ok()?;
            let detail = parts.next()?.parse().ok()?;
            parts.next().is_none().then_some((class, subject, detail))
        })
}

/// The environment variable naming a PEM file with a CA certificate to trust for SMTP
/// over TLS, besides the built-in roots.
const CA_FILE_VARIABLE: &str = "SPARK_SMTP_CA_FILE";

fn smtp(
    host: &str,
    port: u16,
    implicit_tls: bool,
    connections: usize,
) -> Result<SmtpTransport, Error> {
    let invalid = |why: String| Error::InvalidTransport {
        transport: format!("smtp://{host}:{port}"),
        why,
    };
    let parameters = || -> Result<TlsParameters, Error> {
        let mut builder = TlsParameters::builder(host.to_owned());
        // A relay whose certificate a private CA signed: trusted besides the usual roots.
        if let Some(path) = std::env::var_os(CA_FILE_VARIABLE) {
            let path = PathBuf::from(path);
            let pem = std::fs::read(&path).map_err(|error| {
                invalid(format!(
                    "{CA_FILE_VARIABLE}: cannot read `{}`: {error}",
                    path.display()
                ))
            })?;
            // lettre takes any text as PEM and fails only at the handshake, item after
            // item; a file that holds no certificate is refused here, before any.
            let not_pem = |why: String| {
                invalid(format!(
                    "{CA_FILE_VARIABLE}: `{}` is not a PEM certificate: {why}",
                    path.display()
                ))
            };
            if !pem
                .windows(27)
                .any(|window| window == b"-----BEGIN CERTIFICATE-----")
            {
                return Err(not_pem("it has no BEGIN CERTIFICATE line".to_owned()));
            }
            let certificate =
                Certificate::from_pem(&pem).map_err(|error| not_pem(error.to_string()))?;
            builder = builder.add_root_certificate(certificate);
        }
        builder
            .build()
            .map_err(|error| invalid(format!("TLS: {error}")))
    };
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
        .timeout(Some(Duration::from_secs(30)))
        // A connection is reused for the next mail: no new handshake, TLS or login.
        .pool_config(PoolConfig::new().max_size(u32::try_from(connections).unwrap_or(u32::MAX)));
    if let Ok(username) = std::env::var("SPARK_SMTP_USERNAME") {
        let password = std::env::var("SPARK_SMTP_PASSWORD").unwrap_or_default();
        builder = builder.credentials(Credentials::new(username, password));
    }
    Ok(builder.build())
}

/// The RFC 5322 message of outbox mail `id`. A mail without a sender waits for one
/// (the tenant's settings mend it); one that cannot be made (an address that can never
/// be valid) is the item's fault.
fn message(tenant: &str, id: u64, mail: &ComposedMail) -> Result<Message, Failure> {
    let mailbox = |address: &str| -> Result<Mailbox, Failure> {
        address
            .parse()
            .map_err(|error| Failure::item(format!("`{address}` is not a mail address: {error}")))
    };
    let from = mailbox(mail.from.as_deref().ok_or_else(|| {
        Failure::route(
            "it has no sender; set `from` under [mails] in the tenant's manifest".to_owned(),
        )
    })?)?;
    let message_id = format!("<spark.{tenant}.{id}@{}>", from.email.domain());
    let mut builder = Message::builder()
        .message_id(Some(message_id))
        .from(from)
        .subject(&mail.subject);
    for address in &mail.to {
        builder = builder.to(mailbox(address)?);
    }
    for address in &mail.cc {
        builder = builder.cc(mailbox(address)?);
    }
    for address in &mail.bcc {
        builder = builder.bcc(mailbox(address)?);
    }
    if let Some(address) = &mail.reply_to {
        builder = builder.reply_to(mailbox(address)?);
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|error| Failure::item(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(data: serde_json::Value) -> ComposedMail {
        serde_json::from_value(data).unwrap()
    }

    #[test]
    fn messages_carry_a_message_id_from_the_outbox_id() {
        let message = message(
            "acme",
            42,
            &mail(serde_json::json!({
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
    fn enhanced_status_codes_are_found_in_a_reply() {
        assert_eq!(
            enhanced_status("permanent error (550): 5.1.1 no such user here"),
            Some((5, 1, 1))
        );
        assert_eq!(
            enhanced_status("permanent error (550): 5.7.1 the test server refuses everyone"),
            Some((5, 7, 1))
        );
        assert_eq!(
            enhanced_status("permanent error (553): mailbox name not allowed"),
            None
        );
        assert_eq!(enhanced_status("version 1.2.3.4 of the server"), None);
    }

    #[test]
    fn a_mail_without_sender_or_with_a_bad_address_is_not_sent() {
        let no_sender = message(
            "t",
            1,
            &mail(serde_json::json!({ "to": ["a@example.com"] })),
        )
        .unwrap_err();
        assert!(no_sender.why.contains("no sender"), "{no_sender:?}");
        assert!(!no_sender.permanent, "setting a sender mends it");
        let bad = message(
            "t",
            1,
            &mail(serde_json::json!({ "from": "t@example.com", "to": ["not an address"] })),
        )
        .unwrap_err();
        assert!(
            bad.why.contains("`not an address` is not a mail address"),
            "{bad:?}"
        );
        assert!(bad.permanent, "no setting mends it");
    }
}
