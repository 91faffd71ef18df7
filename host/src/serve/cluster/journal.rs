//! Every change to a tenant's store put on its shard's commit log before it is applied
//! (the library's [`Journal`] seam), and the records that log holds.
//!
//! A shard's commit log holds three kinds of record: `entry`, a tenant's change as the
//! library encodes it; `takeover`, appended by a node when it starts owning the shard
//! (the fence: a node that owned it before is refused from then on); and `input`, how
//! far the shard's input has been answered (where a new owner starts reading it).

use std::sync::Arc;

use bytes::Bytes;
use spark_host::{Error, Journal, JournalEntry};
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;

use super::log::{Blobs, ClusterLog, LogRecord};
use super::shards::{AppendError, ShardTable, shard_of};

pub const ENTRY: &str = "entry";
pub const TAKEOVER: &str = "takeover";
pub const INPUT: &str = "input";

/// A shard this node gives up, and why: the keeper closes its tenants and lets its
/// lease go. If this node's view may be behind the log (an append whose outcome is
/// unknown, a local write that failed), whoever takes the shard next rebuilds it,
/// this node included.
#[derive(Debug)]
pub struct GiveUp {
    pub shard: u32,
    pub why: String,
}

/// The journal the library's tenants write through when the server is on a cluster.
pub struct ClusterJournal {
    pub log: Arc<dyn ClusterLog>,
    pub table: Arc<ShardTable>,
    pub runtime: Handle,
    /// Makes this node's message ids its own: node and incarnation.
    pub id_prefix: String,
    pub give_up: UnboundedSender<GiveUp>,
    /// The largest message the log takes, in bytes.
    pub max_message: usize,
}

impl ClusterJournal {
    fn refuse(&self, shard: u32, why: String) -> Error {
        let _ = self.give_up.send(GiveUp {
            shard,
            why: why.clone(),
        });
        Error::Journal(why)
    }
}

impl Journal for ClusterJournal {
    fn append(
        &self,
        tenant: &str,
        entry: &JournalEntry,
        apply: &mut dyn FnMut() -> Result<(), Error>,
    ) -> Result<(), Error> {
        let shard = shard_of(tenant);
        if !self.table.lease_is_fresh(shard) {
            return Err(Error::Journal(format!(
                "this node does not hold tenant `{tenant}`'s lease now; try again"
            )));
        }
        let record = LogRecord {
            kind: ENTRY.to_owned(),
            tenant: tenant.to_owned(),
            body: Bytes::from(entry.encode()),
        };
        let appended = self.table.append(
            &self.runtime,
            self.log.as_ref(),
            shard,
            &self.id_prefix,
            &record,
            || {
                let applied = apply();
                if applied.is_err() {
                    // Closed before the shard's lock is let go: no snapshot takes this
                    // view, behind the log now, for the log's.
                    self.table.close(shard);
                }
                applied
            },
        );
        match appended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                // The log has the change and this node's view does not.
                self.table.close(shard);
                drop(self.refuse(shard, format!("a local write failed: {error}")));
                Err(error)
            }
            Err(AppendError::NotOwner) => Err(Error::Journal(format!(
                "this node does not own tenant `{tenant}` now; try again"
            ))),
            Err(AppendError::Fenced) => Err(self.refuse(
                shard,
                format!("another node owns tenant `{tenant}` now (the log refused the commit)"),
            )),
            Err(AppendError::TooLarge(limit)) => Err(Error::ChangeTooLarge(format!(
                "a change of tenant `{tenant}` ({}, {} bytes) is larger than the cluster's \
                 largest message ({limit} bytes): send fewer records a request, or raise the \
                 NATS servers' max_payload",
                entry.describe(),
                record.body.len()
            ))),
            Err(AppendError::Unknown(why)) => {
                Err(self.refuse(shard, format!("the cluster's log did not answer: {why}")))
            }
        }
    }

    fn max_entry_bytes(&self) -> Option<u64> {
        Some(self.max_message as u64)
    }

    fn save_component(&self, sha256: &str, wasm: &[u8]) -> Result<(), Error> {
        self.runtime.block_on(async {
            if self
                .log
                .has_blob(Blobs::Components, sha256)
                .await
                .map_err(journal)?
            {
                return Ok(());
            }
            self.log
                .put_blob(Blobs::Components, sha256, wasm.to_vec())
                .await
                .map_err(journal)
        })
    }
}

fn journal(error: super::log::LogError) -> Error {
    Error::Journal(error.0)
}
