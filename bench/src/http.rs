//! Over HTTP: the challenges workload posted to the real `spark serve` by 1, 4 and 16
//! clients, one record a request and 1,000 a request, against the in-process ingest of
//! the same records measured in the same run; and the latency of one record a request
//! at light load (what an application's `post_save` waits for).
//!
//! Each run has a fresh data dir, set up as the wasm measurement sets its tenant up
//! (the example's manifest with the modules' paths pointed at the components) but
//! without a mail transport: the mails stay in the outbox, as they do in-process, so
//! that both sides do the same work (the server's sender still looks at the outbox
//! after each group that made mails: that is the server's own cost). The server is the release `spark` binary next to
//! this one, sharing the benchmark's cache of compiled modules (`--cache-dir`), and
//! each client is a thread with a keep-alive connection of its own.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;
use spark_host::Spark;

use crate::measure::{self, Mode, Phase, cpu_seconds};
use crate::workload;

/// The tenant every run posts to.
pub const TENANT: &str = "bench";
/// Concurrent clients of the throughput runs.
pub const CLIENTS: [usize; 3] = [1, 4, 16];
/// Records a request in the batch runs.
pub const BATCH: usize = 1_000;
/// Single-record requests of the latency run, and their rate.
const LATENCY_REQUESTS: usize = 1_000;
const LATENCY_PER_SECOND: f64 = 200.0;
/// Requests sent before the latency run is timed (the first opens the tenant and
/// instantiates its modules).
const LATENCY_WARM_UP: usize = 20;

/// What to post.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Records posted one a request, in each single-record run.
    pub single: usize,
    /// Records posted [`BATCH`] a request, in each batch run.
    pub batch: usize,
    pub seed: u64,
}

/// One throughput run: `records` records posted `per_request` a request by `clients`
/// clients.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub clients: usize,
    pub per_request: usize,
    pub records: u64,
    pub seconds: f64,
    /// Requests committed together, on average (the server's group commit).
    pub mean_group: f64,
    pub server_cpu: ServerCpu,
    /// CPU time of the clients (this process) meanwhile.
    pub client_cpu_seconds: f64,
    /// How the server stopped, after the run.
    pub stopped: Stopped,
}

impl Throughput {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

/// The server's CPU time over a run, by thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerCpu {
    /// The tenant's owner: the pipeline (modules, ledger) of each group, its flush.
    pub owner: f64,
    /// The tenant's sender: the outbox, looked at after each group that made mails.
    pub sender: f64,
    /// The async workers: HTTP, tokens, bodies, answers.
    pub http: f64,
    /// Every other thread: the commit threads (one per group, so counted from the
    /// process's total), sled's IO threads and flusher.
    pub rest: f64,
}

impl ServerCpu {
    pub fn total(&self) -> f64 {
        self.owner + self.sender + self.http + self.rest
    }

    /// What was spent since `before`.
    fn since(&self, before: &ServerCpu) -> ServerCpu {
        ServerCpu {
            owner: self.owner - before.owner,
            sender: self.sender - before.sender,
            http: self.http - before.http,
            rest: self.rest - before.rest,
        }
    }
}

