//! The replicated log a cluster runs on, behind [`ClusterLog`]: what the cluster needs of
//! it, and [`JetStream`], the one built (NATS JetStream; Kafka would be another, see
//! docs/cluster.md for how its partitions would map).
//!
//! Every method is one short exchange with the log; none holds state the cluster's own
//! code does not see, so that what makes the cluster safe (leases, the fence, message
//! ids) reads in `shards.rs` and `journal.rs`, not here.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, consumer, context, kv, object_store, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type LogResult<T> = Result<T, LogError>;
/// What the log holds, in order, as it comes: (sequence, item).
pub type Sequenced<T> = BoxStream<'static, LogResult<(u64, T)>>;

/// The log failed or could not be reached; the cluster retries or gives the shard up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LogError(pub String);

impl LogError {
    fn from<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> LogError + '_ {
        move |error| LogError(format!("{what}: {error}"))
    }
}

/// Who holds a shard's lease, as the lease's value says: a node and where its API is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub node: String,
    /// The node's HTTP API, e.g. `http://10.0.0.5:7411`: requests for the shard's
    /// tenants are forwarded there.
    pub url: String,
}

/// What appending to a shard's commit log did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this sequence (or was already, under the same message id).
    At(u64),
    /// The shard's last sequence was not the one expected: another node appended
    /// since, so this one does not own the shard any more.
    Fenced,
    /// Larger than the log's largest message (its size limit, in bytes): not sent.
    TooLarge(usize),
}

/// One message of a shard's commit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// What it is (`entry`, `takeover`, `input`; see `journal.rs`).
    pub kind: String,
    /// The tenant an entry belongs to; empty for a shard's own records.
    pub tenant: String,
    pub body: Bytes,
}

/// A request's records, as the input log carries them to the shard's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub tenant: String,
    pub model: String,
    /// The logical time the request gave, if any.
    pub now: Option<i64>,
    /// The idempotency key the owner answers the request under (the client's, or one
    /// made from the request itself).
    pub key: String,
    /// JSON Lines.
    pub body: String,
}

/// Blobs kept beside the log, by name: components by their SHA-256, shards' snapshots
/// (`snapshot.rs`) by shard and tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blobs {
    Components,
    Snapshots,
}

