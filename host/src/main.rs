//! `spark`: the operator's command line. See `spark --help` and README.md.

mod cli;
mod serve;
mod views;

/// mimalloc rather than the system allocator: a run allocates on one thread and frees
/// on the commit thread, which glibc's malloc does slowly; the benchmark measured about
/// 1.6 times the native pipeline's throughput with it (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    spark_host::memory::disable_transparent_huge_pages();
    cli::main()
}
