//! Shards: which tenants go together, and what this node knows of each shard it may own.
//!
//! Tenants map to [`SHARDS`] shards by a hash of their name, fixed for the life of a
//! cluster. A node owns a shard while it holds the shard's lease; only then does it
//! open the shard's tenants or append to the shard's commit log. Appending is done
//! here, under the shard's lock, with the fence: each append names the sequence of
//! the shard's last commit this node knows, so a node that lost the shard (its lease
//! lapsed while it was paused, say) is refused by the log itself the first time it
//! tries, because the new owner appended a takeover record first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use super::log::{Appended, ClusterLog, LogRecord, LogResult, RENEW_EVERY};

/// The shards of a cluster. Fixed: changing it would move every tenant. 256 spreads
/// over a hundred nodes at two or three each (docs/cluster.md says how to grow past).
pub const SHARDS: u32 = 256;

/// A node that could not renew its leases for this long stops appending: the leases
/// live [`LEASE_TTL`](super::log::LEASE_TTL) (10 s), so it stops before another node
/// can take them over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(7);

/// How long an append is tried again when the log does not answer (a JetStream node
/// died and its streams elect a new leader, a few seconds): the same message id, so a
/// retry of an append that landed is answered with its sequence.
const APPEND_PATIENCE: Duration = Duration::from_secs(15);

/// The shard of `tenant`.
pub fn shard_of(tenant: &str) -> u32 {
    let digest = Sha256::digest(tenant.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SHARDS
}

/// A shard's lease, as this node holds it.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub revision: u64,
    pub renewed_at: Instant,
}

/// What this node knows of one shard.
#[derive(Debug)]
pub struct Shard {
    pub lease: Mutex<Option<Lease>>,
    /// Whether this node owns the shard, its view rebuilt: read without a lock, since
    /// async code asks (a lock held across an append's network round trip would stall
    /// the runtime's workers, which the append itself needs).
    owned: AtomicBool,
    /// The sequence of the shard's last commit this node knows (when owned). Held
    /// across an append and its local application, so that the log's order is the
    /// order in which this node's view applies its commits; only blocking threads
    /// take it.
    last: Mutex<u64>,
    /// How far the shard's input is answered, as its log says up to `last`: written
    /// under `last`'s lock, so that a snapshot notes the two together.
    input_done: AtomicU64,
    /// Entries appended since the shard's last snapshot (or replayed by its takeover):
    /// the keeper takes a snapshot when they are many (`snapshot.rs`).
    unsnapshotted: AtomicU64,
    /// Records of the shard's commit log up to `last` (as far as known: a snapshot's
    /// count plus what was replayed and appended since), for the logs.
    records: AtomicU64,
    /// Being let go: still owned (its tenants' last work is appended as they close),
    /// but no request is taken for it.
    leaving: AtomicBool,
}

/// What this node knows of every shard.
#[derive(Debug)]
pub struct ShardTable {
    shards: Vec<Shard>,
}

/// Why an append did not land.
#[derive(Debug)]
pub enum AppendError {
    /// The shard is not this node's (any more).
    NotOwner,
    /// The log answered: another node appended since, so it owns the shard now.
    Fenced,
    /// The log did not answer in time: the commit may or may not be in it.
    Unknown(String),
    /// Larger than the log takes (its limit, in bytes): not sent, the shard kept.
    TooLarge(usize),
}

