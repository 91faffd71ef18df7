//! The server stopped and killed under load, and its modules replaced under load.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Client, Server, acme_event_keys, acme_json, token};
use crate::support::{Spark, guests, jsonl};

/// Records `from..to` of `thing`: each makes `e_N`, whose handler emits `emitted_N`,
/// and `x_N` (the crash tests' records).
fn records(from: u64, to: u64) -> Vec<Value> {
    (from..to)
        .map(|n| {
            json!({ "id": n, "events": [
                { "group": "e", "id": n, "context": { "emit": [{ "group": "emitted", "id": n }] } },
                { "group": "x", "id": n },
            ]})
        })
        .collect()
}

/// A data dir with the crash tests' set-up through the API: the recorder as the source
/// and as three handlers.
fn set_up(client: &Client) {
    for (name, query) in [
        ("source", "source=thing"),
        ("first", "handler=^e"),
        ("every", "handler=."),
        ("x", "handler=^x$"),
    ] {
        let answer = client.put_module("acme", name, guests::RECORDER, query);
        assert_eq!(answer.status, 200, "{answer:?}");
    }
}

#[test]
fn sigterm_answers_the_requests_in_flight_then_exits_0() {
    let spark = Spark::new();
    let admin = token(&spark, &["--tenant", "acme", "--scope", "admin"]);
    let mut server = Server::start(&spark, &[]);
    let client = server.client(Some(&admin));
    set_up(&client);
    let started = Instant::now();
    let posts: Vec<_> = (0..4u64)
        .map(|n| {
            let client = client.clone();
            std::thread::spawn(move || {
                let body = jsonl(&records(n * 3_000, (n + 1) * 3_000));
                let answer = client.try_send(
                    "POST",
                    "/v1/tenants/acme/records/thing",
                    body.as_bytes(),
                    &[],
                );
                (
                    n,
                    answer
                        .ok()
                        .map(|answer| (answer.status, answer.body["records"].clone())),
                    Instant::now(),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    let status = server.signal("TERM", Duration::from_secs(60));
    assert_eq!(status, Some(0), "{:?}", server.logged());
    let mut answered_after_the_signal = 0;
    let mut stored = BTreeSet::new();
    for post in posts {
        let (n, answer, at) = post.join().unwrap();
        // A request the server had taken is answered in full; one it had not is
        // refused at the door (the connection), never cut in half.
        if let Some((status, records)) = answer {
            assert_eq!((status, records), (200, json!(3_000)), "request {n}");
            stored.insert(n);
            if at > signalled {
                answered_after_the_signal += 1;
            }
        }
    }
    assert!(
        answered_after_the_signal > 0,
        "no request was in flight at the signal ({:?} after the start)",
        signalled - started
    );
    // Everything answered is there once the server is gone.
    let keys = acme_event_keys(&spark);
    for n in &stored {
        for record in [n * 3_000, n * 3_000 + 2_999] {
            assert!(
                keys.contains(&format!("x_{record}")),
                "request {n}'s records kept"
            );
        }
    }
}

#[test]
fn sigkill_during_a_20000_record_ingest_loses_and_doubles_nothing() {
    const RECORDS: u64 = 20_000;
    const BATCH: u64 = 250;
    let spark = Spark::new();
    let admin = token(&spark, &["--tenant", "acme", "--scope", "admin"]);
    let ingest = token(&spark, &["--tenant", "acme", "--scope", "ingest"]);
    let server = Server::start(&spark, &[]);
    set_up(&server.client(Some(&admin)));
    let url = Arc::new(Mutex::new(server.url.clone()));
    let server = Arc::new(Mutex::new(server));
    let done = Arc::new(AtomicUsize::new(0));
    // Four clients, each posting its share in batches with an idempotency key, and
    // retrying each batch until it is answered, whatever happens to the server.
    let clients: Vec<_> = (0..4u64)
        .map(|client| {
            let (url, done, ingest) = (url.clone(), done.clone(), ingest.clone());
            std::thread::spawn(move || {
                let share = RECORDS / 4;
                for batch in 0..share / BATCH {
                    let from = client * share + batch * BATCH;
                    let body = jsonl(&records(from, from + BATCH));
                    let key = format!("client-{client}-batch-{batch}");
                    let deadline = Instant::now() + Duration::from_secs(300);
                    loop {
                        let url = url.lock().unwrap().clone();
                        let answer = Client::new(&url, Some(&ingest)).try_send(
                            "POST",
                            "/v1/tenants/acme/records/thing",
                            body.as_bytes(),
                            &[("Idempotency-Key", &key)],
                        );
                        match answer {
                            Ok(answer) if answer.status == 200 => {
                                assert_eq!(answer.body["records"], BATCH);
                                break;
                            }
                            Ok(answer) if answer.status < 500 && answer.status != 429 => {
                                panic!("{key}: {answer:?}")
                            }
                            _ => {
                                assert!(Instant::now() < deadline, "{key} never answered");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Killed three times part-way, each time started again on the same data dir.
    let batches = (RECORDS / BATCH) as usize;
    for kill in 1..=3 {
        while done.load(Ordering::SeqCst) < kill * batches / 4 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut server = server.lock().unwrap();
        server.signal("KILL", Duration::from_secs(30));
        *server = Server::start(&spark, &[]);
        *url.lock().unwrap() = server.url.clone();
    }
    for client in clients {
        client.join().unwrap();
    }
    let status = server
        .lock()
        .unwrap()
        .signal("TERM", Duration::from_secs(60));
    assert_eq!(status, Some(0));

    // Every key once, every handler's effect for every event once.
    let keys = acme_event_keys(&spark);
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), unique.len(), "a key twice");
    assert_eq!(keys.len() as u64, 3 * RECORDS, "every key");
    let mut deliveries: BTreeMap<(String, String), u32> = BTreeMap::new();
    for item in acme_json(&spark, &["outbox", "list"]) {
        let event = item["data"]["payload"]["key"].as_str().unwrap().to_owned();
        let handler = item["handler"].as_str().unwrap().to_owned();
        *deliveries.entry((event, handler)).or_default() += 1;
    }
    let doubled: Vec<_> = deliveries.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "effects committed twice: {doubled:?}");
    assert_eq!(deliveries.len() as u64, 6 * RECORDS, "every delivery once");
}

#[test]
fn a_module_replaced_during_an_ingest_handles_each_event_alone() {
    let spark = Spark::new();
    let admin = token(&spark, &["--tenant", "acme", "--scope", "admin"]);
    let server = Server::start(&spark, &[]);
    let client = server.client(Some(&admin));
    let source = client.put_module("acme", "source", guests::RECORDER, "source=thing");
    assert_eq!(source.status, 200);
    let first = client.put_module("acme", "handler", guests::RECORDER, "handler=.");
    assert_eq!(first.status, 200);
    // Each event holds what both versions need: the recorder answers an output `seen`,
    // the built-in mail handler a mail.
    let record = |n: u64| {
        json!({ "id": n, "events": [{ "group": "e", "id": n, "context": {
            "spark_mail": { "to": "a@example.com", "subject": "s", "body": "b" },
        }}]})
    };
    let posted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let posting = {
        let (client, posted, stop) = (client.clone(), posted.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let answer = client.send(
                    "POST",
                    "/v1/tenants/acme/records/thing",
                    jsonl(&[record(n)]).as_bytes(),
                );
                assert_eq!(answer.status, 200, "{answer:?}");
                n += 1;
                posted.store(n as usize, Ordering::SeqCst);
            }
            n
        })
    };
    let wait_for_more = |more: usize| {
        let target = posted.load(Ordering::SeqCst) + more;
        while posted.load(Ordering::SeqCst) < target {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // Replaced while the records come: by the built-in handler, then by the recorder.
    let mut versions = vec![first.body["since"].clone()];
    for (query, wasm) in [
        ("handler=.&native=builtin:mails", None),
        ("handler=.", Some(guests::RECORDER)),
    ] {
        wait_for_more(50);
        let body = wasm
            .map(|wasm| std::fs::read(wasm).unwrap())
            .unwrap_or_default();
        let answer = client.send(
            "PUT",
            &format!("/v1/tenants/acme/modules/handler?{query}"),
            &body,
        );
        assert_eq!(answer.status, 200, "{answer:?}");
        versions.push(answer.body["since"].clone());
    }
    wait_for_more(50);
    stop.store(true, Ordering::SeqCst);
    let records = posting.join().unwrap();
    let distinct: BTreeSet<String> = versions.iter().map(ToString::to_string).collect();
    assert_eq!(
        distinct.len(),
        3,
        "each version says since when it runs: {versions:?}"
    );

    let outbox = client.all("/v1/tenants/acme/outbox");
    let mut per_event: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in &outbox {
        per_event
            .entry(item["event"].as_str().unwrap().to_owned())
            .or_default()
            .push(item["kind"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_event.len() as u64, records, "every event handled");
    assert!(
        per_event.values().all(|kinds| kinds.len() == 1),
        "an event handled by two versions"
    );
    let kinds: BTreeSet<&str> = per_event.values().map(|kinds| kinds[0].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["mail", "output"]),
        "both versions ran"
    );
}
