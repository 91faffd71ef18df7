//! `spark serve --cluster`: several servers over one replicated log (NATS JetStream),
//! each tenant owned by one node at a time, no effect lost or doubled when a node dies.
//! The design, its limits and how it grows are in docs/cluster.md; in short:
//!
//! - `log.rs`: what the cluster needs of the log ([`ClusterLog`]), on JetStream.
//! - `shards.rs`: tenants grouped in shards; appending with the fence.
//! - `journal.rs`: each change to a tenant's store appended to its shard's log before
//!   it is applied (the library's `Journal`).
//! - `takeover.rs`: a shard's tenants rebuilt from the log when a node takes it.
//! - `snapshot.rs`: a shard's tenants kept beside the log now and then by its owner, so
//!   that a takeover restores them and replays only the commits after.
//! - this file: the keeper, which holds leases, takes free shards and gives up lost ones.
//! - `input.rs`: records posted to any node, run by the owner; `forward.rs`: every other
//!   request about a tenant passed on to its owner.
//! - `tokens.rs`: the access tokens, the same on every node.
//!
//! A node's data dir is a view of the log for the shards it owns, rebuilt when it takes
//! one; what it holds of other shards is never opened, and is removed when it takes
//! them again.

mod forward;
mod input;
mod journal;
mod log;
mod shards;
mod snapshot;
mod takeover;
mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use spark_host::{Journal, Spark};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};

pub use forward::{Forwarding, forward};
pub use input::{post, request_key};
pub use log::Input;

use journal::{ClusterJournal, GiveUp, INPUT};
use log::{ClusterLog, Holder, JetStream, LogRecord, RENEW_EVERY};
use shards::{Lease, SHARDS, ShardTable, shard_of};

use super::errors::ApiError;
use super::owners::Owners;

/// How a node joins a cluster: `spark serve`'s `--cluster` options.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The log's servers, comma-separated `nats://HOST:PORT`.
    pub urls: String,
    /// Copies of the log's streams (3 on a cluster of 3 JetStream servers).
    pub replicas: usize,
    /// The URL other nodes reach this node's API at; the listening address if unset.
    pub advertise: Option<String>,
}

/// How many shards are taken over at once when a node starts or another leaves.
const TAKEOVERS_AT_ONCE: usize = 8;

/// How long a shard's tenants may take to close (a sender finishing its batch).
const CLOSE_PATIENCE: Duration = Duration::from_secs(60);

/// A node of the cluster.
pub struct Cluster {
    log: Arc<dyn ClusterLog>,
    nats: async_nats::Client,
    table: Arc<ShardTable>,
    runtime: Handle,
    /// This node: its id (kept in the data dir, so a restarted node knows its own
    /// leases) and its API's URL (known once it listens).
    me: Holder,
    /// The node id and a random part for this process: message ids of its own.
    id_prefix: String,
    give_up: mpsc::UnboundedSender<GiveUp>,
    given_up: Mutex<Option<mpsc::UnboundedReceiver<GiveUp>>>,
    owners: OnceLock<Arc<Owners>>,
    spark: OnceLock<Arc<Spark>>,
    /// Who holds each shard, as last read: where requests are passed on to.
    holders: Mutex<HashMap<u32, Holder>>,
    answers: input::Answers,
    /// The shards whose input is being read, and where a reader of each starts.
    readers: Mutex<HashMap<u32, Reader>>,
    forwarding: ureq::Agent,
    tokens: tokens::TokenSync,
    snapshots: snapshot::Snapshots,
}

/// A shard's input reader: started when a takeover finds input not answered yet, or
/// at the first request for the shard after.
#[derive(Debug, Clone, Copy)]
struct Reader {
    /// Reading starts after this input.
    after: u64,
    running: bool,
}

