//! Records posted to any node reach the shard's owner through the log.
//!
//! The node a client posts to appends the request to the shard's input, with a message
//! id made of the tenant and the request's idempotency key (the client's, or a digest
//! of the request): a client that retries is stored once. It then asks the owner for
//! the answer over NATS request-reply (`spark.answer.SHARD`), again until one comes:
//! the owner answers from the requests it ran, or runs the input itself (fetched by its
//! sequence) through the tenant's owner, where the idempotency key makes a request
//! seen before a repeat, not a second run. The owner also reads its shards' input as it
//! comes, so a request whose client went away is still run.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use spark_host::IngestRequest;
use tokio::sync::{Semaphore, watch};

use super::Cluster;
use super::log::Input;
use super::shards::shard_of;
use crate::serve::errors::ApiError;

/// How long one ask waits for the owner's answer before asking again (the owner may
/// have died: the next owner answers).
const ASK_EVERY: Duration = Duration::from_secs(5);
/// Answers kept in memory per node, for asks that come after the owner ran a request.
const KEPT_ANSWERS: usize = 100_000;
/// Inputs of one shard run at once at most by its reader (each is queued on its
/// tenant's owner, where requests waiting together are committed together).
const READ_AHEAD: usize = 512;

/// What the asking node sends.
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    tenant: String,
    key: String,
    sequence: u64,
}

/// The owner's answer: the HTTP status and body to send the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl Answer {
    fn from_result(result: Result<Value, ApiError>) -> Self {
        match result {
            Ok(body) => Answer {
                status: 200,
                body,
                retry_after: None,
            },
            Err(error) => Answer {
                status: error.status.as_u16(),
                body: serde_json::json!({"error": error.kind, "message": error.message}),
                retry_after: error.retry_after,
            },
        }
    }

    /// Whether asking again may give another answer (the owner was busy or stopping).
    fn is_passing(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS.as_u16()
            || self.status == StatusCode::SERVICE_UNAVAILABLE.as_u16()
    }
}

/// The idempotency key a request is run under: the client's, or a digest of what it
/// asks (tenant, model, time and body), so that the same request sent twice is stored
/// once in the input.
pub fn request_key(
    tenant: &str,
    model: &str,
    now: Option<i64>,
    body: &[u8],
    client_key: Option<String>,
) -> String {
    client_key.unwrap_or_else(|| {
        let mut digest = Sha256::new();
        for part in [
            tenant.as_bytes(),
            model.as_bytes(),
            now.unwrap_or(i64::MIN).to_string().as_bytes(),
        ] {
            digest.update(part);
            digest.update([0]);
        }
        digest.update(body);
        let hex: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("request-{hex}")
    })
}

