//! Where instances get their memory: a pool of slots the process reserves once.
//!
//! Without a pool, every instance maps its own linear memory (a 4 GiB reservation),
//! faults in each page it touches and unmaps it all when dropped; with
//! `calls-per-instance = 1` that was about 65 µs per call. From a pool, an instance takes
//! a slot whose pages are still resident from its last use: on drop, the kernel's
//! `PAGEMAP_SCAN` (Linux 6.7+) names the pages the instance wrote, and only those are
//! reset in place, so the next instance neither faults nor waits for a TLB shootdown.
//! About 18 µs per call remain (BENCHMARKS.md): setting up the store and its WASI
//! context, linking the component's core instances, the scan and the reset.
//!
//! The pool is sized for [`DEFAULT_POOL_INSTANCES`] live module instances (or what
//! `SPARK_INSTANCE_POOL` says) and reserves (does not commit) 4 GiB of address space
//! for each one's memory, so compiled guests keep their bounds checks free. Where that
//! much address space cannot be reserved (`ulimit -v`, small address spaces), or with
//! `SPARK_INSTANCE_POOL=0`, the engine maps each instance's memory on its own: slower
//! fresh instances, same behaviour.

use wasmtime::{Enabled, PoolConcurrencyLimitError, PoolingAllocationConfig};

/// Live module instances the process can hold unless `SPARK_INSTANCE_POOL` says
/// otherwise: one per module a tenant uses, so a process can keep about 2,000 tenants
/// of two modules open. Each costs 4 GiB of reserved address space (16 TiB in all, of
/// the 128 TiB a 64-bit Linux process has).
pub(super) const DEFAULT_POOL_INSTANCES: u32 = 4096;

/// The most `SPARK_INSTANCE_POOL` may ask for: half the address space.
const MAX_POOL_INSTANCES: u32 = 16_384;

/// The environment variable that sizes the pool; 0 turns it off.
pub(super) const POOL_VARIABLE: &str = "SPARK_INSTANCE_POOL";

/// The pool's size as `SPARK_INSTANCE_POOL` sets it (`value`, if set): `None` for no
/// pool.
pub(super) fn size(value: Option<&str>) -> Result<Option<u32>, String> {
    let Some(value) = value else {
        return Ok(Some(DEFAULT_POOL_INSTANCES));
    };
    match value.trim().parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(size) if size <= MAX_POOL_INSTANCES => Ok(Some(size)),
        _ => Err(format!(
            "{POOL_VARIABLE} is `{value}`; it takes the number of module instances the \
             process may hold at once, from 1 to {MAX_POOL_INSTANCES} (default \
             {DEFAULT_POOL_INSTANCES}), or 0 for no pool"
        )),
    }
}

/// Core module instances per component. Rust guests have three (the module and the
/// two small ones `wasm-component-ld` adds); the pool allows for larger components
/// as long as the total stays within this average.
const CORE_INSTANCES_PER_INSTANCE: u32 = 4;

/// Elements a table in the pool can hold. The pool's tables cannot grow past this, so
/// it is the most the `table-elements` limit can allow (default 20,000): far above what
/// modules use, and reserved as address space only.
const POOL_TABLE_ELEMENTS: usize = 1_000_000;

/// GC heaps at most, for modules that use the GC proposal (Rust, Python and JavaScript
/// guests do not; a store takes one with its first GC object). 4 GiB of address space
/// each, like a memory.
const MAX_GC_HEAPS: u32 = 256;

/// Bytes of an instance's written memory reset in place (and kept resident) when it
/// is dropped; pages past this are handed back to the kernel. A call of the example
/// writes far less; a larger value only keeps more memory resident per idle slot.
const KEEP_RESIDENT: usize = 1 << 20;

/// The same where the kernel cannot say which pages were written (no `PAGEMAP_SCAN`,
/// before Linux 6.7): then all of it is reset on every drop, and past 64 KiB that
/// costs more than the page faults it saves (measured in BENCHMARKS.md).
const KEEP_RESIDENT_WITHOUT_SCAN: usize = 64 << 10;

/// The pooling configuration of an engine whose pool holds `instances`.
pub(super) fn config(instances: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances * CORE_INSTANCES_PER_INSTANCE)
        .total_memories(instances)
        .total_tables(instances * CORE_INSTANCES_PER_INSTANCE)
        .table_elements(POOL_TABLE_ELEMENTS)
        .total_gc_heaps(instances.min(MAX_GC_HEAPS))
        // Calls are synchronous: no fibers, so no stacks.
        .total_stacks(0)
        .pagemap_scan(Enabled::Auto);
    let keep_resident = if PoolingAllocationConfig::is_pagemap_scan_available() {
        KEEP_RESIDENT
    } else {
        KEEP_RESIDENT_WITHOUT_SCAN
    };
    pool.linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident);
    pool
}

/// The message for an instantiation that found the pool full, if that is what
/// `error` says.
pub(super) fn exhausted(error: &wasmtime::Error) -> Option<String> {
    error
        .downcast_ref::<PoolConcurrencyLimitError>()
        .map(|full| {
            format!(
                "this process's instance pool is full ({full}); close tenants it no longer \
                 uses, or give it more room with SPARK_INSTANCE_POOL"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_size_comes_from_the_environment_or_the_default() {
        assert_eq!(size(None), Ok(Some(DEFAULT_POOL_INSTANCES)));
        assert_eq!(size(Some("64")), Ok(Some(64)));
        assert_eq!(size(Some(" 16384 ")), Ok(Some(16_384)));
        assert_eq!(size(Some("0")), Ok(None));
        for bad in ["", "lots", "-1", "16385", "1e3"] {
            let error = size(Some(bad)).unwrap_err();
            assert!(
                error.contains(&format!("is `{bad}`")) && error.contains("from 1 to 16384"),
                "{error}"
            );
        }
    }
}