impl Cluster {
    /// Connects to the log and makes what it needs there. `data_dir` keeps this node's
    /// id; `url` is where this node's API listens.
    pub async fn connect(
        options: &ClusterOptions,
        data_dir: &std::path::Path,
        url: &str,
    ) -> anyhow::Result<Arc<Self>> {
        let node = node_id(data_dir)?;
        let jetstream = JetStream::connect(&options.urls, options.replicas)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let nats = jetstream.client();
        let (give_up, given_up) = mpsc::unbounded_channel();
        let incarnation = super::tokens::random_hex::<4>()?;
        let cluster = Arc::new(Self {
            log: Arc::new(jetstream),
            nats,
            table: Arc::new(ShardTable::new()),
            runtime: Handle::current(),
            id_prefix: format!("{node}-{incarnation}"),
            me: Holder {
                node,
                url: options.advertise.clone().unwrap_or_else(|| url.to_owned()),
            },
            give_up,
            given_up: Mutex::new(Some(given_up)),
            owners: OnceLock::new(),
            spark: OnceLock::new(),
            holders: Mutex::new(HashMap::new()),
            answers: input::Answers::default(),
            readers: Mutex::new(HashMap::new()),
            forwarding: forward::agent(),
            tokens: tokens::TokenSync::new(data_dir),
            snapshots: snapshot::Snapshots::default(),
        });
        // The cluster's tokens work here from the first request. (A bucket just made
        // may not take writes for a moment.)
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match cluster.tokens.sync(cluster.log.as_ref()).await {
                Ok(()) => break,
                Err(error) if Instant::now() < deadline => {
                    tracing::info!("the cluster's tokens, again: {error:#}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => {
                    return Err(error.context("cannot share the tokens with the cluster"));
                }
            }
        }
        Ok(cluster)
    }

    /// The largest message the log takes, in bytes.
    pub fn max_message(&self) -> usize {
        self.nats.max_payload()
    }

    /// The journal the tenants of this node write through.
    pub fn journal(&self) -> Arc<dyn Journal> {
        Arc::new(ClusterJournal {
            log: Arc::clone(&self.log),
            table: Arc::clone(&self.table),
            runtime: self.runtime.clone(),
            id_prefix: self.id_prefix.clone(),
            give_up: self.give_up.clone(),
            max_message: self.max_message(),
        })
    }

    /// Starts taking shards and answering for them.
    pub fn start(self: &Arc<Self>, spark: Arc<Spark>, owners: Arc<Owners>) {
        let _ = self.spark.set(spark);
        let _ = self.owners.set(Arc::clone(&owners));
        let cluster = Arc::clone(self);
        owners.set_gate(Arc::new(move |tenant: &str| {
            if cluster.table.owns(tenant) {
                Ok(())
            } else {
                Err(ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        format!("this node does not own tenant `{tenant}` now; try again"),
                    )
                })
            }
        }));
        let given_up = self
            .given_up
            .lock()
            .expect("never poisoned")
            .take()
            .expect("a cluster starts once");
        tokio::spawn(keep(Arc::clone(self), given_up));
        tokio::spawn(input::serve_asks(Arc::clone(self)));
    }

    fn owners(&self) -> Result<&Arc<Owners>, ApiError> {
        self.owners.get().ok_or_else(ApiError::shutting_down)
    }

    /// This node, the shards it owns and who holds the others, as `/v1/cluster` shows
    /// them; with `tenant`, its shard and owner.
    pub fn status(&self, tenant: Option<&str>) -> serde_json::Value {
        let owned: Vec<u32> = (0..SHARDS)
            .filter(|shard| self.table.owns_shard(*shard))
            .collect();
        let holders = self.holders.lock().expect("never poisoned").clone();
        let mut nodes: HashMap<String, (String, usize)> = HashMap::new();
        for holder in holders.values() {
            nodes
                .entry(holder.node.clone())
                .or_insert((holder.url.clone(), 0))
                .1 += 1;
        }
        let mut status = serde_json::json!({
            "node": self.me.node,
            "url": self.me.url,
            "shards": SHARDS,
            "owned": owned,
            "nodes": nodes
                .into_iter()
                .map(|(node, (url, shards))| serde_json::json!({"node": node, "url": url, "shards": shards}))
                .collect::<Vec<_>>(),
        });
        if let Some(tenant) = tenant {
            let shard = shard_of(tenant);
            let owner = if self.table.owns_shard(shard) {
                Some(self.me.clone())
            } else {
                holders
                    .get(&shard)
                    .filter(|holder| holder.node != self.me.node)
                    .cloned()
            };
            status["tenant"] = serde_json::json!({
                "name": tenant,
                "shard": shard,
                "owner": owner.map(|holder| serde_json::json!({"node": holder.node, "url": holder.url})),
            });
        }
        status
    }

    /// The API URL of the node owning `tenant`: as last read, or asked of the log when
    /// none was (the shard just moved).
    async fn owner_url(&self, tenant: &str) -> Option<String> {
        let shard = shard_of(tenant);
        let known = self
            .holders
            .lock()
            .expect("never poisoned")
            .get(&shard)
            .cloned();
        let holder = match known {
            Some(holder) => holder,
            None => {
                let holder = self.log.lease_holder(shard).await.ok().flatten()?;
                self.holders
                    .lock()
                    .expect("never poisoned")
                    .insert(shard, holder.clone());
                holder
            }
        };
        (holder.node != self.me.node).then_some(holder.url)
    }

    /// Forgets who owns `tenant` (its node did not answer): the next request asks the
    /// log.
    fn forget_owner(&self, tenant: &str) {
        self.holders
            .lock()
            .expect("never poisoned")
            .remove(&shard_of(tenant));
    }

    /// Starts reading `shard`'s input unless a reader is at it.
    fn read_input(self: &Arc<Self>, shard: u32) {
        let after = {
            let mut readers = self.readers.lock().expect("never poisoned");
            match readers.get_mut(&shard) {
                Some(reader) if !reader.running => {
                    reader.running = true;
                    reader.after
                }
                _ => return,
            }
        };
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            input::read_input(Arc::clone(&cluster), shard, after).await;
            // Stopped (the shard left this node, or the log failed): a later request
            // starts it again.
            if let Some(reader) = cluster
                .readers
                .lock()
                .expect("never poisoned")
                .get_mut(&shard)
            {
                reader.running = false;
            }
        });
    }

    /// Notes that `shard`'s input is answered up to `upto`: a reader started again
    /// starts after it.
    fn note_reader_at(&self, shard: u32, upto: u64) {
        if let Some(reader) = self.readers.lock().expect("never poisoned").get_mut(&shard) {
            reader.after = reader.after.max(upto);
        }
    }

    /// Notes in `shard`'s log that its input is answered up to `upto`.
    async fn note_input_done(&self, shard: u32, upto: u64) -> Result<(), ()> {
        let table = Arc::clone(&self.table);
        let log = Arc::clone(&self.log);
        let prefix = self.id_prefix.clone();
        let runtime = self.runtime.clone();
        // On a blocking thread: appending waits for the shard's lock, which owner
        // threads hold across their appends.
        tokio::task::spawn_blocking(move || {
            let record = LogRecord {
                kind: INPUT.to_owned(),
                tenant: String::new(),
                body: bytes::Bytes::from(upto.to_string()),
            };
            table
                .append(&runtime, log.as_ref(), shard, &prefix, &record, || {
                    table.note_input_done(shard, upto)
                })
                .map_err(drop)
        })
        .await
        .map_err(drop)?
    }

    /// Lets every shard go: the tenants are closed first (the server did that), then
    /// the leases are let go so that the other nodes take the shards at once.
    pub async fn leave(&self) {
        for shard in self.table.held() {
            self.table.close(shard);
            let lease = self.table.lease(shard).take();
            if let Some(lease) = lease
                && let Err(error) = self.log.release_lease(shard, lease.revision).await
            {
                tracing::warn!("shard {shard}: its lease lapses by itself: {error}");
            }
        }
    }
}

