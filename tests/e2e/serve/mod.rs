//! `spark serve` through a real HTTP client on loopback: the real binary serving a
//! real data dir, started and stopped (SIGTERM, SIGKILL) as an operator would.

mod api;
mod background;
mod cli;
mod faults;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::support::Spark;

/// A running `spark serve` on a free loopback port; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    /// Its stderr after the `listening on` line, line by line.
    log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `spark serve --listen 127.0.0.1:0 EXTRA...` on `spark`'s data dir and
    /// waits for it to say where it listens.
    pub fn start(spark: &Spark, extra: &[&str]) -> Self {
        Self::start_with_env(spark, extra, &[])
    }

    /// [`start`](Self::start) with the environment variables `vars`.
    pub fn start_with_env(spark: &Spark, extra: &[&str], vars: &[(&str, &str)]) -> Self {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = spark
            .command(&args)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spark serve starts");
        let stderr = child.stderr.take().unwrap();
        let (lines, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut before = Vec::new();
        loop {
            match log.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let url = url.trim().to_owned();
                        return Self { child, url, log };
                    }
                    before.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("spark serve did not say where it listens: {before:?}")
                }
            }
        }
    }

    /// A client of this server with `token` (or none).
    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(&self.url, token)
    }

    /// Sends `signal` (`TERM`, `KILL`) and waits for the exit status, up to `bound`.
    pub fn signal(&mut self, signal: &str, bound: Duration) -> Option<i32> {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "spark serve did not exit within {bound:?} of SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the server to exit by itself, up to `bound`: its exit status (None
    /// when a signal ended it).
    pub fn wait(&mut self, bound: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "spark serve did not exit within {bound:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged since it started listening, so far.
    pub fn logged(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client with a bearer token; every status is an answer, not an error.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    url: String,
    token: Option<String>,
}

/// An answer: status, the Retry-After header, and the body parsed as JSON (or as text).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

impl Client {
    pub fn new(url: &str, token: Option<&str>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Self {
            agent,
            url: url.to_owned(),
            token: token.map(str::to_owned),
        }
    }

    /// `METHOD PATH` with `body` and extra `headers`; a transport error is an `Err`
    /// (the server is down, say).
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Answer, ureq::Error> {
        let uri = format!("{}{path}", self.url);
        let mut request = ureq::http::Request::builder().method(method).uri(uri);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // As curl does for large bodies: the server may refuse (a bad token, say)
        // before the body is sent, rather than close the connection under it.
        if body.len() > 64 << 10 {
            request = request.header("Expect", "100-continue");
        }
        let request = request.body(body.to_vec()).unwrap();
        let mut response = self.agent.run(request)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }

    pub fn send(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        self.try_send(method, path, body, &[])
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    pub fn get(&self, path: &str) -> Answer {
        self.send("GET", path, b"")
    }

    /// GET of a 200, its body.
    pub fn get_ok(&self, path: &str) -> Value {
        let answer = self.get(path);
        assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
        answer.body
    }

    /// Every item of a listing, following `next`.
    pub fn all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let page = match &after {
                Some(after) => {
                    let after: String = form_urlencoded::byte_serialize(after.as_bytes()).collect();
                    self.get_ok(&format!("{path}{separator}after={after}&limit=1000"))
                }
                None => self.get_ok(&format!("{path}{separator}limit=1000")),
            };
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    /// Uploads the component at `wasm` as `tenant`'s module `name` with the
    /// registration `query`.
    pub fn put_module(&self, tenant: &str, name: &str, wasm: &str, query: &str) -> Answer {
        let body = std::fs::read(wasm).unwrap();
        self.send(
            "PUT",
            &format!("/v1/tenants/{tenant}/modules/{name}?{query}"),
            &body,
        )
    }
}

/// `spark --tenant acme ARGS --json` on a data dir no server holds, its JSON lines.
pub fn acme_json(spark: &Spark, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--tenant", "acme"];
    all.extend_from_slice(args);
    all.push("--json");
    spark.run(&all).ok().json_lines()
}

/// The event keys of tenant `acme`, read with the CLI once no server holds it.
pub fn acme_event_keys(spark: &Spark) -> Vec<String> {
    acme_json(spark, &["events", "list"])
        .iter()
        .map(|event| event["key"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends a request head announcing a body of `length` bytes, sends none, and returns
/// the status the server answers with: how a body too large is refused before it is
/// read.
pub fn status_of_announced_body(url: &str, path: &str, token: &str, length: usize) -> u16 {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {length}\r\n\r\n"
    )
    .unwrap();
    let mut answer = [0; 12];
    stream.read_exact(&mut answer).unwrap();
    let line = String::from_utf8_lossy(&answer);
    line["HTTP/1.1 ".len()..].parse().unwrap()
}

/// Makes a token with `spark tokens add`, returning it.
pub fn token(spark: &Spark, args: &[&str]) -> String {
    let mut all = vec!["tokens", "add"];
    all.extend_from_slice(args);
    let run = spark.run(&all).ok();
    run.stdout.lines().last().unwrap().trim().to_owned()
}
