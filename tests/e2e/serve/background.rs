//! What the server does by itself: sending the outbox through a receiver that fails
//! and then recovers, and retrying failed deliveries when they come due.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Client, Server, token};
use crate::servers::HttpServer;
use crate::support::{Spark, guests, jsonl};

/// Waits up to `bound` for `done` to hold.
fn eventually(bound: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "not within {bound:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn acme(extra: &[&str]) -> (Spark, Server, Client) {
    let spark = Spark::new();
    let admin = token(&spark, &["--tenant", "acme", "--scope", "admin"]);
    let server = Server::start(&spark, extra);
    let client = server.client(Some(&admin));
    for (name, query) in [("source", "source=thing"), ("every", "handler=.")] {
        let answer = client.put_module("acme", name, guests::RECORDER, query);
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    (spark, server, client)
}

#[test]
fn the_outbox_drains_by_itself_once_a_failing_receiver_recovers() {
    let (_spark, _server, client) = acme(&[]);
    // The receiver refuses the first 5 requests (503), then takes everything.
    let receiver = HttpServer::start_recovering(503, 5);
    let mut settings = client.get_ok("/v1/tenants/acme/settings");
    settings["outputs"] = json!({ "seen": receiver.url() });
    let put = client.send(
        "PUT",
        "/v1/tenants/acme/settings",
        settings.to_string().as_bytes(),
    );
    assert_eq!(put.status, 200, "{put:?}");
    let records: Vec<_> = (0..20)
        .map(|n| json!({ "id": n, "events": [{ "group": "e", "id": n }] }))
        .collect();
    let posted = client.send(
        "POST",
        "/v1/tenants/acme/records/thing",
        jsonl(&records).as_bytes(),
    );
    assert_eq!(posted.body["deliveries"], 20);
    // No command is run: the server sends, backs off, and sends again.
    eventually(Duration::from_secs(60), "every item sent", || {
        client
            .all("/v1/tenants/acme/outbox")
            .iter()
            .all(|item| item["status"] == "sent")
    });
    let outbox = client.all("/v1/tenants/acme/outbox");
    let ids: Vec<&Value> = outbox.iter().map(|item| &item["id"]).collect();
    assert_eq!(outbox.len(), 20, "{ids:?}");
    assert!(
        outbox
            .iter()
            .any(|item| item["attempts"].as_u64() > Some(1)),
        "some item failed before it went: {outbox:?}"
    );
    // The receiver saw the 5 it refused again, and each item once when it took it.
    let received = receiver.idempotency_keys();
    let unique: std::collections::BTreeSet<&String> = received.iter().collect();
    assert_eq!((received.len(), unique.len()), (25, 20));
    let metrics = client.get("/metrics").body;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("spark_outbox_total{result=\"sent\"} 20")
    );
}

#[test]
fn a_failed_delivery_is_retried_when_due_without_a_command() {
    let (_spark, _server, client) = acme(&[]);
    let mut settings = client.get_ok("/v1/tenants/acme/settings");
    settings["retry"] = json!({ "attempts": 3, "backoff-ms": 200 });
    let put = client.send(
        "PUT",
        "/v1/tenants/acme/settings",
        settings.to_string().as_bytes(),
    );
    assert_eq!(put.status, 200, "{put:?}");
    // The handler fails its first attempt, and succeeds from the second on.
    let record = json!({ "id": 1, "events": [
        { "group": "e", "id": 1, "context": { "fail_before_attempt": 2 } },
    ]});
    let posted = client.send(
        "POST",
        "/v1/tenants/acme/records/thing",
        jsonl(&[record]).as_bytes(),
    );
    assert_eq!(posted.status, 200);
    assert_eq!(posted.body["pending"], 1, "{posted:?}");
    eventually(Duration::from_secs(30), "the retry made its effect", || {
        !client.all("/v1/tenants/acme/outbox").is_empty()
    });
    let outbox = client.all("/v1/tenants/acme/outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["data"]["payload"]["attempt"], 2);
    assert!(client.all("/v1/tenants/acme/dead").is_empty());
}

#[test]
fn a_scheduled_process_sources_makes_the_events_time_brings() {
    let spark = Spark::new();
    let admin = token(&spark, &["--tenant", "acme", "--scope", "admin"]);
    let server = Server::start(&spark, &[]);
    let client = server.client(Some(&admin));
    let answer = client.put_module(
        "acme",
        "challenges",
        guests::CHALLENGES_SOURCE,
        "source=challenge&clock=day",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    // A challenge that ended yesterday, ingested as of a month ago: only created then.
    let day = |days_ago: i64| {
        spark_host::format_time(spark_host::wall_clock_ms() - days_ago * 86_400_000)[..10]
            .to_owned()
    };
    let challenge = json!({
        "id": 7, "title": "Run", "start_date": day(30), "end_date": day(1),
        "is_active": true, "donations": 5,
        "owner": { "name": "Ada", "email": "ada@example.com" },
    });
    let posted = client.send(
        "POST",
        &format!("/v1/tenants/acme/records/challenge?now={}", day(30)),
        jsonl(&[challenge]).as_bytes(),
    );
    assert_eq!(posted.body["new"], 1, "{posted:?}");
    // Every second, the server runs the sources again, as of now.
    let mut settings = client.get_ok("/v1/tenants/acme/settings");
    settings["schedule"] = json!({ "process-sources": "every 1s" });
    let put = client.send(
        "PUT",
        "/v1/tenants/acme/settings",
        settings.to_string().as_bytes(),
    );
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(put.body["schedule"]["process-sources"], "every 1s");
    eventually(
        Duration::from_secs(30),
        "the ended challenge's events",
        || client.all("/v1/tenants/acme/events").len() == 3,
    );
    let keys: Vec<Value> = client
        .all("/v1/tenants/acme/events")
        .iter()
        .map(|event| event["key"].clone())
        .collect();
    assert_eq!(
        keys,
        [
            json!("challenge_created_7"),
            json!("challenge_ended_7"),
            json!("challenge_ends_2d_7")
        ]
    );
    let bad = client.send(
        "PUT",
        "/v1/tenants/acme/settings",
        br#"{"schedule": {"generate": "hourly"}}"#,
    );
    assert_eq!(bad.status, 400, "{bad:?}");
}

#[test]
fn a_receiver_that_hangs_never_holds_up_ingest() {
    let (_spark, _server, client) = acme(&[]);
    // A receiver that takes connections and never answers: each attempt waits for the
    // sender's 30 s timeout.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = client.get_ok("/v1/tenants/acme/settings");
    settings["outputs"] = json!({ "seen": format!("http://{}", hanging.local_addr().unwrap()) });
    let put = client.send(
        "PUT",
        "/v1/tenants/acme/settings",
        settings.to_string().as_bytes(),
    );
    assert_eq!(put.status, 200, "{put:?}");
    let post = |n: u64| {
        let record = json!({ "id": n, "events": [{ "group": "e", "id": n }] });
        client.send(
            "POST",
            "/v1/tenants/acme/records/thing",
            jsonl(&[record]).as_bytes(),
        )
    };
    assert_eq!(post(0).status, 200);
    // The sender is now stuck on the receiver; ingest goes on all the same, well within
    // the time one attempt takes.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    for n in 1..=20 {
        let answer = post(n);
        assert_eq!((answer.status, &answer.body["new"]), (200, &json!(1)));
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "ingest waited for the receiver: {:?}",
        started.elapsed()
    );
    let outbox = client.all("/v1/tenants/acme/outbox");
    assert_eq!(outbox.len(), 21);
    assert!(outbox.iter().all(|item| item["status"] == "pending"));
    drop(hanging);
}
