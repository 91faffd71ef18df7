//! The Spark benchmark: the challenges workload through the real pipeline, as
//! WebAssembly components and as the same functions compiled natively, measured in the
//! same run so that the ratios hold on any machine. BENCHMARKS.md has how and why.
//!
//! ```text
//! cargo run --release -p spark-bench                       # 10,000 and 100,000 challenges
//! cargo run --release -p spark-bench -- --challenges 20000 --seed 7
//! ```

mod measure;
mod native;
mod workload;

use std::path::PathBuf;
use std::process::Command;

use measure::{Mode, Run};

struct Options {
    challenges: Vec<u64>,
    seed: u64,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        challenges: vec![10_000, 100_000],
        seed: 42,
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
            other => anyhow::bail!("unknown argument `{other}`; see BENCHMARKS.md"),
        }
    }
    Ok(options)
}

/// Compiled modules are cached between runs, as the `spark` binary caches them.
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A child run: one mode, one size, in a process of its own so that its peak
    // memory is its own.
    if args.first().map(String::as_str) == Some("--child") {
        let mode = match args.get(1).map(String::as_str) {
            Some("wasm") => Mode::Wasm,
            Some("native") => Mode::Native,
            _ => anyhow::bail!("--child wasm|native CHALLENGES SEED"),
        };
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
    println!(
        "Spark benchmark: the challenges workload (seed {})",
        options.seed
    );
    for &challenges in &options.challenges {
        let native = child(Mode::Native, challenges, options.seed)?;
        let wasm = child(Mode::Wasm, challenges, options.seed)?;
        print_table(&native, &wasm);
    }
    Ok(())
}

fn child(mode: Mode, challenges: u64, seed: u64) -> anyhow::Result<Run> {
    let mode_name = match mode {
        Mode::Wasm => "wasm",
        Mode::Native => "native",
    };
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
    let rate = |count: u64, seconds: f64| count as f64 / seconds;
    let rows: [(&str, f64, f64, bool); 8] = [
        (
            "new events/s",
            rate(native.fresh.new, native.fresh.seconds),
            rate(wasm.fresh.new, wasm.fresh.seconds),
            true,
        ),
        (
            "duplicate events/s",
            rate(native.seen.duplicates, native.seen.seconds),
            rate(wasm.seen.duplicates, wasm.seen.seconds),
            true,
        ),
        (
            "handler calls/s",
            rate(native.fresh.deliveries, native.fresh.seconds),
            rate(wasm.fresh.deliveries, wasm.fresh.seconds),
            true,
        ),
        (
            "records/s, first run",
            rate(native.fresh.records, native.fresh.seconds),
            rate(wasm.fresh.records, wasm.fresh.seconds),
            true,
        ),
        (
            "p50 µs per record, first run",
            native.fresh.p50_us,
            wasm.fresh.p50_us,
            false,
        ),
        (
            "p99 µs per record, first run",
            native.fresh.p99_us,
            wasm.fresh.p99_us,
            false,
        ),
        (
            "p50 µs per record, seen run",
            native.seen.p50_us,
            wasm.seen.p50_us,
            false,
        ),
        (
            "peak memory MiB",
            native.peak_rss_mb,
            wasm.peak_rss_mb,
            false,
        ),
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
    for (name, native, wasm, higher_is_better) in rows {
        let ratio = wasm / native;
        let note = if higher_is_better {
            ""
        } else {
            " (lower is better)"
        };
        println!("{name:<30} {native:>14.0} {wasm:>14.0} {ratio:>11.2}x{note}");
    }
}
