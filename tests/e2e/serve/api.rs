//! The API as clients meet it: many clients at once, tokens across tenants, retried
//! requests, bad requests, paging.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Client, Server, token};
use crate::support::{Spark, guests, jsonl};

/// A data dir with a server, tenant `acme` set up through the API (the recorder as the
/// source of `thing` and as the handler `every` of every group), and an admin token.
fn acme() -> (Spark, Server, Client) {
    let spark = Spark::new();
    let admin = token(&spark, &["--tenant", "acme", "--scope", "admin"]);
    let server = Server::start(&spark, &[]);
    let client = server.client(Some(&admin));
    set_up(&client, "acme");
    (spark, server, client)
}

fn set_up(client: &Client, tenant: &str) {
    let source = client.put_module(tenant, "source", guests::RECORDER, "source=thing");
    assert_eq!(source.status, 200, "{source:?}");
    assert_eq!(source.body["sources"], json!(["thing"]));
    let every = client.put_module(tenant, "every", guests::RECORDER, "handler=.");
    assert_eq!(every.status, 200, "{every:?}");
}

/// A record of `thing` making one event `e_ID`.
fn record(id: &str) -> Value {
    json!({ "id": id, "events": [{ "group": "e", "id": id }] })
}

fn keys(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn eight_clients_posting_single_records_at_once_store_each_once() {
    let (spark, server, admin) = acme();
    // An application's token may post records and nothing else.
    let ingest = token(&spark, &["--tenant", "acme", "--scope", "ingest"]);
    let url = server.url.clone();
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let ingest = Client::new(&url, Some(&ingest));
            std::thread::spawn(move || {
                for n in 0..60 {
                    let id = format!("c{client}-{n}");
                    let body = jsonl(&[record(&id)]);
                    let answer =
                        ingest.send("POST", "/v1/tenants/acme/records/thing", body.as_bytes());
                    assert_eq!(answer.status, 200, "{answer:?}");
                    assert_eq!(answer.body["records"], 1);
                    assert_eq!(answer.body["new"], 1, "{answer:?}");
                    // The same record again: nothing new.
                    let again =
                        ingest.send("POST", "/v1/tenants/acme/records/thing", body.as_bytes());
                    assert_eq!(again.status, 200, "{again:?}");
                    assert_eq!(again.body["new"], 0);
                    assert_eq!(again.body["duplicates"], 1);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let events = admin.all("/v1/tenants/acme/events");
    let keys = keys(&events);
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), 480);
    assert_eq!(unique.len(), 480, "every key once");
    let outbox = admin.all("/v1/tenants/acme/outbox");
    assert_eq!(outbox.len(), 480, "one effect per event");
    let events_of_outbox: BTreeSet<&str> = outbox
        .iter()
        .map(|item| item["event"].as_str().unwrap())
        .collect();
    assert_eq!(events_of_outbox.len(), 480);
    // Many requests were committed together, and none was refused.
    let metrics = admin.get("/metrics").body;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("spark_records_total{result=\"stored\"} 960"),
        "{metrics}"
    );
    assert!(!metrics.contains("status=\"429\""), "{metrics}");
}

/// Every tenant route, with a body where it takes one.
fn routes(tenant: &str) -> Vec<(&'static str, String, Vec<u8>)> {
    let t = format!("/v1/tenants/{tenant}");
    let wasm = std::fs::read(guests::RECORDER).unwrap();
    vec![
        (
            "POST",
            format!("{t}/records/thing"),
            jsonl(&[record("x")]).into_bytes(),
        ),
        ("GET", format!("{t}/events"), vec![]),
        ("GET", format!("{t}/events/e_1"), vec![]),
        ("GET", format!("{t}/outbox"), vec![]),
        ("POST", format!("{t}/outbox/send"), vec![]),
        ("POST", format!("{t}/outbox/retry"), vec![]),
        ("GET", format!("{t}/dead"), vec![]),
        ("POST", format!("{t}/dead/retry"), vec![]),
        ("GET", format!("{t}/modules"), vec![]),
        ("PUT", format!("{t}/modules/intruder?handler=."), wasm),
        ("DELETE", format!("{t}/modules/every"), vec![]),
        ("GET", format!("{t}/templates"), vec![]),
        (
            "PUT",
            format!("{t}/templates/e"),
            b"Subject: hi\n\nhello".to_vec(),
        ),
        ("DELETE", format!("{t}/templates/e"), vec![]),
        ("POST", format!("{t}/templates/e/preview"), b"{}".to_vec()),
        ("GET", format!("{t}/settings"), vec![]),
        ("PUT", format!("{t}/settings"), b"{}".to_vec()),
        ("PATCH", format!("{t}/settings"), b"{}".to_vec()),
        ("POST", format!("{t}/outbox/cancel?id=1"), vec![]),
        ("POST", format!("{t}/outbox/rerender"), vec![]),
        ("POST", format!("{t}/dead/discard?all=true"), vec![]),
        ("POST", format!("{t}/ledger/forget?group=."), vec![]),
    ]
}

#[test]
fn a_token_never_reaches_another_tenant_on_any_route() {
    let spark = Spark::new();
    let admin_a = token(&spark, &["--tenant", "a", "--scope", "admin"]);
    let admin_b = token(&spark, &["--tenant", "b", "--scope", "admin"]);
    let read_a = token(&spark, &["--tenant", "a", "--scope", "read"]);
    let ingest_a = token(&spark, &["--tenant", "a", "--scope", "ingest"]);
    let operator = token(&spark, &["--operator"]);
    let server = Server::start(&spark, &[]);
    let a = server.client(Some(&admin_a));
    let b = server.client(Some(&admin_b));
    set_up(&a, "a");
    set_up(&b, "b");
    let posted = a.send(
        "POST",
        "/v1/tenants/a/records/thing",
        jsonl(&[record("1")]).as_bytes(),
    );
    assert_eq!(posted.status, 200);
    let before = (
        a.all("/v1/tenants/a/events"),
        a.get_ok("/v1/tenants/a/modules"),
    );

    let nobody = server.client(None);
    let forged = server.client(Some(
        "spark_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000",
    ));
    let garbage = server.client(Some("hello"));
    for (method, path, body) in routes("a") {
        for (who, client, status) in [
            ("no token", &nobody, 401),
            ("a forged token", &forged, 401),
            ("a malformed token", &garbage, 401),
            ("b's admin token", &b, 403),
        ] {
            let answer = client.send(method, &path, &body);
            assert_eq!(
                answer.status, status,
                "{method} {path} with {who}: {answer:?}"
            );
            assert!(answer.body["error"].is_string(), "{answer:?}");
        }
    }
    // Nothing of a's changed, and b's token learned nothing of a, nor of a tenant
    // that does not exist (403, not 404).
    assert_eq!(
        (
            a.all("/v1/tenants/a/events"),
            a.get_ok("/v1/tenants/a/modules")
        ),
        before
    );
    assert_eq!(b.get("/v1/tenants/ghost/events").status, 403);

    // Scopes: read reads only, ingest posts only.
    let read = server.client(Some(&read_a));
    let ingest = server.client(Some(&ingest_a));
    for (method, path, body) in routes("a") {
        let reads = method == "GET" || path.ends_with("/preview");
        let posts = path.contains("/records/");
        let answer = read.send(method, &path, &body);
        assert_eq!(
            answer.status == 403,
            !reads,
            "read token, {method} {path}: {answer:?}"
        );
        let answer = ingest.send(method, &path, &body);
        assert_eq!(
            answer.status == 403,
            !posts,
            "ingest token, {method} {path}: {answer:?}"
        );
    }

    // Only the operator lists tenants, and it reaches every one.
    assert_eq!(a.get("/v1/tenants").status, 403);
    let operator = server.client(Some(&operator));
    let tenants = operator.get_ok("/v1/tenants");
    let names: Vec<&str> = tenants["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tenant| tenant["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(operator.get("/v1/tenants/b/events").status, 200);
}

#[test]
fn a_retried_request_with_its_idempotency_key_changes_nothing() {
    let (_spark, _server, client) = acme();
    let post = |body: &str, key: &str| {
        client
            .try_send(
                "POST",
                "/v1/tenants/acme/records/thing",
                body.as_bytes(),
                &[("Idempotency-Key", key)],
            )
            .unwrap()
    };
    let first_body = jsonl(&[json!({ "id": "1", "events": [{ "group": "e", "id": "v1" }] })]);
    let first = post(&first_body, "request-1");
    assert_eq!((first.status, &first.body["new"]), (200, &json!(1)));
    // The record changes in between...
    let second = post(
        &jsonl(&[json!({ "id": "1", "events": [{ "group": "e", "id": "v2" }] })]),
        "request-2",
    );
    assert_eq!(second.body["new"], 1);
    // ...and the first request comes again, as a client retrying after a timeout sends
    // it: the first answer, and the record is not set back.
    let again = post(&first_body, "request-1");
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    // The same key with another body is refused, not answered with the first answer.
    let reused = post(&jsonl(&[record("other")]), "request-1");
    assert_eq!(reused.status, 422, "{reused:?}");
    assert_eq!(reused.body["error"], "idempotency_key_reused");
    let bad_key = post(&first_body, "with space");
    assert_eq!(bad_key.status, 400, "{bad_key:?}");

    let events = keys(&client.all("/v1/tenants/acme/events"));
    assert_eq!(events, ["e_v1", "e_v2"]);
    // The stored record is the second request's: re-running the sources finds no
    // event it has not seen.
    let outbox = client.all("/v1/tenants/acme/outbox");
    assert_eq!(outbox.len(), 2);
}

#[test]
fn bad_requests_get_the_right_4xx_and_store_nothing() {
    let spark = Spark::new();
    let admin = token(&spark, &["--tenant", "acme", "--scope", "admin"]);
    let ghost = token(&spark, &["--tenant", "ghost", "--scope", "admin"]);
    let server = Server::start(&spark, &["--max-body", "1"]);
    let client = server.client(Some(&admin));
    set_up(&client, "acme");
    let settings = client.get_ok("/v1/tenants/acme/settings");
    let expect = |method: &str, path: &str, body: &[u8], status: u16, kind: &str| {
        let answer = client.send(method, path, body);
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        assert_eq!(answer.body["error"], kind, "{method} {path}: {answer:?}");
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    };
    let records = "/v1/tenants/acme/records/thing";
    expect("POST", records, b"[{\"id\": 1}, ", 400, "bad_request");
    // A body over the limit is refused from its announced length, before it is read.
    let status = super::status_of_announced_body(&server.url, records, &admin, 2 << 20);
    assert_eq!(status, 413);
    expect(
        "POST",
        "/v1/tenants/acme/records/nothing",
        b"{\"id\":1}",
        404,
        "unknown_model",
    );
    expect(
        "POST",
        &format!("{records}?now=yesterday"),
        b"{\"id\":1}",
        400,
        "invalid_time",
    );
    expect(
        "POST",
        &format!("{records}?nowe=2024-01-01"),
        b"{\"id\":1}",
        400,
        "bad_request",
    );
    expect(
        "GET",
        "/v1/tenants/acme/events?group=(",
        b"",
        400,
        "invalid_regex",
    );
    expect(
        "GET",
        "/v1/tenants/acme/events?limit=0",
        b"",
        400,
        "bad_request",
    );
    expect(
        "GET",
        "/v1/tenants/acme/events/nope",
        b"",
        404,
        "unknown_event",
    );
    expect(
        "GET",
        "/v1/tenants/acme/outbox?status=lost",
        b"",
        400,
        "bad_request",
    );
    expect("GET", "/v1/nothing", b"", 404, "not_found");
    expect(
        "PUT",
        "/v1/tenants/acme/modules/bad",
        b"\0asm not really",
        422,
        "invalid_module",
    );
    expect(
        "PUT",
        "/v1/tenants/acme/modules/bad",
        b"",
        422,
        "invalid_module",
    );
    expect(
        "PUT",
        "/v1/tenants/acme/modules/bad?handler=(",
        &std::fs::read(guests::RECORDER).unwrap(),
        400,
        "invalid_regex",
    );
    expect(
        "PUT",
        "/v1/tenants/acme/templates/e",
        b"Subject: {{ oops\n\nbody",
        422,
        "invalid_template",
    );
    expect(
        "PUT",
        "/v1/tenants/acme/settings",
        b"{\"outputs\": {\"seen\": \"gopher://x\"}}",
        400,
        "invalid_transport",
    );
    expect(
        "PUT",
        "/v1/tenants/acme/settings",
        b"not json",
        400,
        "bad_request",
    );
    expect(
        "POST",
        "/v1/tenants/acme/templates/none/preview",
        b"{}",
        404,
        "unknown_template",
    );
    expect(
        "DELETE",
        "/v1/tenants/acme/modules/none",
        b"",
        404,
        "unknown_module",
    );
    // A token for a tenant that does not exist (yet) reads nothing.
    let answer = server.client(Some(&ghost)).get("/v1/tenants/ghost/events");
    assert_eq!(
        (answer.status, &answer.body["error"]),
        (404, &json!("unknown_tenant"))
    );

    // Lines that are not records are counted, as `ingest` counts them: 200.
    let invalid = client.send("POST", records, b"not json\n{\"no\": \"id\"}\n");
    assert_eq!(invalid.status, 200);
    assert_eq!(
        (&invalid.body["invalid"], &invalid.body["records"]),
        (&json!(2), &json!(0))
    );

    // Nothing of it was kept.
    assert!(client.all("/v1/tenants/acme/events").is_empty());
    assert!(client.all("/v1/tenants/acme/outbox").is_empty());
    let modules = client.get_ok("/v1/tenants/acme/modules");
    let modules: Vec<&str> = modules["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|module| module["name"].as_str().unwrap())
        .collect();
    assert_eq!(modules, ["source", "every"]);
    assert!(
        client.get_ok("/v1/tenants/acme/templates")["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(client.get_ok("/v1/tenants/acme/settings"), settings);
    assert!(!spark.data_dir().join("tenants/ghost").exists());
}

#[test]
fn events_are_listed_a_page_at_a_time_with_filters() {
    let (_spark, _server, client) = acme();
    let records: Vec<Value> = (0..25)
        .map(|n| {
            json!({ "id": n, "events": [
                { "group": "alpha", "key": format!("k{n:02}") },
                { "group": "beta", "key": format!("z{n:02}") },
            ]})
        })
        .collect();
    let posted = client.send(
        "POST",
        "/v1/tenants/acme/records/thing?now=2024-05-01",
        jsonl(&records).as_bytes(),
    );
    assert_eq!(posted.body["new"], 50);
    // The same as a JSON array, later: all duplicates.
    let array = serde_json::to_vec(&records).unwrap();
    let again = client.send(
        "POST",
        "/v1/tenants/acme/records/thing?now=2024-06-01",
        &array,
    );
    assert_eq!(
        (&again.body["records"], &again.body["new"]),
        (&json!(25), &json!(0))
    );

    let first = client.get_ok("/v1/tenants/acme/events?group=^alpha$&limit=10");
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    assert_eq!(first["next"], "k09");
    let all = client.all("/v1/tenants/acme/events?group=^alpha$");
    let expected: Vec<String> = (0..25).map(|n| format!("k{n:02}")).collect();
    assert_eq!(keys(&all), expected);
    let prefixed = client.all("/v1/tenants/acme/events?prefix=z1");
    assert_eq!(
        keys(&prefixed),
        (10..20).map(|n| format!("z{n}")).collect::<Vec<_>>()
    );
    let page = client.get_ok("/v1/tenants/acme/events?prefix=z2&limit=5");
    assert_eq!(page["next"], Value::Null, "the last page says so");
    assert!(
        client
            .all("/v1/tenants/acme/events?from=2024-05-02")
            .is_empty()
    );
    assert_eq!(
        client.all("/v1/tenants/acme/events?to=2024-05-02").len(),
        50
    );
    let one = client.get_ok("/v1/tenants/acme/events/k03");
    assert_eq!(
        (&one["group"], &one["created_at"]),
        (&json!("alpha"), &json!("2024-05-01T00:00:00Z"))
    );
}

#[test]
fn the_cli_is_sent_to_the_server_that_holds_the_data_dir() {
    let (spark, server, _client) = acme();
    spark
        .run(&["events", "list"])
        .code(2)
        .stderr_has(&format!("served by `spark serve` at {}", server.url));
    spark
        .run(&["serve", "--listen", "127.0.0.1:0"])
        .code(2)
        .stderr_has("served by `spark serve`");
}

#[test]
fn health_readiness_and_metrics_need_no_token() {
    let (_spark, server, client) = acme();
    let posted = client.send(
        "POST",
        "/v1/tenants/acme/records/thing",
        jsonl(&[record("1")]).as_bytes(),
    );
    assert_eq!(posted.status, 200);
    // A module stopped by a limit is counted under its name and the limit's.
    let hostile = client.put_module("acme", "hostile", guests::HOSTILE, "source=bomb");
    assert_eq!(hostile.status, 200, "{hostile:?}");
    let bombed = client.send(
        "POST",
        "/v1/tenants/acme/records/bomb",
        jsonl(&[json!({ "id": 1, "do": "huge-output" })]).as_bytes(),
    );
    assert_eq!(bombed.body["source_errors"], 1, "{bombed:?}");
    let anonymous = server.client(None);
    assert_eq!(anonymous.get("/healthz").status, 200);
    assert_eq!(anonymous.get("/readyz").status, 200);
    let metrics = anonymous.get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().unwrap();
    for line in [
        "spark_records_total{result=\"stored\"} 2",
        "spark_events_total{result=\"new\"} 1",
        "spark_http_requests_total{route=\"/v1/tenants/{tenant}/records/{model}\",method=\"POST\",status=\"200\"} 2",
        "spark_tenants_open 1",
        "spark_module_calls_total{module=\"source\"} 1",
        "spark_module_calls_total{module=\"every\"} 1",
        "spark_module_calls_total{module=\"hostile\"} 1",
        "spark_module_limit_breaches_total{module=\"hostile\",limit=\"output-bytes\"} 1",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
}

#[test]
fn a_full_queue_answers_429_with_retry_after_and_stores_nothing_of_it() {
    let spark = Spark::new();
    let admin = token(&spark, &["--tenant", "acme", "--scope", "admin"]);
    let server = Server::start(&spark, &["--queue", "1"]);
    let client = server.client(Some(&admin));
    set_up(&client, "acme");
    // Twelve large requests at once, for a queue that holds one waiting request.
    let posts: Vec<_> = (0..12)
        .map(|n| {
            let client = client.clone();
            std::thread::spawn(move || {
                let records: Vec<Value> = (0..2_000).map(|i| record(&format!("{n}-{i}"))).collect();
                client.send(
                    "POST",
                    "/v1/tenants/acme/records/thing",
                    jsonl(&records).as_bytes(),
                )
            })
        })
        .collect();
    let mut stored = 0;
    let mut refused = 0;
    for post in posts {
        let answer = post.join().unwrap();
        match answer.status {
            200 => stored += answer.body["records"].as_u64().unwrap(),
            429 => {
                refused += 1;
                assert_eq!(answer.body["error"], "queue_full");
                assert_eq!(answer.retry_after.as_deref(), Some("1"));
            }
            _ => panic!("{answer:?}"),
        }
    }
    assert!(refused > 0, "the queue never filled");
    assert_eq!(client.all("/v1/tenants/acme/events").len() as u64, stored);
}

#[test]
fn generators_are_defined_run_and_described_through_the_api() {
    let (_spark, _server, client) = acme();
    let records: Vec<Value> = (1..=3)
        .map(|n| json!({ "id": n, "stars": n, "events": [] }))
        .collect();
    let posted = client.send(
        "POST",
        "/v1/tenants/acme/records/thing",
        jsonl(&records).as_bytes(),
    );
    assert_eq!(posted.body["records"], 3);
    let generator = json!({ "group": "popular", "model": "thing", "conditions": ["stars >= 2"] });
    let path = "/v1/tenants/acme/generators/popular";
    let defined = client.send("PUT", path, generator.to_string().as_bytes());
    assert_eq!(defined.status, 200, "{defined:?}");
    assert_eq!(
        defined.body,
        json!({ "name": "popular", "group": "popular", "model": "thing",
                "conditions": ["stars >= 2"], "active": true })
    );
    // A name in use is a conflict unless replacing; a bad condition is refused.
    assert_eq!(
        client
            .send("PUT", path, generator.to_string().as_bytes())
            .status,
        409
    );
    let replaced = client.send(
        "PUT",
        &format!("{path}?replace=true"),
        generator.to_string().as_bytes(),
    );
    assert_eq!(replaced.status, 200);
    let bad = json!({ "group": "popular", "model": "thing", "conditions": ["stars >>> 2"] });
    let refused = client.send(
        "PUT",
        "/v1/tenants/acme/generators/bad",
        bad.to_string().as_bytes(),
    );
    assert_eq!(
        (refused.status, &refused.body["error"]),
        (422, &json!("invalid_generator"))
    );

    let listed = client.get_ok("/v1/tenants/acme/generators");
    assert_eq!(listed["items"], json!([defined.body]));
    let described = client.get_ok("/v1/tenants/acme/models/thing");
    assert_eq!(described["context_from"], "module", "{described}");

    let deactivated = client.send("POST", &format!("{path}/deactivate"), b"");
    assert_eq!(deactivated.body["active"], false);
    let nothing = client.send("POST", "/v1/tenants/acme/generate?now=2024-05-01", b"");
    assert_eq!((nothing.status, &nothing.body["new"]), (200, &json!(0)));
    let activated = client.send("POST", &format!("{path}/activate"), b"");
    assert_eq!(activated.body["active"], true);
    let generated = client.send("POST", "/v1/tenants/acme/generate?now=2024-05-01", b"");
    assert_eq!(generated.body["new"], 2, "{generated:?}");
    let keys = keys(&client.all("/v1/tenants/acme/events?group=^popular$"));
    assert_eq!(keys, ["popular_2", "popular_3"]);

    let reprocessed = client.send("POST", "/v1/tenants/acme/process-sources?model=thing", b"");
    assert_eq!(
        (&reprocessed.body["records"], &reprocessed.body["new"]),
        (&json!(3), &json!(0))
    );
    let unknown = client.send(
        "POST",
        "/v1/tenants/acme/process-sources?model=nothing",
        b"",
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(client.send("DELETE", path, b"").status, 204);
    assert_eq!(client.get(path).status, 404);
}

/// The value of a metric without labels in `/metrics`.
fn metric(client: &Client, name: &str) -> f64 {
    let text = client.get("/metrics").body;
    let text = text.as_str().unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn tenants_open_on_use_and_close_when_too_many_or_idle() {
    let spark = Spark::new();
    let operator = token(&spark, &["--operator"]);
    let server = Server::start(
        &spark,
        &["--max-open-tenants", "2", "--idle", "1", "--log-json"],
    );
    let client = server.client(Some(&operator));
    for tenant in ["t1", "t2", "t3", "t4"] {
        set_up(&client, tenant);
        let posted = client.send(
            "POST",
            &format!("/v1/tenants/{tenant}/records/thing"),
            jsonl(&[record(tenant)]).as_bytes(),
        );
        assert_eq!(posted.status, 200, "{posted:?}");
        assert!(metric(&client, "spark_tenants_open") <= 2.0);
    }
    // Each tenant, closed or not, answers again with what it kept.
    for tenant in ["t1", "t2", "t3", "t4"] {
        let events = client.all(&format!("/v1/tenants/{tenant}/events"));
        assert_eq!(keys(&events), [format!("e_{tenant}")]);
    }
    // Idle for a second with nothing to send or retry: closed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while metric(&client, "spark_tenants_open") > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "idle tenants stay open"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // --log-json: each log line is a JSON object.
    drop(client);
    let mut server = server;
    assert_eq!(
        server.signal("TERM", std::time::Duration::from_secs(60)),
        Some(0)
    );
    let logged = server.logged();
    assert!(!logged.is_empty());
    for line in &logged {
        let line: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("{line}"));
        assert!(
            line["level"].is_string() && line["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn pending_deliveries_one_template_and_a_module_kept_from_replacing_are_read() {
    let (_spark, _server, client) = acme();
    let mut settings = client.get_ok("/v1/tenants/acme/settings");
    settings["retry"] = json!({ "attempts": 3, "backoff-ms": 600_000 });
    let put = client.send(
        "PUT",
        "/v1/tenants/acme/settings",
        settings.to_string().as_bytes(),
    );
    assert_eq!(put.status, 200);
    let record = json!({ "id": 1, "events": [
        { "group": "e", "id": 1, "context": { "fail_before_attempt": 2 } },
    ]});
    let posted = client.send(
        "POST",
        "/v1/tenants/acme/records/thing",
        jsonl(&[record]).as_bytes(),
    );
    assert_eq!(posted.body["pending"], 1);
    let pending = client.get_ok("/v1/tenants/acme/pending?event=e_1");
    let items = pending["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pending}");
    assert_eq!(
        (&items[0]["handler"], &items[0]["attempts"]),
        (&json!("every"), &json!(1))
    );
    assert_eq!(items[0]["error_kind"], "guest-error");
    let none = client.get_ok("/v1/tenants/acme/pending?event=e_2");
    assert!(none["items"].as_array().unwrap().is_empty());

    let template = "Subject: Hi {{ name }}\n\nHello";
    let put = client.send("PUT", "/v1/tenants/acme/templates/e", template.as_bytes());
    assert_eq!(put.status, 200, "{put:?}");
    let read = client.get_ok("/v1/tenants/acme/templates/e");
    assert_eq!(read, json!({ "group": "e", "template": template }));
    assert_eq!(client.get("/v1/tenants/acme/templates/f").status, 404);

    // `replace=false`: a name in use is a conflict, and the module stays as it was.
    let wasm = std::fs::read(guests::HOSTILE).unwrap();
    let kept = client.send(
        "PUT",
        "/v1/tenants/acme/modules/every?handler=x&replace=false",
        &wasm,
    );
    assert_eq!((kept.status, &kept.body["error"]), (409, &json!("exists")));
    let modules = client.get_ok("/v1/tenants/acme/modules");
    assert_eq!(modules["items"][1]["handlers"], json!(["."]));
    let added = client.send(
        "PUT",
        "/v1/tenants/acme/modules/new?handler=x&replace=false",
        &wasm,
    );
    assert_eq!(added.status, 200, "{added:?}");
}
