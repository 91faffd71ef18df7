//! Against django-spark, the Python library Spark succeeds: the same generated
//! challenges through both in the same run, reported as ratios Spark/django-spark.
//!
//! The Python side is `bench/peer/django_peer.py`, run in a virtualenv of its own
//! (`target/bench-peer-venv`, installed from `bench/peer/requirements.txt`, pinned with
//! hashes). It reads the JSON Lines file the `spark` binary ingests, sets Django up in
//! its process (SQLite with Django's defaults: a durable commit for each event) and
//! times four passes: each challenge saved (post_save runs the source, new events to
//! the mail handler), `process_spark_sources` the same day (every event a duplicate),
//! a generator, and `process_spark_sources` once more on an emptied ledger (every
//! event new again: new events through its management command's loop). Spark's figures beside them: the in-process ones of the wasm
//! measurement ([`crate::child`]), a generator pass in a child of its own, and the
//! release `spark` binary run as a whole process on the same file: `ingest`, `ingest`
//! again, `generate`, each the wall time from start to exit (its commit durable), in
//! [`CLI_ROUNDS`] rounds on fresh data dirs, each pass's median reported.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use spark_host::{RunReport, parse_time};

use crate::measure::{self, Mode, Run};
use crate::{http, workload};

/// The peers the benchmark knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    DjangoSpark,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::DjangoSpark => "django-spark",
        }
    }
}

impl FromStr for Peer {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        match name {
            "django-spark" => Ok(Peer::DjangoSpark),
            other => anyhow::bail!("unknown peer `{other}`: the one there is is django-spark"),
        }
    }
}

/// The argument that makes spark-bench the in-process generator pass's child:
/// `--child-peer-generate COUNT SEED`.
pub const GENERATE_CHILD: &str = "--child-peer-generate";

/// A generator pass: every active generator over the stored records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generated {
    pub seconds: f64,
    /// The records the generators looked at.
    pub records: u64,
    pub new: u64,
    pub deliveries: u64,
}

/// The child's part: a tenant set up as the HTTP measurement sets its own up (the
/// example's manifest, with its `stalled` generator), the workload ingested, then the
/// generator pass through `Tenant::generate`, timed (it commits durably, as `spark
/// generate` does).
pub fn generate_child(count: u64, seed: u64, cache: &Path) -> anyhow::Result<Generated> {
    let input = workload::challenges(count, seed);
    let dir = tempfile::tempdir()?;
    let spark = http::set_up(&dir.path().join("data"), cache)?;
    let mut tenant = spark.tenant(http::TENANT)?;
    measure::ingest(&mut tenant, &input)?;
    let now = parse_time(workload::TODAY)?;
    let started = Instant::now();
    let report = tenant.generate(now, &mut |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        !report.has_failures(),
        "the generator pass failed: {:?}",
        report.problems.first()
    );
    Ok(Generated {
        seconds,
        records: report.records,
        new: report.new,
        deliveries: report.deliveries,
    })
}

/// What `django_peer.py` prints.
#[derive(Debug, Deserialize)]
struct Django {
    python: String,
    django: String,
    django_spark: String,
    sqlite: String,
    pragma: Pragma,
    startup_seconds: f64,
    fresh: Pass,
    seen: Pass,
    generate: Pass,
    /// New events through `process_spark_sources`, the ledger emptied first.
    command_new: Pass,
}

#[derive(Debug, Deserialize)]
struct Pragma {
    journal_mode: String,
    synchronous: i64,
}

/// One of django-spark's passes.
#[derive(Debug, Deserialize)]
struct Pass {
    seconds: f64,
    /// Events the source (or the generator) yielded, new or not.
    events: u64,
    new: u64,
    duplicates: u64,
    mails: u64,
}

/// Rounds of the binary's passes, each on a fresh data dir. A pass is one process,
/// the duplicates one of 40-70 ms and the new events one of 0.35-0.5 s, which a
/// neighbour's burst on this shared machine can make half again as long (the same
/// build's new-events pass took 0.33 to 0.53 s in twelve runs minutes apart): the
/// median of five rounds is the figure, with the fastest and slowest beside it.
const CLI_ROUNDS: usize = 5;

