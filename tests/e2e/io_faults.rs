//! Disk errors: the kernel fails a write or a sync of sled's files with EIO or ENOSPC
//! during an ingest. `tests/faultfs`, a library preloaded into `spark`, fails the calls
//! each case names (the log's writes or syncs, blob files, a snapshot, every file of
//! the database), from a count of calls or bytes on, for good or once. For each case
//! the command must end (a watchdog fails the test on a hang), not with success, with a
//! message naming the error; then, with a sound disk again, the data dir must open
//! without help, keep what the command said it kept, hold every key once and every
//! event's mail once, for whole groups of records in order and nothing of the rest,
//! and the same ingest run again must give exactly what a run on a sound disk gives.
//!
//! Faults are placed by counts, not by time, so that each case fails the same call on
//! every run, and each case checks that its fault struck.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::disk::{self, mailer_manifest};
use crate::support::{Run, Spark, noise};

/// Four groups of records (the pipeline commits every 1,000), so that faults land
/// before, between and inside commits.
const RECORDS: u64 = 4_000;

/// How long a run may take before the test calls it a hang (a few seconds are usual).
const WATCHDOG: Duration = Duration::from_secs(90);

/// One way for the disk to fail, in `tests/faultfs`'s terms.
struct Fault {
    /// The files: a piece of their path below the tenant's database directory.
    files: &'static str,
    /// `write`, `sync` or `write,sync`.
    ops: &'static str,
    /// `SPARK_FAULT_AFTER_CALLS` or `SPARK_FAULT_AFTER_BYTES`, and its count.
    after: (&'static str, u64),
    errno: &'static str,
    /// How many calls fail (a transient fault), or all after the mark.
    times: Option<u64>,
}

const CALLS: &str = "SPARK_FAULT_AFTER_CALLS";
const BYTES: &str = "SPARK_FAULT_AFTER_BYTES";

impl Fault {
    const fn new(files: &'static str, ops: &'static str, after: (&'static str, u64)) -> Self {
        Self {
            files,
            ops,
            after,
            errno: "EIO",
            times: None,
        }
    }

    const fn errno(self, errno: &'static str) -> Self {
        Self { errno, ..self }
    }

    const fn once(self) -> Self {
        Self {
            times: Some(1),
            ..self
        }
    }

    /// How the error reads in a message (`strerror`).
    fn message(&self) -> &'static str {
        match self.errno {
            "EIO" => "Input/output error",
            "ENOSPC" => "No space left on device",
            other => panic!("no message known for {other}"),
        }
    }

    fn describe(&self) -> String {
        let (mark, count) = self.after;
        let times = self
            .times
            .map_or(String::new(), |n| format!(", {n} time(s)"));
        format!(
            "{} of `db/{}*` fail with {} after {count} {}{times}",
            self.ops,
            self.files,
            self.errno,
            if mark == CALLS { "calls" } else { "bytes" },
        )
    }
}

/// The library that fails the calls, built once per run of the tests into a target
/// dir of its own (the workspace's may be locked by the cargo running the tests). It
/// is a workspace member (`tests/faultfs`) but no dependency of anything: no test can
/// depend on a `cdylib`, so its tests build it.
fn faultfs() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the host is one level below the workspace");
        let target = workspace.join("target").join("faultfs");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .current_dir(workspace)
            .args(["build", "-p", "spark-faultfs", "--target-dir"])
            .arg(&target)
            // Built for this machine, whatever the outer build targets.
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .expect("cannot run cargo to build tests/faultfs");
        assert!(
            output.status.success(),
            "building tests/faultfs failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let library = target.join("debug").join("libspark_faultfs.so");
        assert!(library.exists(), "{} was not built", library.display());
        library
    })
}

/// A tenant whose records of `thing` each make an event with a mail and another event,
/// as in `disk.rs`.
fn mailer() -> Spark {
    let spark = Spark::new();
    let manifest = mailer_manifest(&spark);
    spark.run(&["apply", manifest.to_str().unwrap()]).ok();
    spark
}

/// What the ingest is given.
#[derive(Debug, Clone, Copy)]
enum Workload {
    /// [`RECORDS`] records of `disk::records`, about a kilobyte each.
    Plain,
    /// The same, with every [`LARGE_EVERY`]th record carrying [`LARGE_BYTES`] more, so
    /// that sled writes it to a blob file of its own (a value or a tree node past 128
    /// KiB goes to one). The outbox's segments no longer do: they are compressed.
    LargeRecords,
}

