//! The NATS cluster harness against the real servers: three nodes that see each
//! other, a meta leader, a new one when it dies, streams with leaders of their own,
//! a paused node and a restarted one.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::json;

use super::NatsCluster;
use super::nats::{BOUND, MAX_PAYLOAD, NODES};

/// Every node but `i`.
fn others(i: usize) -> BTreeSet<usize> {
    (0..NODES).filter(|&j| j != i).collect()
}

#[test]
fn a_nats_cluster_elects_a_new_meta_leader_when_its_leader_is_killed() {
    let mut cluster = NatsCluster::start();
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.split(',').collect();
    assert_eq!(urls.len(), NODES, "{urls:?}");
    for (i, url) in urls.iter().enumerate() {
        assert!(url.starts_with("nats://127.0.0.1:"), "{url}");
        assert_eq!(*url, cluster.url(i));
        assert_eq!(cluster.routes(i), others(i), "node {i}'s routes");
        let varz = cluster.monitor(i, "/varz");
        assert_eq!(varz["max_payload"], MAX_PAYLOAD, "node {i}");
        let store = varz["jetstream"]["config"]["store_dir"].as_str().unwrap();
        assert!(
            store.ends_with(&format!("/n{i}/store/jetstream")),
            "{store}"
        );
    }
    let leader = cluster
        .meta_leader()
        .expect("a ready cluster has a meta leader");

    cluster.kill(leader);
    let killed = Instant::now();
    let elected = cluster.wait_meta_leader();
    let took = killed.elapsed();
    assert_ne!(elected, leader);
    assert!(took < BOUND);
    eprintln!("node {elected} leads the meta group {took:?} after node {leader} was killed");

    cluster.restart(leader);
    for i in 0..NODES {
        assert_eq!(
            cluster.routes(i),
            others(i),
            "node {i}'s routes after the restart"
        );
    }
    assert!(cluster.meta_leader().is_some());
}

#[test]
fn a_nats_cluster_says_who_leads_a_stream_and_goes_on_with_a_node_paused() {
    let mut cluster = NatsCluster::start();
    let created = cluster.request(
        0,
        "$JS.API.STREAM.CREATE.HARNESS",
        json!({"name": "HARNESS", "subjects": ["harness.>"], "num_replicas": 3}).to_string(),
    );
    assert!(created.get("error").is_none(), "{created}");
    let stream_leader = cluster.wait_stream_leader("HARNESS");
    let meta_leader = cluster.meta_leader().unwrap();

    // A node that leads neither, paused: the others go on, a message as big as a
    // large commit group included.
    let paused = (0..NODES)
        .find(|&i| i != stream_leader && i != meta_leader)
        .unwrap();
    cluster.pause(paused);
    assert_eq!(cluster.meta_leader(), Some(meta_leader));
    assert_eq!(cluster.stream_leader("HARNESS"), Some(stream_leader));
    let big = vec![b'x'; 5 << 20];
    let ack = cluster.request(stream_leader, "harness.big", &big);
    assert_eq!(ack["seq"], 1, "{ack}");
    cluster.resume(paused);
    cluster.wait_ready();

    // The stream leader stopped gracefully hands the stream over.
    cluster.terminate(stream_leader);
    let stopped = Instant::now();
    let next = cluster.wait_stream_leader("HARNESS");
    assert_ne!(next, stream_leader);
    eprintln!(
        "node {next} leads the stream {:?} after node {stream_leader} was stopped",
        stopped.elapsed()
    );
    cluster.restart(stream_leader);
    let info = cluster.request(stream_leader, "$JS.API.STREAM.INFO.HARNESS", "");
    assert_eq!(info["state"]["messages"], 1, "{info}");
}
