//! What a module instance is given: WASI with no authority, a clock that reads the
//! invocation's logical time, seeded randomness, a bounded log, and resource limits.
//!
//! The WASI context is built once per instance; the values that change per call (time,
//! seed, log) sit in [`CallState`], shared with the context's clocks, RNG and streams.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Result as WasmResult};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::limits::{Limit, Limits};

/// The data of a wasmtime `Store` that runs one module instance.
pub(crate) struct SandboxState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) call: Arc<CallState>,
}

impl SandboxState {
    pub(crate) fn new(limits: &Limits) -> Self {
        let call = Arc::new(CallState::default());
        let mut wasi = WasiCtx::builder();
        // No preopens, no environment, no arguments, no network, closed stdin: the
        // builder's defaults grant none of these. What follows replaces the remaining
        // ambient sources (clocks, randomness) and captures output.
        wasi.stdout(LogSink(call.clone()))
            .stderr(LogSink(call.clone()))
            .wall_clock(VirtualClock(call.clone()))
            .monotonic_clock(VirtualClock(call.clone()))
            .secure_random(SeededRng(call.clone()))
            .insecure_random(SeededRng(call.clone()))
            .insecure_random_seed(0)
            .max_random_size(1 << 16)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(limits),
            call,
        }
    }
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Adds WASI to `linker`, with sleeping made virtual: a guest that sleeps would block
/// the host thread where no fuel or deadline can stop it, so `subscribe-duration` and
/// `subscribe-instant` advance the guest's clock and return at once instead.
pub(crate) fn add_wasi(linker: &mut Linker<SandboxState>) -> WasmResult<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let mut clock = linker.instance("wasi:clocks/monotonic-clock@0.2.12")?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store, (duration,): (u64,)| -> WasmResult<(Resource<DynPollable>,)> {
            let state = store.data_mut();
            state.call.sleep(duration);
            Ok((ready_pollable(&mut state.table)?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store, (when,): (u64,)| -> WasmResult<(Resource<DynPollable>,)> {
            let state = store.data_mut();
            let now = state.call.monotonic_ns();
            state.call.sleep(when.saturating_sub(now));
            Ok((ready_pollable(&mut state.table)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn ready_pollable(table: &mut ResourceTable) -> WasmResult<Resource<DynPollable>> {
    let ready = table.push(Ready)?;
    wasmtime_wasi::p2::subscribe(table, ready)
}

struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// The per-call inputs and outputs of the sandbox.
#[derive(Default)]
pub(crate) struct CallState {
    inner: Mutex<CallInner>,
}

#[derive(Default)]
struct CallInner {
    now_ms: i64,
    slept_ns: u64,
    rng: u64,
    log: Vec<u8>,
    log_limit: usize,
    log_truncated: bool,
}

impl CallState {
    fn lock(&self) -> MutexGuard<'_, CallInner> {
        // A panic while holding this lock can only come from a bug in the few lines
        // below; the data stays usable, so poisoning is ignored.
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Prepares the next call: its logical time, its random seed and an empty log.
    pub(crate) fn begin(&self, now_ms: i64, seed: u64, log_limit: usize) {
        let mut inner = self.lock();
        inner.now_ms = now_ms;
        inner.slept_ns = 0;
        inner.rng = seed;
        inner.log.clear();
        inner.log_limit = log_limit;
        inner.log_truncated = false;
    }

    /// What the call wrote to stdout and stderr, lossily decoded, with a note when it
    /// was cut off at the limit.
    pub(crate) fn take_log(&self) -> String {
        let mut inner = self.lock();
        let mut log = String::from_utf8_lossy(&inner.log).into_owned();
        if inner.log_truncated {
            log.push_str(&format!(" [log cut off at {} bytes]", inner.log_limit));
        }
        inner.log.clear();
        log
    }

    fn write_log(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        let room = inner.log_limit.saturating_sub(inner.log.len());
        if bytes.len() > room {
            inner.log_truncated = true;
        }
        let kept = bytes.len().min(room);
        inner.log.extend_from_slice(&bytes[..kept]);
    }

    fn sleep(&self, ns: u64) {
        let mut inner = self.lock();
        inner.slept_ns = inner.slept_ns.saturating_add(ns);
    }

    fn wall(&self) -> Duration {
        let inner = self.lock();
        let base = Duration::from_millis(u64::try_from(inner.now_ms).unwrap_or(0));
        base + Duration::from_nanos(inner.slept_ns)
    }

    fn monotonic_ns(&self) -> u64 {
        let wall = self.wall().as_nanos();
        u64::try_from(wall).unwrap_or(u64::MAX)
    }

    /// splitmix64: small, fast and good enough for guests that want varied numbers;
    /// the point is that the same call gets the same numbers.
    fn next_random(&self) -> u64 {
        let mut inner = self.lock();
        inner.rng = inner.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = inner.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Both WASI clocks: the invocation's logical time plus whatever the guest has slept.
struct VirtualClock(Arc<CallState>);

impl HostWallClock for VirtualClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        self.0.wall()
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        self.0.monotonic_ns()
    }
}

/// Randomness that is the same for the same call, so that a retried or replayed call
/// behaves the same. Guests must not use it for secrets; they have none to keep.
struct SeededRng(Arc<CallState>);

impl rand_core::TryRng for SeededRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.0.next_random() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_random())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.0.next_random().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// stdout and stderr: appended to the call's log, cut off at the log limit. Writes
/// never fail, so a chatty guest is truncated, not broken.
struct LogSink(Arc<CallState>);

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LogStream(self.0.clone()))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LogStream(self.0.clone()))
    }
}

struct LogStream(Arc<CallState>);

/// How much a guest may write in one go; the log limit applies on top.
const WRITE_PERMIT: usize = 64 << 10;

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.0.write_log(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.write_log(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Memory, table and instance limits of one instance. A growth beyond a limit traps
/// with [`LimitHit`], which the caller turns into a typed error.
pub(crate) struct Limiter {
    memory_bytes: u64,
    table_elements: u64,
    instances: usize,
}

/// The trap payload of a resource limit.
#[derive(Debug)]
pub(crate) struct LimitHit {
    pub(crate) limit: Limit,
    pub(crate) max: u64,
    pub(crate) asked: u64,
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} limit of {} hit (asked for {})",
            self.limit, self.max, self.asked
        )
    }
}

