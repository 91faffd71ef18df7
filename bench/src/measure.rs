//! One measured run: a fresh data dir, the example's two modules (as components or
//! native), the workload ingested twice: first every event is new, then every event is
//! a duplicate.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use spark_host::{ModuleCode, ModuleSpec, RunReport, Spark, Tenant, parse_time};

use crate::native::{NativeMailer, NativeSource};
use crate::workload;

/// How the modules run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Wasm,
    Native,
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
    /// Per record, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
}

/// A whole run: both ingests and the process's peak memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub mode: Mode,
    pub challenges: u64,
    pub fresh: Phase,
    pub seen: Phase,
    pub peak_rss_mb: f64,
}

pub fn run(mode: Mode, challenges: u64, seed: u64, cache: &Path) -> anyhow::Result<Run> {
    let input = workload::challenges(challenges, seed);
    let dir = tempfile::tempdir()?;
    let mut spark = Spark::open_with_cache(dir.path().join("data"), cache)?;
    spark.register_native("builtin:challenges-source", Arc::new(NativeSource))?;
    spark.register_native("builtin:challenges-mailer", Arc::new(NativeMailer))?;
    let mut tenant = spark.tenant("bench")?;
    let (source, mailer) = match mode {
        Mode::Wasm => (
            ModuleCode::Wasm(std::fs::read(spark_test_guests::CHALLENGES_SOURCE)?),
            ModuleCode::Wasm(std::fs::read(spark_test_guests::CHALLENGES_MAILER)?),
        ),
        Mode::Native => (
            ModuleCode::Native("builtin:challenges-source".to_owned()),
            ModuleCode::Native("builtin:challenges-mailer".to_owned()),
        ),
    };
    tenant.add_module(spec("challenges", source, &["challenge"], &[]), false)?;
    tenant.add_module(spec("mailer", mailer, &[], &["^challenge"]), false)?;
    let fresh = ingest(&mut tenant, &input)?;
    let seen = ingest(&mut tenant, &input)?;
    anyhow::ensure!(fresh.new > 0 && seen.new == 0 && seen.duplicates == fresh.new);
    Ok(Run {
        mode,
        challenges,
        fresh,
        seen,
        peak_rss_mb: peak_rss_mb(),
    })
}

fn spec(name: &str, code: ModuleCode, sources: &[&str], handlers: &[&str]) -> ModuleSpec {
    ModuleSpec {
        name: name.to_owned(),
        code,
        sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        handlers: handlers.iter().map(|h| (*h).to_owned()).collect(),
        limits: Default::default(),
    }
}

fn ingest(tenant: &mut Tenant, input: &str) -> anyhow::Result<Phase> {
    let now = parse_time(workload::TODAY)?;
    let mut latencies = Vec::with_capacity(input.len() / 150);
    let mut last = Instant::now();
    let started = last;
    let report: RunReport = tenant.ingest("challenge", &mut input.as_bytes(), now, &mut |_| {
        let now = Instant::now();
        latencies.push(now.duration_since(last).as_secs_f64() * 1e6);
        last = now;
    })?;
    let seconds = started.elapsed().as_secs_f64();
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
        p50_us: quantile(0.50),
        p99_us: quantile(0.99),
    })
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