/// Single-record requests, one at a time at a light, steady rate.
#[derive(Debug, Clone)]
pub struct Latency {
    pub requests: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Everything measured over HTTP.
#[derive(Debug, Clone)]
pub struct Report {
    /// The in-process ingest of the single-record runs' records, and of the batch
    /// runs'.
    pub single_baseline: Phase,
    pub batch_baseline: Phase,
    pub runs: Vec<Throughput>,
    pub latency: Latency,
}

/// The `spark` binary next to this one: the release build beside the release bench.
pub fn spark_binary() -> anyhow::Result<PathBuf> {
    let binary = std::env::current_exe()?.with_file_name("spark");
    anyhow::ensure!(
        binary.exists(),
        "the HTTP benchmark runs the `spark` binary next to spark-bench, and `{}` is \
         missing: build it first (cargo build --release -p spark-host), or skip this \
         part with --no-http",
        binary.display()
    );
    Ok(binary)
}

pub fn measure(binary: &Path, settings: Settings, cache: &Path) -> anyhow::Result<Report> {
    let single = Records::new(settings.single, 1, settings.seed);
    let batch = Records::new(settings.batch, BATCH, settings.seed);
    let single_baseline = baseline_child(settings.single, settings.seed)?;
    let mut runs = Vec::new();
    for clients in CLIENTS {
        runs.push(throughput(
            binary,
            cache,
            &single,
            clients,
            &single_baseline,
        )?);
    }
    let batch_baseline = baseline_child(settings.batch, settings.seed)?;
    for clients in CLIENTS {
        runs.push(throughput(binary, cache, &batch, clients, &batch_baseline)?);
    }
    let latency = latency(binary, cache, settings.seed)?;
    Ok(Report {
        single_baseline,
        batch_baseline,
        runs,
        latency,
    })
}

/// The records of a run, as the baseline ingests them and as requests.
pub(crate) struct Records {
    /// All of them, JSON Lines.
    input: String,
    /// The same, `per_request` lines a body.
    pub(crate) bodies: Vec<String>,
    pub(crate) per_request: usize,
    /// A record of its own, posted before the run is timed: it opens the tenant and
    /// instantiates its modules.
    pub(crate) warm_up: String,
}

impl Records {
    pub(crate) fn new(count: usize, per_request: usize, seed: u64) -> Self {
        // The generator is sequential: the first `count` are those of a run of `count`.
        let all = workload::challenges(count as u64 + 1, seed);
        let lines: Vec<&str> = all.lines().collect();
        let (measured, warm_up) = lines.split_at(count);
        let body = |lines: &[&str]| {
            let mut body = lines.join("\n");
            body.push('\n');
            body
        };
        Records {
            input: body(measured),
            bodies: measured.chunks(per_request.max(1)).map(body).collect(),
            per_request,
            warm_up: body(warm_up),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.input.lines().count()
    }
}

/// Sets a fresh tenant up in `data` as the wasm measurement does, without a transport.
pub fn set_up(data: &Path, cache: &Path) -> anyhow::Result<Spark> {
    let spark = Spark::open_with_cache(data, cache)?;
    let mut tenant = spark.tenant(TENANT)?;
    let (mut manifest, manifest_path) = measure::example_manifest(Mode::Wasm)?;
    // No transport: the mails stay in the outbox, over HTTP as in-process.
    manifest.mails.transport = None;
    tenant.apply(&manifest, &manifest_path)?;
    tenant.flush()?;
    drop(tenant);
    Ok(spark)
}

/// The baseline: the first `count` challenges through `Tenant::ingest` on a fresh data
/// dir, durable, in a process of its own as every other measurement.
fn baseline_child(count: usize, seed: u64) -> anyhow::Result<Phase> {
    let output = Command::new(std::env::current_exe()?)
        .args([BASELINE_CHILD, &count.to_string(), &seed.to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "the in-process baseline failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The argument that makes spark-bench the baseline's child: `--child-http-baseline
/// COUNT SEED`.
pub const BASELINE_CHILD: &str = "--child-http-baseline";

/// The child's part: the baseline's measurement.
pub fn baseline(count: usize, seed: u64, cache: &Path) -> anyhow::Result<Phase> {
    // The records the runs post: `Records` takes them from the same generator.
    let input = workload::challenges(count as u64, seed);
    let dir = tempfile::tempdir()?;
    let spark = set_up(&dir.path().join("data"), cache)?;
    let mut tenant = spark.tenant(TENANT)?;
    measure::ingest(&mut tenant, &input)
}

fn throughput(
    binary: &Path,
    cache: &Path,
    records: &Records,
    clients: usize,
    baseline: &Phase,
) -> anyhow::Result<Throughput> {
    let server = Server::start(binary, cache)?;
    let agent = new_agent();
    let warm_up = server.post(&agent, &records.warm_up)?;
    anyhow::ensure!(warm_up.records == 1, "the warm-up record was not stored");
    let groups_before = server.group_sizes(&agent)?;
    let next = AtomicUsize::new(0);
    let start = Barrier::new(clients + 1);
    let (totals, seconds, cpu_before, client_cpu) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Answer> {
                    let agent = new_agent();
                    // Connected before the clock starts.
                    let connected = server.health(&agent);
                    start.wait();
                    connected?;
                    let mut total = Answer::default();
                    while let Some(body) = records.bodies.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        total.add(&server.post(&agent, body)?);
                    }
                    Ok(total)
                })
            })
            .collect();
        let cpu_before = server.cpu();
        let client_cpu = cpu_seconds(measure::Usage::Process);
        start.wait();
        let started = Instant::now();
        let mut totals = Answer::default();
        let mut failed = None;
        for worker in workers {
            match worker.join() {
                Ok(Ok(answer)) => totals.add(&answer),
                Ok(Err(error)) => failed = Some(error),
                Err(_) => failed = Some(anyhow::anyhow!("a client panicked")),
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let client_cpu = cpu_seconds(measure::Usage::Process) - client_cpu;
        match failed {
            Some(error) => Err(error),
            None => Ok((totals, seconds, cpu_before, client_cpu)),
        }
    })?;
    let cpu = server.cpu()?.since(&cpu_before?);
    let groups = server.group_sizes(&agent)?;
    let stopped = server.stop()?;
    anyhow::ensure!(
        totals.records == records.count() as u64 && totals.new == baseline.new,
        "over HTTP {} records made {} new events; in-process {} made {}",
        totals.records,
        totals.new,
        baseline.records,
        baseline.new
    );
    let (sum, count) = (groups.0 - groups_before.0, groups.1 - groups_before.1);
    Ok(Throughput {
        clients,
        per_request: records.per_request,
        records: totals.records,
        seconds,
        mean_group: sum / count.max(1.0),
        server_cpu: cpu,
        client_cpu_seconds: client_cpu,
        stopped,
    })
}

/// One client posting one new record at a time, `LATENCY_PER_SECOND` a second: how
/// long each request takes, from sending it to its answer (durable).
fn latency(binary: &Path, cache: &Path, seed: u64) -> anyhow::Result<Latency> {
    let records = Records::new(LATENCY_REQUESTS + LATENCY_WARM_UP - 1, 1, seed);
    let server = Server::start(binary, cache)?;
    let agent = new_agent();
    server.post(&agent, &records.warm_up)?;
    let (warm_up, measured) = records.bodies.split_at(LATENCY_WARM_UP - 1);
    let interval = Duration::from_secs_f64(1.0 / LATENCY_PER_SECOND);
    let run = |bodies: &[String], times: &mut Vec<f64>| -> anyhow::Result<()> {
        let started = Instant::now();
        for (n, body) in bodies.iter().enumerate() {
            let due = started + interval * n as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let sent = Instant::now();
            let answer = server.post(&agent, body)?;
            times.push(sent.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(answer.records == 1, "a record was not stored");
        }
        Ok(())
    };
    run(warm_up, &mut Vec::new())?;
    let mut times = Vec::with_capacity(measured.len());
    run(measured, &mut times)?;
    server.stop()?;
    times.sort_by(f64::total_cmp);
    let quantile = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Latency {
        requests: times.len(),
        per_second: LATENCY_PER_SECOND,
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
        max_ms: times[times.len() - 1],
    })
}

/// A client's connection pool: one keep-alive connection per client thread.
pub(crate) fn new_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// What the answers of some requests add up to.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Answer {
    pub(crate) records: u64,
    pub(crate) new: u64,
}

