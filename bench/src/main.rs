//! The Spark benchmark: the challenges workload through the real pipeline, as
//! WebAssembly components and as the same functions compiled natively, and over HTTP
//! through `spark serve`, measured in the same run so that the ratios hold on any
//! machine. BENCHMARKS.md has how and why.
//!
//! ```text
//! cargo run --release -p spark-bench                       # 10,000 and 100,000 challenges
//! cargo run --release -p spark-bench -- --challenges 20000 --seed 7
//! cargo build --release -p spark-host && cargo run --release -p spark-bench -- --http-only
//! ```

mod cluster;
mod delivery;
mod growth;
mod http;
mod measure;
mod native;
mod peer;
mod scale;
mod store;
mod workload;

use std::path::PathBuf;
use std::process::Command;

use measure::{Mode, Run};

/// The allocator the `spark` binary uses, so that the pipeline is measured as it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: spark-bench [--challenges N[,N...]] [--seed S] [--tenants T] [--delivery D]
                   [--http-records N] [--http-batch-records N] [--http-only | --no-http]
                   [--peer django-spark]
                   [--growth N[,N...]] [--open-keys K] [--spark PATH]
                   [--store-cache MIB] [--cluster]
  --challenges  workload sizes, each measured natively, in wasm and with fresh
                instances (default 10000,100000; with --peer, 10000)
  --seed        the workload generator's seed (default 42)
  --tenants     tenants for the many-tenants measurement; 0 skips it (default 1000)
  --delivery    challenges whose mails `outbox send` sends to a local SMTP server,
                1, 4 and 8 at a time; 0 skips it (default 100)
  --http-records
                challenges posted to `spark serve` one a request, by 1, 4 and 16
                clients (default 10000)
  --http-batch-records
                challenges posted 1,000 a request, by 1, 4 and 16 clients
                (default 64000)
  --http-only   only the HTTP measurement (it needs the release `spark` binary
                next to spark-bench: cargo build --release -p spark-host)
  --no-http     skip the HTTP measurement
  --peer django-spark
                only this: the same workload through django-spark (installed from
                PyPI into target/bench-peer-venv), in-process and through the release
                `spark` binary, as ratios Spark/django-spark
  --growth      only this (and --open-keys): each size of the workload through the
                release `spark` binary, ingested then ingested again, each a whole
                process, in three rounds over every size: the medians of new events/s
                and duplicates/s as ratios to the first size, and each process's peak
                memory (e.g. 10000,100000,1000000)
  --open-keys   only this (and --growth): a tenant with K ledger keys (built through
                the library with a bulk source), then `spark ingest` of 1,000
                challenges on it and on an empty tenant; 0 skips it (default with
                --growth: 10000000)
  --spark       the `spark` binary --growth and --open-keys run (default: the one
                next to spark-bench)
  --store-cache with --growth: the largest size ingested again in a process of
                spark-bench as the binary ingests it, with sled's cache as the
                binary has it and capped at MIB: how much of the peak is the cache
  --cluster     only this: the HTTP workload (--http-records and
                --http-batch-records, over 4 tenants, 16 clients) posted to a single
                `spark serve`, to one node with --cluster over 3 nats-server nodes
                (--replicas 3) and to two such nodes, as records/s and ratios; then
                the failover time after one of the two is killed (needs nats-server:
                python3 -m pip install --require-hashes -r tests/requirements-nats.txt)
BENCHMARKS.md explains each measurement.
";

#[derive(Debug)]
struct Options {
    challenges: Vec<u64>,
    seed: u64,
    tenants: usize,
    delivery: u64,
    http_records: usize,
    http_batch_records: usize,
    http: Http,
    peer: Option<peer::Peer>,
    growth: Vec<u64>,
    open_keys: Option<u64>,
    spark: Option<PathBuf>,
    store_cache: Option<u64>,
    cluster: bool,
}

/// Whether the HTTP measurement runs, alone or with the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Http {
    With,
    Only,
    Skipped,
}