const LARGE_EVERY: usize = 100;
const LARGE_BYTES: usize = 150_000;

fn records(workload: Workload) -> &'static str {
    static PLAIN: OnceLock<String> = OnceLock::new();
    static LARGE: OnceLock<String> = OnceLock::new();
    match workload {
        Workload::Plain => PLAIN.get_or_init(|| disk::records(RECORDS)),
        Workload::LargeRecords => LARGE.get_or_init(|| {
            // Noise: compressed, a large record must stay large.
            let pad = |index| format!(r#","pad":"{}"}}"#, noise(index, LARGE_BYTES));
            disk::records(RECORDS)
                .lines()
                .enumerate()
                .map(|(index, line)| match line.strip_suffix('}') {
                    Some(open) if (index + 1) % LARGE_EVERY == 0 => {
                        format!("{open}{}\n", pad(index as u64))
                    }
                    _ => format!("{line}\n"),
                })
                .collect()
        }),
    }
}

fn ingest(spark: &Spark, workload: Workload, vars: &[(&str, &str)]) -> Run {
    spark.run_bounded_with_env(
        WATCHDOG,
        vars,
        &["ingest", "--model", "thing"],
        records(workload),
    )
}

/// What a data dir holds: the ledger's keys, and the outbox's items as (id, event,
/// handler), both in order.
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    keys: Vec<String>,
    items: Vec<(u64, String, String)>,
}

fn contents(spark: &Spark) -> Contents {
    let mut items: Vec<(u64, String, String)> = spark
        .outbox()
        .iter()
        .map(|item| {
            let text = |field: &str| item[field].as_str().unwrap().to_owned();
            (item["id"].as_u64().unwrap(), text("event"), text("handler"))
        })
        .collect();
    items.sort();
    Contents {
        keys: spark.event_keys(),
        items,
    }
}

/// What a run of `workload` on a sound disk gives, made once.
fn expected(workload: Workload) -> &'static Contents {
    static PLAIN: OnceLock<Contents> = OnceLock::new();
    static LARGE: OnceLock<Contents> = OnceLock::new();
    let made = match workload {
        Workload::Plain => &PLAIN,
        Workload::LargeRecords => &LARGE,
    };
    made.get_or_init(|| {
        let spark = mailer();
        ingest(&spark, workload, &[]).ok();
        let expected = contents(&spark);
        assert_eq!(expected.keys.len() as u64, 2 * RECORDS);
        assert_eq!(expected.items.len() as u64, RECORDS);
        expected
    })
}

/// The record a key of this workload belongs to.
fn record_of(key: &str) -> u64 {
    let (_, id) = key.rsplit_once('_').unwrap();
    id.parse().unwrap()
}

/// Checks what a data dir holds after a failed run: every key once, each record's two
/// events and one mail together, for records 1 to N and none after (whole groups, in
/// order), N at least `kept`. Returns N.
fn check_whole(found: &Contents, kept: u64, case: &str) -> u64 {
    let unique: BTreeSet<&String> = found.keys.iter().collect();
    assert_eq!(unique.len(), found.keys.len(), "{case}: a key twice");
    let mut events: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for key in &found.keys {
        events.entry(record_of(key)).or_default().push(key);
    }
    let mut mails: BTreeMap<&str, u32> = BTreeMap::new();
    for (_, event, _) in &found.items {
        *mails.entry(event).or_default() += 1;
        assert!(
            unique.contains(event),
            "{case}: a mail of {event}, which is not in the ledger"
        );
    }
    let doubled: Vec<_> = mails.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "{case}: mails twice: {doubled:?}");
    let committed = events.len() as u64;
    for (index, (&record, keys)) in events.iter().enumerate() {
        assert_eq!(
            record,
            index as u64 + 1,
            "{case}: record {record} is there but not all before it"
        );
        let welcome = format!("user_welcome_{record}");
        assert!(
            keys.len() == 2 && keys.contains(&welcome.as_str()) && mails.contains_key(&*welcome),
            "{case}: record {record} is there in part: events {keys:?}, mail {}",
            mails.contains_key(&*welcome)
        );
    }
    assert!(
        committed >= kept,
        "{case}: the run said it kept {kept} records; {committed} are there"
    );
    committed
}

/// Runs the ingest with `fault` on a fresh data dir, then checks what it left and that
/// the same ingest, on a sound disk, completes it.
fn survive(fault: &Fault) {
    survive_in(Workload::Plain, fault);
}

