//! Sending the outbox when things go wrong: items that can never go out are set aside
//! without holding up the rest, the sender is the tenant's of the moment of sending, a
//! dead route is tried exactly five times, and a `spark outbox send` killed at any
//! moment sends again at most the items in its window, for every transport.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::outputs::audited_jobs;
use crate::servers::{HttpServer, SmtpServer};
use crate::support::{Spark, guests, jsonl};

/// Items a send may have sent but not yet marked: `--concurrency` plus the marking
/// batch (`MARK_BATCH` in host/src/send/plan.rs).
fn window(concurrency: u64) -> u64 {
    concurrency + 16
}

/// A tenant whose records of `thing` carry one `user_welcome` event each, turned into a
/// mail by the built-in mail handler; `mails` (a `[mails]` table) is applied with it.
fn mailer(mails: &str) -> Spark {
    let spark = Spark::new();
    apply_mailer(&spark, mails);
    spark
}

fn apply_mailer(spark: &Spark, mails: &str) {
    let manifest = spark.write(
        "spark.toml",
        format!(
            "[[modules]]\nname = \"source\"\npath = {:?}\nsources = [\"thing\"]\n\n\
             [[modules]]\nname = \"mails\"\npath = \"builtin:mails\"\nhandlers = [\"^user\"]\n\n\
             {mails}\n",
            guests::RECORDER
        ),
    );
    spark.run(&["apply", manifest.to_str().unwrap()]).ok();
}

/// Ingests one mail to each of `recipients` (ids from 1), from the mail's own sender
/// when `from` is given.
fn queue_mails(spark: &Spark, recipients: &[String], from: Option<&str>) {
    let records: Vec<Value> = recipients
        .iter()
        .zip(1..)
        .map(|(to, id)| {
            let mut mail = json!({ "to": [to], "subject": format!("Mail {id}"), "body": "Hi" });
            if let Some(from) = from {
                mail["from_email"] = json!(from);
            }
            json!({ "id": id, "events": [{ "group": "user_welcome", "id": id,
                                           "context": { "spark_mail": mail } }] })
        })
        .collect();
    spark
        .run_with_input(&["ingest", "--model", "thing"], &jsonl(&records))
        .ok();
}

fn addresses(prefix: &str, count: usize) -> Vec<String> {
    (1..=count)
        .map(|n| format!("{prefix}{n}@example.com"))
        .collect()
}

fn statuses(spark: &Spark) -> Vec<String> {
    spark
        .outbox()
        .iter()
        .map(|item| item["status"].as_str().unwrap().to_owned())
        .collect()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter(|entry| {
                let name = entry.as_ref().unwrap().file_name();
                !name.to_string_lossy().starts_with('.')
            })
            .count()
    })
}

