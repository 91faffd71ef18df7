//! A full disk: the data dir on a small tmpfs that fills up during an ingest or before
//! a send. The command must end (a watchdog fails the test on a hang), say that the
//! disk is full and which, keep what it committed, and after space is freed the same
//! ingest must give exactly what a run on a roomy disk gives.
//!
//! The tests mount tmpfs, so they need root (as CI and the development machines run);
//! without it they fail rather than skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Run, Spark, guests, jsonl, noise};

/// The reserve the tests keep: small, so that small disks can fill.
const RESERVE: (&str, &str) = ("SPARK_DISK_RESERVE", "2MiB");

/// A tmpfs of a given size mounted on a directory until dropped.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount(8) is needed for the full-disk tests");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} (the full-disk tests need root)",
            at.display()
        );
        Self { at: at.to_owned() }
    }

    /// Gives the disk `size` in all, keeping what it holds.
    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.at)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn ballast(&self) -> PathBuf {
        self.at.join("ballast")
    }

    /// Fills the disk with another file until `leave` bytes or fewer are free: what
    /// another program on the same disk would do.
    fn fill(&self, leave: u64) {
        let free = self.free();
        let size = free.saturating_sub(leave);
        let file = std::fs::File::create(self.ballast()).unwrap();
        // Written, not sparse: tmpfs counts written pages.
        let chunk = vec![7u8; 1 << 20];
        let mut written = 0;
        while written < size {
            let n = chunk.len().min((size - written) as usize);
            std::io::Write::write_all(&mut &file, &chunk[..n]).unwrap();
            written += n as u64;
        }
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.at)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// A tenant whose records of `thing` each make two events and a mail (about a
/// kilobyte each), applied with the test's reserve.
fn mailer(spark: &Spark) {
    let manifest = mailer_manifest(spark);
    spark
        .run_with_env(&[RESERVE], &["apply", manifest.to_str().unwrap()], "")
        .ok();
}

/// The manifest of [`mailer`]'s tenant, written next to the data dir (the I/O fault
/// tests use it too).
pub(crate) fn mailer_manifest(spark: &Spark) -> PathBuf {
    spark.write(
        "spark.toml",
        format!(
            "[[modules]]\nname = \"source\"\npath = {:?}\nsources = [\"thing\"]\n\n\
             [[modules]]\nname = \"mails\"\npath = \"builtin:mails\"\nhandlers = [\"^user\"]\n\n\
             [mails]\nfrom = \"Team <team@example.com>\"\n",
            guests::RECORDER
        ),
    )
}

/// `count` records of `thing`, each making a `user_welcome` event with a mail and an
/// `other` event. Each carries 200 bytes of noise, which the store's compression
/// cannot shrink, so that a run of them writes about as much as it says.
pub(crate) fn records(count: u64) -> String {
    let records: Vec<Value> = (1..=count)
        .map(|id| {
            let mail = json!({ "to": [format!("user{id}@example.com")],
                               "subject": format!("Mail {id}"), "body": "Hello ".repeat(60) });
            json!({ "id": id, "events": [
                { "group": "user_welcome", "id": id,
                  "context": { "spark_mail": mail, "pad": noise(id, 200) } },
                { "group": "other", "id": id },
            ] })
        })
        .collect();
    jsonl(&records)
}

/// Runs `spark ARGS` with `input` and the test's reserve, failing the test on a hang
/// (two minutes), never on how long it took.
fn run_watched(spark: &Spark, args: &[&str], input: &str) -> Run {
    spark.run_bounded_with_env(Duration::from_secs(120), &[RESERVE], args, input)
}

/// The ledger's keys, the outbox's size and the distinct events it names.
fn contents(spark: &Spark) -> (Vec<String>, usize, usize) {
    let outbox = spark.outbox();
    let mut events: Vec<&str> = outbox
        .iter()
        .map(|item| item["event"].as_str().unwrap())
        .collect();
    events.sort_unstable();
    events.dedup();
    (spark.event_keys(), outbox.len(), events.len())
}

#[test]
fn a_disk_that_fills_during_an_ingest_stops_it_cleanly_and_nothing_is_lost_or_doubled() {
    let count = 5_000;
    let input = records(count);
    let clean = Spark::new();
    mailer(&clean);
    run_watched(&clean, &["ingest", "--model", "thing"], &input).ok();
    let expected = contents(&clean);
    assert_eq!(
        (expected.0.len(), expected.1),
        (2 * count as usize, count as usize)
    );

    // A small disk that fills early; a larger one that another program filled half.
    for (size, leave) in [("5m", None), ("32m", Some(9 << 20))] {
        let spark = Spark::new();
        let disk = SmallDisk::mount(&spark.data_dir(), size);
        mailer(&spark);
        if let Some(leave) = leave {
            disk.fill(leave);
        }
        let run = run_watched(&spark, &["ingest", "--model", "thing"], &input);
        assert_ne!(
            run.code, 0,
            "the disk of {size} did not fill:\n{}",
            run.stderr
        );
        if run.code == 1 {
            // Stopped part-way: it says how far it got, and that is kept.
            assert!(run.stderr.contains("their work is kept"), "{}", run.stderr);
        }
        let run = run
            .stderr_has("is full")
            .stderr_has(&disk.at.display().to_string());
        assert!(
            !run.stderr.contains("panicked"),
            "a full disk is an error, not a crash:\n{}",
            run.stderr
        );
        // The data dir opens as it was, and lists what was committed.
        spark.run(&["events", "list", "--json"]).ok();

        let _ = std::fs::remove_file(disk.ballast());
        disk.grow("256m");
        run_watched(&spark, &["ingest", "--model", "thing"], &input).ok();
        assert_eq!(contents(&spark), expected, "on the disk of {size}");
        drop(disk);
    }
}

