//! `spark`: the operator's command line. See `spark --help` and README.md.

mod cli;
mod serve;
mod views;

/// mimalloc rather than the system allocator: a run allocates on one thread and frees
/// on the commit thread, which glibc's malloc does slowly; the benchmark measured about
/// 1.6 times the native pipeline's throughput with it (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    spark_host::memory::disable_transparent_huge_pages();
    let status = cli::main();
    // Everything the command does is done by now: its tenant closed (flushed), its
    // output written. So the process ends here, without the C library's exit
    // handlers: mimalloc's gives every page it holds back to the system, one madvise
    // at a time (80 of them after an ingest), which the kernel does anyway, and
    // faster, when the process goes: about 2 ms of a 70 ms `spark ingest` of
    // duplicates (BENCHMARKS.md). Rust's stdout buffers, so it is flushed first; an error
    // there is ignored, as Rust's own exit does (a reader that went away).
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // SAFETY: `_exit` ends the process at once; nothing after it runs, and no other
    // thread of ours has work the command is waiting for (the tenant was closed).
    unsafe { libc::_exit(i32::from(status)) }
}
