//! Real servers on loopback for the sending tests: aiosmtpd (`smtp_server.py`) and
//! Python's http.server (`http_server.py`), each run until dropped. Each binds a free
//! port itself and says which, so no other process can take it in between.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::PythonServer;

/// An aiosmtpd server on loopback, run by `smtp_server.py` until dropped.
pub struct SmtpServer {
    _server: PythonServer,
    port: u16,
    maildir: PathBuf,
    /// The CA that signed its certificate, for the TLS modes.
    pub ca_file: Option<String>,
}

impl SmtpServer {
    /// `mode`: `accept`, `refuse` (every recipient, by policy), `bounce` (recipients
    /// whose address holds "bounce", as unknown mailboxes), `starttls` or `tls` (TLS
    /// after STARTTLS or from the start, and a login as `spark` with `secret`).
    pub fn start(mode: &str, maildir: &Path) -> Self {
        let (server, said) =
            PythonServer::start("smtp_server.py", &[maildir.to_str().unwrap(), mode]);
        let mut said = said.split_whitespace();
        Self {
            _server: server,
            port: said
                .next()
                .and_then(|port| port.parse().ok())
                .expect("smtp_server.py prints its port"),
            maildir: maildir.to_owned(),
            ca_file: said.next().map(str::to_owned),
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received, as text.
    pub fn received(&self) -> Vec<String> {
        let dir = self.maildir.join("new");
        let mut messages: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        messages.sort();
        messages
    }
}

/// `http_server.py` on loopback, answering every POST with one status, until dropped.
pub struct HttpServer {
    _server: PythonServer,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl HttpServer {
    pub fn start(status: u16) -> Self {
        Self::start_checking(status, None)
    }

    /// A server that answers the first `failures` POSTs with `status`, then 200: a
    /// receiver that recovers.
    pub fn start_recovering(status: u16, failures: u32) -> Self {
        Self::start_with(&format!("{status}:{failures}"), None)
    }

    /// A server that also checks each request's signature against `secret`.
    pub fn start_checking(status: u16, secret: Option<&str>) -> Self {
        Self::start_with(&status.to_string(), secret)
    }

    fn start_with(status: &str, secret: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let mut args = vec![log.to_str().unwrap(), status];
        args.extend(secret);
        let (server, port) = PythonServer::start("http_server.py", &args);
        Self {
            _server: server,
            port: port.parse().expect("http_server.py prints its port"),
            log,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `Idempotency-Key` of each request received, in outbox id order.
    pub fn idempotency_keys(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|request| {
                request["headers"]["idempotency-key"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    /// The requests received, in the order of the outbox ids their `Idempotency-Key`
    /// names: items sent at once arrive in any order.
    pub fn received(&self) -> Vec<Value> {
        let mut requests: Vec<Value> = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        requests.sort_by_key(|request| {
            let key = request["headers"]["idempotency-key"].as_str().unwrap();
            key.rsplit('.').next().unwrap().parse::<u64>().unwrap()
        });
        requests
    }
}