#[test]
fn a_send_on_a_full_disk_sends_nothing_until_there_is_room() {
    let spark = Spark::new();
    let disk = SmallDisk::mount(&spark.data_dir(), "64m");
    mailer(&spark);
    run_watched(&spark, &["ingest", "--model", "thing"], &records(300)).ok();
    disk.fill(1 << 20);
    // Mails go to a directory elsewhere: only the data dir's disk is full.
    let mails = spark.data_dir().with_file_name("mails");
    let transport = format!("file:{}", mails.display());
    let send = ["outbox", "send", "--transport", &transport, "--json"];
    run_watched(&spark, &send, "").code(2).stderr_has("is full");
    assert!(
        std::fs::read_dir(&mails).map_or(0, Iterator::count) == 0,
        "a mail went out that could not have been marked"
    );
    std::fs::remove_file(disk.ballast()).unwrap();
    let report = run_watched(&spark, &send, "").ok().json();
    assert_eq!(report["sent"], 300);
    assert_eq!(std::fs::read_dir(&mails).unwrap().count(), 300);
    drop(disk);
}

#[test]
fn a_server_answers_a_full_disk_with_507_and_goes_on_once_there_is_room() {
    // With the reserve, writes are refused before they begin; without one, sled's own
    // write fails part-way (ENOSPC), which stops the tenant's store until it reopens.
    for reserve in [RESERVE.1, "0"] {
        server_on_a_disk_that_fills(("SPARK_DISK_RESERVE", reserve));
    }
}

fn server_on_a_disk_that_fills(reserve: (&str, &str)) {
    let count = 3_000;
    let lines: Vec<String> = records(count).lines().map(str::to_owned).collect();
    let batches: Vec<String> = lines
        .chunks(100)
        .map(|batch| batch.join("\n") + "\n")
        .collect();
    let spark = Spark::new();
    let disk = SmallDisk::mount(&spark.data_dir(), "32m");
    mailer(&spark);
    let token = crate::serve::token(
        &spark,
        &[
            "--tenant", "default", "--scope", "ingest", "--scope", "read",
        ],
    );
    let start = || crate::serve::Server::start_with_env(&spark, &[], &[reserve]);
    let post = |server: &crate::serve::Server, n: usize| {
        crate::serve::Client::new(&server.url, Some(&token))
            .try_send(
                "POST",
                "/v1/tenants/default/records/thing",
                batches[n].as_bytes(),
                &[("Idempotency-Key", &format!("batch-{n}"))],
            )
            .unwrap()
    };
    let mut server = start();
    // Another program leaves the data dir a few MiB: the posts fill them.
    disk.fill(6 << 20);
    let mut refused = None;
    for n in 0..batches.len() {
        let answer = post(&server, n);
        match answer.status {
            200 => continue,
            507 => {
                assert_eq!(answer.body["error"], "disk_full", "{answer:?}");
                let message = answer.body["message"].as_str().unwrap();
                assert!(
                    message.contains("is full") || message.contains("No space left"),
                    "{message}"
                );
                refused = Some(n);
                break;
            }
            _ => panic!("batch {n}, reserve {reserve:?}: {answer:?}"),
        }
    }
    let refused = refused.expect("the disk filled");
    assert!(refused > 0, "the first batch fit");
    if reserve.1 == "0" {
        // sled's own write failed part-way: the store writes nothing more in this
        // process, so the server stops by itself, saying why, for its supervisor to
        // start it again; the next open rolls the failed group back.
        let code = server.wait(Duration::from_secs(120));
        assert!(matches!(code, Some(code) if code != 0), "{code:?}");
        let said = server.logged().join("\n");
        assert!(said.contains("failed a write"), "{said}");
        std::fs::remove_file(disk.ballast()).unwrap();
        server = start();
    } else {
        // Refused before anything was written: the server goes on, answers, and reads
        // what it stored.
        let client = crate::serve::Client::new(&server.url, Some(&token));
        assert_eq!(client.get("/healthz").status, 200);
        assert_eq!(client.get("/v1/tenants/default/events?limit=1").status, 200);
        std::fs::remove_file(disk.ballast()).unwrap();
    }

    // Room again: the refused batch and the rest go through, each answered once.
    for n in refused..batches.len() {
        let answer = post(&server, n);
        assert_eq!(
            answer.status, 200,
            "batch {n}, reserve {reserve:?}: {answer:?}"
        );
        assert_eq!(answer.body["records"], 100, "batch {n}: {answer:?}");
    }
    assert_eq!(server.signal("TERM", Duration::from_secs(60)), Some(0));
    let (keys, outbox, mailed) = contents(&spark);
    assert_eq!(keys.len(), 2 * count as usize, "reserve {reserve:?}");
    assert_eq!(
        (outbox, mailed),
        (count as usize, count as usize),
        "reserve {reserve:?}"
    );
}
