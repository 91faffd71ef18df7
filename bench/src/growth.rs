//! Growth: the README's challenges workload at several sizes through the release `spark`
//! binary, each size on a fresh data dir, each run a whole process (start, open,
//! ingest, durable commit), in [`GROWTH_ROUNDS`] rounds over every size: the medians of
//! new events/s and duplicates/s at each size as a ratio to the first, and the peak
//! resident memory of each process (from `wait4`, the child's
//! own `ru_maxrss`). Then a tenant whose ledger holds millions of keys: what it costs
//! the `spark` binary to open it and check the keys of a small ingest, against the same
//! ingest on an empty tenant.
//!
//! The large ledger is built in a child of spark-bench, through the library's own
//! pipeline (`Tenant::ingest`, durable commits, the key filter saved as a run saves
//! it), but with a native source that makes [`EVENTS_PER_RECORD`] events of a record
//! and no handler: cheaper than the challenges workload (no mails, no templates, a
//! hundredth of the records) while the ledger's keys, entries and filter are what the
//! pipeline writes. The tenant is set up with the example's manifest first, and the
//! bulk source removed afterwards, so the binary runs the example's modules on it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use spark_host::{
    CallError, Event, Invocation, LimitOverrides, ModuleCode, NativeModule, RunReport, parse_time,
};

use crate::measure::{peak_rss_mb, spec};
use crate::{http, workload};

/// Events the bulk source makes of each record.
pub const EVENTS_PER_RECORD: u64 = 100;
/// Records per `Tenant::ingest` call while building (each flushed).
const RECORDS_PER_INGEST: u64 = 10_000;
/// Challenges ingested into the large tenant (and the empty one) by the binary.
pub const PROBE_CHALLENGES: u64 = 1_000;
/// The argument that makes spark-bench the ledger builder: `--child-bulk-ledger DATA
/// KEYS`.
pub const BULK_CHILD: &str = "--child-bulk-ledger";

/// The argument that makes spark-bench the wrapper that runs and measures a program:
/// `--child-measure OUT PROGRAM ARGS...`.
pub const MEASURE_CHILD: &str = "--child-measure";

/// A whole process: its wall time from spawn to exit, its peak resident memory, and
/// what it printed.
#[derive(Debug, Clone)]
pub struct Process {
    pub seconds: f64,
    /// User and system CPU time, all its threads.
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
    pub stdout: Vec<u8>,
}

/// What the wrapper measured of its child.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measured {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_mb: f64,
    /// The child's exit code, if it exited rather than being killed.
    code: Option<i32>,
}

