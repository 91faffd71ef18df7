//! The cluster (`spark-bench --cluster`): the same workload, in one run, posted to
//!
//! 1. a single `spark serve` (no cluster): the baseline;
//! 2. one Spark node with `--cluster` over three JetStream nodes (`--replicas 3`);
//! 3. two Spark nodes over the same JetStream cluster, the clients spread over both;
//!
//! as records/s and the ratios 2/1 (the cluster's cost) and 3/2 (the second node's
//! gain); then 4., the failover time: one of the two nodes killed (SIGKILL), and the
//! time until every tenant it owned is owned and answered by the other.
//!
//! The workload is http.rs's: the challenges, one record a request and 1,000 a request,
//! durable answers, here over [`TENANTS`] tenants (the records of a run split among
//! them) and [`CLIENTS`] clients. Every tenant is set up over HTTP, on every
//! configuration alike (on a cluster the data dir is only a view of the log): the
//! example's two modules, its templates and a sender, no mail transport. Each run has
//! tenants of its own, so that every record is new.
//!
//! The JetStream cluster is three `nats-server` processes on loopback, found and
//! configured as the end-to-end tests do it (`tests/nats`, installed by `python3 -m pip
//! install --require-hashes -r tests/requirements-nats.txt`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use spark_nats_fixture::Node;
use spark_test_guests::{CHALLENGES_MAILER, CHALLENGES_SOURCE};

use crate::http::{self, Answer, Records, Server, new_agent};

/// Tenants of each run.
pub const TENANTS: usize = 4;
/// Concurrent clients of each run.
pub const CLIENTS: usize = 16;
/// JetStream nodes: the smallest cluster that keeps a quorum with one down.
const NATS_NODES: usize = 3;
/// The cluster's shards (docs/cluster.md).
const SHARDS: usize = 256;
/// The longest any wait takes before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(180);
/// How often a wait asks again.
const POLL: Duration = Duration::from_millis(50);

/// What to post: totals over the tenants of a run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub single: usize,
    pub batch: usize,
    pub seed: u64,
}

/// One run: the records of every tenant, posted by [`CLIENTS`] clients.
#[derive(Debug, Clone, Copy)]
struct Run {
    records: u64,
    new: u64,
    seconds: f64,
    /// Requests answered 429 or 503 (or not at all) and sent again.
    retries: usize,
}

