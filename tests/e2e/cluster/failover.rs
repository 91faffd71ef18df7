//! Two Spark nodes over the three JetStream servers, under load, killed: every key once,
//! every outbox item once, every mail once per Message-ID; a paused node is fenced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::NatsCluster;
use crate::rng::Rng;
use crate::serve::{Answer, Client, Server, token};
use crate::servers::{HttpServer, SmtpServer};
use crate::support::{Spark, guests, jsonl};

/// How long anything may take before a test gives up (a takeover waits for a lease to
/// lapse, 10 s, and a JetStream election for a few more; a shard let go waits for its
/// tenants to close; and the suite runs beside other heavy tests).
pub(super) const PATIENCE: Duration = Duration::from_secs(240);

/// A Spark node of the cluster: its own data dir, its server while it runs.
pub(super) struct Node {
    pub(super) spark: Spark,
    pub(super) server: Option<Server>,
}

/// A test that fails shows what the nodes said last.
impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(server) = &self.server
        {
            let said = server.logged();
            let from = said.len().saturating_sub(400);
            eprintln!(
                "node {} said, last:\n{}",
                server.url,
                said[from..].join("\n")
            );
        }
    }
}

impl Node {
    pub(super) fn new() -> Self {
        Self {
            spark: Spark::new(),
            server: None,
        }
    }

    pub(super) fn start(&mut self, nats: &NatsCluster) {
        self.start_with_env(nats, &[]);
    }

    /// Starts the node with the environment variables `vars`.
    pub(super) fn start_with_env(&mut self, nats: &NatsCluster, vars: &[(&str, &str)]) {
        let urls = nats.urls();
        self.server = Some(Server::start_with_env(
            &self.spark,
            &["--cluster", &urls, "--replicas", "3"],
            vars,
        ));
    }

    pub(super) fn url(&self) -> String {
        self.server.as_ref().expect("the node runs").url.clone()
    }

    pub(super) fn kill(&mut self) {
        let mut server = self.server.take().expect("the node runs");
        server.signal("KILL", Duration::from_secs(30));
    }
}

