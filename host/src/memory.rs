//! How a process running Spark takes memory from the kernel.

/// Turns transparent huge pages off for this process (on Linux; elsewhere it does
/// nothing). Call it first thing in `main`.
///
/// mimalloc (the `spark` binary's allocator) reserves memory in large arenas. Where the
/// kernel backs anonymous memory with 2 MiB pages on first touch (THP `always`, a
/// common default), each first touch zeroes and keeps 2 MiB, most of which small,
/// short-lived allocations never use. Measured on the development machine
/// (BENCHMARKS.md): 300 tenants open in one process took 6.1 MiB each with huge pages
/// and 1.2 MiB without, their first event 2.9 ms and 1.0 ms, and a one-record
/// `spark ingest` 38–42 ms and 26–28 ms; the throughput of a long run did not change.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of the calling process; it reads no
    // memory of ours. A kernel without it returns an error, which leaves things as
    // they were.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_is_marked_to_get_no_huge_pages() {
        super::disable_transparent_huge_pages();
        // SAFETY: PR_GET_THP_DISABLE only reads the calling process's flag.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }
}