/// What the cluster needs of a replicated log. Sequences start at 1; 0 means "none".
pub trait ClusterLog: Send + Sync + 'static {
    /// Takes shard `shard`'s lease for `holder` if nobody holds it: its revision.
    fn take_lease<'a>(
        &'a self,
        shard: u32,
        holder: &'a Holder,
    ) -> BoxFuture<'a, LogResult<Option<u64>>>;
    /// Renews a lease held at `revision`: the new revision, or None when it is lost
    /// (expired and taken by someone else, or never ours).
    fn renew_lease<'a>(
        &'a self,
        shard: u32,
        holder: &'a Holder,
        revision: u64,
    ) -> BoxFuture<'a, LogResult<Option<u64>>>;
    /// Lets a lease held at `revision` go at once (a clean stop or a rebalance).
    fn release_lease(&self, shard: u32, revision: u64) -> BoxFuture<'_, LogResult<()>>;
    /// Who holds shard `shard`'s lease now, if anyone.
    fn lease_holder(&self, shard: u32) -> BoxFuture<'_, LogResult<Option<Holder>>>;
    /// Every lease held now: shard, holder and revision.
    fn leases(&self) -> BoxFuture<'_, LogResult<HashMap<u32, (Holder, u64)>>>;
    /// Says that `holder` is alive (a key that lapses unless said again), and how many
    /// nodes are.
    fn heartbeat<'a>(&'a self, holder: &'a Holder) -> BoxFuture<'a, LogResult<usize>>;

    /// Appends a request's records to shard `shard`'s input, stored once per `id`
    /// within the log's de-duplication window: its sequence.
    fn publish_input<'a>(
        &'a self,
        shard: u32,
        id: &'a str,
        input: &'a Input,
    ) -> BoxFuture<'a, LogResult<u64>>;
    /// Shard `shard`'s input at `sequence`, if it is there.
    fn input(&self, shard: u32, sequence: u64) -> BoxFuture<'_, LogResult<Option<Input>>>;
    /// The sequence of shard `shard`'s last input (0: none).
    fn last_input(&self, shard: u32) -> BoxFuture<'_, LogResult<u64>>;
    /// Shard `shard`'s inputs after sequence `after`, as they come, without end.
    fn inputs(&self, shard: u32, after: u64) -> BoxFuture<'_, LogResult<Sequenced<Input>>>;

    /// Appends `record` to shard `shard`'s commit log if its last sequence is still
    /// `expected` (the fence). `id` makes a retry after a lost acknowledgement
    /// harmless: the log answers with the first append's sequence.
    fn append<'a>(
        &'a self,
        shard: u32,
        expected: u64,
        id: &'a str,
        record: &'a LogRecord,
    ) -> BoxFuture<'a, LogResult<Appended>>;
    /// The sequence of shard `shard`'s last commit (0: none).
    fn last_commit(&self, shard: u32) -> BoxFuture<'_, LogResult<u64>>;
    /// Shard `shard`'s commits after `after` up to `upto` (inclusive), in order.
    fn commits(
        &self,
        shard: u32,
        after: u64,
        upto: u64,
    ) -> BoxFuture<'_, LogResult<Sequenced<LogRecord>>>;

    /// Keeps a blob under `name` (replacing any).
    fn put_blob<'a>(
        &'a self,
        blobs: Blobs,
        name: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, LogResult<()>>;
    /// The blob under `name`, if any.
    fn get_blob<'a>(
        &'a self,
        blobs: Blobs,
        name: &'a str,
    ) -> BoxFuture<'a, LogResult<Option<Vec<u8>>>>;
    /// Whether a blob is kept under `name`.
    fn has_blob<'a>(&'a self, blobs: Blobs, name: &'a str) -> BoxFuture<'a, LogResult<bool>>;

    /// The cluster's access tokens' records (JSON), by token id.
    fn tokens(&self) -> BoxFuture<'_, LogResult<HashMap<String, Bytes>>>;
    /// Keeps a token's record.
    fn put_token<'a>(&'a self, id: &'a str, record: Bytes) -> BoxFuture<'a, LogResult<()>>;
    /// Forgets a token (revoked).
    fn remove_token<'a>(&'a self, id: &'a str) -> BoxFuture<'a, LogResult<()>>;
}

/// How long a lease lives unless renewed, and how often it is renewed: a node that
/// dies is replaced after at most the time to live (plus the takeover), and a node
/// that cannot renew in time stops appending before its lease lapses
/// (`shards.rs`); the fence catches one paused past it.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

/// How long joining waits for the log to take its streams.
const SET_UP_PATIENCE: Duration = Duration::from_secs(60);

const COMMITS: &str = "SPARK_COMMITS";
const INPUT: &str = "SPARK_INPUT";
const LEASES: &str = "spark-leases";
const NODES: &str = "spark-nodes";
const TOKENS: &str = "spark-tokens";
const COMPONENTS: &str = "spark-components";
const SNAPSHOTS: &str = "spark-snapshots";

