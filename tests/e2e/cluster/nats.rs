//! A real NATS JetStream cluster on loopback: three `nats-server` processes, each with
//! its own ports, config file, store dir and log in one temporary directory, killed
//! when the [`NatsCluster`] is dropped.
//!
//! Which `nats-server`, where it is found, the ports and each node's config file:
//! `tests/nats` (`spark_nats_fixture`), which the benchmark's cluster uses too.
//!
//! Every wait is bounded by [`BOUND`] and panics saying what it waited for, with the
//! last lines of every server's log.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{Answer, Client};

/// How many nodes: the smallest cluster that keeps a quorum with one node down.
pub const NODES: usize = 3;
/// The longest any wait may take. A meta or stream leader that is SIGKILLed (or
/// SIGSTOPped) is replaced 4 to 9 s later in 2.15 (the Raft election timeout, not
/// configurable), which a test must allow for; everything else takes about a second.
pub const BOUND: Duration = Duration::from_secs(30);
pub use spark_nats_fixture::MAX_PAYLOAD;
const CLUSTER_NAME: &str = "spark-test";
/// How often a wait asks again. Each failed `/healthz` logs a warning line, so not
/// too often.
const POLL: Duration = Duration::from_millis(50);
/// Tries at starting the cluster: a free port found by binding it may be taken by
/// another test's server before `nats-server` binds it.
const START_ATTEMPTS: usize = 3;
/// How many lines of each log a failed wait prints.
const LOG_LINES: usize = 25;

/// Three `nats-server` nodes on loopback with JetStream on, routed to each other as
/// one cluster; killed when dropped. Nodes are numbered `0..NODES` (named `n0`...).
pub struct NatsCluster {
    nodes: Vec<Node>,
    /// Config files, store dirs and logs; removed after the nodes are killed, unless
    /// the test failed.
    dir: tempfile::TempDir,
}

struct Node {
    /// Its name and ports.
    spec: spark_nats_fixture::Node,
    /// Its config file, log and store dir (`store/`).
    dir: PathBuf,
    /// None once killed or ended.
    process: Option<Child>,
    /// How it ended, when it did by itself.
    exited: Option<ExitStatus>,
    /// SIGSTOPped: it holds its ports but answers nothing, so nothing asks it.
    paused: bool,
    monitor: Client,
}

impl Node {
    fn config(&self) -> PathBuf {
        self.dir.join("nats-server.conf")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    fn live(&self) -> bool {
        self.process.is_some() && !self.paused
    }

    fn state(&self) -> String {
        match (&self.process, self.exited) {
            (Some(_), _) if self.paused => "paused (SIGSTOP)".to_owned(),
            (Some(child), _) => format!("running (pid {})", child.id()),
            (None, Some(status)) => format!("EXITED BY ITSELF: {status}"),
            (None, None) => "killed".to_owned(),
        }
    }
}

impl NatsCluster {
    /// Starts the three nodes on free loopback ports and waits until the cluster is
    /// ready (see [`wait_ready`](Self::wait_ready)).
    pub fn start() -> Self {
        let mut clashes = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let mut cluster = Self::configure();
            for i in 0..NODES {
                cluster.spawn(i);
            }
            match cluster.poll("the cluster to start", Self::ready) {
                Ok(_) => return cluster,
                Err(i) if cluster.log_text(i).contains("address already in use") => {
                    clashes.push(cluster.report());
                }
                Err(i) => panic!("{}", cluster.exited_message("the cluster to start", i)),
            }
        }
        panic!(
            "nats-server found its ports taken {START_ATTEMPTS} times:\n{}",
            clashes.join("\n")
        )
    }

