//! Shard snapshots: each tenant of a shard as its owner holds it, kept beside the log,
//! so that a takeover restores them and replays only the commits after, not the
//! shard's whole history.
//!
//! The owner takes them, one shard at a time, when [`snapshot_every`] entries were
//! appended to a shard since its last one. It notes `from` (the shard's last commit),
//! lists the shard's tenants, and snapshots each on its owner thread with the shard's
//! lock held (no append of the shard meanwhile, the tenant's sender's included): each
//! snapshot is the tenant as the log leaves it at the shard's last commit then, its
//! `sequence`. Each goes to the `spark-snapshots` object store as `shard-S/TENANT`,
//! its sequence in its first 8 bytes; the manifest `shard-S` goes last:
//! `{"from", "input_done", "records", "tenants": {NAME: {"sequence"}}}`.
//!
//! Restoring (`takeover.rs`) takes each tenant's snapshot, then replays the commits
//! after `from`, skipping a tenant's own up to its snapshot's sequence (read from the
//! blob: a later snapshot may have replaced it since the manifest was written, and its
//! own sequence is what it holds). A tenant not in the manifest was made after the
//! listing: every commit after `from` is its.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spark_host::Error;

use super::Cluster;
use super::log::Blobs;
use super::shards::{SHARDS, shard_of};

/// How many entries appended to a shard make its owner take a snapshot. A takeover
/// replays at most about this many (plus what is appended while a snapshot is taken),
/// whatever the shard's history; each snapshot writes every tenant of the shard whole
/// to the log's object store. 2,000 entries replay in well under a second, and are
/// many commits for a snapshot to be worth its writing. Operators may set it with
/// `SPARK_CLUSTER_SNAPSHOT_EVERY` (tests set it low to see snapshots soon).
pub const SNAPSHOT_EVERY: u64 = 2_000;

/// How long after a failed snapshot the next one is tried.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// [`SNAPSHOT_EVERY`], or `SPARK_CLUSTER_SNAPSHOT_EVERY` when set; read once.
pub fn snapshot_every() -> u64 {
    static EVERY: OnceLock<u64> = OnceLock::new();
    *EVERY.get_or_init(|| match std::env::var("SPARK_CLUSTER_SNAPSHOT_EVERY") {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(every) if every > 0 => every,
            _ => {
                tracing::warn!(
                    "SPARK_CLUSTER_SNAPSHOT_EVERY=`{text}` is not a positive number: \
                     {SNAPSHOT_EVERY} is used"
                );
                SNAPSHOT_EVERY
            }
        },
        Err(_) => SNAPSHOT_EVERY,
    })
}

/// A shard's snapshot's manifest.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The shard's last commit when the snapshot began.
    pub from: u64,
    /// How far the shard's input was answered at `from`.
    #[serde(default)]
    pub input_done: u64,
    /// Records of the shard's log up to `from`, as far as its owner knew.
    #[serde(default)]
    pub records: u64,
    pub tenants: BTreeMap<String, TenantSnapshot>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TenantSnapshot {
    pub sequence: u64,
}

pub fn manifest_name(shard: u32) -> String {
    format!("shard-{shard}")
}

pub fn tenant_name(shard: u32, tenant: &str) -> String {
    format!("shard-{shard}/{tenant}")
}

/// A tenant's snapshot blob: its sequence, then the snapshot.
fn encode(sequence: u64, snapshot: Vec<u8>) -> Vec<u8> {
    let mut blob = Vec::with_capacity(8 + snapshot.len());
    blob.extend_from_slice(&sequence.to_be_bytes());
    blob.extend_from_slice(&snapshot);
    blob
}

/// A tenant's snapshot blob's sequence and snapshot.
pub fn decode(blob: &[u8]) -> Result<(u64, &[u8]), Error> {
    let (sequence, snapshot) = blob
        .split_first_chunk::<8>()
        .ok_or_else(|| Error::Journal("a tenant's snapshot too short".to_owned()))?;
    Ok((u64::from_be_bytes(*sequence), snapshot))
}

