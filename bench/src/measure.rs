//! One measured run: a fresh data dir, the example's two modules (as components or
//! native), the workload ingested: first every event is new, then every event is a
//! duplicate, and again with the source's clock exact.
//!
//! The tenant is set up by applying the example's manifest (modules, clocks, mail
//! settings and templates) with the modules' code swapped for the mode's. Its source
//! has `clock = "day"` (it reads only the date), so the second ingest finds every
//! record unchanged since its source's call that day and skips the call. The third
//! ingest measures what duplicates cost when sources are called for every record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use spark_host::{
    Clock, LimitOverrides, Manifest, ModuleCode, ModuleSpec, RunReport, Spark, Tenant, parse_time,
};
use spark_test_guests::{CHALLENGES_MAILER, CHALLENGES_SOURCE};

use crate::native::{NativeMailer, NativeSource};
use crate::store::Shape;
use crate::workload;

/// How the modules run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Components, each on a live instance (the default).
    Wasm,
    /// Components, a fresh instance for every call (`calls-per-instance = 1`).
    WasmFresh,
    /// The same functions compiled into the host.
    Native,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Wasm => "wasm",
            Mode::WasmFresh => "wasm-fresh",
            Mode::Native => "native",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Mode::Wasm, Mode::WasmFresh, Mode::Native]
            .into_iter()
            .find(|mode| mode.name() == text)
    }
}

/// The measurements of one ingest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub seconds: f64,
    pub records: u64,
    pub events: u64,
    pub new: u64,
    pub duplicates: u64,
    pub deliveries: u64,
    pub sources_skipped: u64,
    /// Per record, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    /// CPU time of the thread that ran the ingest (modules, ledger, staging).
    pub main_cpu_seconds: f64,
    /// CPU time of every other thread of the process meanwhile (committing, sled's).
    pub other_cpu_seconds: f64,
}

/// A whole run: both ingests, the process's peak memory, and the shape of what it
/// stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub mode: Mode,
    pub challenges: u64,
    pub fresh: Phase,
    /// Every event a duplicate, every source call skipped.
    pub seen: Phase,
    /// Every event a duplicate, every source called (the exact clock).
    pub seen_exact: Phase,
    pub peak_rss_mb: f64,
    pub shape: Shape,
    /// The size of the host's instance pool, if it could reserve one.
    pub instance_pool: Option<u32>,
}

pub fn run(mode: Mode, challenges: u64, seed: u64, cache: &Path) -> anyhow::Result<Run> {
    let input = workload::challenges(challenges, seed);
    let dir = tempfile::tempdir()?;
    let mut spark = Spark::open_with_cache(dir.path().join("data"), cache)?;
    spark.register_native("builtin:challenges-source", Arc::new(NativeSource))?;
    spark.register_native("builtin:challenges-mailer", Arc::new(NativeMailer))?;
    let mut tenant = spark.tenant("bench")?;
    let (mut manifest, manifest_path) = example_manifest(mode)?;
    tenant.apply(&manifest, &manifest_path)?;
    // Untimed, an empty ingest sets the tenant's pipeline up: the template renderer is
    // compiled on first use, 1-2 s when the cache does not have it yet (after a change
    // to it), which the first timed run of a cold cache counted. The `spark` binary's
    // runs below are measured with everything cached too.
    tenant.ingest(
        "challenge",
        &mut "".as_bytes(),
        parse_time(workload::TODAY)?,
        &mut |_| {},
    )?;
    let fresh = ingest(&mut tenant, &input)?;
    let seen = ingest(&mut tenant, &input)?;
    // The first ingest after the switch also drops every record's memo (a write per
    // record); the second is the steady state of an exact clock.
    for module in &mut manifest.modules {
        module.clock = Clock::Exact;
    }
    tenant.apply(&manifest, &manifest_path)?;
    ingest(&mut tenant, &input)?;
    let seen_exact = ingest(&mut tenant, &input)?;
    for again in [&seen, &seen_exact] {
        anyhow::ensure!(fresh.new > 0 && again.new == 0 && again.duplicates == fresh.new);
    }
    anyhow::ensure!(seen.sources_skipped == fresh.records && seen_exact.sources_skipped == 0);
    let peak_rss_mb = peak_rss_mb();
    Ok(Run {
        mode,
        challenges,
        fresh,
        seen,
        seen_exact,
        peak_rss_mb,
        shape: shape(&tenant, &input)?,
        instance_pool: spark.instance_pool(),
    })
}