/// [`survive`], with the records of `workload`.
fn survive_in(workload: Workload, fault: &Fault) {
    let case = fault.describe();
    let spark = mailer();
    let db = spark.data_dir().join("tenants/default/db");
    assert!(
        db.is_dir(),
        "the tenant's database is not at {}",
        db.display()
    );
    let files = format!("{}/{}", db.display(), fault.files);
    let library = faultfs().to_str().unwrap();
    let count = fault.after.1.to_string();
    let times = fault.times.map(|n| n.to_string());
    let mut vars = vec![
        ("LD_PRELOAD", library),
        ("SPARK_FAULT_PATH", files.as_str()),
        ("SPARK_FAULT_OPS", fault.ops),
        (fault.after.0, count.as_str()),
        ("SPARK_FAULT_ERRNO", fault.errno),
    ];
    if let Some(times) = &times {
        vars.push(("SPARK_FAULT_TIMES", times));
    }

    let run = ingest(&spark, workload, &vars);
    assert!(
        run.stderr.contains("spark-faultfs:"),
        "{case}: the fault never struck (the run wrote less than that?):\n{}",
        run.stderr
    );
    assert_ne!(run.code, 0, "{case}: the run succeeded:\n{}", run.stderr);
    assert!(
        !run.stderr.contains("panicked"),
        "{case}: a failed write is an error, not a crash:\n{}",
        run.stderr
    );
    let error = run
        .stderr
        .lines()
        .rfind(|line| line.starts_with("error:"))
        .unwrap_or_else(|| panic!("{case}: no error reported:\n{}", run.stderr));
    assert!(
        error.contains(fault.message()),
        "{case}: the error does not name the failure: {error}"
    );
    // Exit status 1 says what was kept; 2 that nothing can be vouched for.
    let kept = if run.code == 1 {
        let (_, rest) = error
            .split_once("stopped after ")
            .unwrap_or_else(|| panic!("{case}: status 1 without what was kept: {error}"));
        rest.split(' ').next().unwrap().parse().unwrap()
    } else {
        0
    };

    // The data dir opens without the fault, as it is.
    let found = contents(&spark);
    let committed = check_whole(&found, kept, &case);
    eprintln!("{case}: exit {}, {committed} records kept", run.code);

    ingest(&spark, workload, &[]).ok();
    let again = contents(&spark);
    let expected = expected(workload);
    assert!(
        again == *expected,
        "{case}: the same ingest run again does not give what a sound disk gives: \
         {} keys and {} outbox items (first different: {:?}, {:?}), not {} and {}",
        again.keys.len(),
        again.items.len(),
        again.keys.iter().zip(&expected.keys).find(|(a, b)| a != b),
        again
            .items
            .iter()
            .zip(&expected.items)
            .find(|(a, b)| a != b),
        expected.keys.len(),
        expected.items.len(),
    );
}

#[test]
fn failed_writes_of_the_log_stop_an_ingest_and_keep_whole_groups() {
    for fault in [
        // Torn: the write that crosses the mark is cut short there.
        Fault::new("db", "write", (BYTES, 2_500_000)),
        Fault::new("db", "write", (BYTES, 10_000_000)).errno("ENOSPC"),
        // One write fails and the next ones would succeed: the store stops all the same.
        Fault::new("db", "write", (CALLS, 25)).once(),
    ] {
        survive(&fault);
    }
}

#[test]
fn failed_writes_of_blob_files_stop_an_ingest_and_keep_whole_groups() {
    // Values and tree nodes over about 128 KiB (the large records) go to files of
    // their own: the first fault strikes in the first group, the second after it.
    for fault in [
        Fault::new("blobs/", "write", (CALLS, 25)).errno("ENOSPC"),
        Fault::new("blobs/", "write", (BYTES, 4_500_000)),
    ] {
        survive_in(Workload::LargeRecords, &fault);
    }
}

#[test]
fn failed_syncs_and_snapshots_stop_an_ingest_and_keep_whole_groups() {
    for fault in [
        // sync_file_range after each write of the log, fsync by sled's flusher.
        Fault::new("db", "sync", (CALLS, 30)),
        // The snapshot sled writes as it opens, left half written for the next open.
        Fault::new("snap.", "write,sync", (CALLS, 0)).errno("ENOSPC"),
        // Every file of the database, writes and syncs alike.
        Fault::new("", "write,sync", (CALLS, 80)),
    ] {
        survive(&fault);
    }
}
