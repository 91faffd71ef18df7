//! Outputs delivered by `spark outbox send`: each channel to its own transport, a
//! real HTTP server among them, each output once, none lost when delivery fails.

use std::net::TcpListener;

use serde_json::{Value, json};

use crate::servers::HttpServer;
use crate::support::{Spark, guests, jsonl};

/// A tenant whose handler `audit` returns an output on channel `seen` for each job,
/// set up by a manifest whose `[outputs]` table is `outputs`, with two jobs ingested.
fn audited(outputs: &str) -> Spark {
    audited_jobs(outputs, 2)
}

/// [`audited`], with `jobs` jobs.
pub fn audited_jobs(outputs: &str, jobs: u64) -> Spark {
    let spark = Spark::new();
    let manifest = spark.write(
        "spark.toml",
        format!(
            "[[modules]]\nname = \"source\"\npath = {recorder:?}\nsources = [\"thing\"]\n\n\
             [[modules]]\nname = \"audit\"\npath = {recorder:?}\nhandlers = [\"^job\"]\n\n\
             [outputs]\n{outputs}\n",
            recorder = guests::RECORDER
        ),
    );
    spark.run(&["apply", manifest.to_str().unwrap()]).ok();
    let jobs: Vec<Value> = (1..=jobs)
        .map(|id| json!({ "id": id, "events": [{ "group": "job", "id": id }] }))
        .collect();
    spark
        .run_with_input(&["ingest", "--model", "thing"], &jsonl(&jobs))
        .ok();
    spark
}

/// `outbox send` with the channel `seen` routed to `server`: its summary line.
fn send_to(spark: &Spark, server: &HttpServer) -> String {
    let seen = format!("seen={}/seen", server.url());
    let run = spark.run(&["outbox", "send", "--output", &seen]).ok();
    run.stdout.trim().to_owned()
}