/// Sends a request until it is answered with something else than "try again" (a
/// transport error, 429, 503): what a client of a cluster does while a tenant moves.
pub(super) fn patiently(
    what: &str,
    mut send: impl FnMut() -> Result<Answer, ureq::Error>,
) -> Answer {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match send() {
            Ok(answer) if answer.status != 429 && answer.status != 503 => return answer,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: never answered: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Every item of a listing, following `next`, each page asked for patiently (a tenant
/// may move between nodes meanwhile: a node that joins takes its share back).
pub(super) fn all(client: &Client, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = match &after {
            Some(after) => {
                let after: String = form_urlencoded::byte_serialize(after.as_bytes()).collect();
                format!("{path}?after={after}&limit=1000")
            }
            None => format!("{path}?limit=1000"),
        };
        let answer = patiently(&page, || client.try_send("GET", &page, b"", &[]));
        assert_eq!(answer.status, 200, "{page}: {answer:?}");
        items.extend(answer.body["items"].as_array().unwrap().iter().cloned());
        match answer.body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// Checks that `tenant`, through `client`'s node, holds `records(0, count)`'s every
/// event key once, and every handler's effect for each event once.
pub(super) fn each_once(client: &Client, tenant: &str, count: u64) {
    let keys: Vec<String> = all(client, &format!("/v1/tenants/{tenant}/events"))
        .iter()
        .map(|event| event["key"].as_str().unwrap().to_owned())
        .collect();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), unique.len(), "{tenant}: a key twice");
    assert_eq!(
        keys.len() as u64,
        2 * count + count / 10,
        "{tenant}: every key"
    );
    let mut deliveries: BTreeMap<(String, String), u32> = BTreeMap::new();
    for item in all(client, &format!("/v1/tenants/{tenant}/outbox")) {
        let handler = item["handler"].as_str().unwrap().to_owned();
        *deliveries
            .entry((item["event"].as_str().unwrap().to_owned(), handler))
            .or_default() += 1;
    }
    let doubled: Vec<_> = deliveries.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "{tenant}: effects twice: {doubled:?}");
    // e_N, x_N: the recorder's; m_N: the mail and the recorder's.
    assert_eq!(
        deliveries.len() as u64,
        2 * count + 2 * count / 10,
        "{tenant}: every delivery"
    );
}

/// Posts `records(from, from + count)` to acme through the node at `url` with an
/// idempotency key of its own, until answered: its report.
pub(super) fn post_batch(url: &str, operator: &str, from: u64, count: u64) -> Answer {
    let body = records(from, from + count);
    let key = format!("batch-{from}");
    let client = Client::new(url, Some(operator));
    let answer = patiently(&key, || {
        client.try_send(
            "POST",
            "/v1/tenants/acme/records/thing",
            body.as_bytes(),
            &[("Idempotency-Key", &key)],
        )
    });
    assert_eq!(answer.status, 200, "{key}: {answer:?}");
    assert_eq!(answer.body["records"], count, "{key}: {answer:?}");
    answer
}

/// Two Spark nodes over `nats`, an operator token (made on node 0's data dir before
/// they start) and their URLs, once they own every shard between them.
fn two_nodes(nats: &NatsCluster) -> ([Node; 2], String, Vec<String>) {
    let mut nodes = [Node::new(), Node::new()];
    let operator = token(&nodes[0].spark, &["--operator"]);
    nodes[0].start(nats);
    nodes[1].start(nats);
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    balanced(&urls, &operator);
    (nodes, operator, urls)
}

/// Sets tenant `tenant` up through `client`'s node: the recorder as the source of
/// `thing` and as the handler `every` of every group, the built-in mails for `^m$` with
/// a template, and the settings given.
pub(super) fn set_up(client: &Client, tenant: &str, settings: Value) {
    let recorder = std::fs::read(guests::RECORDER).unwrap();
    for (name, query, body) in [
        ("source", "source=thing", recorder.as_slice()),
        ("every", "handler=.", recorder.as_slice()),
        ("mailer", "native=builtin:mails&handler=%5Em%24", &[][..]),
    ] {
        let path = format!("/v1/tenants/{tenant}/modules/{name}?{query}");
        let answer = patiently(&path, || client.try_send("PUT", &path, body, &[]));
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
    }
    let path = format!("/v1/tenants/{tenant}/templates/m");
    let answer = patiently(&path, || {
        client.try_send(
            "PUT",
            &path,
            b"Hello {{ n }}\n\nYour number is {{ n }}.\n",
            &[],
        )
    });
    assert_eq!(answer.status, 200, "{answer:?}");
    let path = format!("/v1/tenants/{tenant}/settings");
    let body = settings.to_string();
    let answer = patiently(&path, || {
        client.try_send("PATCH", &path, body.as_bytes(), &[])
    });
    assert_eq!(answer.status, 200, "{answer:?}");
}

/// Records `from..to`: each makes `e_N` and `x_N`, every tenth also `m_N`, a mail to
/// `userN@example.com` (the recorder's effect for each event, the built-in mails'
/// for `m_N`). Mails are a tenth: an SMTP server on loopback takes some 60 a second.
pub(super) fn records(from: u64, to: u64) -> String {
    let records: Vec<Value> = (from..to)
        .map(|n| {
            let mut events = vec![
                json!({ "group": "e", "id": n }),
                json!({ "group": "x", "id": n }),
            ];
            if n % 10 == 0 {
                events.push(
                    json!({ "group": "m", "id": n, "context": { "n": n, "spark_mail": {
                    "to": [format!("user{n}@example.com")] } } }),
                );
            }
            json!({ "id": n, "events": events })
        })
        .collect();
    jsonl(&records)
}

/// Waits until the nodes at `urls` own every shard between them, none more than its
/// share and one (more, and its keeper lets some go): the cluster is balanced, and
/// owners stay put unless a node goes.
pub(super) fn balanced(urls: &[String], operator: &str) {
    let deadline = Instant::now() + PATIENCE;
    let share = 256usize.div_ceil(urls.len());
    loop {
        let owned: Vec<usize> = urls
            .iter()
            .map(|url| {
                let status = Client::new(url, Some(operator)).get_ok("/v1/cluster");
                status["owned"].as_array().unwrap().len()
            })
            .collect();
        if owned.iter().all(|n| (1..=share + 1).contains(n)) && owned.iter().sum::<usize>() == 256 {
            return;
        }
        assert!(Instant::now() < deadline, "never balanced: {owned:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The URL of the node owning `tenant`, as the owner itself says (another node's
/// word may be a moment old), once one does.
pub(super) fn owner(urls: &[String], operator: &str, tenant: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for url in urls {
            let status =
                Client::new(url, Some(operator)).get_ok(&format!("/v1/cluster?tenant={tenant}"));
            if status["tenant"]["owner"]["node"] == status["node"] {
                return url.clone();
            }
        }
        assert!(Instant::now() < deadline, "no node owns {tenant}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn nothing_is_lost_or_doubled_when_a_spark_node_then_the_stream_leader_are_killed() {
    const TENANTS: u64 = 4;
    const RECORDS: u64 = 5_000; // a tenant
    const BATCH: u64 = 250;
    const CLI_RECORDS: u64 = 1_000;
    let mut rng = Rng::from_env("cluster_failover");
    let mut nats = NatsCluster::start();
    let smtp = SmtpServer::start(
        "accept",
        &std::env::temp_dir().join(format!("spark-cluster-mails-{}", rng.next())),
    );
    let mut nodes = [Node::new(), Node::new()];
    // An operator token made on one node's data dir works on every node.
    let operator = token(&nodes[0].spark, &["--operator"]);
    nodes[0].start(&nats);
    nodes[1].start(&nats);
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    balanced(&urls, &operator);
    let tenants: Vec<String> = (0..TENANTS).map(|n| format!("t{n}")).collect();
    for (n, tenant) in tenants.iter().enumerate() {
        // Half of the set-up through each node: requests reach the owner either way.
        let client = Client::new(&urls[n % 2], Some(&operator));
        set_up(
            &client,
            tenant,
            json!({ "mail": { "from": "Team <team@example.com>", "transport": smtp.url() } }),
        );
    }
    let owners: BTreeMap<&String, String> = tenants
        .iter()
        .map(|tenant| (tenant, owner(&urls, &operator, tenant)))
        .collect();
    eprintln!("owners: {owners:?}");

    // Two clients a tenant, one posting through each node, each batch with an
    // idempotency key, retried (through the other node when its own is down) until
    // answered.
    let live_urls = Arc::new(Mutex::new(urls.clone()));
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..TENANTS * 2)
        .map(|client| {
            let (live_urls, done, operator) = (live_urls.clone(), done.clone(), operator.clone());
            let tenant = format!("t{}", client / 2);
            std::thread::spawn(move || {
                let share = RECORDS / 2;
                let path = format!("/v1/tenants/{tenant}/records/thing");
                for batch in 0..share / BATCH {
                    let from = (client % 2) * share + batch * BATCH;
                    let body = records(from, from + BATCH);
                    let key = format!("client-{client}-batch-{batch}");
                    let mut attempt = client as usize;
                    let answer = patiently(&key, || {
                        attempt += 1;
                        let urls = live_urls.lock().unwrap().clone();
                        let url = &urls[attempt % urls.len()];
                        Client::new(url, Some(&operator)).try_send(
                            "POST",
                            &path,
                            body.as_bytes(),
                            &[("Idempotency-Key", &key)],
                        )
                    });
                    assert_eq!(answer.status, 200, "{key}: {answer:?}");
                    assert_eq!(answer.body["records"], BATCH, "{key}: {answer:?}");
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // And the CLI, as an operator runs it against any node (`--server`): its own
    // records of t0, a whole file, run again through a live node if a node dies under
    // it (each run with keys of its own: the ledger keeps each event once anyway).
    let cli = {
        let (live_urls, operator) = (live_urls.clone(), operator.clone());
        let spark = Spark::new();
        let file = spark.write("cli.jsonl", records(RECORDS, RECORDS + CLI_RECORDS));
        std::thread::spawn(move || {
            let deadline = Instant::now() + PATIENCE;
            for attempt in 0.. {
                let urls = live_urls.lock().unwrap().clone();
                let url = &urls[attempt % urls.len()];
                let run = spark.run(&[
                    "--server",
                    url,
                    "--token",
                    &operator,
                    "--tenant",
                    "t0",
                    "ingest",
                    "--model",
                    "thing",
                    file.to_str().unwrap(),
                    "--json",
                ]);
                if run.code == 0 {
                    assert_eq!(run.json()["records"], CLI_RECORDS, "{}", run.stdout);
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "the CLI never got through: {}",
                    run.stderr
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let batches = (TENANTS * RECORDS / BATCH) as usize;
    let wait_for = |fraction: usize| {
        let deadline = Instant::now() + PATIENCE;
        while done.load(Ordering::SeqCst) < batches * fraction / 100 {
            assert!(Instant::now() < deadline, "the clients stopped");
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    // A Spark node killed at a random moment of the first half.
    wait_for(rng.between(10..45) as usize);
    // The node owning a tenant picked at random (a node may own none of the four).
    let victim = &owners[&tenants[rng.between(0..TENANTS) as usize]];
    let dead = urls.iter().position(|url| url == victim).unwrap();
    let survivor = 1 - dead;
    *live_urls.lock().unwrap() = vec![urls[survivor].clone()];
    nodes[dead].kill();
    let killed = Instant::now();
    // How long until every tenant the dead node owned is answered by the survivor.
    let survivor_client = Client::new(&urls[survivor], Some(&operator));
    for (tenant, _) in owners.iter().filter(|(_, url)| **url == urls[dead]) {
        let path = format!("/v1/tenants/{tenant}/events?limit=1");
        let answer = patiently(&path, || survivor_client.try_send("GET", &path, b"", &[]));
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    eprintln!(
        "the survivor answers for the dead node's tenants {:?} after the kill",
        killed.elapsed()
    );

    // Then the leader of the commit log's stream.
    wait_for(55);
    let leader = nats.wait_stream_leader("SPARK_COMMITS");
    nats.kill(leader);
    eprintln!("JetStream node {leader}, the commit log's leader, killed");

    // Both back.
    wait_for(70);
    nats.restart(leader);
    nodes[dead].start(&nats);
    let restarted = nodes[dead].url();
    *live_urls.lock().unwrap() = vec![urls[survivor].clone(), restarted.clone()];
    for client in clients {
        client.join().unwrap();
    }
    cli.join().unwrap();

    // The outbox drains by itself; then every node sees the same, once each.
    let mails_expected = (TENANTS * RECORDS + CLI_RECORDS) / 10;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut statuses: BTreeMap<(String, String), usize> = BTreeMap::new();
        for tenant in &tenants {
            for item in all(&survivor_client, &format!("/v1/tenants/{tenant}/outbox")) {
                if item["kind"] == "mail" {
                    let status = item["status"].as_str().unwrap().to_owned();
                    *statuses.entry((tenant.clone(), status)).or_default() += 1;
                }
            }
        }
        let sent: usize = statuses
            .iter()
            .filter(|((_, status), _)| status == "sent")
            .map(|(_, n)| n)
            .sum();
        if sent as u64 == mails_expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sent} of {mails_expected} mails sent: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for url in [&urls[survivor], &restarted] {
        let client = Client::new(url, Some(&operator));
        for tenant in &tenants {
            let records = if tenant == "t0" {
                RECORDS + CLI_RECORDS
            } else {
                RECORDS
            };
            each_once(&client, tenant, records);
        }
    }
    // The SMTP server got every mail. One sent again is one that was on its way when
    // its tenant moved (a kill, the log's election, a node taking its share back): its
    // sent mark never reached the log, and the next owner sent it under the same
    // Message-ID. At most a sender's window (workers plus a batch of marks) a move; the
    // moves are the takeovers in the tenants' commit logs, after the first.
    let mut by_id: BTreeMap<String, u32> = BTreeMap::new();
    for message in smtp.received() {
        let id = message
            .lines()
            .find_map(|line| line.strip_prefix("Message-ID: "))
            .expect("every mail has a Message-ID")
            .to_owned();
        *by_id.entry(id).or_default() += 1;
    }
    assert_eq!(
        by_id.len() as u64,
        mails_expected,
        "every mail, by Message-ID"
    );
    let again: u32 = by_id.values().map(|n| n - 1).sum();
    let live = nats.wait_stream_leader("SPARK_COMMITS");
    let moves: usize = tenants
        .iter()
        .map(|tenant| {
            let status = survivor_client.get_ok(&format!("/v1/cluster?tenant={tenant}"));
            let shard = status["tenant"]["shard"].as_u64().unwrap();
            let log = commit_log(&nats, live, shard);
            log.iter().filter(|(_, kind, _)| kind == "takeover").count() - 1
        })
        .sum();
    let window = spark_host::DEFAULT_CONCURRENCY + spark_host::MARK_BATCH;
    eprintln!("{again} mails sent again over {moves} moves (at most {window} a move)");
    assert!(
        again as usize <= moves * window,
        "{again} mails sent again over {moves} moves"
    );
    drop(nodes);
}

/// The records of a shard's commit log, through the JetStream API: (sequence, kind,
/// message id).
fn commit_log(nats: &NatsCluster, server: usize, shard: u64) -> Vec<(u64, String, String)> {
    let subject = format!("spark.commit.{shard}");
    let mut records = Vec::new();
    let mut next = 1;
    loop {
        let answer = nats.request(
            server,
            "$JS.API.STREAM.MSG.GET.SPARK_COMMITS",
            json!({ "seq": next, "next_by_subj": subject }).to_string(),
        );
        let Some(message) = answer.get("message") else {
            assert_eq!(answer["error"]["code"], 404, "{answer}");
            return records;
        };
        let sequence = message["seq"].as_u64().unwrap();
        let headers = base64_decode(message["hdrs"].as_str().unwrap_or_default());
        let header = |name: &str| {
            headers
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        records.push((sequence, header("Spark-Kind"), header("Nats-Msg-Id")));
        next = sequence + 1;
    }
}

fn base64_decode(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut bytes = Vec::new();
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte).expect("base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn a_node_paused_past_its_lease_is_fenced_out_of_the_log() {
    let nats = NatsCluster::start();
    let (nodes, operator, urls) = two_nodes(&nats);
    // The outputs' receiver refuses everything: the owner's sender keeps trying, and
    // each try is a commit (the item's attempts), also while and after it is paused.
    let refusing = HttpServer::start(503);
    let client = Client::new(&urls[0], Some(&operator));
    set_up(
        &client,
        "acme",
        json!({ "outputs": { "seen": refusing.url() } }),
    );
    let owner_url = owner(&urls, &operator, "acme");
    let paused = urls.iter().position(|url| *url == owner_url).unwrap();
    let other = 1 - paused;
    let shard = client.get_ok("/v1/cluster?tenant=acme")["tenant"]["shard"]
        .as_u64()
        .unwrap();
    let post = |url: &str, from: u64| drop(post_batch(url, &operator, from, 10));
    post(&urls[paused], 0);
    // Message ids start with the node's id (`node-HEX-...`).
    let node_of = |id: &str| id.split('-').take(2).collect::<Vec<_>>().join("-");
    let paused_node = Client::new(&urls[paused], Some(&operator)).get_ok("/v1/cluster")["node"]
        .as_str()
        .unwrap()
        .to_owned();

    let pid = nodes[paused].server.as_ref().unwrap().pid();
    signal(pid, "STOP");
    // Through the other node, which takes the shard over once the lease lapses.
    post(&urls[other], 10);
    assert_eq!(owner(&urls[other..=other], &operator, "acme"), urls[other]);
    signal(pid, "CONT");
    // The paused node, awake, still believes for a moment that it owns the shard, and
    // its sender tries to commit; give it time to try and to learn otherwise.
    std::thread::sleep(Duration::from_secs(6));
    post(&urls[other], 20);

    // The fence: each record of the log is written by the node whose takeover came
    // last before it, whoever was paused, woke up or took the shard back since.
    let log = commit_log(&nats, 0, shard);
    let mut writer = None;
    for (sequence, kind, id) in &log {
        if kind == "takeover" {
            writer = Some(node_of(id));
        } else {
            assert_eq!(
                Some(node_of(id)),
                writer,
                "record {sequence} written by a node that had lost the shard: {log:?}"
            );
        }
    }
    // The paused node did lose it meanwhile.
    assert!(
        log.iter()
            .any(|(_, kind, id)| kind == "takeover" && node_of(id) != paused_node),
        "{log:?}"
    );
    // And it tried to write after it woke (its sender, retrying the refusing
    // receiver): refused, by its own lease's deadline or by the log.
    let said = nodes[paused].server.as_ref().unwrap().logged();
    assert!(
        said.iter().any(|line| line.contains("acme")
            && (line.contains("does not hold tenant") || line.contains("another node owns"))),
        "{said:?}"
    );
    // Nothing lost: every key once, on the new owner.
    let keys: Vec<String> = all(
        &Client::new(&urls[other], Some(&operator)),
        "/v1/tenants/acme/events",
    )
    .iter()
    .map(|event| event["key"].as_str().unwrap().to_owned())
    .collect();
    // 3 batches of 10 records: e_N and x_N each, m_N for every tenth.
    assert_eq!(keys.len(), 63, "{keys:?}");
    drop(nodes);
    drop(nats);
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_console_works_through_a_node_that_does_not_own_the_tenant() {
    let nats = NatsCluster::start();
    let mut nodes = [Node::new(), Node::new()];
    let operator = token(&nodes[0].spark, &["--operator"]);
    let admin = token(&nodes[1].spark, &["--tenant", "acme", "--scope", "admin"]);
    nodes[0].start(&nats);
    nodes[1].start(&nats);
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    balanced(&urls, &operator);
    let client = Client::new(&urls[0], Some(&operator));
    set_up(&client, "acme", json!({}));
    let body = records(0, 5);
    let answer = patiently("records", || {
        client.try_send(
            "POST",
            "/v1/tenants/acme/records/thing",
            body.as_bytes(),
            &[],
        )
    });
    assert_eq!(answer.status, 200, "{answer:?}");
    let owner_url = owner(&urls, &operator, "acme");
    let other = urls.iter().find(|url| **url != owner_url).unwrap();

    // Signed in on the node that does not own acme (with a token made on the other
    // node's data dir): every page is the owner's, passed on with the session.
    let browser = crate::console::Browser::new();
    browser.sign_in(other, "acme", &admin);
    browser.check(
        browser.path() == "/console/t/acme",
        "signed in to acme's overview",
    );
    browser.goto(&format!("{other}/console/t/acme/events"));
    let text = browser.page_text();
    browser.check(
        text.contains("e_0") && text.contains("m_0"),
        "acme's events listed",
    );
    // A form of the owner's page, posted through the other node: its CSRF token is the
    // session's, known to both.
    browser.goto(&format!("{other}/console/t/acme/outbox"));
    browser.post("/console/t/acme/outbox/send");
    browser.check(
        browser.status() == 200,
        "the outbox sent through the other node",
    );
    browser.check(
        browser.current_url().starts_with(other.as_str()),
        "still on the other node",
    );

    // A page the other node cannot pass on (here: one already passed on once, as when
    // the tenant moved meanwhile) is a page that says so and reloads itself; the API's
    // answer stays JSON.
    let client = Client::new(other, Some(&admin));
    let passed_on = [("spark-forwarded-by", "node-elsewhere")];
    let page = client
        .try_send("GET", "/console/t/acme/events", b"", &passed_on)
        .unwrap();
    assert_eq!(page.status, 503, "{page:?}");
    assert_eq!(page.retry_after.as_deref(), Some("1"), "{page:?}");
    let html = page.body.as_str().expect("a page, not JSON");
    assert!(html.contains("Try again in a moment"), "{html}");
    assert!(html.contains("moving between nodes"), "{html}");
    assert!(
        html.contains(r#"<meta http-equiv="refresh" content="1">"#),
        "{html}"
    );
    let answer = client
        .try_send("GET", "/v1/tenants/acme/events", b"", &passed_on)
        .unwrap();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["error"], "unavailable", "{answer:?}");
}

#[test]
fn a_token_made_on_one_node_works_on_every_node_until_revoked_on_another() {
    let nats = NatsCluster::start();
    let (nodes, operator, urls) = two_nodes(&nats);
    // Made on node 1's data dir while both run: node 0 takes it within a few seconds.
    let reader = token(
        &nodes[1].spark,
        &["--tenant", "acme", "--scope", "read", "--name", "ops"],
    );
    // The status of a read of acme through `url` (a node that does not own acme passes
    // it on; a moment while acme moves is waited out).
    let status_on = |url: &str, token: &str| {
        let client = Client::new(url, Some(token));
        patiently("a read", || {
            client.try_send("GET", "/v1/tenants/acme/events", b"", &[])
        })
        .status
    };
    let eventually = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let listed = |node: &Node| {
        node.spark
            .run(&["tokens", "list"])
            .ok()
            .stdout
            .contains("ops")
    };
    eventually("node 0 has the token", &|| listed(&nodes[0]));
    assert_eq!(
        status_on(&urls[0], &reader),
        404,
        "a known token, a tenant not made yet"
    );
    // An operator's token from node 0 works on node 1 from its start.
    assert_eq!(
        Client::new(&urls[1], Some(&operator))
            .get("/v1/cluster")
            .status,
        200
    );
    // Revoked on node 0's data dir: refused on node 1 too.
    nodes[0].spark.run(&["tokens", "revoke", "ops"]).ok();
    eventually("node 1 forgot the token", &|| !listed(&nodes[1]));
    assert_eq!(status_on(&urls[0], &reader), 401);
    assert_eq!(status_on(&urls[1], &reader), 401);
}