impl Options {
    fn choose_http(&mut self, choice: Http) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.http == Http::With || self.http == choice,
            "--http-only and --no-http exclude each other"
        );
        self.http = choice;
        Ok(())
    }
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        challenges: Vec::new(),
        seed: 42,
        tenants: 1_000,
        delivery: 100,
        http_records: 10_000,
        http_batch_records: 64_000,
        http: Http::With,
        peer: None,
        growth: Vec::new(),
        open_keys: None,
        spark: None,
        store_cache: None,
        cluster: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--challenges" => {
                options.challenges = value()?
                    .split(',')
                    .map(|n| n.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            "--seed" => options.seed = value()?.parse()?,
            "--tenants" => options.tenants = value()?.parse()?,
            "--delivery" => options.delivery = value()?.parse()?,
            "--http-records" => options.http_records = value()?.parse()?,
            "--http-batch-records" => options.http_batch_records = value()?.parse()?,
            "--http-only" => options.choose_http(Http::Only)?,
            "--no-http" => options.choose_http(Http::Skipped)?,
            "--peer" => options.peer = Some(value()?.parse()?),
            "--growth" => {
                options.growth = value()?
                    .split(',')
                    .map(|n| n.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            "--open-keys" => options.open_keys = Some(value()?.parse()?),
            "--spark" => options.spark = Some(PathBuf::from(value()?)),
            "--store-cache" => options.store_cache = Some(value()?.parse()?),
            "--cluster" => options.cluster = true,
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if options.challenges.is_empty() {
        options.challenges = match options.peer {
            Some(_) => vec![10_000],
            None => vec![10_000, 100_000],
        };
    }
    Ok(options)
}

/// Compiled modules are cached between runs, as the `spark` binary caches them.
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache")
}

fn main() -> anyhow::Result<()> {
    // As the `spark` binary does, so that memory is measured as it runs.
    spark_host::memory::disable_transparent_huge_pages();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A child run: one mode, one size, in a process of its own so that its peak
    // memory is its own.
    if args.first().map(String::as_str) == Some("--ceiling") {
        let n = |i: usize| -> anyhow::Result<usize> {
            Ok(args
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("sizes"))?
                .parse()?)
        };
        let shape = store::Shape {
            records: 10_000,
            events: 23_330,
            record_bytes: n(1)?,
            ledger_bytes: n(2)?,
            outbox_bytes: n(3)?,
        };
        println!("{:.0}", store::ceiling(shape)?);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some(http::BASELINE_CHILD) {
        let n = |i: usize| -> anyhow::Result<usize> {
            Ok(args
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("{} COUNT SEED", http::BASELINE_CHILD))?
                .parse()?)
        };
        let phase = http::baseline(n(1)?, n(2)? as u64, &cache_dir())?;
        println!("{}", serde_json::to_string(&phase)?);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some(peer::GENERATE_CHILD) {
        let n = |i: usize| -> anyhow::Result<u64> {
            Ok(args
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("{} COUNT SEED", peer::GENERATE_CHILD))?
                .parse()?)
        };
        let generated = peer::generate_child(n(1)?, n(2)?, &cache_dir())?;
        println!("{}", serde_json::to_string(&generated)?);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some(growth::INGEST_FILE_CHILD) {
        let (Some(data), Some(file), Some(mib)) = (args.get(1), args.get(2), args.get(3)) else {
            anyhow::bail!("{} DATA FILE CACHE_MIB", growth::INGEST_FILE_CHILD);
        };
        let (seconds, new) =
            growth::ingest_file(data.as_ref(), file.as_ref(), mib.parse()?, &cache_dir())?;
        println!("{seconds} {new}");
        return Ok(());
    }
    if args.first().map(String::as_str) == Some(growth::SLED_OPEN_CHILD) {
        let path = args.get(1).ok_or_else(|| anyhow::anyhow!("PATH"))?;
        println!("{}", growth::sled_open(path.as_ref())?);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some(growth::MEASURE_CHILD) {
        return growth::measure_child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some(growth::BULK_CHILD) {
        let (Some(data), Some(keys)) = (args.get(1), args.get(2)) else {
            anyhow::bail!("{} DATA KEYS", growth::BULK_CHILD);
        };
        let built = growth::build_ledger(data.as_ref(), keys.parse()?, &cache_dir())?;
        println!("{}", serde_json::to_string(&built)?);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("--child-tenants") {
        let count = args
            .get(1)
            .ok_or_else(|| anyhow::anyhow!("count"))?
            .parse()?;
        let tenants = scale::tenants(count, &cache_dir())?;
        println!("{}", serde_json::to_string(&tenants)?);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("--child") {
        let mode = args
            .get(1)
            .and_then(|mode| Mode::parse(mode))
            .ok_or_else(|| anyhow::anyhow!("--child wasm|wasm-fresh|native CHALLENGES SEED"))?;
        let challenges = args
            .get(2)
            .ok_or_else(|| anyhow::anyhow!("size"))?
            .parse()?;
        let seed = args
            .get(3)
            .ok_or_else(|| anyhow::anyhow!("seed"))?
            .parse()?;
        let run = measure::run(mode, challenges, seed, &cache_dir())?;
        println!("{}", serde_json::to_string(&run)?);
        return Ok(());
    }
    let options = options(&args)?;
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build measures the debug build; use --release");
    }
    anyhow::ensure!(
        options.http_records > 0 && options.http_batch_records > 0,
        "--http-records and --http-batch-records take at least 1"
    );
    if !options.growth.is_empty() || options.open_keys.is_some() {
        return measure_growth(&options);
    }
    if options.cluster {
        let settings = cluster::Settings {
            single: options.http_records,
            batch: options.http_batch_records,
            seed: options.seed,
        };
        println!(
            "Spark benchmark: the challenges workload (seed {})",
            options.seed
        );
        return cluster::measure(&http::spark_binary()?, settings, &cache_dir());
    }
    if let Some(peer) = options.peer {
        println!(
            "Spark benchmark: the challenges workload (seed {}) against {}",
            options.seed,
            peer.name()
        );
        for &challenges in &options.challenges {
            peer::measure(peer, challenges, options.seed, &cache_dir())?;
        }
        return Ok(());
    }
    // Found before anything is measured, so that a missing binary stops the run at once.
    let spark_binary = match options.http {
        Http::Skipped => None,
        Http::With | Http::Only => Some(http::spark_binary()?),
    };
    println!(
        "Spark benchmark: the challenges workload (seed {})",
        options.seed
    );
    if options.http == Http::Only {
        return measure_http(spark_binary.as_deref(), &options);
    }
    for &challenges in &options.challenges {
        let native = child(Mode::Native, challenges, options.seed)?;
        let wasm = child(Mode::Wasm, challenges, options.seed)?;
        let fresh = child(Mode::WasmFresh, challenges, options.seed)?;
        print_table(&native, &wasm);
        let mut extra_us = vec![fresh_extra_us(&wasm, &fresh)];
        for _ in 1..FRESH_PAIRS {
            let wasm = child(Mode::Wasm, challenges, options.seed)?;
            let fresh = child(Mode::WasmFresh, challenges, options.seed)?;
            extra_us.push(fresh_extra_us(&wasm, &fresh));
        }
        extra_us.sort_by(f64::total_cmp);
        let pool = match fresh.instance_pool {
            Some(slots) => format!("instances from a pool of {slots}"),
            None => "no instance pool: each instance maps its own memory".to_owned(),
        };
        println!(
            "{:<30} {:>14.1} µs per call more than a live instance, median of {FRESH_PAIRS} \
             pairs of runs ({:.1} to {:.1}; {:.0} new events/s; {pool})",
            "fresh instance per call",
            extra_us[extra_us.len() / 2],
            extra_us[0],
            extra_us[extra_us.len() - 1],
            fresh.fresh.new as f64 / fresh.fresh.seconds
        );
        let ceiling = store::ceiling(wasm.shape)?;
        println!(
            "{:<30} {:>14.0} new events/s: sled alone, same keys and value sizes \
             ({} B record, {} B ledger entry, {} B outbox item)",
            "store ceiling",
            ceiling,
            wasm.shape.record_bytes,
            wasm.shape.ledger_bytes,
            wasm.shape.outbox_bytes
        );
    }

    println!();
    let spark = std::env::current_exe()?.with_file_name("spark");
    if spark.exists() {
        let (median, max) = scale::cold_start(&spark, 10)?;
        println!(
            "cold start: `spark ingest` of one record, two modules cached: \
             {median:.1} ms median, {max:.1} ms max of 10"
        );
    } else {
        println!(
            "cold start: not measured; build the binary first: cargo build --release -p spark-host"
        );
    }
    if options.tenants > 0 {
        let output = Command::new(std::env::current_exe()?)
            .args(["--child-tenants", &options.tenants.to_string()])
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "the tenants run failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tenants: scale::Tenants = serde_json::from_slice(&output.stdout)?;
        println!(
            "{} tenants, two modules each, open in one process: {:.0} MiB ({:.2} MiB per \
             tenant); first event per tenant {:.1} ms median, {:.1} ms p99",
            tenants.count,
            tenants.rss_mb,
            tenants.rss_mb / tenants.count as f64,
            tenants.first_event_p50_ms,
            tenants.first_event_p99_ms
        );
    }
    if options.delivery > 0 {
        print_delivery(delivery::measure(
            options.delivery,
            options.seed,
            &cache_dir(),
            &[1, 4, 8],
        )?);
    }
    measure_http(spark_binary.as_deref(), &options)
}

/// The growth run and the large ledger's open, alone.
fn measure_growth(options: &Options) -> anyhow::Result<()> {
    let binary = match &options.spark {
        Some(binary) => binary.clone(),
        None => http::spark_binary()?,
    };
    anyhow::ensure!(binary.exists(), "no `{}`", binary.display());
    println!(
        "Spark benchmark: the challenges workload (seed {})",
        options.seed
    );
    if !options.growth.is_empty() {
        growth::print_growth_header(&binary);
        growth::growth(&binary, &options.growth, options.seed, &cache_dir())?;
        if let (Some(mib), Some(&largest)) = (options.store_cache, options.growth.iter().max()) {
            growth::store_cache(largest, options.seed, mib)?;
        }
    }
    let keys = match (options.open_keys, options.growth.is_empty()) {
        (Some(keys), _) => keys,
        (None, false) => 10_000_000,
        (None, true) => 0,
    };
    if keys > 0 {
        let open = growth::open(&binary, keys, options.seed, &cache_dir())?;
        growth::print_open(&binary, &open);
    }
    Ok(())
}

/// The challenges posted to `spark serve`, if the run includes it.
fn measure_http(spark_binary: Option<&std::path::Path>, options: &Options) -> anyhow::Result<()> {
    let Some(binary) = spark_binary else {
        return Ok(());
    };
    let settings = http::Settings {
        single: options.http_records,
        batch: options.http_batch_records,
        seed: options.seed,
    };
    http::print(&http::measure(binary, settings, &cache_dir())?);
    Ok(())
}

fn print_delivery(delivery: Option<delivery::Delivery>) {
    let Some(delivery) = delivery else {
        println!(
            "delivery: not measured; it needs python3 with aiosmtpd \
             (pip install -r tests/requirements.txt)"
        );
        return;
    };
    let rate = |seconds: f64| delivery.mails as f64 / seconds;
    let (_, baseline) = delivery.seconds[0];
    let rates: Vec<String> = delivery
        .seconds
        .iter()
        .map(|&(concurrency, seconds)| {
            format!(
                "{concurrency} at a time {:.0}/s ({:.2}x)",
                rate(seconds),
                baseline / seconds
            )
        })
        .collect();
    println!(
        "delivery: {} mails by `outbox send` over SMTP to aiosmtpd on loopback: {}",
        delivery.mails,
        rates.join(", ")
    );
}

/// Pairs of runs (live instances, then fresh ones) that the cost of a fresh instance is
/// the median of: one pair's difference spreads by a few µs on a shared machine.
const FRESH_PAIRS: usize = 3;

/// What a fresh instance per call cost more than a live one, per call, in µs.
fn fresh_extra_us(wasm: &Run, fresh: &Run) -> f64 {
    let calls = (fresh.fresh.records + fresh.fresh.deliveries) as f64;
    (fresh.fresh.seconds - wasm.fresh.seconds) / calls * 1e6
}

fn child(mode: Mode, challenges: u64, seed: u64) -> anyhow::Result<Run> {
    let mode_name = mode.name();
    let output = Command::new(std::env::current_exe()?)
        .args([
            "--child",
            mode_name,
            &challenges.to_string(),
            &seed.to_string(),
        ])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "the {mode_name} run failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn print_table(native: &Run, wasm: &Run) {
    // (name, the measure of a run, whether higher is better)
    type Measure = fn(&Run) -> f64;
    fn rate(count: u64, seconds: f64) -> f64 {
        count as f64 / seconds
    }
    fn cpu_us_per_new_event(cpu_seconds: f64, run: &Run) -> f64 {
        cpu_seconds / run.fresh.new as f64 * 1e6
    }
    let rows: [(&str, Measure, bool); 12] = [
        ("new events/s", |r| rate(r.fresh.new, r.fresh.seconds), true),
        (
            "duplicate events/s",
            |r| rate(r.seen.duplicates, r.seen.seconds),
            true,
        ),
        (
            "duplicate events/s, exact",
            |r| rate(r.seen_exact.duplicates, r.seen_exact.seconds),
            true,
        ),
        (
            "handler calls/s",
            |r| rate(r.fresh.deliveries, r.fresh.seconds),
            true,
        ),
        (
            "records/s, first run",
            |r| rate(r.fresh.records, r.fresh.seconds),
            true,
        ),
        ("p50 µs per record, first run", |r| r.fresh.p50_us, false),
        ("p99 µs per record, first run", |r| r.fresh.p99_us, false),
        ("p50 µs per record, seen run", |r| r.seen.p50_us, false),
        ("p50 µs, seen run, exact", |r| r.seen_exact.p50_us, false),
        (
            "CPU µs/new event, ingest",
            |r| cpu_us_per_new_event(r.fresh.main_cpu_seconds, r),
            false,
        ),
        (
            "CPU µs/new event, others",
            |r| cpu_us_per_new_event(r.fresh.other_cpu_seconds, r),
            false,
        ),
        ("peak memory MiB", |r| r.peak_rss_mb, false),
    ];
    println!();
    println!(
        "{} challenges, {} events ({:.2} per challenge), {} handler calls",
        wasm.challenges,
        wasm.fresh.events,
        wasm.fresh.events as f64 / wasm.challenges as f64,
        wasm.fresh.deliveries
    );
    println!(
        "{:<30} {:>14} {:>14} {:>12}",
        "", "native", "wasm", "wasm/native"
    );
    for (name, measure, higher_is_better) in rows {
        let (native, wasm) = (measure(native), measure(wasm));
        let ratio = wasm / native;
        let note = if higher_is_better {
            ""
        } else {
            " (lower is better)"
        };
        println!("{name:<30} {native:>14.0} {wasm:>14.0} {ratio:>11.2}x{note}");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "(the ingest thread runs the modules and the ledger, the others commit; \
         150,000 new events/s on {cores} cores allows {:.1} µs of CPU per event in all)",
        cores as f64 / 150_000.0 * 1e6
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_parse_and_refuse_what_they_do_not_know() {
        let parsed = options(&args(
            "--challenges 100,2000 --seed 7 --tenants 0 --delivery 0",
        ))
        .unwrap();
        assert_eq!(parsed.challenges, [100, 2000]);
        assert_eq!((parsed.seed, parsed.tenants, parsed.delivery), (7, 0, 0));
        let defaults = options(&[]).unwrap();
        assert_eq!(defaults.challenges, [10_000, 100_000]);
        let unknown = options(&args("--challenge 5")).unwrap_err().to_string();
        assert!(
            unknown.contains("`--challenge`") && unknown.contains("usage:"),
            "{unknown}"
        );
        assert_eq!(defaults.http, Http::With);
        let http = options(&args(
            "--http-only --http-records 50 --http-batch-records 3000",
        ))
        .unwrap();
        assert_eq!(
            (http.http, http.http_records, http.http_batch_records),
            (Http::Only, 50, 3000)
        );
        assert_eq!(options(&args("--no-http")).unwrap().http, Http::Skipped);
        let peer = options(&args("--peer django-spark")).unwrap();
        assert_eq!(
            (peer.peer, peer.challenges),
            (Some(peer::Peer::DjangoSpark), vec![10_000])
        );
        let grown = options(&args(
            "--growth 10000,100000 --open-keys 0 --spark /x --store-cache 256",
        ))
        .unwrap();
        assert_eq!(grown.store_cache, Some(256));
        assert_eq!(grown.growth, [10_000, 100_000]);
        assert_eq!(grown.open_keys, Some(0));
        assert_eq!(grown.spark, Some(PathBuf::from("/x")));
        assert!(options(&args("--growth ten")).is_err());
        let sized = options(&args("--peer django-spark --challenges 500")).unwrap();
        assert_eq!(sized.challenges, [500]);
        assert!(options(&args("--peer rails")).is_err());
        assert!(!defaults.cluster);
        let cluster = options(&args(
            "--cluster --http-records 4000 --http-batch-records 32000",
        ))
        .unwrap();
        assert!(cluster.cluster);
        assert_eq!(
            (cluster.http_records, cluster.http_batch_records),
            (4000, 32000)
        );
        let both = options(&args("--http-only --no-http"))
            .unwrap_err()
            .to_string();
        assert!(both.contains("exclude each other"), "{both}");
        let missing = options(&args("--seed")).unwrap_err().to_string();
        assert!(missing.contains("--seed needs a value"), "{missing}");
        assert!(options(&args("--challenges ten")).is_err());
    }
}