/// This node's id: made once, kept in the data dir.
fn node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("cluster-node");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot make {}", data_dir.display()))?;
            let id = format!("node-{}", super::tokens::random_hex::<6>()?);
            std::fs::write(&path, &id)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

/// The keeper, two loops: every [`RENEW_EVERY`] one renews this node's leases and
/// gives up the lost ones (and gives up shards at once when an append says so); the
/// other takes free shards up to this node's share (the shards over the live nodes),
/// lets go of those over it, keeps the tokens in step and starts shards' snapshots. Apart, so that a slow look
/// at the leases (the log electing a leader) never delays a renewal.
async fn keep(cluster: Arc<Cluster>, mut given_up: mpsc::UnboundedReceiver<GiveUp>) {
    let balancing = Arc::clone(&cluster);
    tokio::spawn(async move {
        let takeovers = Arc::new(Semaphore::new(TAKEOVERS_AT_ONCE));
        let mut ticks = tokio::time::interval(RENEW_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match tokio::time::timeout(4 * RENEW_EVERY, balance(&balancing, &takeovers)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!("the cluster's leases: {error}"),
                Err(_) => tracing::warn!("the cluster's leases: the log is slow to answer"),
            }
            if let Err(error) = balancing.tokens.sync(balancing.log.as_ref()).await {
                tracing::warn!("the cluster's tokens: {error:#}");
            }
            // A shard with many entries since its last snapshot gets one, in the
            // background.
            snapshot::maybe_start(&balancing);
        }
    });
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => renew(&cluster).await,
            Some(give_up) = given_up.recv() => {
                tracing::warn!("shard {}: given up: {}", give_up.shard, give_up.why);
                spawn_drop_shard(&cluster, give_up.shard);
            }
        }
    }
}