/// A run of the `spark` binary: its wall time and what it reported.
struct Process {
    seconds: f64,
    report: RunReport,
    /// The fastest and slowest of the rounds this one is the median of.
    spread: (f64, f64),
}

impl Process {
    /// The median of `runs` (of the same pass, which report the same counts).
    fn median(mut runs: Vec<Process>) -> anyhow::Result<Process> {
        anyhow::ensure!(
            runs.iter().all(|run| {
                let (first, this) = (&runs[0].report, &run.report);
                (this.new, this.duplicates, this.deliveries)
                    == (first.new, first.duplicates, first.deliveries)
            }),
            "the rounds of a pass counted different events"
        );
        runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let spread = (runs[0].seconds, runs[runs.len() - 1].seconds);
        let mut median = runs.swap_remove(runs.len() / 2);
        median.spread = spread;
        Ok(median)
    }
}

/// The `spark` binary on the workload's file: ingested, ingested again, generated.
struct Cli {
    ingest: Process,
    again: Process,
    generate: Process,
}

impl Cli {
    /// Each pass's median over `rounds`.
    fn median(rounds: Vec<Cli>) -> anyhow::Result<Cli> {
        let (mut ingest, mut again, mut generate) = (Vec::new(), Vec::new(), Vec::new());
        for round in rounds {
            ingest.push(round.ingest);
            again.push(round.again);
            generate.push(round.generate);
        }
        Ok(Cli {
            ingest: Process::median(ingest)?,
            again: Process::median(again)?,
            generate: Process::median(generate)?,
        })
    }
}

pub fn measure(peer: Peer, challenges: u64, seed: u64, cache: &Path) -> anyhow::Result<()> {
    let Peer::DjangoSpark = peer;
    let binary = std::env::current_exe()?.with_file_name("spark");
    anyhow::ensure!(
        binary.exists(),
        "--peer runs the `spark` binary next to spark-bench, and `{}` is missing: build \
         it first (cargo build --release -p spark-host)",
        binary.display()
    );
    let python = virtualenv()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("challenges.jsonl");
    std::fs::write(&file, workload::challenges(challenges, seed))?;

    let wasm = crate::child(Mode::Wasm, challenges, seed)?;
    let generated = generate_in_child(challenges, seed)?;
    let rounds = (0..CLI_ROUNDS)
        .map(|round| {
            let data = dir.path().join(format!("spark-data-{round}"));
            cli(&binary, cache, &data, &file)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cli = Cli::median(rounds)?;
    let django = django(&python, &file, &dir.path().join("django.sqlite3"))?;
    check(&wasm, &generated, &cli, &django)?;
    print(&wasm, &generated, &cli, &django);
    Ok(())
}

/// The virtualenv's python, with the pinned packages: reused when it has them, made
/// (or remade) with them when it does not.
fn virtualenv() -> anyhow::Result<PathBuf> {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = bench
        .parent()
        .context("bench/ has a parent")?
        .join("target/bench-peer-venv");
    let requirements = bench.join("peer/requirements.txt");
    let python = venv.join("bin/python");
    let pins: Vec<String> = std::fs::read_to_string(&requirements)?
        .lines()
        .filter_map(|line| line.trim().trim_end_matches('\\').trim().split_once("=="))
        .filter(|(name, _)| !name.starts_with('#') && !name.starts_with('-'))
        .map(|(name, version)| format!("{name}=={version}").to_lowercase())
        .collect();
    let installed = |python: &Path| -> anyhow::Result<bool> {
        let output = Command::new(python)
            .args(["-m", "pip", "freeze", "--all"])
            .output()?;
        let frozen = String::from_utf8_lossy(&output.stdout).to_lowercase();
        let frozen: Vec<&str> = frozen.lines().map(str::trim).collect();
        Ok(output.status.success() && pins.iter().all(|pin| frozen.contains(&pin.as_str())))
    };
    if python.exists() && installed(&python)? {
        return Ok(python);
    }
    eprintln!("installing {} into {}", pins.join(" "), venv.display());
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv))
    .context("cannot make the virtualenv: --peer needs python3 with venv")?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--require-hashes"])
        .args(["--only-binary", ":all:", "-r"])
        .arg(&requirements))
    .context("cannot install django-spark from PyPI")?;
    anyhow::ensure!(
        installed(&python)?,
        "{} does not have {} after installing them",
        venv.display(),
        pins.join(" ")
    );
    Ok(python)
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command.stdin(Stdio::null()).status()?;
    anyhow::ensure!(status.success(), "{command:?} failed: {status}");
    Ok(())
}