#[test]
fn addresses_that_can_never_be_valid_are_set_aside_without_holding_up_the_rest() {
    let spark = mailer("[mails]\nfrom = \"Team <team@example.com>\"");
    // Twelve hopeless addresses first, then 84 good ones: one at a time, the bad ones
    // are tried first, and must not count as the route failing.
    let mut recipients: Vec<String> = (1..=12).map(|n| format!("not an address {n}")).collect();
    recipients.extend(addresses("user", 84));
    queue_mails(&spark, &recipients, None);
    let dir = spark.data_dir().with_file_name("mails");
    let transport = format!("file:{}", dir.display());
    let send = |args: &[&str]| {
        let mut all = vec!["outbox", "send", "--transport", &transport, "--json"];
        all.extend_from_slice(args);
        spark.run(&all)
    };
    let report = send(&["--concurrency", "1"])
        .code(1)
        .stderr_has("outbox item 1 was not sent and is set aside as failed")
        .stderr_has("`spark outbox retry 1` once mended")
        .json();
    assert_eq!(
        report,
        json!({ "sent": 84, "failed": 0, "parked": 12, "waiting": 0, "skipped": 0 })
    );
    assert_eq!(files_in(&dir), 84);
    let statuses = statuses(&spark);
    assert!(
        statuses[..12].iter().all(|status| status == "failed"),
        "{statuses:?}"
    );
    assert!(
        statuses[12..].iter().all(|status| status == "sent"),
        "{statuses:?}"
    );
    let listed = spark.run(&["outbox", "list"]).ok().stdout;
    assert!(listed.contains("set aside"), "{listed}");
    let pending = spark.run(&["outbox", "list", "--pending", "--json"]).ok();
    assert!(pending.stdout.is_empty(), "{}", pending.stdout);

    // Set aside, they are not tried again by the next send...
    assert_eq!(
        send(&[]).ok().json(),
        json!({ "sent": 0, "failed": 0, "parked": 0, "waiting": 0, "skipped": 0 })
    );
    // ...until the operator says so, one or all.
    spark
        .run(&["outbox", "retry", "13"])
        .code(2)
        .stderr_has("outbox item 13 is not a failed item");
    let one = spark.run(&["outbox", "retry", "3", "--json"]).ok().json();
    assert_eq!(one, json!({ "retried": 1 }));
    let all = spark.run(&["outbox", "retry", "--json"]).ok().json();
    assert_eq!(all, json!({ "retried": 11 }));
    assert_eq!(count_status(&spark, "pending"), 12);
    let again = send(&[]).code(1).json();
    assert_eq!(again["parked"], 12);
    let attempts: Vec<u64> = spark.outbox()[..12]
        .iter()
        .map(|item| item["attempts"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [2; 12]);
    assert_eq!(files_in(&dir), 84, "nothing was sent twice");
}

fn count_status(spark: &Spark, status: &str) -> usize {
    statuses(spark).iter().filter(|s| *s == status).count()
}

#[test]
fn mails_queued_before_a_sender_was_set_go_out_once_it_is() {
    let spark = mailer("");
    queue_mails(&spark, &addresses("user", 8), None);
    let dir = spark.data_dir().with_file_name("mails");
    let transport = format!("file:{}", dir.display());
    let report = spark
        .run(&["outbox", "send", "--transport", &transport, "--json"])
        .code(1)
        .stderr_has("it has no sender; set `from` under [mails]")
        .json();
    // No sender is the tenant's to mend, not the mails' fault: they stay pending, and
    // the route is given up after five.
    assert_eq!(
        report,
        json!({ "sent": 0, "failed": 5, "parked": 0, "waiting": 0, "skipped": 3 })
    );
    assert_eq!(count_status(&spark, "pending"), 8);

    apply_mailer(
        &spark,
        "[mails]\nfrom = \"Shop <shop@example.com>\"\nreply-to = \"help@example.com\"",
    );
    // The listing shows the sender they will be sent with.
    assert!(
        spark
            .outbox()
            .iter()
            .all(|item| item["data"]["from"] == "Shop <shop@example.com>")
    );
    let report = spark
        .run(&["outbox", "send", "--transport", &transport, "--json"])
        .ok()
        .json();
    assert_eq!(report["sent"], 8);
    let message = std::fs::read_to_string(dir.join("1.eml")).unwrap();
    assert!(
        message.contains("From: Shop <shop@example.com>"),
        "{message}"
    );
    assert!(message.contains("Reply-To: help@example.com"), "{message}");

    // A mail that names its own sender keeps it whatever the tenant's is.
    let own = mailer("[mails]\nfrom = \"Shop <shop@example.com>\"");
    queue_mails(&own, &addresses("user", 1), Some("Me <me@example.com>"));
    let dir = own.data_dir().with_file_name("mails");
    own.run(&[
        "outbox",
        "send",
        "--transport",
        &format!("file:{}", dir.display()),
    ])
    .ok();
    let message = std::fs::read_to_string(dir.join("1.eml")).unwrap();
    assert!(message.contains("From: Me <me@example.com>"), "{message}");
}

#[test]
fn a_dead_route_is_tried_exactly_five_times_at_any_concurrency() {
    let spark = mailer("[mails]\nfrom = \"Team <team@example.com>\"");
    queue_mails(&spark, &addresses("user", 20), None);
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("smtp://{}", listener.local_addr().unwrap())
    };
    for concurrency in ["1", "8"] {
        let report = spark
            .run(&[
                "outbox",
                "send",
                "--transport",
                &closed,
                "--concurrency",
                concurrency,
                "--json",
            ])
            .code(1)
            .stderr_has("5 failures in a row, so 15 more were not tried")
            .json();
        assert_eq!(
            report,
            json!({ "sent": 0, "failed": 5, "parked": 0, "waiting": 0, "skipped": 15 }),
            "at concurrency {concurrency}"
        );
    }
    let tried: u64 = spark
        .outbox()
        .iter()
        .map(|item| item["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(tried, 10);
}

#[test]
fn a_mailbox_the_server_does_not_know_sets_that_mail_aside_and_the_rest_go_out() {
    let spark = mailer("[mails]\nfrom = \"Team <team@example.com>\"");
    let mut recipients = addresses("bounce", 7);
    recipients.extend(addresses("user", 5));
    queue_mails(&spark, &recipients, None);
    let server = SmtpServer::start("bounce", &spark.data_dir().with_file_name("maildir"));
    let report = spark
        .run(&[
            "outbox",
            "send",
            "--transport",
            &server.url(),
            "--concurrency",
            "1",
            "--json",
        ])
        .code(1)
        .stderr_has("5.1.1 no such mailbox here")
        .json();
    assert_eq!(
        report,
        json!({ "sent": 5, "failed": 0, "parked": 7, "waiting": 0, "skipped": 0 })
    );
    assert_eq!(server.received().len(), 5);
    assert_eq!(count_status(&spark, "failed"), 7);
}

/// Starts `spark ARGS` (an `outbox send`) with its output dropped.
fn send_in_background(spark: &Spark, args: &[&str]) -> std::process::Child {
    spark
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A `spark outbox send` killed while it sends: `delivered` counts what its receiver got
/// so far. Waits until at least `at_least` arrived, kills it with SIGKILL, and returns
/// how many had arrived then.
fn kill_while_sending(
    mut child: std::process::Child,
    at_least: usize,
    delivered: impl Fn() -> usize,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered() < at_least {
        assert!(Instant::now() < deadline, "the send did not get going");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the send ended ({status}) before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Anything still in the receiver's hands lands now.
    std::thread::sleep(Duration::from_millis(300));
    delivered()
}

/// After a kill: what was delivered beyond what is marked sent is at most the window,
/// and a second send delivers the rest, each item then marked sent once.
fn check_after_kill(spark: &Spark, total: usize, delivered: usize, concurrency: u64) {
    let marked = count_status(spark, "sent");
    assert!(marked < total, "the send finished before it was killed");
    assert!(
        delivered >= marked,
        "{marked} marked sent but only {delivered} delivered"
    );
    let unmarked = (delivered - marked) as u64;
    assert!(
        unmarked <= window(concurrency),
        "{unmarked} items went out unmarked, more than the window of {}",
        window(concurrency)
    );
}

#[test]
fn a_send_killed_mid_way_to_files_sends_again_at_most_its_window() {
    let spark = mailer("[mails]\nfrom = \"Team <team@example.com>\"");
    let total = 3_000;
    queue_mails(&spark, &addresses("user", total), None);
    let dir = spark.data_dir().with_file_name("mails");
    let transport = format!("file:{}", dir.display());
    let child = send_in_background(
        &spark,
        &[
            "outbox",
            "send",
            "--transport",
            &transport,
            "--concurrency",
            "4",
        ],
    );
    let delivered = kill_while_sending(child, 200, || files_in(&dir));
    check_after_kill(&spark, total, delivered, 4);
    // A file per mail id: sending again rewrites the same files, so their count is
    // what arrived, and the second run completes them.
    spark
        .run(&["outbox", "send", "--transport", &transport])
        .ok();
    assert_eq!(files_in(&dir), total);
    assert_eq!(count_status(&spark, "sent"), total);
}

#[test]
fn a_send_killed_mid_way_to_an_smtp_server_sends_again_at_most_its_window() {
    let spark = mailer("[mails]\nfrom = \"Team <team@example.com>\"");
    let total = 400;
    queue_mails(&spark, &addresses("user", total), None);
    let server = SmtpServer::start("accept", &spark.data_dir().with_file_name("maildir"));
    let child = send_in_background(
        &spark,
        &[
            "outbox",
            "send",
            "--transport",
            &server.url(),
            "--concurrency",
            "4",
        ],
    );
    let delivered = kill_while_sending(child, 40, || server.received().len());
    check_after_kill(&spark, total, delivered, 4);
    spark
        .run(&[
            "outbox",
            "send",
            "--transport",
            &server.url(),
            "--concurrency",
            "8",
        ])
        .ok();
    let received = server.received().len();
    assert_eq!(count_status(&spark, "sent"), total);
    assert!(
        received >= total && (received - total) as u64 <= window(4),
        "{received} mails arrived for {total}"
    );
}

/// A tenant whose handler `audit` returns one output on channel `seen` per job, with
/// `jobs` jobs ingested, no channel routed.
fn audited(jobs: usize) -> Spark {
    audited_jobs("", jobs as u64)
}

#[test]
fn a_send_killed_mid_way_to_an_http_receiver_sends_again_at_most_its_window() {
    let total = 1_500;
    let spark = audited(total);
    let server = HttpServer::start(200);
    let seen = format!("seen={}/seen", server.url());
    let child = send_in_background(
        &spark,
        &["outbox", "send", "--output", &seen, "--concurrency", "4"],
    );
    let delivered = kill_while_sending(child, 150, || server.received().len());
    check_after_kill(&spark, total, delivered, 4);
    spark.run(&["outbox", "send", "--output", &seen]).ok();
    let received = server.received().len();
    assert_eq!(count_status(&spark, "sent"), total);
    assert!(
        received >= total && (received - total) as u64 <= window(4),
        "{received} outputs arrived for {total}"
    );
}

#[test]
fn a_send_killed_mid_way_to_stdout_prints_again_at_most_its_window() {
    let total = 3_000;
    let spark = audited(total);
    let mut child = spark
        .command(&["outbox", "send", "--output", "seen=stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // What the killed send printed, line by line, counted as it comes.
    let printed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = {
        let printed = printed.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let output: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(output["channel"], "seen");
                printed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    let count = || printed.load(std::sync::atomic::Ordering::SeqCst);
    let delivered = kill_while_sending(child, 300, count);
    reader.join().unwrap();
    // Printing goes one at a time.
    check_after_kill(&spark, total, delivered.max(count()), 1);
    let rest = spark
        .run(&["outbox", "send", "--output", "seen=stdout"])
        .ok()
        .stdout
        .lines()
        .count();
    assert_eq!(count_status(&spark, "sent"), total);
    let printed_twice = (count() + rest) as u64 - total as u64;
    assert!(printed_twice <= window(1), "{printed_twice} printed twice");
}

#[test]
fn mails_go_to_a_relay_over_starttls_or_tls_with_a_login() {
    for (mode, scheme) in [("starttls", "smtp"), ("tls", "smtps")] {
        let spark = mailer("[mails]\nfrom = \"Team <team@example.com>\"");
        queue_mails(&spark, &addresses("user", 2), None);
        let server = SmtpServer::start(mode, &spark.data_dir().with_file_name("maildir"));
        let ca = server.ca_file.clone().expect("a TLS server names its CA");
        let relay = server.url().replacen("smtp", scheme, 1);
        let send = |vars: &[(&str, &str)]| {
            let mut all = vec![("SPARK_SMTP_TLS", "required")];
            all.extend_from_slice(vars);
            spark.run_with_env(
                &all,
                &["outbox", "send", "--transport", &relay, "--json"],
                "",
            )
        };
        // A CA file that is not one is refused before anything is sent.
        let bad = spark.write("not-a-ca.pem", "hello");
        spark
            .run_with_env(
                &[("SPARK_SMTP_CA_FILE", bad.to_str().unwrap())],
                &["outbox", "send", "--transport", &relay],
                "",
            )
            .code(2)
            .stderr_has("is not a PEM certificate");
        // A certificate nobody vouched for is refused; the mails wait.
        send(&[
            ("SPARK_SMTP_USERNAME", "spark"),
            ("SPARK_SMTP_PASSWORD", "secret"),
        ])
        .code(1)
        .stderr_has("it stays pending");
        // A wrong password is the route's failure too (once: the refused exchange
        // ends only at lettre's 30 s timeout).
        if mode == "starttls" {
            send(&[
                ("SPARK_SMTP_CA_FILE", &ca),
                ("SPARK_SMTP_USERNAME", "spark"),
                ("SPARK_SMTP_PASSWORD", "wrong"),
            ])
            .code(1)
            .stderr_has("it stays pending");
        }
        assert_eq!(server.received().len(), 0, "{mode}");
        assert_eq!(count_status(&spark, "pending"), 2);
        // With the relay's CA and the login, over TLS: sent, once each.
        let report = send(&[
            ("SPARK_SMTP_CA_FILE", &ca),
            ("SPARK_SMTP_USERNAME", "spark"),
            ("SPARK_SMTP_PASSWORD", "secret"),
        ])
        .ok()
        .json();
        assert_eq!(report["sent"], 2, "{mode}");
        assert_eq!(server.received().len(), 2, "{mode}");
    }
}
