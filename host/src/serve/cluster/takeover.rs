//! Taking a shard over: this node's view of the shard's tenants rebuilt from the log,
//! then the takeover record appended (the fence), then the shard is this node's.
//!
//! The view is rebuilt from nothing: whatever this node had of the shard's tenants
//! before is removed first, since it may be behind the log (or ahead of nothing: a node
//! that died between an append and its local write). Rebuilding is restoring the
//! shard's snapshot if it has one (`snapshot.rs`), then replaying the entries of the
//! shard's commit log after it (every entry without one), in order.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use spark_host::{Error, JournalEntry, Spark, Tenant};
use tokio::runtime::Handle;

use super::journal::{ENTRY, INPUT, TAKEOVER};
use super::log::{Appended, Blobs, ClusterLog, LogRecord};
use super::shards::{ShardTable, append_patiently, shard_of};
use super::snapshot::{self, Manifest};

/// What a takeover found in the log.
#[derive(Debug, Default)]
pub struct Restored {
    /// The tenants of the shard that have entries.
    pub tenants: Vec<String>,
    /// How far the shard's input was answered: reading starts after it.
    pub input_done: u64,
    /// Entries replayed.
    pub entries: u64,
    /// The commit the shard's snapshot was taken at, if one was restored.
    pub snapshot_from: Option<u64>,
    /// Records not replayed thanks to the snapshot: those up to it, and the restored
    /// tenants' entries after it that their snapshots held.
    pub skipped: u64,
    /// Records read from the log (entries or not).
    records: u64,
}

/// A restored snapshot: where replaying starts, and each restored tenant's sequence
/// (its entries up to it are in its snapshot).
struct Restoring {
    after: u64,
    sequences: HashMap<String, u64>,
}

/// Rebuilds `shard` from the log and appends the takeover record; on success the
/// shard's log state is `Owned`. Runs on a blocking thread (tenants are synchronous).
pub fn take_over(
    spark: &Spark,
    log: &Arc<dyn ClusterLog>,
    table: &ShardTable,
    runtime: &Handle,
    shard: u32,
    id_prefix: &str,
) -> Result<Restored, Error> {
    let remove_all = || -> Result<(), Error> {
        for name in spark.tenant_names()? {
            if shard_of(&name) == shard {
                spark.remove_tenant_data(&name)?;
            }
        }
        Ok(())
    };
    remove_all()?;
    let component = |sha256: &str| -> Result<Vec<u8>, Error> {
        runtime
            .block_on(log.get_blob(Blobs::Components, sha256))
            .map_err(journal)?
            .ok_or_else(|| Error::Journal(format!("the cluster has no component {sha256}")))
    };
    let mut tenants: HashMap<String, Tenant> = HashMap::new();
    let mut restored = Restored::default();
    let mut restoring = Restoring {
        after: 0,
        sequences: HashMap::new(),
    };
    match restore_snapshot(
        spark,
        log,
        runtime,
        shard,
        &component,
        &mut tenants,
        &mut restored,
    ) {
        Ok(Some(snapshot)) => restoring = snapshot,
        Ok(None) => {}
        Err(error) => {
            // Not fatal: the log has everything.
            tracing::warn!(
                "shard {shard}: its snapshot cannot be restored, its whole log is replayed: \
                 {error}"
            );
            tenants.clear();
            restored = Restored::default();
            remove_all()?;
        }
    }
    let mut after = restoring.after;
    loop {
        let last = runtime.block_on(log.last_commit(shard)).map_err(journal)?;
        replay(
            spark,
            log,
            runtime,
            shard,
            (after, last),
            &restoring.sequences,
            &component,
            &mut tenants,
            &mut restored,
        )?;
        after = last;
        // The fence: from now on, a node that appends after an older last commit is
        // refused. Someone appending meanwhile (the node that owned the shard, not yet
        // aware it lost it) makes this fail: replay what it wrote and try again.
        let record = LogRecord {
            kind: TAKEOVER.to_owned(),
            tenant: String::new(),
            body: bytes::Bytes::from(id_prefix.to_owned()),
        };
        let id = format!("{id_prefix}-{shard}-{last}");
        match runtime
            .block_on(append_patiently(log.as_ref(), shard, last, &id, &record))
            .map_err(journal)?
        {
            Appended::At(sequence) => {
                // Not if the lease was lost meanwhile: the keeper gave the shard up.
                if table.lease(shard).is_none() {
                    return Err(Error::Journal(format!("shard {shard}'s lease was lost")));
                }
                table.open(
                    shard,
                    sequence,
                    restored.records + 1,
                    restored.input_done,
                    restored.entries,
                );
                break;
            }
            Appended::Fenced => continue,
            Appended::TooLarge(_) => unreachable!("a takeover record is a few bytes"),
        }
    }
    restored.tenants = tenants.into_keys().collect();
    restored.tenants.sort();
    Ok(restored)
}