fn generate_in_child(challenges: u64, seed: u64) -> anyhow::Result<Generated> {
    let output = Command::new(std::env::current_exe()?)
        .args([GENERATE_CHILD, &challenges.to_string(), &seed.to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "the in-process generator pass failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The release binary on a fresh data dir with the example's manifest applied (in
/// this process, as the HTTP measurement does, so that the modules are compiled into
/// the benchmark's cache before the binary runs: no timed run compiles).
fn cli(binary: &Path, cache: &Path, data: &Path, file: &Path) -> anyhow::Result<Cli> {
    drop(http::set_up(data, cache)?);
    let spark = |args: &[&str]| -> anyhow::Result<Process> {
        let mut command = Command::new(binary);
        // The data dir, the cache and the tenant are the ones given, whatever the
        // environment.
        for name in [
            "SPARK_DATA_DIR",
            "SPARK_CACHE_DIR",
            "SPARK_TENANT",
            "SPARK_SERVER",
            "RUST_LOG",
        ] {
            command.env_remove(name);
        }
        command
            .arg("--data-dir")
            .arg(data)
            .arg("--cache-dir")
            .arg(cache)
            .args(["--tenant", http::TENANT])
            .args(args)
            .args(["--now", workload::TODAY, "--json"])
            .stdin(Stdio::null());
        let started = Instant::now();
        let output = command.output()?;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            output.status.success(),
            "spark {}: {}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let report = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("spark {}: not a report", args.join(" ")))?;
        Ok(Process {
            seconds,
            report,
            spread: (seconds, seconds),
        })
    };
    let file = file.to_str().context("the workload's path is not UTF-8")?;
    let ingest = ["ingest", "--model", "challenge", file];
    Ok(Cli {
        ingest: spark(&ingest)?,
        again: spark(&ingest)?,
        generate: spark(&["generate"])?,
    })
}

fn django(python: &Path, file: &Path, database: &Path) -> anyhow::Result<Django> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peer/django_peer.py");
    // Its progress goes to the terminal: its first pass takes a while.
    let output = Command::new(python)
        .arg(script)
        .arg(file)
        .arg(database)
        .args(["--today", workload::TODAY])
        // No `__pycache__` left in the checkout.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "django_peer.py failed: {}",
        output.status
    );
    serde_json::from_slice(&output.stdout).context("django_peer.py printed no result")
}

/// Both sides counted the same events, or the ratios mean nothing.
fn check(wasm: &Run, generated: &Generated, cli: &Cli, django: &Django) -> anyhow::Result<()> {
    let sides = [
        (
            "new events",
            django.fresh.new,
            [wasm.fresh.new, cli.ingest.report.new],
        ),
        (
            "handler calls (django-spark: mails)",
            django.fresh.mails,
            [wasm.fresh.deliveries, cli.ingest.report.deliveries],
        ),
        (
            "new events (django-spark: through its command)",
            django.command_new.new,
            [wasm.fresh.new, cli.ingest.report.new],
        ),
        (
            "handler calls (django-spark: mails through its command)",
            django.command_new.mails,
            [wasm.fresh.deliveries, cli.ingest.report.deliveries],
        ),
        (
            "duplicates",
            django.seen.duplicates,
            [wasm.seen.duplicates, cli.again.report.duplicates],
        ),
        (
            "generated events",
            django.generate.new,
            [generated.new, cli.generate.report.new],
        ),
        (
            "generated mails",
            django.generate.mails,
            [generated.deliveries, cli.generate.report.deliveries],
        ),
    ];
    for (what, django_count, [in_process, binary]) in sides {
        anyhow::ensure!(
            django_count == in_process && django_count == binary,
            "the sides disagree on {what}: django-spark {django_count}, Spark in-process \
             {in_process}, the spark binary {binary}: the ratios would compare different work"
        );
    }
    anyhow::ensure!(
        django.fresh.events == django.fresh.new
            && django.seen.new == 0
            && django.command_new.events == django.command_new.new
            && cli.again.report.new == 0
            && wasm.seen_exact.duplicates == wasm.fresh.new,
        "a pass was not what it should be: django-spark {:?} {:?}, spark ingest again {:?}",
        django.fresh,
        django.seen,
        cli.again.report
    );
    Ok(())
}

fn print(wasm: &Run, generated: &Generated, cli: &Cli, django: &Django) {
    let rate = |count: u64, seconds: f64| count as f64 / seconds;
    let synchronous = match django.pragma.synchronous {
        0 => "OFF",
        1 => "NORMAL",
        2 => "FULL",
        3 => "EXTRA",
        _ => "?",
    };
    println!();
    println!(
        "Against django-spark {} (Django {}, Python {}, SQLite {}: journal_mode {}, \
         synchronous {synchronous}, a commit per event): {} challenges, {} events, {} mails; \
         {} generated events from {} records",
        django.django_spark,
        django.django,
        django.python,
        django.sqlite,
        django.pragma.journal_mode,
        wasm.challenges,
        wasm.fresh.new,
        wasm.fresh.deliveries,
        generated.new,
        generated.records
    );
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>13} {:>10}",
        "", "django-spark", "in-process", "spark CLI", "in-process/dj", "CLI/dj"
    );
    let django_new = rate(django.fresh.new, django.fresh.seconds);
    let django_command_new = rate(django.command_new.new, django.command_new.seconds);
    let spark_new = rate(wasm.fresh.new, wasm.fresh.seconds);
    let spark_cli_new = rate(cli.ingest.report.new, cli.ingest.seconds);
    let django_seen = rate(django.seen.duplicates, django.seen.seconds);
    let django_generated = rate(django.generate.new, django.generate.seconds);
    let rows = [
        ("new events/s", django_new, spark_new, Some(spark_cli_new)),
        (
            "new events/s (dj: its command)",
            django_command_new,
            spark_new,
            Some(spark_cli_new),
        ),
        (
            "duplicates/s (Spark: clock day)",
            django_seen,
            rate(wasm.seen.duplicates, wasm.seen.seconds),
            Some(rate(cli.again.report.duplicates, cli.again.seconds)),
        ),
        (
            "duplicates/s (Spark: clock exact)",
            django_seen,
            rate(wasm.seen_exact.duplicates, wasm.seen_exact.seconds),
            None,
        ),
        (
            "generated events/s",
            django_generated,
            rate(generated.new, generated.seconds),
            Some(rate(cli.generate.report.new, cli.generate.seconds)),
        ),
    ];
    for (name, django, in_process, binary) in rows {
        let (binary, binary_ratio) = match binary {
            Some(binary) => (format!("{binary:.0}"), format!("{:.1}x", binary / django)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{name:<34} {django:>12.0} {in_process:>12.0} {binary:>12} {:>12.1}x {binary_ratio:>10}",
            in_process / django
        );
    }
    println!(
        "  seconds: django-spark {:.2} / {:.2} / {:.2} / {:.2} (its passes in one process, \
         new events by saves, duplicates, the generator, new events by its command; Django's \
         setup, {:.2} s, not counted); spark CLI {:.2} / {:.2} / {:.2} (each a whole process: \
         start, open, run, durable commit; the median of {CLI_ROUNDS} rounds on fresh data \
         dirs, which took {} / {} / {})",
        django.fresh.seconds,
        django.seen.seconds,
        django.generate.seconds,
        django.command_new.seconds,
        django.startup_seconds,
        cli.ingest.seconds,
        cli.again.seconds,
        cli.generate.seconds,
        spread(&cli.ingest),
        spread(&cli.again),
        spread(&cli.generate),
    );
}

/// A pass's fastest and slowest rounds, in seconds.
fn spread(process: &Process) -> String {
    let (fastest, slowest) = process.spread;
    format!("{fastest:.3}-{slowest:.3}")
}