/// A client's request: appended to the input, then answered by the shard's owner.
pub async fn post(cluster: &Cluster, input: Input, deadline: Instant) -> Answer {
    let shard = shard_of(&input.tenant);
    // A NATS header's value: idempotency keys are printable ASCII (the API checks).
    let id = format!("{}/{}", input.tenant, input.key);
    let sequence = loop {
        match cluster.log.publish_input(shard, &id, &input).await {
            Ok(sequence) => break sequence,
            Err(error) if Instant::now() + ASK_EVERY < deadline => {
                tracing::debug!("records for `{}` sent again: {error}", input.tenant);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return unavailable(&error.0),
        }
    };
    let ask = serde_json::to_vec(&Ask {
        tenant: input.tenant.clone(),
        key: input.key.clone(),
        sequence,
    })
    .expect("an ask is always JSON");
    loop {
        let asked = tokio::time::timeout(
            ASK_EVERY,
            cluster
                .nats
                .request(format!("spark.answer.{shard}"), ask.clone().into()),
        )
        .await;
        if let Ok(Ok(reply)) = asked
            && let Ok(answer) = serde_json::from_slice::<Answer>(&reply.payload)
            && !answer.is_passing()
        {
            return answer;
        }
        if Instant::now() + ASK_EVERY >= deadline {
            return unavailable(
                "the records are stored but their tenant's owner did not answer in time; \
                 send the request again with the same Idempotency-Key for its answer",
            );
        }
        // No owner yet (a takeover under way), or it was busy: ask again shortly.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn unavailable(message: &str) -> Answer {
    Answer {
        status: 503,
        body: serde_json::json!({"error": "unavailable", "message": message}),
        retry_after: Some(2),
    }
}

/// The owner's side: answers asks for its shards, and reads their input.
#[derive(Default)]
pub struct Answers {
    state: Mutex<AnswerState>,
}

#[derive(Default)]
struct AnswerState {
    /// (tenant, key) -> answer, the oldest dropped first.
    done: HashMap<(String, String), Answer>,
    order: VecDeque<(String, String)>,
    /// Running now: whoever asks waits for it.
    running: HashMap<(String, String), watch::Receiver<Option<Answer>>>,
}

impl Answers {
    fn state(&self) -> std::sync::MutexGuard<'_, AnswerState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Runs one input through its tenant's owner, once per node at a time: a second asker
/// waits for the first run's answer.
async fn run_once(cluster: &Arc<Cluster>, input: Input) -> Answer {
    let id = (input.tenant.clone(), input.key.clone());
    let (done, mut waiting) = {
        let mut state = cluster.answers.state();
        if let Some(answer) = state.done.get(&id) {
            return answer.clone();
        }
        match state.running.get(&id) {
            Some(waiting) => (None, waiting.clone()),
            None => {
                let (done, waiting) = watch::channel(None);
                state.running.insert(id.clone(), waiting.clone());
                (Some(done), waiting)
            }
        }
    };
    let Some(done) = done else {
        return match waiting.wait_for(Option::is_some).await {
            Ok(answer) => answer.clone().expect("waited for an answer"),
            Err(_) => unavailable("the owner stopped"),
        };
    };
    let answer = Answer::from_result(run(cluster, &input).await);
    let mut state = cluster.answers.state();
    state.running.remove(&id);
    // Only runs are kept: a refused request (an unknown tenant or model, say) stored
    // nothing, and sent again it is tried again, as on a single node.
    if answer.status == 200 {
        state.done.insert(id.clone(), answer.clone());
        state.order.push_back(id);
        while state.order.len() > KEPT_ANSWERS {
            if let Some(old) = state.order.pop_front() {
                state.done.remove(&old);
            }
        }
    }
    let _ = done.send(Some(answer.clone()));
    answer
}

async fn run(cluster: &Arc<Cluster>, input: &Input) -> Result<Value, ApiError> {
    let owners = cluster.owners()?;
    let request = IngestRequest {
        model: input.model.clone(),
        body: input.body.clone().into_bytes(),
        idempotency_key: Some(input.key.clone()),
    };
    let answer = owners.ingest(&input.tenant, request, input.now).await?;
    serde_json::to_value(answer.report()).map_err(|error| ApiError::internal(error.to_string()))
}

/// Answers the asks for the shards this node owns, until the connection closes.
pub async fn serve_asks(cluster: Arc<Cluster>) {
    let mut asks = match cluster.nats.subscribe("spark.answer.*").await {
        Ok(asks) => asks,
        Err(error) => {
            tracing::error!("cannot take the cluster's asks: {error}");
            return;
        }
    };
    while let Some(message) = asks.next().await {
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let Ok(ask) = serde_json::from_slice::<Ask>(&message.payload) else {
            continue;
        };
        // Another node's shard: its owner answers.
        if !cluster.table.owns(&ask.tenant) {
            continue;
        }
        cluster.read_input(shard_of(&ask.tenant));
        let cluster = Arc::clone(&cluster);
        tokio::spawn(async move {
            let answer = match cluster.log.input(shard_of(&ask.tenant), ask.sequence).await {
                Ok(Some(input)) if input.tenant == ask.tenant && input.key == ask.key => {
                    run_once(&cluster, input).await
                }
                Ok(_) => Answer::from_result(Err(ApiError::bad_request(
                    "the input asked about is not in the cluster's log",
                ))),
                Err(error) => unavailable(&error.0),
            };
            let body = serde_json::to_vec(&answer).expect("an answer is always JSON");
            let _ = cluster.nats.publish(reply, body.into()).await;
        });
    }
}

/// Reads `shard`'s input after `after`, running each request through its tenant's
/// owner; notes how far every request is answered in the shard's log from time to
/// time. Ends when the shard is not this node's any more.
pub async fn read_input(cluster: Arc<Cluster>, shard: u32, after: u64) {
    let mut inputs = match cluster.log.inputs(shard, after).await {
        Ok(inputs) => inputs,
        Err(error) => {
            tracing::error!("shard {shard}: cannot read its input: {error}");
            return;
        }
    };
    let room = Arc::new(Semaphore::new(READ_AHEAD));
    let progress = Arc::new(Mutex::new(Progress {
        done_upto: after,
        running: BTreeSet::new(),
        noted: after,
    }));
    let mut note_every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            next = inputs.next() => {
                let Some(next) = next else { break };
                let (sequence, input) = match next {
                    Ok(next) => next,
                    Err(error) => {
                        tracing::warn!("shard {shard}: reading its input: {error}");
                        break;
                    }
                };
                if !cluster.table.owns_shard(shard) {
                    break;
                }
                let permit = Arc::clone(&room).acquire_owned().await.expect("never closed");
                progress.lock().expect("never poisoned").running.insert(sequence);
                let cluster = Arc::clone(&cluster);
                let progress = Arc::clone(&progress);
                tokio::spawn(async move {
                    // A busy tenant is asked again: every input is run.
                    loop {
                        if !run_once(&cluster, input.clone()).await.is_passing() {
                            let mut progress = progress.lock().expect("never poisoned");
                            progress.running.remove(&sequence);
                            progress.done_upto = progress.done_upto.max(sequence);
                            break;
                        }
                        if !cluster.table.owns_shard(shard) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    drop(permit);
                });
            }
            _ = note_every.tick() => {
                if !cluster.table.owns_shard(shard) {
                    break;
                }
                let (upto, noted) = {
                    let progress = progress.lock().expect("never poisoned");
                    (progress.answered_upto(), progress.noted)
                };
                if upto > noted && cluster.note_input_done(shard, upto).await.is_ok() {
                    progress.lock().expect("never poisoned").noted = upto;
                    cluster.note_reader_at(shard, upto);
                }
            }
        }
    }
}

/// How far a shard's input is answered.
struct Progress {
    /// The highest sequence answered.
    done_upto: u64,
    /// Sequences running now.
    running: BTreeSet<u64>,
    /// The last sequence noted in the log.
    noted: u64,
}

impl Progress {
    /// Every input up to this one is answered: below the first still running.
    fn answered_upto(&self) -> u64 {
        match self.running.first() {
            Some(first) => first.saturating_sub(1).min(self.done_upto),
            None => self.done_upto,
        }
    }
}