impl std::error::Error for LimitHit {}

impl Limiter {
    fn new(limits: &Limits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            instances: usize::try_from(limits.instances).unwrap_or(usize::MAX),
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WasmResult<bool> {
        let desired = desired as u64;
        if desired > self.memory_bytes {
            return Err(wasmtime::Error::new(LimitHit {
                limit: Limit::MemoryBytes,
                max: self.memory_bytes,
                asked: desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WasmResult<bool> {
        let desired = desired as u64;
        if desired > self.table_elements {
            return Err(wasmtime::Error::new(LimitHit {
                limit: Limit::TableElements,
                max: self.table_elements,
                asked: desired,
            }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        // Components made by the Rust and Python toolchains use a handful; the limit
        // only stops a component that declares thousands.
        64
    }

    fn memories(&self) -> usize {
        64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_cut_off_at_its_limit_and_says_so() {
        let call = CallState::default();
        call.begin(0, 1, 8);
        call.write_log(b"hello ");
        call.write_log(b"world");
        assert_eq!(call.take_log(), "hello wo [log cut off at 8 bytes]");
        call.begin(0, 1, 8);
        call.write_log(b"short");
        assert_eq!(call.take_log(), "short");
    }

    #[test]
    fn randomness_repeats_for_the_same_seed_and_differs_for_another() {
        let call = CallState::default();
        call.begin(0, 42, 0);
        let first: Vec<u64> = (0..4).map(|_| call.next_random()).collect();
        call.begin(0, 42, 0);
        let again: Vec<u64> = (0..4).map(|_| call.next_random()).collect();
        call.begin(0, 43, 0);
        let other: Vec<u64> = (0..4).map(|_| call.next_random()).collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn the_clock_reads_the_invocation_time_plus_virtual_sleep() {
        let call = CallState::default();
        call.begin(1_700_000_000_000, 0, 0);
        assert_eq!(call.wall(), Duration::from_millis(1_700_000_000_000));
        call.sleep(2_000_000_000);
        assert_eq!(call.wall(), Duration::from_millis(1_700_000_002_000));
    }
}