/// Renews every lease this node holds, all at once, each within a tick; gives up
/// those lost, and those not renewed for [`RENEW_DEADLINE`](shards::RENEW_DEADLINE).
async fn renew(cluster: &Arc<Cluster>) {
    let renewals = cluster.table.held().into_iter().filter_map(|shard| {
        let lease = (*cluster.table.lease(shard))?;
        Some(async move {
            let renewed = tokio::time::timeout(
                RENEW_EVERY,
                cluster.log.renew_lease(shard, &cluster.me, lease.revision),
            )
            .await;
            (shard, renewed)
        })
    });
    let mut lost = Vec::new();
    for (shard, renewed) in futures_util::future::join_all(renewals).await {
        match renewed {
            Ok(Ok(Some(revision))) => {
                if let Some(held) = cluster.table.lease(shard).as_mut() {
                    *held = Lease {
                        revision,
                        renewed_at: Instant::now(),
                    };
                }
            }
            Ok(Ok(None)) => lost.push((shard, "its lease was lost".to_owned())),
            Ok(Err(error)) if !cluster.table.lease_is_fresh(shard) => {
                lost.push((
                    shard,
                    format!("its lease could not be renewed in time: {error}"),
                ));
            }
            Err(_) if !cluster.table.lease_is_fresh(shard) => {
                lost.push((shard, "its lease could not be renewed in time".to_owned()));
            }
            // Not renewed this time, still fresh: next time.
            _ => {}
        }
    }
    for (shard, why) in lost {
        tracing::warn!("shard {shard}: {why}");
        spawn_drop_shard(cluster, shard);
    }
}

/// Takes free shards up to this node's share, and lets go of those over it.
async fn balance(cluster: &Arc<Cluster>, takeovers: &Arc<Semaphore>) -> Result<(), log::LogError> {
    let nodes = cluster.log.heartbeat(&cluster.me).await?;
    let leases = cluster.log.leases().await?;
    tracing::debug!(
        "{nodes} nodes, {} leases held, {} by this node",
        leases.len(),
        cluster.table.held().len()
    );
    *cluster.holders.lock().expect("never poisoned") = leases
        .iter()
        .map(|(shard, (holder, _))| (*shard, holder.clone()))
        .collect();
    let share = SHARDS.div_ceil(nodes as u32) as usize;
    let mut held = cluster.table.held().len();
    // Leases an earlier run of this node held: its own, taken back at once.
    for (shard, (holder, revision)) in &leases {
        if holder.node == cluster.me.node
            && cluster.table.lease(*shard).is_none()
            && let Some(revision) = cluster
                .log
                .renew_lease(*shard, &cluster.me, *revision)
                .await?
        {
            start_takeover(cluster, takeovers, *shard, revision);
            held += 1;
        }
    }
    // Free shards, up to this node's share, from a place of its own in the ring so
    // that nodes starting together do not all reach for the same ones.
    let start = shard_of(&cluster.me.node);
    for offset in 0..SHARDS {
        if held >= share {
            break;
        }
        let shard = (start + offset) % SHARDS;
        if leases.contains_key(&shard) || cluster.table.lease(shard).is_some() {
            continue;
        }
        match cluster.log.take_lease(shard, &cluster.me).await {
            Ok(Some(revision)) => {
                start_takeover(cluster, takeovers, shard, revision);
                held += 1;
            }
            Ok(None) => {}
            // Another node took it in the same moment (the bucket says so in its own
            // words): someone has it.
            Err(error) => tracing::debug!("shard {shard}: not taken: {error}"),
        }
    }
    // More than its share (a node joined): let some go for the others to take.
    if held > share + 1 {
        for shard in cluster.table.held().into_iter().rev().take(held - share) {
            if cluster.table.owns_shard(shard) && !cluster.table.is_leaving(shard) {
                tracing::info!("shard {shard}: let go for a node that joined");
                spawn_let_go(cluster, shard);
            }
        }
    }
    Ok(())
}