/// The example's manifest (`examples/challenges/spark.toml`: its modules with their
/// sources, handlers and clocks, its mail settings and templates) and its path, with
/// the modules' code as `mode` runs it.
pub fn example_manifest(mode: Mode) -> anyhow::Result<(Manifest, PathBuf)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/challenges/spark.toml");
    let mut manifest = Manifest::load(&path)?;
    for module in &mut manifest.modules {
        let (wasm, native) = match module.name.as_str() {
            "challenges" => (CHALLENGES_SOURCE, "builtin:challenges-source"),
            "challenge-mails" => (CHALLENGES_MAILER, "builtin:challenges-mailer"),
            other => anyhow::bail!("the example has a module the benchmark does not know: {other}"),
        };
        module.path = match mode {
            Mode::Wasm | Mode::WasmFresh => PathBuf::from(wasm),
            Mode::Native => PathBuf::from(native),
        };
        if mode == Mode::WasmFresh {
            module.limits.calls_per_instance = Some(1);
        }
    }
    anyhow::ensure!(
        manifest.mails.templates.is_some(),
        "the example's manifest has no templates"
    );
    Ok((manifest, path))
}

/// The average sizes of what the run stored.
fn shape(tenant: &Tenant, input: &str) -> anyhow::Result<Shape> {
    let (mut ledger, mut events) = (0, 0);
    for entry in tenant.events() {
        let entry = entry?;
        ledger += entry.group.len() + entry.context.len() + 40;
        events += 1;
    }
    let (mut outbox, mut items) = (0, 0);
    for item in tenant.outbox() {
        let item = item?;
        let render_error = item
            .payload
            .as_mail()
            .and_then(|mail| mail.render_error.as_ref());
        anyhow::ensure!(
            render_error.is_none(),
            "mail {} did not render: {}",
            item.id,
            render_error.map_or("", String::as_str)
        );
        outbox += serde_json::to_vec(&item)?.len();
        items += 1;
    }
    let records = input.lines().count();
    Ok(Shape {
        records: records as u64,
        events,
        record_bytes: input.len() / records.max(1),
        ledger_bytes: ledger / (events as usize).max(1),
        outbox_bytes: outbox / items.max(1),
    })
}

pub fn spec(
    name: &str,
    code: ModuleCode,
    sources: &[&str],
    handlers: &[&str],
    limits: LimitOverrides,
) -> ModuleSpec {
    ModuleSpec {
        name: name.to_owned(),
        code,
        sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        handlers: handlers.iter().map(|h| (*h).to_owned()).collect(),
        limits,
        clock: Default::default(),
    }
}

/// `input` ingested once through `Tenant::ingest` (flushed before it returns), timed.
pub fn ingest(tenant: &mut Tenant, input: &str) -> anyhow::Result<Phase> {
    let now = parse_time(workload::TODAY)?;
    let mut latencies = Vec::with_capacity(input.len() / 150);
    let (main_cpu, process_cpu) = (cpu_seconds(Usage::Thread), cpu_seconds(Usage::Process));
    let mut last = Instant::now();
    let started = last;
    let report: RunReport = tenant.ingest("challenge", &mut input.as_bytes(), now, &mut |_| {
        let now = Instant::now();
        latencies.push(now.duration_since(last).as_secs_f64() * 1e6);
        last = now;
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let main_cpu_seconds = cpu_seconds(Usage::Thread) - main_cpu;
    let other_cpu_seconds = cpu_seconds(Usage::Process) - process_cpu - main_cpu_seconds;
    anyhow::ensure!(
        !report.has_failures(),
        "the run failed: {:?}",
        report.problems.first()
    );
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Ok(Phase {
        seconds,
        records: report.records,
        events: report.events,
        new: report.new,
        duplicates: report.duplicates,
        deliveries: report.deliveries,
        sources_skipped: report.sources_skipped,
        p50_us: quantile(0.50),
        p99_us: quantile(0.99),
        main_cpu_seconds,
        other_cpu_seconds,
    })
}

pub enum Usage {
    Thread,
    Process,
}

/// User and system CPU time so far of this thread, or of the whole process (threads
/// that have ended included).
pub fn cpu_seconds(of: Usage) -> f64 {
    let who = match of {
        Usage::Thread => libc::RUSAGE_THREAD,
        Usage::Process => libc::RUSAGE_SELF,
    };
    // SAFETY: getrusage writes a `rusage` into the zeroed one it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The process's peak resident memory (VmHWM), in MiB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