/// Runs `program` with `args` to its end, measuring it; fails if it does. It runs as the
/// child of a wrapper (spark-bench again, small when it starts it): Linux hands a
/// process's peak memory down to its child at exec (as the child's own `ru_maxrss`
/// floor), so a child of this process, which holds a workload of up to a few hundred
/// MiB, would report at least that.
pub fn run_measured(program: &Path, args: &[std::ffi::OsString]) -> anyhow::Result<Process> {
    let out = tempfile::NamedTempFile::new()?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg(MEASURE_CHILD)
        .arg(out.path())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
    let output = command.output()?;
    let measured: Option<Measured> = std::fs::read(out.path())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let Some(measured) = measured.filter(|m| output.status.success() && m.code == Some(0)) else {
        anyhow::bail!(
            "{} {:?} failed:\n{}",
            program.display(),
            args,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    Ok(Process {
        seconds: measured.seconds,
        cpu_seconds: measured.cpu_seconds,
        peak_rss_mb: measured.peak_rss_mb,
        stdout: output.stdout,
    })
}

/// The wrapper's part: runs PROGRAM ARGS (its output is the wrapper's), waits for it
/// with `wait4`, which gives the child's own resource usage, and writes its wall time,
/// peak memory (`ru_maxrss`) and exit code to OUT.
pub fn measure_child(args: &[String]) -> anyhow::Result<()> {
    let [out, program, rest @ ..] = args else {
        anyhow::bail!("{MEASURE_CHILD} OUT PROGRAM ARGS...");
    };
    let started = Instant::now();
    let child = Command::new(program).args(rest).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it and `status`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: the pointers are to live locals; `pid` is our child, not yet reaped.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        anyhow::ensure!(
            error.kind() == std::io::ErrorKind::Interrupted,
            "wait4: {error}"
        );
    }
    let time = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    let measured = Measured {
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: time(usage.ru_utime) + time(usage.ru_stime),
        // Linux gives ru_maxrss in KiB.
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
    };
    std::fs::write(out, serde_json::to_vec(&measured)?)?;
    Ok(())
}

/// `spark ingest` of `file` on the bench tenant of `data`, measured, with its report.
fn spark_ingest(
    binary: &Path,
    cache: &Path,
    data: &Path,
    file: &Path,
) -> anyhow::Result<(Process, RunReport)> {
    let args: Vec<std::ffi::OsString> = [
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--cache-dir".as_ref(),
        cache.as_os_str(),
        "--tenant".as_ref(),
        http::TENANT.as_ref(),
        "ingest".as_ref(),
        "--model".as_ref(),
        "challenge".as_ref(),
        file.as_os_str(),
        "--now".as_ref(),
        workload::TODAY.as_ref(),
        "--json".as_ref(),
    ]
    .into_iter()
    .map(ToOwned::to_owned)
    .collect();
    let process = run_measured(binary, &args)?;
    let report: RunReport =
        serde_json::from_slice(&process.stdout).context("spark ingest printed no report")?;
    anyhow::ensure!(
        !report.has_failures(),
        "spark ingest had failures: {:?}",
        report.problems.first()
    );
    Ok((process, report))
}

/// Rounds of the growth run. Each round takes every size in turn, so a slow spell of
/// this shared machine falls on one round of each size rather than on one size: a
/// round of 10,000 challenges is a process of about 0.4 s, which a neighbour's burst
/// makes half again as long (0.38 s and 0.61 s in two runs minutes apart), and every
/// ratio is to that figure. Each size's figures are the medians of the rounds.
pub const GROWTH_ROUNDS: usize = 3;

/// One size of the growth run: its rounds, each a fresh data dir ingested and then
/// ingested again.
#[derive(Debug, Clone)]
pub struct Size {
    pub challenges: u64,
    /// New events each round counted (the same in every round).
    pub new: u64,
    pub ingests: Vec<Process>,
    pub agains: Vec<Process>,
}

impl Size {
    pub fn new_per_second(&self) -> f64 {
        median_of(&self.ingests, |run| self.new as f64 / run.seconds)
    }

    /// Every event of the second ingest is a duplicate (checked when measured).
    pub fn duplicates_per_second(&self) -> f64 {
        median_of(&self.agains, |run| self.new as f64 / run.seconds)
    }

    /// CPU µs of the whole process (every thread) per new event: what the machine's
    /// other load changes least.
    pub fn cpu_us_per_new(&self) -> f64 {
        median_of(&self.ingests, |run| run.cpu_seconds / self.new as f64 * 1e6)
    }

    pub fn cpu_us_per_duplicate(&self) -> f64 {
        median_of(&self.agains, |run| run.cpu_seconds / self.new as f64 * 1e6)
    }
}

/// The median over `runs` of what `of` takes from each.
fn median_of(runs: &[Process], of: impl Fn(&Process) -> f64) -> f64 {
    median(&runs.iter().map(of).collect::<Vec<_>>())
}

/// The highest peak of `runs`.
fn highest_peak_mb(runs: &[Process]) -> f64 {
    runs.iter().map(|run| run.peak_rss_mb).fold(0.0, f64::max)
}

/// Each size, [`GROWTH_ROUNDS`] times, on a fresh data dir each time (the example's
/// manifest applied in this process, so the modules are compiled into the cache before
/// the binary runs): `spark ingest`, then `spark ingest` of the same file again (every
/// event a duplicate). Each round prints a line to stderr as it ends.
pub fn growth(binary: &Path, sizes: &[u64], seed: u64, cache: &Path) -> anyhow::Result<Vec<Size>> {
    let dir = tempfile::tempdir()?;
    let mut measured = Vec::new();
    for &challenges in sizes {
        let file = dir.path().join(format!("challenges-{challenges}.jsonl"));
        std::fs::write(&file, workload::challenges(challenges, seed))?;
        measured.push((
            file,
            Size {
                challenges,
                new: 0,
                ingests: Vec::new(),
                agains: Vec::new(),
            },
        ));
    }
    for round in 1..=GROWTH_ROUNDS {
        for (file, size) in &mut measured {
            let challenges = size.challenges;
            let data = tempfile::tempdir_in(dir.path())?;
            drop(http::set_up(data.path(), cache)?);
            let (ingest, fresh) = spark_ingest(binary, cache, data.path(), file)?;
            let (again, seen) = spark_ingest(binary, cache, data.path(), file)?;
            anyhow::ensure!(
                fresh.new > 0 && seen.new == 0 && seen.duplicates == fresh.new,
                "{challenges} challenges: the second ingest was not all duplicates: {} new, \
                 {} duplicates of {}",
                seen.new,
                seen.duplicates,
                fresh.new
            );
            anyhow::ensure!(
                size.ingests.is_empty() || size.new == fresh.new,
                "{challenges} challenges: round {round} counted {} new events, the first {}",
                fresh.new,
                size.new
            );
            size.new = fresh.new;
            eprintln!(
                "growth round {round}/{GROWTH_ROUNDS}: {challenges} challenges, {:.2} s new, \
                 {:.2} s again",
                ingest.seconds, again.seconds
            );
            size.ingests.push(ingest);
            size.agains.push(again);
        }
    }
    let measured: Vec<Size> = measured.into_iter().map(|(_, size)| size).collect();
    for size in &measured {
        print_size(size, &measured[0]);
    }
    Ok(measured)
}

pub fn print_growth_header(binary: &Path) {
    println!();
    println!(
        "Growth: the challenges workload through `{}`, each size on a fresh data dir, \
         each run a whole process (start, open, ingest, durable commit); {GROWTH_ROUNDS} \
         rounds, each taking every size in turn, each figure the median of its size's \
         rounds (peak memory: the highest); ratios to the first size; CPU is the \
         process's, every thread, per event",
        binary.display()
    );
    println!(
        "{:>10} {:>10} {:>12} {:>6} {:>12} {:>6} {:>16} {:>17} {:>17}",
        "challenges",
        "events",
        "new events/s",
        "ratio",
        "duplicates/s",
        "ratio",
        "CPU µs new/dup",
        "seconds (1st/2nd)",
        "peak MiB (1st/2nd)"
    );
}

fn print_size(size: &Size, first: &Size) {
    println!(
        "{:>10} {:>10} {:>12.0} {:>5.2}x {:>12.0} {:>5.2}x {:>7.1} / {:>6.2} {:>8.2} / {:>6.2} {:>8.0} / {:>6.0}",
        size.challenges,
        size.new,
        size.new_per_second(),
        size.new_per_second() / first.new_per_second(),
        size.duplicates_per_second(),
        size.duplicates_per_second() / first.duplicates_per_second(),
        size.cpu_us_per_new(),
        size.cpu_us_per_duplicate(),
        median_of(&size.ingests, |run| run.seconds),
        median_of(&size.agains, |run| run.seconds),
        highest_peak_mb(&size.ingests),
        highest_peak_mb(&size.agains)
    );
}

/// What building the large ledger took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Built {
    pub keys: u64,
    pub records: u64,
    pub seconds: f64,
    pub peak_rss_mb: f64,
    /// Opening the tenant again after the build: sled reads the log the build wrote
    /// (it snapshots its page table only when it opens).
    pub reopen_seconds: f64,
}

