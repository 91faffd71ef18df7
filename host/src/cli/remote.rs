//! The command line against a server: `spark --server URL --token TOKEN <command>`
//! runs a command through the HTTP API (`serve/api.rs`) instead of on a data dir, so
//! that an operator keeps one tool while `spark serve` holds the data.
//!
//! Decisions:
//!
//! - Every answer is an answer: the agent does not treat 4xx and 5xx as transport
//!   errors. A failed request's `{"error": KIND, "message": TEXT}` becomes the
//!   command's error, `TEXT (HTTP STATUS KIND)`, and the command exits with status 2
//!   (nothing was done), as the same failure does on a data dir.
//! - A request is tried up to [`ATTEMPTS`] times, waiting longer each time (a quarter
//!   of a second, doubling): when the connection could not be made (the server is
//!   restarting, say), which is safe for every request; when the connection broke
//!   after the request went out, only for requests that change nothing twice (GET, PUT,
//!   DELETE, and a POST with an `Idempotency-Key`, which `ingest` always sends); and on
//!   429 and 503 (nothing was done; their `Retry-After` is waited, at most
//!   [`MAX_WAIT`]). A 408 is tried again only with an `Idempotency-Key`: the work it
//!   queued happens anyway, and the key makes the second request get its answer.
//! - Bodies larger than 64 KiB are sent with `Expect: 100-continue`, so that a refused
//!   request (a bad token, a body too large) is answered before the body is uploaded.
//! - Lists are read whole, a page of [`PAGE`] items at a time, following `next`.
//! - Paths are built from percent-encoded segments: an event key, a group or a module
//!   name may hold `/`, `?` or `#`.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// Tries of one request at most.
pub const ATTEMPTS: u32 = 5;
/// The longest `Retry-After` waited before trying again.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// The first wait between two tries; it doubles.
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// Items asked for per page of a list (the API's largest page).
const PAGE: usize = 1_000;
/// Bodies larger than this are announced with `Expect: 100-continue`.
const EXPECT_CONTINUE_ABOVE: usize = 64 << 10;
/// The largest answer read.
const MAX_ANSWER: u64 = 256 << 20;

/// A server and the tenant the commands act on.
pub struct Remote {
    agent: ureq::Agent,
    /// The server's base URL, without a trailing `/`.
    url: String,
    token: String,
    tenant: String,
}

/// A failed request: what the API said, with its status. Printed as
/// `MESSAGE (HTTP STATUS KIND)`.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub kind: String,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (HTTP {} {})",
            spark_host::printable(&self.message),
            self.status,
            self.kind
        )
    }
}

impl std::error::Error for ApiError {}

/// An answer: its status and body (JSON, or text as a JSON string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    retry_after: Option<Duration>,
}

impl Answer {
    /// The body of a 2xx answer, or the error the API gave.
    pub fn ok(self) -> Result<Value, ApiError> {
        if (200..300).contains(&self.status) {
            return Ok(self.body);
        }
        let kind = self.body["error"]
            .as_str()
            .map_or_else(|| "error".to_owned(), str::to_owned);
        let message = match (&self.body["message"], &self.body) {
            (Value::String(message), _) => message.clone(),
            // Not the API's JSON (a proxy's page, say): its first line, cut short.
            (_, Value::String(text)) => text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
            (_, other) => other.to_string(),
        };
        Err(ApiError {
            status: self.status,
            kind,
            message,
        })
    }
}

/// A request: method, path under the tenant (or absolute with [`Request::absolute`]),
/// query pairs, body and headers.
pub struct Request<'a> {
    method: &'static str,
    path: String,
    query: Vec<(String, String)>,
    body: &'a [u8],
    headers: Vec<(&'static str, String)>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, path: String) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            body: b"",
            headers: Vec::new(),
        }
    }

    /// Adds `key=value` to the query.
    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    /// Adds `key=value` when there is a value.
    pub fn query_opt(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.query(key, value),
            None => self,
        }
    }

    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Whether sending it twice does what sending it once does.
    fn idempotent(&self) -> bool {
        self.method != "POST"
            || self
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("idempotency-key"))
    }
}