/// Restores `shard`'s snapshot, if it has one, into `tenants`: where replaying starts.
fn restore_snapshot(
    spark: &Spark,
    log: &Arc<dyn ClusterLog>,
    runtime: &Handle,
    shard: u32,
    component: &dyn Fn(&str) -> Result<Vec<u8>, Error>,
    tenants: &mut HashMap<String, Tenant>,
    restored: &mut Restored,
) -> Result<Option<Restoring>, Error> {
    let Some(manifest) = runtime
        .block_on(log.get_blob(Blobs::Snapshots, &snapshot::manifest_name(shard)))
        .map_err(journal)?
    else {
        return Ok(None);
    };
    let manifest: Manifest = serde_json::from_slice(&manifest).map_err(|error| {
        Error::Journal(format!("a snapshot manifest that is not Spark's: {error}"))
    })?;
    let mut restoring = Restoring {
        after: manifest.from,
        sequences: HashMap::new(),
    };
    for name in manifest.tenants.keys() {
        let blob = runtime
            .block_on(log.get_blob(Blobs::Snapshots, &snapshot::tenant_name(shard, name)))
            .map_err(journal)?
            .ok_or_else(|| Error::Journal(format!("tenant `{name}`'s snapshot is missing")))?;
        let (sequence, bytes) = snapshot::decode(&blob)?;
        spark.restore_tenant(name, bytes, component)?;
        tenants.insert(name.clone(), spark.tenant(name)?);
        // A blob older than the manifest (a node that lost the shard and did not know
        // yet wrote it): replaying starts early enough for it.
        restoring.after = restoring.after.min(sequence);
        restoring.sequences.insert(name.clone(), sequence);
    }
    restored.snapshot_from = Some(manifest.from);
    restored.input_done = manifest.input_done;
    restored.records = manifest.records;
    restored.skipped = manifest.records;
    Ok(Some(restoring))
}

/// Replays `shard`'s commits after `after` up to `upto` into `tenants`, but a
/// restored tenant's up to its snapshot's sequence (in `sequences`).
#[allow(clippy::too_many_arguments)]
fn replay(
    spark: &Spark,
    log: &Arc<dyn ClusterLog>,
    runtime: &Handle,
    shard: u32,
    (after, upto): (u64, u64),
    sequences: &HashMap<String, u64>,
    component: &dyn Fn(&str) -> Result<Vec<u8>, Error>,
    tenants: &mut HashMap<String, Tenant>,
    restored: &mut Restored,
) -> Result<(), Error> {
    let mut commits = runtime
        .block_on(log.commits(shard, after, upto))
        .map_err(journal)?;
    tracing::debug!("shard {shard}: replaying after {after} up to {upto}");
    while let Some(commit) = runtime.block_on(commits.next()) {
        let (sequence, record) = commit.map_err(journal)?;
        restored.records += 1;
        match record.kind.as_str() {
            ENTRY
                if sequences
                    .get(&record.tenant)
                    .is_some_and(|snapshot| sequence <= *snapshot) =>
            {
                // In the tenant's snapshot already.
                restored.skipped += 1;
            }
            ENTRY => {
                let entry = JournalEntry::decode(&record.body)?;
                let tenant = match tenants.get_mut(&record.tenant) {
                    Some(tenant) => tenant,
                    None => {
                        let tenant = spark.tenant(&record.tenant)?;
                        tenants.entry(record.tenant.clone()).or_insert(tenant)
                    }
                };
                tenant.replay(&entry, component)?;
                restored.entries += 1;
            }
            INPUT => {
                let done = std::str::from_utf8(&record.body)
                    .ok()
                    .and_then(|text| text.parse().ok())
                    .unwrap_or(0);
                restored.input_done = restored.input_done.max(done);
            }
            TAKEOVER => {}
            other => {
                return Err(Error::Journal(format!(
                    "shard {shard}'s log holds a record of an unknown kind `{other}` \
                     (written by a newer Spark?)"
                )));
            }
        }
    }
    Ok(())
}

fn journal(error: super::log::LogError) -> Error {
    Error::Journal(error.0)
}