/// The bulk source: record `{"id": N}` makes events `bulk_N_0` to `bulk_N_99`, in group
/// `bulk`, which no handler of the example takes.
struct BulkSource;

impl NativeModule for BulkSource {
    fn exports(&self) -> Vec<&'static str> {
        vec!["source"]
    }

    fn events(&self, _: &str, record: &str, _: &Invocation) -> Result<Vec<Event>, CallError> {
        let record: serde_json::Value =
            serde_json::from_str(record).map_err(|error| CallError::Guest {
                message: error.to_string(),
            })?;
        let id = record["id"].as_u64().ok_or_else(|| CallError::Guest {
            message: "no id".to_owned(),
        })?;
        Ok((0..EVENTS_PER_RECORD)
            .map(|n| Event {
                group: "bulk".to_owned(),
                key: format!("bulk_{id}_{n}"),
                context: "{}".to_owned(),
            })
            .collect())
    }
}

/// The child's part: the bench tenant of `data` set up with the example's manifest,
/// `keys` ledger keys added through the pipeline by the bulk source, which is then
/// removed.
pub fn build_ledger(data: &Path, keys: u64, cache: &Path) -> anyhow::Result<Built> {
    let mut spark = http::set_up(data, cache)?;
    spark.register_native("builtin:bulk-source", Arc::new(BulkSource))?;
    let mut tenant = spark.tenant(http::TENANT)?;
    tenant.add_module(
        spec(
            "bulk",
            ModuleCode::Native("builtin:bulk-source".to_owned()),
            &["bulk"],
            &[],
            LimitOverrides::default(),
        ),
        false,
    )?;
    let now = parse_time(workload::TODAY)?;
    let records = keys.div_ceil(EVENTS_PER_RECORD);
    let started = Instant::now();
    let mut made = 0;
    let terminal = std::io::stderr().is_terminal();
    for first in (0..records).step_by(RECORDS_PER_INGEST as usize) {
        let mut input = String::new();
        for id in first..(first + RECORDS_PER_INGEST).min(records) {
            input.push_str(&format!("{{\"id\":{id}}}\n"));
        }
        let report = tenant.ingest("bulk", &mut input.as_bytes(), now, &mut |_| {})?;
        anyhow::ensure!(
            !report.has_failures(),
            "the bulk ingest failed: {:?}",
            report.problems.first()
        );
        made += report.new;
        // One line rewritten on a terminal, a line each in a log.
        if terminal {
            eprint!("\r{made} ledger keys");
        } else {
            eprintln!("{made} ledger keys");
        }
    }
    if terminal {
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
    tenant.remove_module("bulk")?;
    tenant.flush()?;
    let peak_rss_mb = peak_rss_mb();
    drop(tenant);
    drop(spark);
    let started = Instant::now();
    drop(
        spark_host::Spark::open_with_cache(data, cache)?
            .tenant(http::TENANT)?
            .known_models()?,
    );
    Ok(Built {
        keys: made,
        records,
        seconds,
        peak_rss_mb,
        reopen_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Rounds of the probe: each ingests [`PROBE_CHALLENGES`] challenges of its own (new
/// events), then the same file again (duplicates), after an ingest of nothing (the
/// binary's start and the store's open, no key checked).
pub const PROBE_ROUNDS: usize = 3;

/// One round on one tenant.
#[derive(Debug, Clone)]
pub struct Round {
    pub nothing: Process,
    pub new: Process,
    pub duplicates: Process,
    pub new_events: u64,
}

/// The open measurement: a small tenant and one with `keys` ledger keys, probed by the
/// binary in alternation, and sled's own open of the large one.
#[derive(Debug, Clone)]
pub struct Open {
    pub built: Built,
    pub small: Vec<Round>,
    pub large: Vec<Round>,
    /// sled alone opening the large tenant's database (no Spark): (open seconds, the
    /// process).
    pub sled: Vec<(f64, Process)>,
    /// The large tenant's data dir on disk, MiB.
    pub data_mb: f64,
}

/// The argument that makes spark-bench open a sled database and nothing else:
/// `--child-sled-open PATH`; it prints the seconds the open took.
pub const SLED_OPEN_CHILD: &str = "--child-sled-open";

pub fn sled_open(path: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let db = sled::Config::new().path(path).open()?;
    let data = db.open_tree("data")?;
    let seconds = started.elapsed().as_secs_f64();
    drop(data);
    Ok(seconds)
}

pub fn open(binary: &Path, keys: u64, seed: u64, cache: &Path) -> anyhow::Result<Open> {
    let dir = tempfile::tempdir()?;
    // Files of their own for each round: the generator is sequential, so these are
    // the first challenges of the workload, cut in rounds.
    let all = workload::challenges(PROBE_CHALLENGES * PROBE_ROUNDS as u64, seed);
    let lines: Vec<&str> = all.lines().collect();
    let mut files = Vec::new();
    for (round, chunk) in lines.chunks(PROBE_CHALLENGES as usize).enumerate() {
        let file = dir.path().join(format!("probe-{round}.jsonl"));
        std::fs::write(&file, chunk.join("\n") + "\n")?;
        files.push(file);
    }
    let nothing = dir.path().join("nothing.jsonl");
    std::fs::write(&nothing, "")?;
    let round = |data: &Path, file: &Path| -> anyhow::Result<Round> {
        let (nothing, _) = spark_ingest(binary, cache, data, &nothing)?;
        let (new, fresh) = spark_ingest(binary, cache, data, file)?;
        let (duplicates, seen) = spark_ingest(binary, cache, data, file)?;
        anyhow::ensure!(fresh.new > 0 && seen.duplicates == fresh.new);
        Ok(Round {
            nothing,
            new,
            duplicates,
            new_events: fresh.new,
        })
    };
    let small_data = dir.path().join("small");
    drop(http::set_up(&small_data, cache)?);

    let large_data = dir.path().join("large");
    let built = Command::new(std::env::current_exe()?)
        .arg(BULK_CHILD)
        .arg(&large_data)
        .arg(keys.to_string())
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(built.status.success(), "building the ledger failed");
    let built: Built = serde_json::from_slice(&built.stdout)?;
    let data_mb = dir_bytes(&large_data)? as f64 / (1 << 20) as f64;
    let large_db = large_data.join("tenants").join(http::TENANT).join("db");
    anyhow::ensure!(large_db.exists(), "no database at {}", large_db.display());

    let (mut small, mut large, mut sled) = (Vec::new(), Vec::new(), Vec::new());
    for file in &files {
        small.push(round(&small_data, file)?);
        large.push(round(&large_data, file)?);
        let process = run_measured(
            &std::env::current_exe()?,
            &[SLED_OPEN_CHILD.into(), large_db.clone().into_os_string()],
        )?;
        let seconds: f64 = String::from_utf8_lossy(&process.stdout).trim().parse()?;
        sled.push((seconds, process));
    }
    Ok(Open {
        built,
        small,
        large,
        sled,
        data_mb,
    })
}

fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

pub fn print_open(binary: &Path, open: &Open) {
    println!();
    println!(
        "A ledger of {} keys ({} records of {EVENTS_PER_RECORD} events each, built through \
         Tenant::ingest with a native source and no handler in {:.0} s, peak {:.0} MiB, then \
         opened once more, {:.1} s: sled reads its whole log after that build; {:.0} MiB on \
         disk), and a small tenant: `{}` on each, in alternation, {PROBE_ROUNDS} rounds of \
         an ingest of nothing, {PROBE_CHALLENGES} challenges (new events), and the same \
         again (duplicates), each a whole process; median (min-max) of the rounds:",
        open.built.keys,
        open.built.records,
        open.built.seconds,
        open.built.peak_rss_mb,
        open.built.reopen_seconds,
        open.data_mb,
        binary.display()
    );
    println!("{:<28} {:>32} {:>32}", "", "small tenant", "large ledger");
    type Pick = fn(&Round) -> &Process;
    let rows: [(&str, Pick); 3] = [
        ("ingest of nothing (open)", |round| &round.nothing),
        ("new events", |round| &round.new),
        ("duplicates", |round| &round.duplicates),
    ];
    for (name, pick) in rows {
        let name = match name {
            "ingest of nothing (open)" => name.to_owned(),
            _ => format!("{name} ({})", open.large[0].new_events),
        };
        println!(
            "{name:<28} {:>32} {:>32}",
            spread(open.small.iter().map(pick)),
            spread(open.large.iter().map(pick))
        );
    }
    let seconds: Vec<f64> = open.sled.iter().map(|(seconds, _)| *seconds).collect();
    println!(
        "{:<28} {:>32} {:>32}",
        "sled alone opening it",
        "",
        format!(
            "{:.0} ms, {}",
            median(&seconds) * 1000.0,
            spread(open.sled.iter().map(|(_, process)| process))
                .split_once(", ")
                .map_or(String::new(), |(_, memory)| memory.to_owned())
        )
    );
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// "1234 ms (1100-1300), 500 MiB (490-510)" for the processes' wall times and peaks.
fn spread<'a>(processes: impl Iterator<Item = &'a Process>) -> String {
    let processes: Vec<&Process> = processes.collect();
    let of = |values: Vec<f64>| {
        let (low, high) = values.iter().fold((f64::MAX, f64::MIN), |(low, high), &v| {
            (low.min(v), high.max(v))
        });
        (median(&values), low, high)
    };
    let (time, time_low, time_high) = of(processes.iter().map(|p| p.seconds * 1000.0).collect());
    let (peak, peak_low, peak_high) = of(processes.iter().map(|p| p.peak_rss_mb).collect());
    format!(
        "{time:.0} ms ({time_low:.0}-{time_high:.0}), {peak:.0} MiB ({peak_low:.0}-{peak_high:.0})"
    )
}

/// The argument that makes spark-bench ingest a file as `spark ingest` does, in
/// process, with sled's cache capped: `--child-ingest-file DATA FILE CACHE_MIB` (0:
/// sled's default, as the binary has it). It prints its wall time and new events.
pub const INGEST_FILE_CHILD: &str = "--child-ingest-file";

pub fn ingest_file(
    data: &Path,
    file: &Path,
    cache_mib: u64,
    cache: &Path,
) -> anyhow::Result<(f64, u64)> {
    if !data.exists() {
        drop(http::set_up(data, cache)?);
    }
    let mut spark = spark_host::Spark::open_with_cache(data, cache)?;
    if cache_mib > 0 {
        spark.set_store_cache(cache_mib << 20);
    }
    let mut tenant = spark.tenant(http::TENANT)?;
    let now = parse_time(workload::TODAY)?;
    let started = Instant::now();
    let mut input = std::io::BufReader::new(std::fs::File::open(file)?);
    let report = tenant.ingest("challenge", &mut input, now, &mut |_| {})?;
    anyhow::ensure!(!report.has_failures(), "{:?}", report.problems.first());
    Ok((started.elapsed().as_secs_f64(), report.new))
}

/// The same ingest as the binary's (`challenges` of the workload, a fresh data dir),
/// in a process of spark-bench, with sled's cache as the binary has it and capped at
/// `cap_mib`: how much of the binary's peak memory is sled's cache.
pub fn store_cache(challenges: u64, seed: u64, cap_mib: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("challenges.jsonl");
    std::fs::write(&file, workload::challenges(challenges, seed))?;
    println!();
    println!(
        "{challenges} challenges ingested in a process of spark-bench as `spark ingest` \
         ingests them (a fresh data dir each), by the size of sled's cache:"
    );
    for (name, mib) in [("sled's default (the binary's)", 0), ("capped", cap_mib)] {
        let data = dir.path().join(format!("data-{mib}"));
        let process = run_measured(
            &std::env::current_exe()?,
            &[
                INGEST_FILE_CHILD.into(),
                data.into_os_string(),
                file.clone().into_os_string(),
                mib.to_string().into(),
            ],
        )?;
        let printed = String::from_utf8_lossy(&process.stdout);
        let (seconds, new) = printed
            .trim()
            .split_once(' ')
            .context("the ingest printed no figures")?;
        let (seconds, new): (f64, f64) = (seconds.parse()?, new.parse()?);
        let cap = if mib == 0 {
            String::new()
        } else {
            format!(" at {mib} MiB")
        };
        println!(
            "  {name}{cap}: {:.0} new events/s ({seconds:.1} s), peak {:.0} MiB",
            new / seconds,
            process.peak_rss_mb
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seconds: f64, cpu_seconds: f64, peak_rss_mb: f64) -> Process {
        Process {
            seconds,
            cpu_seconds,
            peak_rss_mb,
            stdout: Vec::new(),
        }
    }

    #[test]
    fn a_size_reports_the_median_of_its_rounds_and_the_highest_peak() {
        // The slow round (a neighbour's burst) is the last one, not the median.
        let size = Size {
            challenges: 10,
            new: 1_000,
            ingests: vec![
                run(0.5, 0.8, 50.0),
                run(0.4, 0.7, 60.0),
                run(2.0, 0.9, 55.0),
            ],
            agains: vec![
                run(0.1, 0.1, 30.0),
                run(0.05, 0.05, 20.0),
                run(0.2, 0.2, 25.0),
            ],
        };
        assert_eq!(size.new_per_second(), 2_000.0);
        assert_eq!(size.duplicates_per_second(), 10_000.0);
        assert_eq!(size.cpu_us_per_new(), 800.0);
        assert_eq!(size.cpu_us_per_duplicate(), 100.0);
        assert_eq!(highest_peak_mb(&size.ingests), 60.0);
        assert_eq!(median_of(&size.agains, |run| run.seconds), 0.1);
    }
}