impl Remote {
    /// A client of the server at `url` with `token`, for `tenant`.
    pub fn new(url: &str, token: Option<String>, tenant: &str) -> anyhow::Result<Self> {
        let url = url.trim().trim_end_matches('/').to_owned();
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "--server takes the server's URL, such as http://127.0.0.1:7411, not `{url}`"
        );
        let Some(token) = token.filter(|token| !token.trim().is_empty()) else {
            anyhow::bail!(
                "--server needs a token: pass --token TOKEN or set SPARK_TOKEN (`spark tokens \
                 add` makes one on the server's machine)"
            );
        };
        spark_host::validate_tenant_name(tenant)?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            // Longer than the server's own request timeout (120 s by default), so that
            // the server says when a request took too long.
            .timeout_global(Some(Duration::from_secs(600)))
            .user_agent(concat!("spark-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            agent,
            url,
            token: token.trim().to_owned(),
            tenant: tenant.to_owned(),
        })
    }

    /// The tenant the commands act on.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The path of `rest` (`/events`, ...) under the tenant.
    pub fn path(&self, rest: &str) -> String {
        format!("/v1/tenants/{}{rest}", segment(&self.tenant))
    }

    /// Sends a request, trying again as the module's doc says; any status is an answer.
    pub fn send(&self, request: &Request<'_>) -> anyhow::Result<Answer> {
        let mut wait = FIRST_WAIT;
        let mut attempt = 1;
        loop {
            match self.send_once(request) {
                Ok(answer) => {
                    let again = match answer.status {
                        429 | 503 => true,
                        408 => request.idempotent(),
                        _ => false,
                    };
                    if !again || attempt == ATTEMPTS {
                        return Ok(answer);
                    }
                    std::thread::sleep(
                        answer.retry_after.map_or(wait, |after| after.min(MAX_WAIT)),
                    );
                }
                Err(error) => {
                    let again = !reached(&error) || request.idempotent();
                    if !again || attempt == ATTEMPTS {
                        let tries = if attempt == 1 {
                            String::new()
                        } else {
                            format!(" (tried {attempt} times)")
                        };
                        anyhow::bail!(
                            "cannot reach the server at {}{tries}: {}",
                            self.url,
                            describe(&error)
                        );
                    }
                    std::thread::sleep(wait);
                }
            }
            wait *= 2;
            attempt += 1;
        }
    }

    fn send_once(&self, request: &Request<'_>) -> Result<Answer, ureq::Error> {
        let mut uri = format!("{}{}", self.url, request.path);
        if !request.query.is_empty() {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&request.query)
                .finish();
            uri.push('?');
            uri.push_str(&query);
        }
        let mut builder = ureq::http::Request::builder()
            .method(request.method)
            .uri(uri)
            .header("Authorization", format!("Bearer {}", self.token));
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if request.body.len() > EXPECT_CONTINUE_ABOVE {
            builder = builder.header("Expect", "100-continue");
        }
        let http_request = builder.body(request.body)?;
        let mut response = self.agent.run(http_request)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }

    /// The body of a 2xx answer to `request`, or the API's error.
    pub fn call(&self, request: &Request<'_>) -> anyhow::Result<Value> {
        Ok(self.send(request)?.ok()?)
    }

    /// GET of `rest` under the tenant.
    pub fn get(&self, rest: &str) -> anyhow::Result<Value> {
        self.call(&Request::new("GET", self.path(rest)))
    }

    /// Every item of the list at `request` (a GET under the tenant), a page at a time,
    /// each handed to `each` as it comes.
    pub fn each(
        &self,
        request: Request<'_>,
        mut each: impl FnMut(&Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut after: Option<String> = None;
        loop {
            let mut page = Request::new(request.method, request.path.clone());
            page.query = request.query.clone();
            let page = page
                .query("limit", PAGE.to_string())
                .query_opt("after", after.as_deref());
            let answer = self.call(&page)?;
            let Some(items) = answer["items"].as_array() else {
                anyhow::bail!("the server's answer to {} is not a list", request.path);
            };
            for item in items {
                each(item)?;
            }
            match &answer["next"] {
                Value::String(next) => after = Some(next.clone()),
                Value::Number(next) => after = Some(next.to_string()),
                _ => return Ok(()),
            }
        }
    }

    /// Every item of the list at `rest` under the tenant.
    pub fn all(&self, rest: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        self.each(Request::new("GET", self.path(rest)), |item| {
            items.push(item.clone());
            Ok(())
        })?;
        Ok(items)
    }
}

/// Whether the request may have reached the server: a refused or impossible
/// connection never did, so trying again cannot do anything twice.
fn reached(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => false,
        ureq::Error::Io(io) => !matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NotFound
        ),
        ureq::Error::Timeout(timeout) => {
            !matches!(timeout, ureq::Timeout::Connect | ureq::Timeout::Resolve)
        }
        _ => true,
    }
}

fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "the connection was refused (is `spark serve` running there?)".to_owned()
        }
        ureq::Error::HostNotFound => "its host name is not known".to_owned(),
        other => other.to_string(),
    }
}

/// `text` as one path segment: everything but unreserved characters percent-encoded.
pub fn segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("e_1"), "e_1");
        assert_eq!(segment("a/b c?#"), "a%2Fb%20c%3F%23");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn errors_read_with_their_status() {
        let answer = Answer {
            status: 404,
            body: serde_json::json!({"error": "unknown_model", "message": "no model `x`"}),
            retry_after: None,
        };
        assert_eq!(
            answer.ok().err().map(|e| e.to_string()).as_deref(),
            Some("no model `x` (HTTP 404 unknown_model)")
        );
        let proxy = Answer {
            status: 502,
            body: Value::String("Bad Gateway\n<html>".to_owned()),
            retry_after: None,
        };
        assert_eq!(
            proxy.ok().err().map(|e| e.to_string()).as_deref(),
            Some("Bad Gateway (HTTP 502 error)")
        );
    }
}