impl Run {
    fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

/// The three configurations' runs of one request size.
struct Row {
    per_request: usize,
    single: Run,
    one: Run,
    two: Run,
}

/// The failover: how long after the kill each of the killed node's tenants was owned
/// and answered by the survivor.
struct Failover {
    tenants: usize,
    owned_by_dead: Vec<(String, f64)>,
}

pub fn measure(binary: &Path, settings: Settings, cache: &Path) -> anyhow::Result<()> {
    let nats_binary = nats_server()?;
    let per_tenant = |total: usize| (total / TENANTS).max(1);
    let sizes = [
        Records::new(per_tenant(settings.single), 1, settings.seed),
        Records::new(per_tenant(settings.batch), http::BATCH, settings.seed),
    ];
    println!();
    println!(
        "Cluster: the release `spark serve`, {TENANTS} tenants, {CLIENTS} clients, durable \
         answers; JetStream: {NATS_NODES} nodes of {} on loopback, --replicas 3",
        spark_nats_fixture::version(&nats_binary)
    );

    // 1. The single server.
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let token = http::add_token(binary, &data, cache, &["--operator"])?;
    let single = Server::spawn(binary, &data, cache, token, &[], dir)?;
    let mut single_runs = Vec::new();
    for records in &sizes {
        single_runs.push(run(&[&single], "single", records)?);
    }
    drop(single);

    // 2. One node of a cluster.
    let nats = Nats::start(&nats_binary)?;
    let cluster = ["--cluster", &nats.urls(), "--replicas", "3"];
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    // An operator token made on one node's data dir works on every node.
    let token = http::add_token(binary, &data, cache, &["--operator"])?;
    let first = Server::spawn(binary, &data, cache, token.clone(), &cluster, dir)?;
    balanced(&[&first])?;
    let mut one_runs = Vec::new();
    for records in &sizes {
        one_runs.push(run(&[&first], "one", records)?);
    }

    // 3. A second node joins; the clients post through both.
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let second = Server::spawn(binary, &data, cache, token, &cluster, dir)?;
    let split = balanced(&[&first, &second])?;
    println!(
        "  shards owned by the two nodes when measured: {} and {}",
        split[0], split[1]
    );
    let mut two_runs = Vec::new();
    for records in &sizes {
        two_runs.push(run(&[&first, &second], "two", records)?);
    }
    let rows: Vec<Row> = sizes
        .iter()
        .zip(single_runs.into_iter().zip(one_runs).zip(two_runs))
        .map(|(records, ((single, one), two))| Row {
            per_request: records.per_request,
            single,
            one,
            two,
        })
        .collect();
    for row in &rows {
        anyhow::ensure!(
            row.single.new == row.one.new && row.one.new == row.two.new,
            "the same records made {}, {} and {} new events",
            row.single.new,
            row.one.new,
            row.two.new
        );
    }
    print_rows(&rows);

    // 4. One of the two killed.
    let tenants: Vec<String> = sizes
        .iter()
        .flat_map(|records| tenant_names("two", records.per_request))
        .collect();
    let failover = failover(vec![first, second], &tenants)?;
    print_failover(&failover);
    drop(nats);
    Ok(())
}

/// The tenants of a configuration's run.
fn tenant_names(configuration: &str, per_request: usize) -> Vec<String> {
    (0..TENANTS)
        .map(|n| format!("{configuration}-{per_request}-{n}"))
        .collect()
}

/// Sets the run's tenants up, warms each up with a record of its own, then posts every
/// tenant's records, interleaved, by [`CLIENTS`] clients, client `c` through
/// `servers[c % servers.len()]`.
fn run(servers: &[&Server], configuration: &str, records: &Records) -> anyhow::Result<Run> {
    let tenants = tenant_names(configuration, records.per_request);
    let agent = new_agent();
    for (n, tenant) in tenants.iter().enumerate() {
        let server = servers[n % servers.len()];
        set_up(&agent, server, tenant)?;
        let (warm_up, _) = post(&agent, server, tenant, &records.warm_up)?;
        anyhow::ensure!(warm_up.records == 1, "{tenant}: the warm-up was not stored");
    }
    let jobs: Vec<(&str, &str)> = (0..records.bodies.len())
        .flat_map(|i| {
            tenants
                .iter()
                .map(move |tenant| (tenant.as_str(), records.bodies[i].as_str()))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let start = Barrier::new(CLIENTS + 1);
    let (total, retries, seconds) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (jobs, next, start) = (&jobs, &next, &start);
                let server = servers[client % servers.len()];
                scope.spawn(move || -> anyhow::Result<(Answer, usize)> {
                    let agent = new_agent();
                    let connected = server.health(&agent);
                    start.wait();
                    connected?;
                    let (mut total, mut retries) = (Answer::default(), 0);
                    while let Some((tenant, body)) = jobs.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        let (answer, retried) = post(&agent, server, tenant, body)?;
                        total.add(&answer);
                        retries += retried;
                    }
                    Ok((total, retries))
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        let (mut total, mut retries, mut failed) = (Answer::default(), 0, None);
        for worker in workers {
            match worker.join() {
                Ok(Ok((answer, retried))) => {
                    total.add(&answer);
                    retries += retried;
                }
                Ok(Err(error)) => failed = Some(error),
                Err(_) => failed = Some(anyhow::anyhow!("a client panicked")),
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        match failed {
            Some(error) => Err(error),
            None => Ok((total, retries, seconds)),
        }
    })?;
    let expected = (records.count() * TENANTS) as u64;
    anyhow::ensure!(
        total.records == expected,
        "{configuration}: {} records stored of {expected}",
        total.records
    );
    Ok(Run {
        records: total.records,
        new: total.new,
        seconds,
        retries,
    })
}

/// Posts records to `tenant`, again while the answer is "try again" (429, 503, no
/// answer): a cluster's client does so while a tenant moves. The answer, and how many
/// times it was sent again.
fn post(
    agent: &ureq::Agent,
    server: &Server,
    tenant: &str,
    body: &str,
) -> anyhow::Result<(Answer, usize)> {
    let deadline = Instant::now() + PATIENCE;
    let mut retries = 0;
    loop {
        match server.send_records(agent, tenant, body) {
            Ok((status, text)) if status != 429 && status != 503 => {
                return Ok((
                    http::answer(&server.records_url(tenant), status, &text)?,
                    retries,
                ));
            }
            other => {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "POST to {tenant}: never answered: {other:?}"
                );
                retries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A request with the server's token: the status and the text of the answer.
fn send(
    agent: &ureq::Agent,
    server: &Server,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let url = format!("{}{path}", server.url);
    let authorization = format!("Bearer {}", server.token);
    let mut response = match method {
        "GET" => agent
            .get(&url)
            .header("Authorization", &authorization)
            .call(),
        "PUT" => agent
            .put(&url)
            .header("Authorization", &authorization)
            .send(body),
        "PATCH" => agent
            .patch(&url)
            .header("Authorization", &authorization)
            .content_type("application/json")
            .send(body),
        other => anyhow::bail!("no {other} here"),
    }
    .with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    Ok((status, response.body_mut().read_to_string()?))
}

/// [`send`] until answered with something else than "try again", which must be 200.
fn patiently(
    agent: &ureq::Agent,
    server: &Server,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match send(agent, server, method, path, body) {
            Ok((status, text)) if status != 429 && status != 503 => {
                anyhow::ensure!(status == 200, "{method} {path}: {status}: {text}");
                return Ok(text);
            }
            other => {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{method} {path}: never answered: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Sets `tenant` up over HTTP as examples/challenges/spark.toml would, without a mail
/// transport (the mails stay in the outbox, as in http.rs).
fn set_up(agent: &ureq::Agent, server: &Server, tenant: &str) -> anyhow::Result<()> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/challenges");
    for (name, query, component) in [
        (
            "challenges",
            "source=challenge&clock=day",
            CHALLENGES_SOURCE,
        ),
        ("challenge-mails", "handler=%5Echallenge", CHALLENGES_MAILER),
    ] {
        let code = std::fs::read(component).with_context(|| format!("reading {component}"))?;
        let path = format!("/v1/tenants/{tenant}/modules/{name}?{query}");
        patiently(agent, server, "PUT", &path, &code)?;
    }
    let mut templates: Vec<PathBuf> = std::fs::read_dir(example.join("templates"))?
        .map(|entry| Ok(entry?.path()))
        .collect::<std::io::Result<_>>()?;
    templates.sort();
    for template in templates {
        let group = template
            .file_stem()
            .and_then(|stem| stem.to_str())
            .context("a template's name")?;
        let path = format!("/v1/tenants/{tenant}/templates/{group}");
        patiently(agent, server, "PUT", &path, &std::fs::read(&template)?)?;
    }
    let settings = json!({ "mail": { "from": "Challenges <challenges@example.com>" } });
    let path = format!("/v1/tenants/{tenant}/settings");
    patiently(
        agent,
        server,
        "PATCH",
        &path,
        settings.to_string().as_bytes(),
    )?;
    Ok(())
}

/// The shards each node owns (`GET /v1/cluster`).
fn owned(agent: &ureq::Agent, server: &Server) -> anyhow::Result<usize> {
    let status: Value =
        serde_json::from_str(&patiently(agent, server, "GET", "/v1/cluster", b"")?)?;
    Ok(status["owned"]
        .as_array()
        .context("/v1/cluster has no `owned`")?
        .len())
}

/// Waits until the nodes own every shard between them, each its share (give or take
/// two: a node lets go only when over its share by more than one); after [`PATIENCE`]
/// settles for every node owning some. The shards each owns.
fn balanced(servers: &[&Server]) -> anyhow::Result<Vec<usize>> {
    let agent = new_agent();
    let share = SHARDS / servers.len();
    let started = Instant::now();
    loop {
        let owned = servers
            .iter()
            .map(|server| owned(&agent, server))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let all = owned.iter().sum::<usize>() == SHARDS;
        if all && owned.iter().all(|&n| n + 2 >= share) {
            return Ok(owned);
        }
        if started.elapsed() > PATIENCE {
            anyhow::ensure!(
                all && owned.iter().all(|&n| n > 0),
                "the nodes never owned every shard between them: {owned:?}"
            );
            eprintln!("warning: the shards never split evenly: {owned:?}");
            return Ok(owned);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `server` says it owns `tenant` (`GET /v1/cluster?tenant=T`).
fn owns(agent: &ureq::Agent, server: &Server, tenant: &str) -> anyhow::Result<bool> {
    let (status, text) = send(
        agent,
        server,
        "GET",
        &format!("/v1/cluster?tenant={tenant}"),
        b"",
    )?;
    if status != 200 {
        return Ok(false);
    }
    let status: Value = serde_json::from_str(&text)?;
    Ok(status["tenant"]["owner"]["node"] == status["node"])
}

/// Kills (SIGKILL) the node owning most of `tenants`, then times until the other owns
/// each of them and answers for it (`GET /v1/tenants/T/events?limit=1`: 200).
fn failover(servers: Vec<Server>, tenants: &[String]) -> anyhow::Result<Failover> {
    let agent = new_agent();
    let mut owners = Vec::new();
    for tenant in tenants {
        let deadline = Instant::now() + PATIENCE;
        let owner = loop {
            if let Some(i) =
                (0..servers.len()).find(|&i| owns(&agent, &servers[i], tenant).unwrap_or(false))
            {
                break i;
            }
            anyhow::ensure!(Instant::now() < deadline, "no node owns {tenant}");
            std::thread::sleep(POLL);
        };
        owners.push(owner);
    }
    let dead = (0..servers.len())
        .max_by_key(|&i| owners.iter().filter(|&&owner| owner == i).count())
        .context("no nodes")?;
    let mut waiting: Vec<&String> = tenants
        .iter()
        .zip(&owners)
        .filter(|&(_, &owner)| owner == dead)
        .map(|(tenant, _)| tenant)
        .collect();
    let mut servers = servers;
    let victim = servers.remove(dead);
    let survivor = &servers[0];
    let killed = Instant::now();
    // Dropping a server kills it (SIGKILL) and reaps it.
    drop(victim);
    let mut owned_by_dead = Vec::new();
    while !waiting.is_empty() {
        anyhow::ensure!(
            killed.elapsed() < PATIENCE,
            "the survivor never took {waiting:?} over:\n{}",
            survivor.log_text()
        );
        let mut still = Vec::new();
        for tenant in waiting {
            let answered = owns(&agent, survivor, tenant)?
                && send(
                    &agent,
                    survivor,
                    "GET",
                    &format!("/v1/tenants/{tenant}/events?limit=1"),
                    b"",
                )
                .is_ok_and(|(status, _)| status == 200);
            if answered {
                owned_by_dead.push((tenant.clone(), killed.elapsed().as_secs_f64()));
            } else {
                still.push(tenant);
            }
        }
        waiting = still;
        std::thread::sleep(POLL);
    }
    Ok(Failover {
        tenants: tenants.len(),
        owned_by_dead,
    })
}

fn print_rows(rows: &[Row]) {
    println!(
        "{:>7} {:>9} {:>10} {:>10} {:>10} {:>14} {:>15}   {:>7}",
        "rec/req",
        "records",
        "single r/s",
        "1 node r/s",
        "2 nodes",
        "1 node/single",
        "2 nodes/1 node",
        "retries"
    );
    for row in rows {
        println!(
            "{:>7} {:>9} {:>10.0} {:>10.0} {:>10.0} {:>13.2}x {:>14.2}x   {:>7}",
            row.per_request,
            row.single.records,
            row.single.records_per_second(),
            row.one.records_per_second(),
            row.two.records_per_second(),
            row.one.records_per_second() / row.single.records_per_second(),
            row.two.records_per_second() / row.one.records_per_second(),
            row.single.retries + row.one.retries + row.two.retries
        );
    }
    println!(
        "  records/s of a single `spark serve` (no cluster), of one node with --cluster, \
         of two nodes with the clients spread over both; 1 node/single: the cluster's cost \
         (the same workload on one node of a cluster against a single server); 2 nodes/1 node: \
         the second node's gain; retries: requests answered 429/503 and sent again"
    );
}

fn print_failover(failover: &Failover) {
    let each: Vec<String> = failover
        .owned_by_dead
        .iter()
        .map(|(tenant, seconds)| format!("{tenant} {seconds:.1} s"))
        .collect();
    let last = failover
        .owned_by_dead
        .iter()
        .map(|(_, seconds)| *seconds)
        .fold(0.0, f64::max);
    println!(
        "failover: the node owning {} of the {} tenants killed (SIGKILL); every one of them \
         owned and answered by the other {last:.1} s after the kill ({})",
        failover.owned_by_dead.len(),
        failover.tenants,
        each.join(", ")
    );
}

/// The `nats-server` executable (see `spark_nats_fixture`).
fn nats_server() -> anyhow::Result<PathBuf> {
    spark_nats_fixture::nats_server().with_context(|| {
        format!(
            "nats-server is not installed: {}",
            spark_nats_fixture::INSTALL
        )
    })
}

/// Three `nats-server` nodes with JetStream, routed to each other as one cluster on
/// loopback; killed when dropped.
struct Nats {
    children: Vec<Child>,
    /// The nodes' client URLs.
    clients: Vec<String>,
    dir: tempfile::TempDir,
}

impl Nats {
    /// Starts the nodes and waits until each answers `GET /healthz` with 200. A free
    /// port found by binding it may be taken before nats-server binds it: tried again.
    fn start(binary: &Path) -> anyhow::Result<Self> {
        let mut error = None;
        for _ in 0..3 {
            match Self::try_start(binary) {
                Ok(nats) => return Ok(nats),
                Err(failed) => error = Some(failed),
            }
        }
        Err(error.context("no attempt")?)
    }

    fn try_start(binary: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("bench-nats").tempdir()?;
        let nodes = Node::on_ports(&spark_nats_fixture::free_ports(3 * NATS_NODES)?);
        let mut nats = Nats {
            children: Vec::new(),
            clients: nodes.iter().map(Node::url).collect(),
            dir,
        };
        for node in &nodes {
            let home = nats.dir.path().join(&node.name);
            std::fs::create_dir_all(&home)?;
            let config = home.join("nats-server.conf");
            std::fs::write(
                &config,
                node.config("spark-bench", &nodes, &home.join("store")),
            )?;
            let log = File::create(home.join("nats-server.log"))?;
            nats.children.push(
                Command::new(binary)
                    .arg("--config")
                    .arg(&config)
                    .current_dir(&home)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("cannot start {}", binary.display()))?,
            );
        }
        let agent = new_agent();
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, node) in nodes.iter().enumerate() {
            loop {
                let healthy = agent
                    .get(format!("http://127.0.0.1:{}/healthz", node.http_port))
                    .call()
                    .is_ok_and(|response| response.status() == 200);
                if healthy {
                    break;
                }
                let log = || {
                    std::fs::read_to_string(nats.dir.path().join(format!("n{i}/nats-server.log")))
                        .unwrap_or_default()
                };
                if let Some(status) = nats.children[i].try_wait()? {
                    anyhow::bail!("nats-server n{i} ended: {status}\n{}", log());
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "nats-server n{i} never answered /healthz\n{}",
                    log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(nats)
    }

    /// The client URLs, as `--cluster` takes them.
    fn urls(&self) -> String {
        self.clients.join(",")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_configuration_and_size_has_tenants_of_its_own() {
        let one = tenant_names("one", 1);
        assert_eq!(one.len(), TENANTS);
        assert_eq!(one[0], "one-1-0");
        for name in &one {
            spark_host::validate_tenant_name(name).unwrap();
        }
        assert!(
            tenant_names("one", 1000)
                .iter()
                .all(|name| !one.contains(name))
        );
    }
}