    /// The client URLs of every node, comma-separated, as `--cluster` takes them.
    pub fn urls(&self) -> String {
        (0..NODES)
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].spec.client_port)
    }

    /// Kills node `i` (SIGKILL), as a crash would; paused or not. It stays down until
    /// [`restart`](Self::restart).
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut child = node
            .process
            .take()
            .unwrap_or_else(|| panic!("node {i} is not running: {}", node.state()));
        child.kill().expect("cannot kill nats-server");
        child.wait().expect("cannot wait for nats-server");
        node.paused = false;
    }

    /// Stops node `i` gracefully (SIGTERM: it hands over what it leads and closes its
    /// store) and waits until it has exited. It stays down until
    /// [`restart`](Self::restart).
    pub fn terminate(&mut self, i: usize) {
        self.signal(i, "TERM");
        if self.nodes[i].paused {
            self.signal(i, "CONT");
        }
        let deadline = Instant::now() + BOUND;
        loop {
            let node = &mut self.nodes[i];
            let child = node
                .process
                .as_mut()
                .expect("a terminated node was running");
            if child
                .try_wait()
                .expect("cannot wait for nats-server")
                .is_some()
            {
                node.process = None;
                node.paused = false;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} had not exited {BOUND:?} after SIGTERM\n{}",
                self.report()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Pauses node `i` (SIGSTOP): it keeps its connections but answers nothing, as a
    /// node stalled by its machine or a long GC would. Nothing here asks it anything
    /// until [`resume`](Self::resume).
    pub fn pause(&mut self, i: usize) {
        assert!(
            self.nodes[i].live(),
            "node {i} is {}",
            self.nodes[i].state()
        );
        self.signal(i, "STOP");
        self.nodes[i].paused = true;
    }

    /// Resumes node `i` (SIGCONT) without waiting for it to catch up: call
    /// [`wait_ready`](Self::wait_ready) for that.
    pub fn resume(&mut self, i: usize) {
        assert!(
            self.nodes[i].paused,
            "node {i} is {}",
            self.nodes[i].state()
        );
        self.signal(i, "CONT");
        self.nodes[i].paused = false;
    }

    /// Starts node `i` again (killing it first if it runs) on the same ports with the
    /// same store dir, and waits until the cluster is ready with it.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].process.is_some() {
            self.kill(i);
        }
        self.spawn(i);
        self.wait_ready();
    }

    /// Waits until every node that runs and is not paused answers `/healthz` with 200
    /// (JetStream on and current with the meta leader), has a route to each of the
    /// others, and names the same meta leader, one that a quorum agrees on; returns it.
    pub fn wait_ready(&mut self) -> usize {
        self.wait_for("the cluster to be ready", Self::ready)
    }

    /// The node that leads the JetStream meta group: one that runs, is not paused,
    /// says it leads, and that a quorum of the nodes (its own view included) names.
    /// None during an election, or while the nodes that think otherwise are the
    /// majority.
    pub fn meta_leader(&self) -> Option<usize> {
        let views: Vec<(usize, String)> = self
            .live()
            .filter_map(|i| Some((i, self.meta_leader_seen_by(i)?)))
            .collect();
        self.agreed(&views, NODES)
    }

    /// Waits until [`meta_leader`](Self::meta_leader) is some (after the leader was
    /// killed or paused, a node that is neither).
    pub fn wait_meta_leader(&mut self) -> usize {
        self.wait_for("a meta leader", Self::meta_leader)
    }

    /// The node that leads stream `stream` (of any account), as
    /// [`meta_leader`](Self::meta_leader) does for the meta group: a quorum of the
    /// stream's replicas agree.
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        let mut replicas = NODES;
        let views: Vec<(usize, String)> = self
            .live()
            .filter_map(|i| {
                let jsz = self.try_monitor(i, "/jsz?streams=true&config=true")?;
                let detail = jsz["account_details"]
                    .as_array()?
                    .iter()
                    .filter_map(|account| account["stream_detail"].as_array())
                    .flatten()
                    .find(|detail| detail["name"] == stream)?;
                if let Some(configured) = detail["config"]["num_replicas"].as_u64() {
                    replicas = usize::try_from(configured.max(1)).unwrap();
                }
                Some((i, detail["cluster"]["leader"].as_str()?.to_owned()))
            })
            .collect();
        self.agreed(&views, replicas)
    }

    /// Waits until [`stream_leader`](Self::stream_leader) is some.
    pub fn wait_stream_leader(&mut self, stream: &str) -> usize {
        self.wait_for(&format!("a leader of stream {stream}"), |cluster| {
            cluster.stream_leader(stream)
        })
    }

    /// The nodes that node `i` has a route to (`/routez`; several connections to
    /// one node, as 2.15 pools them, count once).
    pub fn routes(&self, i: usize) -> BTreeSet<usize> {
        self.try_routes(i)
            .unwrap_or_else(|| panic!("node {i} did not answer /routez\n{}", self.report()))
    }

    /// GET `path` of node `i`'s monitoring port (`/varz`, `/jsz?streams=true`...),
    /// which must answer 200 with JSON.
    pub fn monitor(&self, i: usize, path: &str) -> Value {
        assert!(
            self.nodes[i].live(),
            "node {i} is {}",
            self.nodes[i].state()
        );
        match self.get(i, path) {
            Some(Answer {
                status: 200, body, ..
            }) => body,
            answer => panic!("GET {path} of node {i}: {answer:?}\n{}", self.report()),
        }
    }

    /// Sends `payload` to `subject` through node `i` and returns the reply, as JSON:
    /// a JetStream API call (`$JS.API.STREAM.CREATE.NAME`...) or a publish to a
    /// stream (its ack), over a bare NATS connection of its own, for a test that sets
    /// up or checks JetStream without Spark.
    pub fn request(&self, i: usize, subject: &str, payload: impl AsRef<[u8]>) -> Value {
        let payload = payload.as_ref();
        let fail = |what: String| -> Value {
            panic!(
                "request to {subject} through node {i}: {what}\n{}",
                self.report()
            )
        };
        let port = self.nodes[i].spec.client_port;
        let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => stream,
            Err(error) => return fail(format!("cannot connect: {error}")),
        };
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let inbox = "_INBOX.harness";
        write!(
            stream,
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\
             \"no_responders\":true}}\r\nSUB {inbox} 1\r\nPUB {subject} {inbox} {}\r\n",
            payload.len()
        )
        .and_then(|()| stream.write_all(payload))
        .and_then(|()| stream.write_all(b"\r\n"))
        .unwrap_or_else(|error| {
            fail(format!("cannot send: {error}"));
        });
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return fail("the server closed the connection".to_owned()),
                Ok(_) => {}
                Err(error) => return fail(format!("no reply: {error}")),
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first().copied() {
                Some("INFO" | "+OK" | "PONG") => {}
                Some("PING") => stream.write_all(b"PONG\r\n").unwrap(),
                // MSG subject sid [reply] size; HMSG subject sid [reply] header-size size.
                Some(kind @ ("MSG" | "HMSG")) => {
                    let size: usize = words.last().unwrap().parse().unwrap();
                    let mut message = vec![0; size + 2];
                    reader.read_exact(&mut message).unwrap();
                    message.truncate(size);
                    if kind == "HMSG" {
                        // Only a status comes with headers here: 503, no responders.
                        return fail(String::from_utf8_lossy(&message).into_owned());
                    }
                    return serde_json::from_slice(&message).unwrap_or_else(|error| {
                        fail(format!(
                            "the reply is not JSON ({error}): {}",
                            String::from_utf8_lossy(&message)
                        ))
                    });
                }
                _ => return fail(format!("the server said {:?}", line.trim_end())),
            }
        }
    }

    /// Writes a config file for each node on free ports, starting none.
    fn configure() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("nats-cluster")
            .tempdir()
            .expect("cannot create a temporary directory");
        let ports = spark_nats_fixture::free_ports(3 * NODES).expect("no free loopback ports");
        let specs = spark_nats_fixture::Node::on_ports(&ports);
        let nodes: Vec<Node> = specs
            .iter()
            .map(|spec| Node {
                dir: dir.path().join(&spec.name),
                monitor: Client::new(&format!("http://127.0.0.1:{}", spec.http_port), None),
                spec: spec.clone(),
                process: None,
                exited: None,
                paused: false,
            })
            .collect();
        for node in &nodes {
            std::fs::create_dir_all(&node.dir).expect("cannot create a node's directory");
            let config = node
                .spec
                .config(CLUSTER_NAME, &specs, &node.dir.join("store"));
            std::fs::write(node.config(), config).expect("cannot write a node's config");
        }
        Self { nodes, dir }
    }

    /// Starts node `i`'s process, its output appended to its log.
    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(node.log())
            .expect("cannot open a node's log");
        let child = Command::new(nats_server())
            .arg("--config")
            .arg(node.config())
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot share a log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", nats_server().display()));
        node.process = Some(child);
        node.exited = None;
        node.paused = false;
    }

    fn signal(&self, i: usize, signal: &str) {
        let node = &self.nodes[i];
        let child = node
            .process
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} is {}", node.state()));
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{signal} of node {i} failed");
    }

    /// The nodes that run and are not paused: the ones to ask.
    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..NODES).filter(|&i| self.nodes[i].live())
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.spec.name == name)
    }

    /// The node that says it leads and that more than half of `replicas` name as the
    /// leader in `views` (node, the leader it names).
    fn agreed(&self, views: &[(usize, String)], replicas: usize) -> Option<usize> {
        views
            .iter()
            .find(|(i, leader)| {
                *leader == self.nodes[*i].spec.name
                    && views.iter().filter(|(_, named)| named == leader).count() > replicas / 2
            })
            .map(|(i, _)| *i)
    }

    fn ready(&self) -> Option<usize> {
        let live: Vec<usize> = self.live().collect();
        for &i in &live {
            if self.get(i, "/healthz")?.status != 200 {
                return None;
            }
            let routes = self.try_routes(i)?;
            if live.iter().any(|&j| j != i && !routes.contains(&j)) {
                return None;
            }
        }
        let leader = self.meta_leader()?;
        let name = &self.nodes[leader].spec.name;
        live.iter()
            .all(|&i| self.meta_leader_seen_by(i).as_ref() == Some(name))
            .then_some(leader)
    }

    fn meta_leader_seen_by(&self, i: usize) -> Option<String> {
        let jsz = self.try_monitor(i, "/jsz")?;
        Some(jsz["meta_cluster"]["leader"].as_str()?.to_owned())
    }

    fn try_routes(&self, i: usize) -> Option<BTreeSet<usize>> {
        let routez = self.try_monitor(i, "/routez")?;
        Some(
            routez["routes"]
                .as_array()?
                .iter()
                .filter_map(|route| self.index(route["remote_name"].as_str()?))
                .collect(),
        )
    }

    /// GET `path` of node `i`, its JSON if 200.
    fn try_monitor(&self, i: usize, path: &str) -> Option<Value> {
        self.get(i, path)
            .filter(|answer| answer.status == 200)
            .map(|answer| answer.body)
    }

    /// GET `path` of node `i`; None if it cannot be reached. Never asks a paused
    /// node, which would not answer.
    fn get(&self, i: usize, path: &str) -> Option<Answer> {
        let node = &self.nodes[i];
        if node.paused {
            return None;
        }
        node.monitor.try_send("GET", path, b"", &[]).ok()
    }

    /// Calls `probe` until it finds something, up to [`BOUND`]; panics with the
    /// servers' logs then. A node that exits by itself meanwhile ends the wait: its
    /// number is the error.
    fn poll<T>(
        &mut self,
        what: &str,
        mut probe: impl FnMut(&Self) -> Option<T>,
    ) -> Result<T, usize> {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(i) = self.reap() {
                return Err(i);
            }
            if let Some(found) = probe(self) {
                return Ok(found);
            }
            assert!(
                Instant::now() < deadline,
                "waited {BOUND:?} for {what}, in vain\n{}",
                self.report()
            );
            std::thread::sleep(POLL);
        }
    }

    fn wait_for<T>(&mut self, what: &str, probe: impl FnMut(&Self) -> Option<T>) -> T {
        self.poll(what, probe)
            .unwrap_or_else(|i| panic!("{}", self.exited_message(what, i)))
    }

    /// The first node found to have exited by itself, now reaped.
    fn reap(&mut self) -> Option<usize> {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Some(child) = node.process.as_mut() else {
                continue;
            };
            if let Some(status) = child.try_wait().expect("cannot wait for nats-server") {
                node.process = None;
                node.exited = Some(status);
                node.paused = false;
                return Some(i);
            }
        }
        None
    }

    fn exited_message(&self, what: &str, i: usize) -> String {
        format!(
            "node {i} exited while waiting for {what}\n{}",
            self.report()
        )
    }

    /// What each node is doing, and the last lines of its log.
    fn report(&self) -> String {
        let mut report = format!(
            "{} ({}), cluster in {}:\n",
            nats_server().display(),
            nats_server_version(),
            self.dir.path().display()
        );
        for (i, node) in self.nodes.iter().enumerate() {
            report += &format!(
                "--- node {i} ({}): {}, client port {}, cluster port {}, monitoring \
                 http://127.0.0.1:{}; what {} said last:\n{}",
                node.spec.name,
                node.state(),
                node.spec.client_port,
                node.spec.cluster_port,
                node.spec.http_port,
                node.log().display(),
                self.tail(i, LOG_LINES)
            );
        }
        report
    }

    /// Node `i`'s log, all of it.
    fn log_text(&self, i: usize) -> String {
        let log = std::fs::read(self.nodes[i].log()).unwrap_or_default();
        String::from_utf8_lossy(&log).into_owned()
    }

    /// The last `lines` different things node `i`'s log says, each where it said it
    /// last and with how often it did: a failing health check, polled, says the same
    /// every time.
    fn tail(&self, i: usize, lines: usize) -> String {
        let log = self.log_text(i);
        // `[pid] date time [LEVEL] message`: what a line says starts at its level.
        let said = |line: &str| line.splitn(4, ' ').nth(3).unwrap_or(line).to_owned();
        let mut last: Vec<(&str, usize)> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for line in log.lines().rev() {
            match seen.get(&said(line)) {
                Some(&at) => last[at].1 += 1,
                None if last.len() < lines => {
                    seen.insert(said(line), last.len());
                    last.push((line, 1));
                }
                None => {}
            }
        }
        last.iter()
            .rev()
            .map(|(line, times)| match times {
                1 => format!("{line}\n"),
                times => format!("{line} ({times} times)\n"),
            })
            .collect()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        // A failed test keeps the logs (and stores) that its report points to.
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.process.take() {
                // SIGKILL ends a paused process too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The `nats-server` executable, found once.
fn nats_server() -> &'static Path {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND.get_or_init(|| {
        spark_nats_fixture::nats_server().unwrap_or_else(|| {
            panic!(
                "nats-server is not installed: scripts/test installs it ({})",
                spark_nats_fixture::INSTALL
            )
        })
    })
}

/// What `nats-server --version` says, for failure reports.
fn nats_server_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| spark_nats_fixture::version(nats_server()))
}