impl Answer {
    pub(crate) fn add(&mut self, other: &Answer) {
        self.records += other.records;
        self.new += other.new;
    }
}

/// A `spark serve` on a fresh data dir with the tenant set up, until stopped or
/// dropped (killed: SIGKILL).
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    pub(crate) token: String,
    /// What it wrote on stderr, the last lines: said if it fails.
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// Lines of the server's log kept for an error message.
const LOG_LINES: usize = 50;

impl Server {
    fn start(binary: &Path, cache: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        drop(set_up(&data, cache)?);
        let token = add_token(
            binary,
            &data,
            cache,
            &["--tenant", TENANT, "--scope", "admin"],
        )?;
        Self::spawn(binary, &data, cache, token, &[], dir)
    }

    /// `spark serve --listen 127.0.0.1:0 EXTRA...` on `data` (in `dir`, removed when
    /// the server is dropped), once it listens; `token` is the one its requests carry.
    pub(crate) fn spawn(
        binary: &Path,
        data: &Path,
        cache: &Path,
        token: String,
        extra: &[&str],
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let mut child = spark_command(binary, data, cache)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{} serve`", binary.display()))?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut server = Server {
            child,
            url: String::new(),
            token,
            log: Arc::clone(&log),
            _dir: dir,
        };
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            let line = line?;
            if let Some(url) = line.strip_prefix("listening on ") {
                server.url = url.trim().to_owned();
                break;
            }
            keep(&log, line);
        }
        if server.url.is_empty() {
            anyhow::bail!(
                "spark serve ended before it listened: {}",
                server.log_text()
            );
        }
        // Read on, so that the server never waits on a full pipe to log.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep(&log, line);
            }
        });
        Ok(server)
    }

    pub(crate) fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// Posts `body` (JSON Lines of challenges) and checks the answer.
    fn post(&self, agent: &ureq::Agent, body: &str) -> anyhow::Result<Answer> {
        let (status, text) = self.send_records(agent, TENANT, body)?;
        answer(&self.records_url(TENANT), status, &text)
    }

    /// Where `tenant`'s challenges are posted.
    pub(crate) fn records_url(&self, tenant: &str) -> String {
        format!(
            "{}/v1/tenants/{tenant}/records/challenge?now={}",
            self.url,
            workload::TODAY
        )
    }

    /// Posts `body` (JSON Lines of challenges) to `tenant`: the answer's status and
    /// text, unchecked.
    pub(crate) fn send_records(
        &self,
        agent: &ureq::Agent,
        tenant: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let url = self.records_url(tenant);
        let mut response = agent
            .post(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .content_type("application/x-ndjson")
            .send(body)
            .with_context(|| format!("POST {url}"))?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string()?))
    }

    pub(crate) fn health(&self, agent: &ureq::Agent) -> anyhow::Result<()> {
        let response = agent.get(format!("{}/healthz", self.url)).call()?;
        anyhow::ensure!(response.status() == 200, "healthz: {}", response.status());
        Ok(())
    }

    /// The sum and count of the requests per commit group, from `/metrics`.
    fn group_sizes(&self, agent: &ureq::Agent) -> anyhow::Result<(f64, f64)> {
        let text = agent
            .get(format!("{}/metrics", self.url))
            .call()?
            .body_mut()
            .read_to_string()?;
        let value = |name: &str| -> anyhow::Result<f64> {
            let line = text
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .with_context(|| format!("/metrics has no `{name}`"))?;
            Ok(line.trim().parse()?)
        };
        Ok((
            value("spark_ingest_group_requests_sum")?,
            value("spark_ingest_group_requests_count")?,
        ))
    }

    /// The server's CPU time so far, by thread (`/proc/PID/task/*/stat`).
    fn cpu(&self) -> anyhow::Result<ServerCpu> {
        let proc = PathBuf::from(format!("/proc/{}", self.child.id()));
        let mut by_name: HashMap<String, f64> = HashMap::new();
        for task in std::fs::read_dir(proc.join("task"))? {
            // A thread that ended meanwhile is counted in the process's total.
            let Ok((name, seconds)) = thread_cpu(&task?.path().join("stat")) else {
                continue;
            };
            *by_name.entry(name).or_default() += seconds;
        }
        let (_, total) = thread_cpu(&proc.join("stat"))?;
        let mut take = |name: &str| by_name.remove(name).unwrap_or_default();
        let owner = take(&format!("tenant {TENANT}"));
        let sender = take(&format!("sender {TENANT}"));
        let http = take("spark-http");
        Ok(ServerCpu {
            owner,
            sender,
            http,
            rest: total - owner - sender - http,
        })
    }

    /// Stops the server as an operator would (SIGTERM): how long it took to exit, and
    /// how. One still running after [`STOP_PATIENCE`] is killed.
    fn stop(mut self) -> anyhow::Result<Stopped> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        let started = Instant::now();
        // SAFETY: kill only sends a signal to our own child, which has not been waited
        // for, so its pid is still its own.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!(
                        "warning: spark serve exited with {status} when stopped:\n{}",
                        self.log_text()
                    );
                }
                return Ok(Stopped {
                    seconds: started.elapsed().as_secs_f64(),
                    exit: status.code(),
                });
            }
            if started.elapsed() > STOP_PATIENCE {
                self.child.kill()?;
                self.child.wait()?;
                return Ok(Stopped {
                    seconds: started.elapsed().as_secs_f64(),
                    exit: None,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// How long a stopping server is given to exit before it is killed. (It answers what
/// is in flight and closes its tenants, or gives up after a minute and exits 2; the
/// measurement is already over, so the benchmark does not wait that long.)
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// How a server stopped.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    pub seconds: f64,
    /// Its exit status; `None`: killed after [`STOP_PATIENCE`].
    pub exit: Option<i32>,
}

impl Stopped {
    /// What the report says of it after the seconds.
    fn note(&self) -> String {
        match self.exit {
            Some(0) => String::new(),
            Some(code) => format!(" (exit {code})"),
            None => " (killed)".to_owned(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The answer to a post of records to `url`, checked: 200, nothing invalid, failed or
/// pending.
pub(crate) fn answer(url: &str, status: u16, text: &str) -> anyhow::Result<Answer> {
    anyhow::ensure!(status == 200, "POST {url}: {status}: {text}");
    let report: Value = serde_json::from_str(text)?;
    let count = |field: &str| report[field].as_u64().unwrap_or_default();
    for field in ["invalid", "failed", "source_errors", "pending"] {
        anyhow::ensure!(count(field) == 0, "POST {url}: {text}");
    }
    Ok(Answer {
        records: count("records"),
        new: count("new"),
    })
}

/// The `spark` binary on `data` with `cache`, whatever the environment says.
pub(crate) fn spark_command(binary: &Path, data: &Path, cache: &Path) -> Command {
    let mut command = Command::new(binary);
    for name in [
        "SPARK_DATA_DIR",
        "SPARK_CACHE_DIR",
        "SPARK_TENANT",
        "SPARK_LISTEN",
        "SPARK_CLUSTER",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command
        .arg("--data-dir")
        .arg(data)
        .arg("--cache-dir")
        .arg(cache);
    command
}

/// `spark tokens add --name bench HOLDER...` on `data`: the token.
pub(crate) fn add_token(
    binary: &Path,
    data: &Path,
    cache: &Path,
    holder: &[&str],
) -> anyhow::Result<String> {
    let output = spark_command(binary, data, cache)
        .args(["tokens", "add", "--name", "bench"])
        .args(holder)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "spark tokens add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?
        .lines()
        .last()
        .context("spark tokens add printed no token")?
        .trim()
        .to_owned())
}

fn keep(log: &Mutex<Vec<String>>, line: String) {
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    if log.len() == LOG_LINES {
        log.remove(0);
    }
    log.push(line);
}

/// A thread's (or a process's) name and CPU time in seconds, from its `stat` file.
fn thread_cpu(stat: &Path) -> anyhow::Result<(String, f64)> {
    let text = std::fs::read_to_string(stat)?;
    // `PID (NAME) STATE ...`: the name may hold spaces and parentheses.
    let (open, close) = (
        text.find('(').context("stat: no name")?,
        text.rfind(')').context("stat: no name")?,
    );
    let name = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |index: usize| -> anyhow::Result<f64> {
        Ok(fields.get(index).context("stat: too short")?.parse()?)
    };
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((name, (ticks(11)? + ticks(12)?) / per_second))
}

/// Prints the report: a row per run, with its ratio to the in-process ingest.
pub fn print(report: &Report) {
    let baseline_rate = |phase: &Phase| phase.records as f64 / phase.seconds;
    let cpu_us = |phase: &Phase| {
        (phase.main_cpu_seconds + phase.other_cpu_seconds) / phase.records as f64 * 1e6
    };
    println!();
    println!(
        "Over HTTP: the release `spark serve`, one tenant, every event new, a fresh data \
         dir and server per run; POST /v1/tenants/{TENANT}/records/challenge, durable answers"
    );
    for (what, phase) in [
        ("one a request", &report.single_baseline),
        ("1,000 a request", &report.batch_baseline),
    ] {
        println!(
            "  in-process baseline for the records posted {what}: {} records, {:.0} records/s \
             through Tenant::ingest (one flush; CPU {:.0} µs per record)",
            phase.records,
            baseline_rate(phase),
            cpu_us(phase)
        );
    }
    println!(
        "{:>7} {:>7} {:>7} {:>9} {:>6} {:>9}   {:>5} {:>6} {:>5} {:>5} {:>6} {:>7}   {:>6}",
        "clients",
        "rec/req",
        "records",
        "records/s",
        "ratio",
        "req/group",
        "owner",
        "sender",
        "http",
        "rest",
        "server",
        "clients",
        "stop s"
    );
    for run in &report.runs {
        let baseline = if run.per_request == 1 {
            &report.single_baseline
        } else {
            &report.batch_baseline
        };
        let per_record = |seconds: f64| seconds / run.records as f64 * 1e6;
        let cpu = &run.server_cpu;
        println!(
            "{:>7} {:>7} {:>7} {:>9.0} {:>5.2}x {:>9.1}   {:>5.0} {:>6.0} {:>5.0} {:>5.0} {:>6.0} {:>7.0}   {:>6.1}{}",
            run.clients,
            run.per_request,
            run.records,
            run.records_per_second(),
            run.records_per_second() / baseline_rate(baseline),
            run.mean_group,
            per_record(cpu.owner),
            per_record(cpu.sender),
            per_record(cpu.http),
            per_record(cpu.rest),
            per_record(cpu.total()),
            per_record(run.client_cpu_seconds),
            run.stopped.seconds,
            run.stopped.note()
        );
    }
    println!(
        "  ratio: to the in-process ingest of the same records; req/group: requests \
         committed together (/metrics); CPU µs per record: the server's threads (the \
         tenant's owner and sender, the HTTP workers, the rest: commit threads, sled's), \
         all of the server's, and the clients'; stop s: from SIGTERM to its exit, or to its \
         being killed after {} s",
        STOP_PATIENCE.as_secs()
    );
    let latency = &report.latency;
    println!(
        "single-record requests, one client, {:.0} a second, {} requests: p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        latency.per_second, latency.requests, latency.p50_ms, latency.p99_ms, latency.max_ms
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_into_bodies_and_a_warm_up_of_their_own() {
        let records = Records::new(5, 2, 42);
        assert_eq!(records.count(), 5);
        assert_eq!(records.bodies.len(), 3);
        assert_eq!(records.bodies.concat(), records.input);
        assert!(records.bodies.iter().all(|body| body.ends_with('\n')));
        assert_eq!(records.warm_up.lines().count(), 1);
        assert!(!records.input.contains(records.warm_up.trim()));
        // The same records as the workload of that size.
        assert_eq!(records.input, workload::challenges(5, 42));
    }

    #[test]
    fn a_stat_line_gives_its_name_and_cpu_time() {
        let dir = tempfile::tempdir().unwrap();
        let stat = dir.path().join("stat");
        let mut fields = vec!["0"; 50];
        // After the name: the state, then fields 4 to 13; utime and stime are 14, 15.
        fields[10] = "150";
        fields[11] = "50";
        std::fs::write(&stat, format!("42 (tenant (b) x) S {}", fields.join(" "))).unwrap();
        let (name, seconds) = thread_cpu(&stat).unwrap();
        // SAFETY: as in thread_cpu.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        assert_eq!(name, "tenant (b) x");
        assert!((seconds - 200.0 / per_second).abs() < 1e-9);
    }
}