/// Notes the lease and rebuilds the shard on a blocking thread, a few at a time.
fn start_takeover(cluster: &Arc<Cluster>, takeovers: &Arc<Semaphore>, shard: u32, revision: u64) {
    *cluster.table.lease(shard) = Some(Lease {
        revision,
        renewed_at: Instant::now(),
    });
    cluster
        .holders
        .lock()
        .expect("never poisoned")
        .insert(shard, cluster.me.clone());
    let cluster = Arc::clone(cluster);
    let takeovers = Arc::clone(takeovers);
    tokio::spawn(async move {
        let _permit = takeovers.acquire_owned().await.expect("never closed");
        let started = Instant::now();
        let (Some(spark), Some(owners)) = (cluster.spark.get(), cluster.owners.get()) else {
            return;
        };
        let (spark, log, table) = (
            Arc::clone(spark),
            Arc::clone(&cluster.log),
            Arc::clone(&cluster.table),
        );
        let (runtime, prefix) = (cluster.runtime.clone(), cluster.id_prefix.clone());
        let closing = Arc::clone(owners);
        let restored = tokio::task::spawn_blocking(move || {
            // Tenants of the shard still open from an earlier ownership (given up a
            // moment ago, and closing in the background) go first: their views are
            // about to be rebuilt.
            if !closing.close_where(&|tenant| shard_of(tenant) == shard, CLOSE_PATIENCE) {
                return Err(spark_host::Error::Journal(format!(
                    "shard {shard}'s tenants did not close within {CLOSE_PATIENCE:?}"
                )));
            }
            takeover::take_over(&spark, &log, &table, &runtime, shard, &prefix)
        })
        .await;
        match restored {
            Ok(Ok(restored)) => {
                if let Some(from) = restored.snapshot_from {
                    tracing::info!(
                        "shard {shard}: taken over in {:?}: restored from a snapshot at \
                         commit {from}, {} entries of {} tenants replayed, {} skipped",
                        started.elapsed(),
                        restored.entries,
                        restored.tenants.len(),
                        restored.skipped
                    );
                } else if restored.entries > 0 {
                    tracing::info!(
                        "shard {shard}: taken over in {:?}: {} entries of {} tenants replayed",
                        started.elapsed(),
                        restored.entries,
                        restored.tenants.len()
                    );
                }
                // What the tenants have to do by themselves: outbox, retries, schedules.
                for tenant in &restored.tenants {
                    owners.wake(tenant);
                }
                cluster.readers.lock().expect("never poisoned").insert(
                    shard,
                    Reader {
                        after: restored.input_done,
                        running: false,
                    },
                );
                match cluster.log.last_input(shard).await {
                    Ok(last) if last <= restored.input_done => {}
                    _ => cluster.read_input(shard),
                }
            }
            Ok(Err(error)) => {
                tracing::error!("shard {shard}: cannot take it over: {error}");
                drop_shard(&cluster, shard).await;
            }
            Err(error) => {
                tracing::error!("shard {shard}: its takeover failed: {error}");
                drop_shard(&cluster, shard).await;
            }
        }
    });
}

/// Lets `shard` go gracefully (a node joined): its tenants take no more requests and
/// close while the shard is still this node's, so that what they were doing (a sender's
/// marks of mails it sent) reaches the log and the next owner sends nothing again; then
/// the shard is closed and its lease let go.
fn spawn_let_go(cluster: &Arc<Cluster>, shard: u32) {
    cluster.table.set_leaving(shard, true);
    let cluster = Arc::clone(cluster);
    tokio::spawn(async move {
        if let Some(owners) = cluster.owners.get() {
            let owners = Arc::clone(owners);
            let _ = tokio::task::spawn_blocking(move || {
                owners.close_where(&|tenant| shard_of(tenant) == shard, CLOSE_PATIENCE)
            })
            .await;
        }
        drop_shard(&cluster, shard).await;
        cluster.table.set_leaving(shard, false);
    });
}

/// Stops owning `shard` now, and closes its tenants in the background: the keeper
/// goes on renewing the other leases meanwhile (closing waits for the tenants' work
/// under way, a sender's batch of mails say).
fn spawn_drop_shard(cluster: &Arc<Cluster>, shard: u32) {
    cluster.table.close(shard);
    let cluster = Arc::clone(cluster);
    tokio::spawn(async move { drop_shard(&cluster, shard).await });
}

/// Stops owning `shard`: nothing more is appended, its open tenants are closed, its
/// lease is let go (a view that may be stale included: whoever takes the shard next,
/// this node or another, rebuilds it from the log).
async fn drop_shard(cluster: &Arc<Cluster>, shard: u32) {
    cluster.table.close(shard);
    cluster
        .readers
        .lock()
        .expect("never poisoned")
        .remove(&shard);
    if let Some(owners) = cluster.owners.get() {
        let owners = Arc::clone(owners);
        let _ = tokio::task::spawn_blocking(move || {
            owners.close_where(&|tenant| shard_of(tenant) == shard, CLOSE_PATIENCE)
        })
        .await;
    }
    let lease = cluster.table.lease(shard).take();
    if let Some(lease) = lease {
        let _ = cluster.log.release_lease(shard, lease.revision).await;
    }
    // Whoever takes it next is known at the next look at the leases.
    let mut holders = cluster.holders.lock().expect("never poisoned");
    if holders
        .get(&shard)
        .is_some_and(|holder| holder.node == cluster.me.node)
    {
        holders.remove(&shard);
    }
}
