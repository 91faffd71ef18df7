//! Delivering one outbox output (a handler's `output(channel, payload)`) to the
//! transport its channel is routed to.
//!
//! Over HTTP the body is the payload itself, so that a handler can speak a webhook's
//! own format; the output's id goes in the `Idempotency-Key` header
//! (`spark.TENANT.ID`), which a receiver can use to recognise an output delivered
//! again after a crash between delivering and marking it sent. To a file or stdout an
//! output goes as one JSON object that also names its id, tenant, channel, event and
//! handler, since nothing else there would.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::Error;
use crate::store::{OutboxItem, OutboxKind};
use crate::time::format_time;
use crate::transport::{Transport, file_dir, write_file};

/// How long one HTTP delivery may take in all, as long as an SMTP one.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a refusing response's body goes into the item's error.
const ERROR_BODY_BYTES: u64 = 512;

/// A way to deliver outputs, built once per `outbox send`.
pub(crate) enum OutputSender {
    File(PathBuf),
    Http { url: String, agent: ureq::Agent },
    Stdout,
}

impl OutputSender {
    /// A sender keeping up to `connections` HTTP connections open for reuse.
    pub(crate) fn new(transport: &Transport, connections: usize) -> Result<Self, Error> {
        transport.check_carries(OutboxKind::Output)?;
        Ok(match transport {
            Transport::File(dir) => OutputSender::File(file_dir(dir)?),
            Transport::Stdout => OutputSender::Stdout,
            Transport::Http(url) => OutputSender::Http {
                url: url.clone(),
                agent: ureq::Agent::config_builder()
                    .timeout_global(Some(HTTP_TIMEOUT))
                    // A redirect would turn the POST into a GET elsewhere: the
                    // receiver's address is the operator's to fix.
                    .max_redirects(0)
                    .max_idle_connections_per_host(connections)
                    .http_status_as_error(false)
                    .user_agent(concat!("spark/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .into(),
            },
            Transport::Smtp { .. } => unreachable!("refused by check_carries"),
        })
    }

    /// Delivers the outbox output `item` of `tenant`; the error says why not.
    pub(crate) fn send(&self, tenant: &str, item: &OutboxItem) -> Result<(), String> {
        match self {
            OutputSender::File(dir) => write_file(
                dir,
                &format!("{}.json", item.id),
                envelope(tenant, item).to_string().as_bytes(),
            ),
            OutputSender::Stdout => {
                writeln!(std::io::stdout().lock(), "{}", envelope(tenant, item))
                    .map_err(|error| format!("cannot write to stdout: {error}"))
            }
            OutputSender::Http { url, agent } => post(agent, url, tenant, item),
        }
    }
}

/// The output as a file or stdout holds it.
fn envelope(tenant: &str, item: &OutboxItem) -> Value {
    json!({
        "id": item.id,
        "tenant": tenant,
        "channel": item.data.get("channel"),
        "event": item.event,
        "handler": item.handler,
        "created_at": format_time(item.created_at_ms),
        "payload": item.data.get("payload"),
    })
}

/// The payload as it is sent over HTTP: a payload that is JSON (kept structured in the
/// outbox) as JSON, any other text as it is.
fn body(item: &OutboxItem) -> (String, &'static str) {
    match item.data.get("payload") {
        Some(Value::String(text)) => (text.clone(), "text/plain; charset=utf-8"),
        Some(payload) => (payload.to_string(), "application/json"),
        None => (String::new(), "text/plain; charset=utf-8"),
    }
}

fn post(agent: &ureq::Agent, url: &str, tenant: &str, item: &OutboxItem) -> Result<(), String> {
    let (body, content_type) = body(item);
    let mut response = agent
        .post(url)
        .header("Idempotency-Key", format!("spark.{tenant}.{}", item.id))
        .content_type(content_type)
        .send(body)
        .map_err(|error| format!("POST {url}: {error}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut said = String::new();
    // What the receiver said helps; all of it could be a whole error page.
    let _ = response
        .body_mut()
        .as_reader()
        .take(ERROR_BODY_BYTES)
        .read_to_string(&mut said);
    let said = said.trim();
    Err(if said.is_empty() {
        format!("POST {url}: {status}")
    } else {
        format!("POST {url}: {status}: {said}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutboxStatus;

    fn output(payload: Value) -> OutboxItem {
        OutboxItem {
            id: 7,
            event: "job_1".to_owned(),
            handler: "recorder".to_owned(),
            kind: OutboxKind::Output,
            data: json!({ "channel": "seen", "payload": payload }),
            created_at_ms: 0,
            status: OutboxStatus::Pending,
            attempts: 0,
            error: None,
            sent_at_ms: None,
        }
    }

    #[test]
    fn a_json_payload_goes_as_json_and_text_as_text() {
        assert_eq!(
            body(&output(json!({ "key": "job_1" }))),
            (r#"{"key":"job_1"}"#.to_owned(), "application/json")
        );
        assert_eq!(
            body(&output(json!("not json"))),
            ("not json".to_owned(), "text/plain; charset=utf-8")
        );
    }

    #[test]
    fn the_envelope_names_where_the_output_came_from() {
        let envelope = envelope("acme", &output(json!([1, 2])));
        assert_eq!(
            envelope,
            json!({
                "id": 7, "tenant": "acme", "channel": "seen", "event": "job_1",
                "handler": "recorder", "created_at": "1970-01-01T00:00:00Z",
                "payload": [1, 2],
            })
        );
    }

    #[test]
    fn smtp_does_not_carry_outputs() {
        let smtp: Transport = "smtp://localhost:25".parse().unwrap();
        let error = OutputSender::new(&smtp, 1).err().unwrap().to_string();
        assert!(error.contains("SMTP carries mails"), "{error}");
    }
}
