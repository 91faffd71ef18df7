//! Shard snapshots: the owner of a busy shard keeps a snapshot of it beside the log,
//! and the node taking the shard over when the owner dies restores it and replays only
//! the commits after, nothing lost or doubled.

use std::time::{Duration, Instant};

use serde_json::json;

use super::NatsCluster;
use super::failover::{Node, PATIENCE, balanced, each_once, owner, post_batch, set_up};
use crate::serve::{Client, Server, token};
use crate::servers::SmtpServer;

/// Waits until `server` logs a line `wanted` picks, keeping what it logged in `said`:
/// that line.
fn wait_logged(
    server: &Server,
    said: &mut Vec<String>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        said.extend(server.logged());
        if let Some(line) = said.iter().find(|line| wanted(line)) {
            return line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never logged; it said, last: {:?}",
            &said[said.len().saturating_sub(50)..]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_takeover_restores_the_shards_snapshot_and_replays_only_what_came_after() {
    const BATCH: u64 = 20;
    let nats = NatsCluster::start();
    let smtp = SmtpServer::start(
        "accept",
        &std::env::temp_dir().join(format!(
            "spark-cluster-snapshot-mails-{}",
            std::process::id()
        )),
    );
    let mut nodes = [Node::new(), Node::new()];
    let operator = token(&nodes[0].spark, &["--operator"]);
    // A snapshot every 50 entries: a few batches make one.
    let env = [("SPARK_CLUSTER_SNAPSHOT_EVERY", "50")];
    nodes[0].start_with_env(&nats, &env);
    nodes[1].start_with_env(&nats, &env);
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    balanced(&urls, &operator);
    let client = Client::new(&urls[0], Some(&operator));
    set_up(
        &client,
        "acme",
        json!({ "mail": { "from": "Team <team@example.com>", "transport": smtp.url() } }),
    );
    let owner_url = owner(&urls, &operator, "acme");
    let dead = urls.iter().position(|url| *url == owner_url).unwrap();
    let survivor = 1 - dead;
    let shard = client.get_ok("/v1/cluster?tenant=acme")["tenant"]["shard"]
        .as_u64()
        .unwrap();
    let post = |url: &str, from: u64| drop(post_batch(url, &operator, from, BATCH));

    // Through both nodes, to the owner, until the owner has taken a snapshot (past 50
    // entries, at its keeper's next look).
    let mut next = 0;
    let mut owner_said = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    let saved = loop {
        post(&urls[(next / BATCH) as usize % 2], next);
        next += BATCH;
        owner_said.extend(nodes[dead].server.as_ref().unwrap().logged());
        if let Some(line) = owner_said
            .iter()
            .find(|line| line.contains(&format!("shard {shard}: snapshot saved")))
        {
            break line.clone();
        }
        assert!(Instant::now() < deadline, "no snapshot: {owner_said:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("the owner: {saved}");
    // More after the snapshot, then the owner dies without a word.
    for _ in 0..2 {
        post(&urls[dead], next);
        next += BATCH;
    }
    nodes[dead].kill();
    // Through the survivor, which takes the shard over once the lease lapses.
    for _ in 0..2 {
        post(&urls[survivor], next);
        next += BATCH;
    }
    let mut survivor_said = Vec::new();
    let taken = wait_logged(
        nodes[survivor].server.as_ref().unwrap(),
        &mut survivor_said,
        "the survivor's takeover",
        |line| line.contains(&format!("shard {shard}: taken over")),
    );
    eprintln!("the survivor: {taken}");
    assert!(taken.contains("restored from a snapshot"), "{taken}");
    let skipped: u64 = taken
        .split(", ")
        .find_map(|part| part.strip_suffix(" skipped"))
        .and_then(|number| number.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count of skipped entries: {taken}"));
    assert!(skipped > 0, "{taken}");

    // Every key once, every effect once, on the survivor.
    let survivor_client = Client::new(&urls[survivor], Some(&operator));
    each_once(&survivor_client, "acme", next);
    drop(nodes);
    drop(nats);
}
