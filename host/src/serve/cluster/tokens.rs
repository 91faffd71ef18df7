//! Access tokens shared by the nodes of a cluster.
//!
//! A token works on every node: the cluster keeps the records (never the tokens) in a
//! bucket beside its log, and each node keeps its data dir's `tokens/` in step with it,
//! both ways, every few seconds. So `spark tokens add` and `spark tokens revoke` keep
//! working as on a single server, on any node's data dir, and reach every node.
//!
//! Telling a token added on one side from one revoked on the other takes what both
//! sides held at the last sync (the base, kept in the data dir so that a revoke made
//! while the node was down is seen when it starts): a record the base knows that is
//! gone from one side was revoked there, and goes from the other; one the base does
//! not know was added, and goes to the other.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bytes::Bytes;

use super::log::ClusterLog;
use crate::serve::tokens::{TokenRecord, Tokens};

/// Keeps a node's tokens in step with the cluster's.
pub struct TokenSync {
    tokens: Tokens,
    base_path: PathBuf,
}

impl TokenSync {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            tokens: Tokens::new(data_dir),
            base_path: data_dir.join("cluster-tokens"),
        }
    }

    /// One sync: what changed on either side since the last goes to the other.
    pub async fn sync(&self, log: &dyn ClusterLog) -> anyhow::Result<()> {
        let base = self.base()?;
        let local: HashMap<String, TokenRecord> = self
            .tokens
            .list()?
            .into_iter()
            .map(|record| (record.id.clone(), record))
            .collect();
        let shared = log
            .tokens()
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let mut both = BTreeSet::new();
        for (id, record) in &local {
            match (shared.contains_key(id), base.contains(id)) {
                (true, _) => {
                    both.insert(id.clone());
                }
                // Revoked elsewhere.
                (false, true) => self.tokens.remove_record(id)?,
                // Added here.
                (false, false) => {
                    let json = serde_json::to_vec(record)?;
                    log.put_token(id, Bytes::from(json))
                        .await
                        .map_err(|error| anyhow::anyhow!("{error}"))?;
                    both.insert(id.clone());
                }
            }
        }
        for (id, json) in &shared {
            if local.contains_key(id) {
                continue;
            }
            if base.contains(id) {
                // Revoked here.
                log.remove_token(id)
                    .await
                    .map_err(|error| anyhow::anyhow!("{error}"))?;
            } else {
                // Added elsewhere.
                let record: TokenRecord = serde_json::from_slice(json)
                    .with_context(|| format!("the cluster's token record `{id}`"))?;
                anyhow::ensure!(
                    record.id == *id,
                    "the cluster's token record `{id}` holds another id"
                );
                self.tokens.put_record(&record)?;
                both.insert(id.clone());
            }
        }
        self.set_base(&both)
    }

    fn base(&self) -> anyhow::Result<BTreeSet<String>> {
        match std::fs::read_to_string(&self.base_path) {
            Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(error) => {
                Err(error).with_context(|| format!("cannot read `{}`", self.base_path.display()))
            }
        }
    }

    fn set_base(&self, ids: &BTreeSet<String>) -> anyhow::Result<()> {
        let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
        let temp = self.base_path.with_extension("tmp");
        std::fs::write(&temp, text)
            .and_then(|()| std::fs::rename(&temp, &self.base_path))
            .with_context(|| format!("cannot write `{}`", self.base_path.display()))
    }
}