/// This node's snapshots: one at a time.
#[derive(Debug, Default)]
pub struct Snapshots {
    running: AtomicBool,
    failed_at: Mutex<Option<Instant>>,
}

/// Starts a snapshot of the owned shard with the most entries since its last, if it
/// has [`snapshot_every`] and no snapshot is under way; in the background, errors
/// logged. Called by the keeper; never waits.
pub fn maybe_start(cluster: &Arc<Cluster>) {
    let snapshots = &cluster.snapshots;
    let failed_at = *snapshots.failed_at.lock().expect("never poisoned");
    if failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
        return;
    }
    let every = snapshot_every();
    let Some(shard) = (0..SHARDS)
        .filter(|shard| cluster.table.owns_shard(*shard))
        .max_by_key(|shard| cluster.table.unsnapshotted(*shard))
        .filter(|shard| cluster.table.unsnapshotted(*shard) >= every)
    else {
        return;
    };
    if snapshots.running.swap(true, Ordering::SeqCst) {
        return;
    }
    let cluster = Arc::clone(cluster);
    tokio::spawn(async move {
        let counted = cluster.table.unsnapshotted(shard);
        let started = Instant::now();
        let taken = take(&cluster, shard).await;
        let snapshots = &cluster.snapshots;
        match taken {
            Ok(manifest) => {
                cluster.table.snapshotted(shard, counted);
                *snapshots.failed_at.lock().expect("never poisoned") = None;
                tracing::info!(
                    "shard {shard}: snapshot saved in {:?}: {} tenants, from commit {}",
                    started.elapsed(),
                    manifest.tenants.len(),
                    manifest.from
                );
            }
            Err(error) => {
                *snapshots.failed_at.lock().expect("never poisoned") = Some(Instant::now());
                tracing::warn!("shard {shard}: no snapshot taken: {error}");
            }
        }
        snapshots.running.store(false, Ordering::SeqCst);
    });
}

/// Takes `shard`'s snapshot and keeps it beside the log: the manifest written.
async fn take(cluster: &Arc<Cluster>, shard: u32) -> Result<Manifest, String> {
    let (Some(spark), Some(owners)) = (cluster.spark.get(), cluster.owners.get()) else {
        return Err("the node is not started".to_owned());
    };
    let (spark, table) = (Arc::clone(spark), Arc::clone(&cluster.table));
    let not_owned = move || format!("this node does not own shard {shard} now");
    // On a blocking thread: the shard's lock is only ever taken on one.
    let (noted, names) = tokio::task::spawn_blocking(move || {
        let noted = table.with_last(shard, |last| {
            (last, table.input_done(shard), table.records(shard))
        });
        // After `from` is noted: every tenant with a commit up to it is listed.
        let names: Vec<String> = spark
            .tenant_names()?
            .into_iter()
            .filter(|name| shard_of(name) == shard)
            .collect();
        Ok::<_, Error>((noted, names))
    })
    .await
    .map_err(|error| error.to_string())?
    .map_err(|error| error.to_string())?;
    let (from, input_done, records) = noted.ok_or_else(not_owned)?;
    let mut manifest = Manifest {
        from,
        input_done,
        records,
        tenants: BTreeMap::new(),
    };
    for name in names {
        let table = Arc::clone(&cluster.table);
        let (sequence, snapshot) = owners
            .call(&name, false, move |tenant| {
                table
                    .with_last(shard, |last| tenant.snapshot().map(|bytes| (last, bytes)))
                    .unwrap_or_else(|| Err(Error::Journal(not_owned())))
            })
            .await
            .map_err(|error| format!("tenant `{name}`: {}", error.message))?;
        cluster
            .log
            .put_blob(
                Blobs::Snapshots,
                &tenant_name(shard, &name),
                encode(sequence, snapshot),
            )
            .await
            .map_err(|error| error.to_string())?;
        manifest.tenants.insert(name, TenantSnapshot { sequence });
    }
    let bytes = serde_json::to_vec(&manifest).map_err(|error| error.to_string())?;
    cluster
        .log
        .put_blob(Blobs::Snapshots, &manifest_name(shard), bytes)
        .await
        .map_err(|error| error.to_string())?;
    Ok(manifest)
}