impl ShardTable {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    lease: Mutex::new(None),
                    owned: AtomicBool::new(false),
                    last: Mutex::new(0),
                    input_done: AtomicU64::new(0),
                    unsnapshotted: AtomicU64::new(0),
                    records: AtomicU64::new(0),
                    leaving: AtomicBool::new(false),
                })
                .collect(),
        }
    }

    fn shard(&self, shard: u32) -> &Shard {
        &self.shards[shard as usize]
    }

    pub fn lease(&self, shard: u32) -> MutexGuard<'_, Option<Lease>> {
        lock(&self.shard(shard).lease)
    }

    /// Whether this node owns `shard` now, its view rebuilt.
    pub fn owns_shard(&self, shard: u32) -> bool {
        self.shard(shard).owned.load(Ordering::SeqCst)
    }

    /// Whether this node takes requests for `tenant` now: it owns its shard and is not
    /// letting it go.
    pub fn owns(&self, tenant: &str) -> bool {
        let shard = shard_of(tenant);
        self.owns_shard(shard) && !self.is_leaving(shard)
    }

    /// Whether `shard` is being let go.
    pub fn is_leaving(&self, shard: u32) -> bool {
        self.shard(shard).leaving.load(Ordering::SeqCst)
    }

    /// Marks `shard` as being let go (or not any more).
    pub fn set_leaving(&self, shard: u32, leaving: bool) {
        self.shard(shard).leaving.store(leaving, Ordering::SeqCst);
    }

    /// This node owns `shard` from now on, its view rebuilt up to `last` (`records`
    /// records), its input answered up to `input_done`, `replayed` entries replayed
    /// past its snapshot. Blocking.
    pub fn open(&self, shard: u32, last: u64, records: u64, input_done: u64, replayed: u64) {
        let mut known = lock(&self.shard(shard).last);
        *known = last;
        let state = self.shard(shard);
        state.input_done.store(input_done, Ordering::SeqCst);
        state.unsnapshotted.store(replayed, Ordering::SeqCst);
        state.records.store(records, Ordering::SeqCst);
        state.leaving.store(false, Ordering::SeqCst);
        self.shard(shard).owned.store(true, Ordering::SeqCst);
    }

    /// This node stops appending to `shard` (an append under way finishes).
    pub fn close(&self, shard: u32) {
        self.shard(shard).owned.store(false, Ordering::SeqCst);
    }

    /// The shards whose leases this node holds.
    pub fn held(&self) -> Vec<u32> {
        (0..SHARDS)
            .filter(|shard| self.lease(*shard).is_some())
            .collect()
    }

    /// Whether this node's lease on `shard` was renewed recently enough to append.
    pub fn lease_is_fresh(&self, shard: u32) -> bool {
        self.lease(shard)
            .is_some_and(|lease| lease.renewed_at.elapsed() < RENEW_DEADLINE)
    }

    /// Runs `work` with `shard`'s `last` lock held (no append of the shard meanwhile,
    /// so this node's view of it is the log up to `last`), giving it `last`; None if
    /// this node does not own the shard. Blocking: only on a blocking thread or a
    /// tenant's owner.
    pub fn with_last<T>(&self, shard: u32, work: impl FnOnce(u64) -> T) -> Option<T> {
        let last = lock(&self.shard(shard).last);
        if !self.owns_shard(shard) {
            return None;
        }
        Some(work(*last))
    }

    /// How far `shard`'s input is answered, as far as this node's view goes.
    pub fn input_done(&self, shard: u32) -> u64 {
        self.shard(shard).input_done.load(Ordering::SeqCst)
    }

    /// Notes that `shard`'s input is answered up to `upto` (applying an `input`
    /// record, under the lock).
    pub fn note_input_done(&self, shard: u32, upto: u64) {
        self.shard(shard)
            .input_done
            .fetch_max(upto, Ordering::SeqCst);
    }

    /// Records of `shard`'s log up to its last known commit (see [`Shard`]).
    pub fn records(&self, shard: u32) -> u64 {
        self.shard(shard).records.load(Ordering::SeqCst)
    }

    /// Entries appended to `shard` since its last snapshot.
    pub fn unsnapshotted(&self, shard: u32) -> u64 {
        self.shard(shard).unsnapshotted.load(Ordering::SeqCst)
    }

    /// A snapshot of `shard` was saved, taken when `counted` entries were unsnapshotted:
    /// those appended since still count.
    pub fn snapshotted(&self, shard: u32, counted: u64) {
        let _ = self.shard(shard).unsnapshotted.fetch_update(
            Ordering::SeqCst,
            Ordering::SeqCst,
            |now| Some(now.saturating_sub(counted)),
        );
    }

    /// Appends `record` to `shard`'s commit log after the last commit this node knows,
    /// then runs `apply` (the change applied to this node's view) before anyone else
    /// appends. An append that fails closes the shard. Blocking: it waits on
    /// `runtime` for the log.
    pub fn append<T>(
        &self,
        runtime: &Handle,
        log: &dyn ClusterLog,
        shard: u32,
        id_prefix: &str,
        record: &LogRecord,
        apply: impl FnOnce() -> T,
    ) -> Result<T, AppendError> {
        let mut last = lock(&self.shard(shard).last);
        if !self.owns_shard(shard) {
            return Err(AppendError::NotOwner);
        }
        let id = format!("{id_prefix}-{shard}-{last}");
        match runtime.block_on(append_patiently(log, shard, *last, &id, record)) {
            Ok(Appended::At(sequence)) => {
                *last = sequence;
                self.shard(shard)
                    .unsnapshotted
                    .fetch_add(1, Ordering::SeqCst);
                self.shard(shard).records.fetch_add(1, Ordering::SeqCst);
                Ok(apply())
            }
            Ok(Appended::Fenced) => {
                self.close(shard);
                Err(AppendError::Fenced)
            }
            Ok(Appended::TooLarge(limit)) => Err(AppendError::TooLarge(limit)),
            Err(error) => {
                // It may have landed: this node's view may be behind the log now.
                self.close(shard);
                Err(AppendError::Unknown(error.0))
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one holds good data.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// One append, tried again with the same id while the log errs, up to
/// [`APPEND_PATIENCE`].
pub async fn append_patiently(
    log: &dyn ClusterLog,
    shard: u32,
    expected: u64,
    id: &str,
    record: &LogRecord,
) -> LogResult<Appended> {
    let deadline = Instant::now() + APPEND_PATIENCE;
    loop {
        match log.append(shard, expected, id, record).await {
            Err(error) if Instant::now() < deadline => {
                tracing::debug!("shard {shard}: append tried again: {error}");
                tokio::time::sleep(RENEW_EVERY / 4).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_spread_over_every_shard_and_keep_theirs() {
        let mut seen = vec![0u32; SHARDS as usize];
        for n in 0..20_000 {
            seen[shard_of(&format!("tenant-{n}")) as usize] += 1;
        }
        // 78 a shard on average: every shard has some, none has three times its share.
        assert!(
            seen.iter().all(|count| (1..234).contains(count)),
            "{seen:?}"
        );
        assert_eq!(shard_of("acme"), shard_of("acme"));
    }
}