fn statuses(spark: &Spark) -> Vec<(String, u64)> {
    spark
        .outbox()
        .iter()
        .map(|item| {
            (
                item["status"].as_str().unwrap().to_owned(),
                item["attempts"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn outputs_are_posted_to_a_real_http_server_once_each() {
    let server = HttpServer::start(204);
    let spark = audited(&format!("seen = \"{}/hooks/seen\"", server.url()));
    let report = spark.run(&["outbox", "send", "--json"]).ok().json();
    assert_eq!(
        report,
        json!({ "sent": 2, "failed": 0, "parked": 0, "waiting": 0, "skipped": 0 })
    );

    let received = server.received();
    assert_eq!(received.len(), 2, "{received:?}");
    for (request, (id, key)) in received.iter().zip([(1, "job_1"), (2, "job_2")]) {
        assert_eq!(request["path"], "/hooks/seen");
        assert_eq!(request["headers"]["content-type"], "application/json");
        assert_eq!(
            request["headers"]["idempotency-key"],
            format!("spark.default.{id}")
        );
        // The body is the handler's payload itself.
        let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, json!({ "key": key, "group": "job", "attempt": 1 }));
    }
    assert_eq!(statuses(&spark), [("sent".into(), 1), ("sent".into(), 1)]);

    // Sent is sent: nothing goes twice.
    let again = spark.run(&["outbox", "send", "--json"]).ok().json();
    assert_eq!(
        again,
        json!({ "sent": 0, "failed": 0, "parked": 0, "waiting": 0, "skipped": 0 })
    );
    assert_eq!(server.received().len(), 2);
}

#[test]
fn with_a_secret_each_post_is_signed_as_the_readme_says() {
    let server = HttpServer::start_checking(200, Some("whsec-test"));
    let spark = audited(&format!("seen = \"{}/seen\"", server.url()));
    spark
        .run_with_env(
            &[("SPARK_OUTPUT_SECRET", "whsec-test")],
            &["outbox", "send"],
            "",
        )
        .ok();
    let received = server.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request["signature_holds"], true, "{request}");
    }

    // Signed with another secret, the receiver refuses the signature.
    let fresh = audited(&format!("seen = \"{}/seen\"", server.url()));
    fresh
        .run_with_env(&[("SPARK_OUTPUT_SECRET", "guess")], &["outbox", "send"], "")
        .ok();
    let holds: Vec<bool> = server
        .received()
        .iter()
        .map(|request| request["signature_holds"].as_bool().unwrap())
        .collect();
    assert_eq!(holds.iter().filter(|holds| **holds).count(), 2, "{holds:?}");
    assert_eq!(holds.len(), 4);

    // Without a secret, no signature; an empty one is a mistake, refused.
    let unsigned = audited(&format!("seen = \"{}/seen\"", server.url()));
    unsigned
        .run_with_env(&[("SPARK_OUTPUT_SECRET", "")], &["outbox", "send"], "")
        .code(2)
        .stderr_has("SPARK_OUTPUT_SECRET is set but empty");
    unsigned.run(&["outbox", "send"]).ok();
    let received = server.received();
    assert_eq!(received.len(), 6);
    let unsigned = received
        .iter()
        .filter(|r| r["headers"]["spark-signature"].is_null());
    assert_eq!(unsigned.count(), 2);
}

#[test]
fn many_outputs_sent_at_once_each_arrive_once_and_are_marked() {
    let server = HttpServer::start(200);
    let spark = audited_jobs(&format!("seen = \"{}/seen\"", server.url()), 40);
    let report = spark
        .run(&["outbox", "send", "--concurrency", "8", "--json"])
        .ok()
        .json();
    assert_eq!(
        report,
        json!({ "sent": 40, "failed": 0, "parked": 0, "waiting": 0, "skipped": 0 })
    );
    let expected: Vec<String> = (1..=40).map(|id| format!("spark.default.{id}")).collect();
    assert_eq!(server.idempotency_keys(), expected);
    assert!(
        statuses(&spark)
            .iter()
            .all(|status| *status == ("sent".into(), 1))
    );
    let again = spark.run(&["outbox", "send", "--json"]).ok().json();
    assert_eq!(again["sent"], 0);
    assert_eq!(server.received().len(), 40);
}

#[test]
fn a_refusing_or_absent_receiver_keeps_the_outputs_for_the_next_send() {
    let refusing = HttpServer::start(503);
    let spark = audited(&format!("seen = \"{}/seen\"", refusing.url()));
    let run = spark
        .run(&["outbox", "send", "--json"])
        .code(1)
        .stderr_has("outbox item 1 was not sent (it stays pending)")
        .stderr_has("503 Service Unavailable: the test server is busy");
    assert_eq!(
        run.json(),
        json!({ "sent": 0, "failed": 2, "parked": 0, "waiting": 0, "skipped": 0 })
    );
    assert_eq!(refusing.received().len(), 2);
    let item = &spark.outbox()[0];
    assert_eq!(item["status"], "pending");
    assert_eq!(item["attempts"], 1);
    assert!(
        item["error"].as_str().unwrap().contains("busy"),
        "the receiver's answer is kept: {item}"
    );
    let listed = spark.run(&["outbox", "list"]).ok().stdout;
    assert!(listed.contains("failed x1"), "{listed}");

    // Nobody listens on this port any more: a connection error, the outputs kept.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("seen=http://{}/seen", listener.local_addr().unwrap())
    };
    spark
        .run(&["outbox", "send", "--output", &closed])
        .code(1)
        .stderr_has("POST http://127.0.0.1:");
    assert_eq!(
        statuses(&spark),
        [("pending".into(), 2), ("pending".into(), 2)]
    );

    // Once the receiver takes them, each goes out once, with its old id.
    let accepting = HttpServer::start(200);
    assert_eq!(send_to(&spark, &accepting), "2 sent, 0 failed");
    assert_eq!(
        accepting.idempotency_keys(),
        ["spark.default.1", "spark.default.2"]
    );
    assert_eq!(statuses(&spark), [("sent".into(), 3), ("sent".into(), 3)]);
}

#[test]
fn a_route_that_fails_five_times_in_a_row_is_given_up_for_the_run() {
    let refusing = HttpServer::start(503);
    let spark = audited_jobs(&format!("seen = \"{}/seen\"", refusing.url()), 12);
    let run = spark
        .run(&["outbox", "send", "--concurrency", "1", "--json"])
        .code(1)
        .stderr_has(
            "outputs of channel `seen`: 5 failures in a row, so 7 more were not tried; \
             they wait for the next `outbox send`",
        );
    assert_eq!(
        run.json(),
        json!({ "sent": 0, "failed": 5, "parked": 0, "waiting": 0, "skipped": 7 })
    );
    assert_eq!(refusing.received().len(), 5);
    let attempts: Vec<u64> = statuses(&spark).iter().map(|(_, n)| *n).collect();
    assert_eq!(attempts, [1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);

    // With several at once, still exactly five are tried; none is lost or doubled.
    let run = spark.run(&["outbox", "send", "--json"]).code(1).json();
    let (failed, skipped) = (
        run["failed"].as_u64().unwrap(),
        run["skipped"].as_u64().unwrap(),
    );
    assert_eq!(failed, 5, "{run}");
    assert_eq!(failed + skipped, 12, "{run}");
    assert_eq!(refusing.received().len() as u64, 5 + failed);

    let accepting = HttpServer::start(200);
    assert_eq!(send_to(&spark, &accepting), "12 sent, 0 failed");
    assert_eq!(accepting.received().len(), 12);
}

#[test]
fn outputs_of_a_channel_without_a_transport_wait_untouched() {
    let spark = audited("other = \"stdout\"");
    let run = spark
        .run(&["outbox", "send", "--json"])
        .ok()
        .stderr_has("warning: outputs of channel `seen`: 2 waiting, no transport")
        .stderr_has("--output seen=TRANSPORT");
    // With a channel routed to stdout, the summary goes to stderr.
    let summary: Value = serde_json::from_str(run.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(
        summary,
        json!({ "sent": 0, "failed": 0, "parked": 0, "waiting": 2, "skipped": 0 })
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(
        statuses(&spark),
        [("pending".into(), 0), ("pending".into(), 0)]
    );
}

#[test]
fn file_and_stdout_deliver_each_output_as_a_json_object_naming_its_origin() {
    let spark = audited("seen = \"file:seen-outputs\"");
    spark.run(&["outbox", "send"]).ok();
    // A relative directory is the manifest's, like module paths.
    let dir = spark.data_dir().with_file_name("seen-outputs");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("2.json")).unwrap()).unwrap();
    assert_eq!(written["id"], 2);
    assert_eq!(written["tenant"], "default");
    assert_eq!(written["channel"], "seen");
    assert_eq!(written["event"], "job_2");
    assert_eq!(written["handler"], "audit");
    assert_eq!(
        written["payload"],
        json!({ "key": "job_2", "group": "job", "attempt": 1 })
    );
    assert!(dir.join("1.json").exists());

    // Printed one at a time, in id order, whatever the concurrency.
    let fresh = audited_jobs("", 30);
    let run = fresh
        .run(&[
            "outbox",
            "send",
            "--output",
            "seen=stdout",
            "--concurrency",
            "8",
        ])
        .ok();
    let printed: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ids: Vec<u64> = printed.iter().map(|o| o["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=30).collect::<Vec<_>>(), "{}", run.stdout);
    assert_eq!(printed[1]["event"], "job_2");
    assert_eq!(printed[1]["payload"]["key"], "job_2");
    assert!(run.stderr.contains("30 sent, 0 failed"), "{}", run.stderr);
}

#[test]
fn a_transport_that_cannot_carry_its_route_is_refused_before_anything_is_sent() {
    let spark = audited("");
    for (args, why) in [
        (vec!["--output", "seen"], "write CHANNEL=TRANSPORT"),
        (vec!["--output", "=stdout"], "the channel name is empty"),
        (
            vec!["--output", "seen=smtp://localhost:25"],
            "SMTP carries mails",
        ),
        (vec!["--output", "seen=pigeon"], "use file:DIR"),
        (
            vec!["--transport", "http://localhost/hook"],
            "HTTP carries outputs",
        ),
        (vec![], "no transport: pass --transport (mails) or --output"),
        (
            vec!["--output", "seen=stdout", "--concurrency", "0"],
            "not in 1..=64",
        ),
    ] {
        let mut command = vec!["outbox", "send"];
        command.extend(args);
        spark.run(&command).code(2).stderr_has(why);
    }
    assert_eq!(
        statuses(&spark),
        [("pending".into(), 0), ("pending".into(), 0)]
    );

    let manifest = spark.write("bad.toml", "[outputs]\nseen = \"smtp://localhost:25\"\n");
    spark
        .run(&["apply", manifest.to_str().unwrap()])
        .code(2)
        .stderr_has("SMTP carries mails");
    let manifest = spark.write(
        "bad.toml",
        "[mails]\ntransport = \"https://example.com/x\"\n",
    );
    spark
        .run(&["apply", manifest.to_str().unwrap()])
        .code(2)
        .stderr_has("HTTP carries outputs");
    let manifest = spark.write("bad.toml", "[outputs]\n\"a\\u0007b\" = \"stdout\"\n");
    spark
        .run(&["apply", manifest.to_str().unwrap()])
        .code(2)
        .stderr_has("[outputs]: the channel name \"a\\u{7}b\" contains control characters");
    // Nothing changed: the modules are still there.
    let modules = spark.run(&["module", "list", "--json"]).ok().json_lines();
    assert_eq!(modules.len(), 2);
}

#[test]
fn prune_removes_sent_items_only_and_ids_are_never_given_again() {
    let spark = audited_jobs("seen = \"file:seen-outputs\"", 3);
    spark.run(&["outbox", "send"]).ok();
    let more = |ids: std::ops::RangeInclusive<u64>| {
        let jobs: Vec<Value> = ids
            .map(|id| json!({ "id": id, "events": [{ "group": "job", "id": id }] }))
            .collect();
        spark
            .run_with_input(&["ingest", "--model", "thing"], &jsonl(&jobs))
            .ok();
    };
    more(4..=5);
    let ids = |spark: &Spark| -> Vec<(u64, String)> {
        spark
            .outbox()
            .iter()
            .map(|item| {
                let status = item["status"].as_str().unwrap().to_owned();
                (item["id"].as_u64().unwrap(), status)
            })
            .collect()
    };

    // Nothing was sent before 2000.
    let none = spark
        .run(&["outbox", "prune", "--before", "2000-01-01", "--json"])
        .ok()
        .json();
    assert_eq!(none, json!({ "removed": 0, "kept": 5 }));
    let pruned = spark.run(&["outbox", "prune"]).ok().stdout;
    assert_eq!(pruned.trim(), "3 sent items removed, 2 kept");
    assert_eq!(ids(&spark), [(4, "pending".into()), (5, "pending".into())]);

    // Sent and pruned to the last one, the outbox still counts on.
    spark.run(&["outbox", "send"]).ok();
    spark.run(&["outbox", "prune"]).ok();
    assert!(spark.outbox().is_empty());
    more(6..=6);
    assert_eq!(ids(&spark), [(6, "pending".into())]);

    spark
        .run(&["outbox", "prune", "--before", "last tuesday"])
        .code(2)
        .stderr_has("last tuesday");
}
