//! Sending one outbox output (a handler's `output(channel, payload)`) to the
//! transport its channel is routed to.
//!
//! Over HTTP the body is the payload itself, so that a handler can speak a webhook's
//! own format; the output's id goes in the `Idempotency-Key` header
//! (`spark.TENANT.ID`), which a receiver can use to recognise an output sent
//! again after a crash between sending and marking it sent. With a secret in
//! `SPARK_OUTPUT_SECRET`, each POST is signed (`Spark-Signature`, see [`signature`]),
//! so that a receiver can tell Spark's requests from anyone else's. To a file or stdout an
//! output goes as one JSON object that also names its id, tenant, channel, event and
//! handler, since nothing else there would.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::Failure;
use crate::error::Error;
use crate::outbox::{OutboxItem, OutboxKind, OutputPayload};
use crate::time::{format_time, wall_clock_ms};
use crate::transport::{Transport, file_dir, write_file};

/// How long sending one output over HTTP may take in all, as long as an SMTP one.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a refusing response's body goes into the item's error.
const ERROR_BODY_BYTES: u64 = 512;

/// A way to send outputs, built once per `outbox send`.
pub(crate) enum OutputSender {
    File(PathBuf),
    Http {
        url: String,
        agent: ureq::Agent,
        /// The key that signs each request, if the operator gave one.
        secret: Option<Vec<u8>>,
    },
    Stdout,
}

/// The environment variable whose value signs outputs sent over HTTP. From the
/// environment, like SMTP credentials: never in the manifest or on the command line.
pub const SECRET_VAR: &str = "SPARK_OUTPUT_SECRET";

impl OutputSender {
    /// A sender keeping up to `connections` HTTP connections open for reuse.
    pub(crate) fn new(transport: &Transport, connections: usize) -> Result<Self, Error> {
        transport.check_carries(OutboxKind::Output)?;
        Ok(match transport {
            Transport::File(dir) => OutputSender::File(file_dir(dir)?),
            Transport::Stdout => OutputSender::Stdout,
            Transport::Http(url) => OutputSender::Http {
                url: url.clone(),
                secret: secret(url)?,
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

    /// Sends `output`, the payload of the outbox item `item` of `tenant`; the error
    /// says why not.
    pub(crate) fn send(
        &self,
        tenant: &str,
        item: &OutboxItem,
        output: &OutputPayload,
    ) -> Result<(), Failure> {
        match self {
            OutputSender::File(dir) => write_file(
                dir,
                &format!("{}.json", item.id),
                envelope(tenant, item, output).to_string().as_bytes(),
            )
            .map_err(Failure::route),
            OutputSender::Stdout => writeln!(
                std::io::stdout().lock(),
                "{}",
                envelope(tenant, item, output)
            )
            .map_err(|error| Failure::route(format!("cannot write to stdout: {error}"))),
            OutputSender::Http { url, agent, secret } => {
                let idempotency_key = format!("spark.{tenant}.{}", item.id);
                post(agent, url, secret.as_deref(), &idempotency_key, output)
            }
        }
    }
}

/// The output as a file or stdout holds it.
fn envelope(tenant: &str, item: &OutboxItem, output: &OutputPayload) -> Value {
    json!({
        "id": item.id,
        "tenant": tenant,
        "channel": output.channel,
        "event": item.event,
        "handler": item.handler,
        "created_at": format_time(item.created_at_ms),
        "payload": output.payload,
    })
}

/// The payload as it is sent over HTTP: a payload that is JSON (kept structured in the
/// outbox) as JSON, any other text as it is.
fn body(output: &OutputPayload) -> (String, &'static str) {
    match &output.payload {
        Value::String(text) => (text.clone(), "text/plain; charset=utf-8"),
        payload => (payload.to_string(), "application/json"),
    }
}

/// The signing key from [`SECRET_VAR`], if set; an empty one is refused, since it
/// would sign with a key anyone can guess.
fn secret(url: &str) -> Result<Option<Vec<u8>>, Error> {
    match std::env::var_os(SECRET_VAR) {
        None => Ok(None),
        Some(secret) if secret.is_empty() => Err(Error::InvalidTransport {
            transport: url.to_owned(),
            why: format!("{SECRET_VAR} is set but empty"),
        }),
        Some(secret) => Ok(Some(secret.into_encoded_bytes())),
    }
}

/// The `Spark-Signature` header of a request: `t=TIMESTAMP,v1=HEX`, where HEX is the
/// HMAC-SHA256, keyed with the secret, of `TIMESTAMP.IDEMPOTENCY-KEY.BODY` (TIMESTAMP in
/// unix seconds). A receiver recomputes it, compares in constant time, and refuses an
/// old timestamp, so that a captured request cannot be replayed later.
pub fn signature(secret: &[u8], timestamp: i64, idempotency_key: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.{idempotency_key}.").as_bytes());
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    secret: Option<&[u8]>,
    idempotency_key: &str,
    output: &OutputPayload,
) -> Result<(), Failure> {
    let (body, content_type) = body(output);
    let mut request = agent.post(url).content_type(content_type);
    if let Some(secret) = secret {
        let now = wall_clock_ms() / 1000;
        request = request.header(
            "Spark-Signature",
            signature(secret, now, idempotency_key, &body),
        );
    }
    let mut response = request
        .header("Idempotency-Key", idempotency_key)
        .send(body)
        .map_err(|error| Failure::route(format!("POST {url}: {error}")))?;
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
    let why = if said.is_empty() {
        format!("POST {url}: {status}")
    } else {
        format!("POST {url}: {status}: {said}")
    };
    Err(if refuses_for_good(status.as_u16()) {
        Failure::item(why)
    } else {
        Failure::route(why)
    })
}

/// Whether a receiver's answer refuses this very output for good: it found the payload
/// malformed (400), in conflict (409), too large (413), of a type it does not take
/// (415) or invalid (422). Any other answer (a wrong address, 401 or 403 for a wrong
/// secret, 408, 429, any 5xx) is the route's: every output there would meet it, and
/// the operator can mend it.
fn refuses_for_good(status: u16) -> bool {
    matches!(status, 400 | 409 | 413 | 415 | 422)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::OutboxPayload;

    fn output(payload: Value) -> OutputPayload {
        OutputPayload {
            channel: "seen".to_owned(),
            payload,
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
        let output = output(json!([1, 2]));
        let item = OutboxItem::new(
            7,
            "job_1".to_owned(),
            "recorder".to_owned(),
            OutboxPayload::Output(output.clone()),
            0,
        );
        let envelope = envelope("acme", &item, &output);
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
    fn the_signature_is_the_hmac_of_time_key_and_body() {
        // Computed independently: Python's hmac.new(b"whsec", MESSAGE, hashlib.sha256).
        assert_eq!(
            signature(
                b"whsec",
                1_700_000_000,
                "spark.acme.7",
                r#"{"key":"job_1"}"#
            ),
            "t=1700000000,v1=d215b7d2df8ba054a76cdf279b08c6249285830e580849c2f8e7da2aeaf04c24"
        );
        let other_body = signature(b"whsec", 1_700_000_000, "spark.acme.7", "{}");
        let other_key = signature(
            b"whsec",
            1_700_000_000,
            "spark.acme.8",
            r#"{"key":"job_1"}"#,
        );
        assert_ne!(other_body, other_key);
    }

    #[test]
    fn smtp_does_not_carry_outputs() {
        let smtp: Transport = "smtp://localhost:25".parse().unwrap();
        let error = OutputSender::new(&smtp, 1).err().unwrap().to_string();
        assert!(error.contains("SMTP carries mails"), "{error}");
    }
}