/// Inputs are stored once per id for this long: a client that retries a request
/// within it is answered from the first; beyond it, the idempotency keys the tenant
/// keeps (a day) still make the retry change nothing.
const INPUT_DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Inputs are kept a week: a shard left without an owner longer loses them (a cluster
/// down for a week; the commit log itself is kept for good).
const INPUT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

fn commit_subject(shard: u32) -> String {
    format!("spark.commit.{shard}")
}

fn input_subject(shard: u32) -> String {
    format!("spark.in.{shard}")
}

fn lease_key(shard: u32) -> String {
    format!("shard-{shard}")
}

/// NATS JetStream as the cluster's log: two streams (input and commits, a subject per
/// shard), key-value buckets of leases, live nodes and tokens, two object stores
/// (components and snapshots).
pub struct JetStream {
    context: jetstream::Context,
    commits: stream::Stream,
    input: stream::Stream,
    leases: kv::Store,
    nodes: kv::Store,
    tokens: kv::Store,
    components: object_store::ObjectStore,
    snapshots: object_store::ObjectStore,
}

impl JetStream {
    /// Connects to `urls` (comma-separated) and makes the streams, buckets and stores
    /// if they are not there yet, with `replicas` copies of each.
    pub async fn connect(urls: &str, replicas: usize) -> LogResult<Self> {
        let servers = urls
            .split(',')
            .map(|url| url.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(LogError::from("a cluster URL is not `nats://HOST:PORT`"))?;
        let client = async_nats::ConnectOptions::new()
            .name("spark")
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .map_err(LogError::from("cannot connect to the cluster"))?;
        let context = jetstream::new(client);
        // A JetStream cluster that has just started may not place replicas yet ("no
        // suitable peers"): tried again for a while.
        let deadline = std::time::Instant::now() + SET_UP_PATIENCE;
        loop {
            match Self::set_up(context.clone(), replicas).await {
                Err(error) if std::time::Instant::now() < deadline => {
                    tracing::info!("the cluster is not ready yet: {error}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                result => return result,
            }
        }
    }

    /// Makes the streams, buckets and stores if they are not there yet.
    async fn set_up(context: jetstream::Context, replicas: usize) -> LogResult<Self> {
        let commits = get_or_create_stream(
            &context,
            stream::Config {
                name: COMMITS.into(),
                subjects: vec!["spark.commit.*".into()],
                num_replicas: replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        let input = get_or_create_stream(
            &context,
            stream::Config {
                name: INPUT.into(),
                subjects: vec!["spark.in.*".into()],
                num_replicas: replicas,
                storage: stream::StorageType::File,
                duplicate_window: INPUT_DUPLICATE_WINDOW,
                max_age: INPUT_MAX_AGE,
                ..Default::default()
            },
        )
        .await?;
        let bucket = |name: &str, max_age: Duration| kv::Config {
            bucket: name.into(),
            history: 1,
            max_age,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let leases = get_or_create_bucket(&context, bucket(LEASES, LEASE_TTL)).await?;
        let nodes = get_or_create_bucket(&context, bucket(NODES, LEASE_TTL)).await?;
        let tokens = get_or_create_bucket(&context, bucket(TOKENS, Duration::ZERO)).await?;
        let store = |name: &str| object_store::Config {
            bucket: name.into(),
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let components = get_or_create_objects(&context, store(COMPONENTS)).await?;
        let snapshots = get_or_create_objects(&context, store(SNAPSHOTS)).await?;
        Ok(Self {
            context,
            commits,
            input,
            leases,
            nodes,
            tokens,
            components,
            snapshots,
        })
    }

    /// The connection, for the cluster's requests between nodes.
    pub fn client(&self) -> async_nats::Client {
        self.context.client()
    }

    fn blobs(&self, blobs: Blobs) -> &object_store::ObjectStore {
        match blobs {
            Blobs::Components => &self.components,
            Blobs::Snapshots => &self.snapshots,
        }
    }

    /// An ordered consumer over `subject` of `stream` from sequence `after + 1`.
    async fn read_from(
        stream: &stream::Stream,
        subject: String,
        after: u64,
    ) -> LogResult<BoxStream<'static, LogResult<jetstream::Message>>> {
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(LogError::from("cannot read the log"))?;
        let messages = consumer
            .messages()
            .await
            .map_err(LogError::from("cannot read the log"))?;
        Ok(messages
            .map(|message| message.map_err(LogError::from("cannot read the log")))
            .boxed())
    }

    async fn last_of(stream: &stream::Stream, subject: String) -> LogResult<u64> {
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(message.sequence),
            Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(error) => Err(LogError(format!(
                "cannot read the end of `{subject}`: {error}"
            ))),
        }
    }
}

async fn get_or_create_stream(
    context: &jetstream::Context,
    config: stream::Config,
) -> LogResult<stream::Stream> {
    let name = config.name.clone();
    context
        .get_or_create_stream(config)
        .await
        .map_err(|error| LogError(format!("cannot make the stream `{name}`: {error}")))
}

async fn get_or_create_bucket(
    context: &jetstream::Context,
    config: kv::Config,
) -> LogResult<kv::Store> {
    let name = config.bucket.clone();
    match context.get_key_value(&name).await {
        Ok(store) => Ok(store),
        Err(_) => context
            .create_key_value(config)
            .await
            .map_err(|error| LogError(format!("cannot make the bucket `{name}`: {error}"))),
    }
}

async fn get_or_create_objects(
    context: &jetstream::Context,
    config: object_store::Config,
) -> LogResult<object_store::ObjectStore> {
    let name = config.bucket.clone();
    match context.get_object_store(&name).await {
        Ok(store) => Ok(store),
        Err(_) => context
            .create_object_store(config)
            .await
            .map_err(|error| LogError(format!("cannot make the object store `{name}`: {error}"))),
    }
}

/// The keys of a bucket (those deleted or lapsed not among them).
async fn keys_of(bucket: &kv::Store, what: &str) -> LogResult<Vec<String>> {
    let mut keys = bucket.keys().await.map_err(LogError::from(what))?;
    let mut all = Vec::new();
    while let Some(key) = keys.next().await {
        all.push(key.map_err(LogError::from(what))?);
    }
    Ok(all)
}

fn holder_bytes(holder: &Holder) -> Bytes {
    Bytes::from(serde_json::to_vec(holder).expect("a holder is always JSON"))
}

impl ClusterLog for JetStream {
    fn take_lease<'a>(
        &'a self,
        shard: u32,
        holder: &'a Holder,
    ) -> BoxFuture<'a, LogResult<Option<u64>>> {
        Box::pin(async move {
            match self
                .leases
                .create(lease_key(shard), holder_bytes(holder))
                .await
            {
                Ok(revision) => Ok(Some(revision)),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(error) => Err(LogError(format!(
                    "cannot take shard {shard}'s lease: {error}"
                ))),
            }
        })
    }

    fn renew_lease<'a>(
        &'a self,
        shard: u32,
        holder: &'a Holder,
        revision: u64,
    ) -> BoxFuture<'a, LogResult<Option<u64>>> {
        Box::pin(async move {
            match self
                .leases
                .update(lease_key(shard), holder_bytes(holder), revision)
                .await
            {
                Ok(revision) => Ok(Some(revision)),
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(error) => Err(LogError(format!(
                    "cannot renew shard {shard}'s lease: {error}"
                ))),
            }
        })
    }

    fn release_lease(&self, shard: u32, revision: u64) -> BoxFuture<'_, LogResult<()>> {
        Box::pin(async move {
            self.leases
                .purge_expect_revision(lease_key(shard), Some(revision))
                .await
                .map_err(LogError::from("cannot let a lease go"))
        })
    }

    fn lease_holder(&self, shard: u32) -> BoxFuture<'_, LogResult<Option<Holder>>> {
        Box::pin(async move {
            let value = self
                .leases
                .get(lease_key(shard))
                .await
                .map_err(LogError::from("cannot read a lease"))?;
            Ok(value.and_then(|value| serde_json::from_slice(&value).ok()))
        })
    }

    fn leases(&self) -> BoxFuture<'_, LogResult<HashMap<u32, (Holder, u64)>>> {
        Box::pin(async move {
            let names = keys_of(&self.leases, "cannot read the leases").await?;
            let mut held = HashMap::new();
            for name in names {
                let Some(shard) = name.strip_prefix("shard-").and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let entry = self
                    .leases
                    .entry(name)
                    .await
                    .map_err(LogError::from("cannot read the leases"))?;
                if let Some(entry) = entry
                    && entry.operation == kv::Operation::Put
                    && let Ok(holder) = serde_json::from_slice(&entry.value)
                {
                    held.insert(shard, (holder, entry.revision));
                }
            }
            Ok(held)
        })
    }

    fn heartbeat<'a>(&'a self, holder: &'a Holder) -> BoxFuture<'a, LogResult<usize>> {
        Box::pin(async move {
            self.nodes
                .put(&holder.node, holder_bytes(holder))
                .await
                .map_err(LogError::from("cannot say this node is alive"))?;
            let nodes = keys_of(&self.nodes, "cannot count the nodes").await?;
            Ok(nodes.len().max(1))
        })
    }

    fn publish_input<'a>(
        &'a self,
        shard: u32,
        id: &'a str,
        input: &'a Input,
    ) -> BoxFuture<'a, LogResult<u64>> {
        Box::pin(async move {
            let body = serde_json::to_vec(input).map_err(LogError::from("cannot encode"))?;
            let ack = self
                .context
                .send_publish(
                    input_subject(shard),
                    PublishMessage::build().message_id(id).payload(body.into()),
                )
                .await
                .map_err(LogError::from("cannot send the records to the cluster"))?
                .await
                .map_err(LogError::from("the cluster did not take the records"))?;
            Ok(ack.sequence)
        })
    }

    fn input(&self, shard: u32, sequence: u64) -> BoxFuture<'_, LogResult<Option<Input>>> {
        Box::pin(async move {
            let message = match self.input.get_raw_message(sequence).await {
                Ok(message) => message,
                Err(error) if error.kind() == stream::RawMessageErrorKind::NoMessageFound => {
                    return Ok(None);
                }
                Err(error) => return Err(LogError(format!("cannot read an input: {error}"))),
            };
            if message.subject.as_str() != input_subject(shard) {
                return Ok(None);
            }
            let input = serde_json::from_slice(&message.payload)
                .map_err(LogError::from("an input that is not Spark's"))?;
            Ok(Some(input))
        })
    }

    fn last_input(&self, shard: u32) -> BoxFuture<'_, LogResult<u64>> {
        Box::pin(Self::last_of(&self.input, input_subject(shard)))
    }

    fn inputs(&self, shard: u32, after: u64) -> BoxFuture<'_, LogResult<Sequenced<Input>>> {
        Box::pin(async move {
            let messages = Self::read_from(&self.input, input_subject(shard), after).await?;
            Ok(messages
                .map(|message| {
                    let message = message?;
                    let sequence = message
                        .info()
                        .map_err(LogError::from("a message without its sequence"))?
                        .stream_sequence;
                    let input = serde_json::from_slice(&message.payload)
                        .map_err(LogError::from("an input that is not Spark's"))?;
                    Ok((sequence, input))
                })
                .boxed())
        })
    }

    fn append<'a>(
        &'a self,
        shard: u32,
        expected: u64,
        id: &'a str,
        record: &'a LogRecord,
    ) -> BoxFuture<'a, LogResult<Appended>> {
        Box::pin(async move {
            let publish = PublishMessage::build()
                .message_id(id)
                .expected_last_subject_sequence(expected)
                .header("Spark-Kind", record.kind.as_str())
                .header("Spark-Tenant", record.tenant.as_str())
                .payload(record.body.clone());
            let sent = match self
                .context
                .send_publish(commit_subject(shard), publish)
                .await
            {
                Ok(sent) => sent,
                Err(error) if error.kind() == context::PublishErrorKind::MaxPayloadExceeded => {
                    return Ok(Appended::TooLarge(self.context.client().max_payload()));
                }
                Err(error) => return Err(LogError(format!("cannot append to the log: {error}"))),
            };
            match sent.await {
                Ok(ack) => Ok(Appended::At(ack.sequence)),
                Err(error) if error.kind() == context::PublishErrorKind::WrongLastSequence => {
                    Ok(Appended::Fenced)
                }
                Err(error) => Err(LogError(format!(
                    "the log did not take the commit: {error}"
                ))),
            }
        })
    }

    fn last_commit(&self, shard: u32) -> BoxFuture<'_, LogResult<u64>> {
        Box::pin(Self::last_of(&self.commits, commit_subject(shard)))
    }

    fn commits(
        &self,
        shard: u32,
        after: u64,
        upto: u64,
    ) -> BoxFuture<'_, LogResult<Sequenced<LogRecord>>> {
        Box::pin(async move {
            if upto <= after {
                return Ok(futures_util::stream::empty().boxed());
            }
            let messages = Self::read_from(&self.commits, commit_subject(shard), after).await?;
            let records = messages
                .map(|message| {
                    let message = message?;
                    let sequence = message
                        .info()
                        .map_err(LogError::from("a message without its sequence"))?
                        .stream_sequence;
                    let header = |name: &str| {
                        message
                            .headers
                            .as_ref()
                            .and_then(|headers| headers.get(name))
                            .map(|value| value.as_str().to_owned())
                            .unwrap_or_default()
                    };
                    let record = LogRecord {
                        kind: header("Spark-Kind"),
                        tenant: header("Spark-Tenant"),
                        body: message.payload.clone(),
                    };
                    Ok((sequence, record))
                })
                .boxed();
            // The consumer never ends by itself: stop after `upto`, without waiting
            // for a message beyond it.
            Ok(futures_util::stream::unfold(
                (records, false),
                move |(mut records, past_upto)| async move {
                    if past_upto {
                        return None;
                    }
                    let item = records.next().await?;
                    let past_upto = !matches!(&item, Ok((sequence, _)) if *sequence < upto);
                    Some((item, (records, past_upto)))
                },
            )
            .boxed())
        })
    }

    fn put_blob<'a>(
        &'a self,
        blobs: Blobs,
        name: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, LogResult<()>> {
        Box::pin(async move {
            self.blobs(blobs)
                .put(name, &mut bytes.as_slice())
                .await
                .map(drop)
                .map_err(|error| LogError(format!("cannot keep `{name}`: {error}")))
        })
    }

    fn get_blob<'a>(
        &'a self,
        blobs: Blobs,
        name: &'a str,
    ) -> BoxFuture<'a, LogResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut object = match self.blobs(blobs).get(name).await {
                Ok(object) => object,
                Err(error) if error.kind() == object_store::GetErrorKind::NotFound => {
                    return Ok(None);
                }
                Err(error) => return Err(LogError(format!("cannot read `{name}`: {error}"))),
            };
            let mut bytes = Vec::new();
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|error| LogError(format!("cannot read `{name}`: {error}")))?;
            Ok(Some(bytes))
        })
    }

    fn has_blob<'a>(&'a self, blobs: Blobs, name: &'a str) -> BoxFuture<'a, LogResult<bool>> {
        Box::pin(async move {
            match self.blobs(blobs).info(name).await {
                Ok(info) => Ok(!info.deleted),
                Err(error) if error.kind() == object_store::InfoErrorKind::NotFound => Ok(false),
                Err(error) => Err(LogError(format!("cannot look for `{name}`: {error}"))),
            }
        })
    }

    fn tokens(&self) -> BoxFuture<'_, LogResult<HashMap<String, Bytes>>> {
        Box::pin(async move {
            let ids = keys_of(&self.tokens, "cannot read the tokens").await?;
            let mut records = HashMap::new();
            for id in ids {
                if let Some(record) = self
                    .tokens
                    .get(&id)
                    .await
                    .map_err(LogError::from("cannot read the tokens"))?
                {
                    records.insert(id, record);
                }
            }
            Ok(records)
        })
    }

    fn put_token<'a>(&'a self, id: &'a str, record: Bytes) -> BoxFuture<'a, LogResult<()>> {
        Box::pin(async move {
            self.tokens
                .put(id, record)
                .await
                .map(drop)
                .map_err(LogError::from("cannot keep a token"))
        })
    }

    fn remove_token<'a>(&'a self, id: &'a str) -> BoxFuture<'a, LogResult<()>> {
        Box::pin(async move {
            self.tokens
                .purge(id)
                .await
                .map_err(LogError::from("cannot revoke a token"))
        })
    }
}
