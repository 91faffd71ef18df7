//! Tenant owners: each open tenant is held by one thread, its owner, which does all of
//! the tenant's work in turn.
//!
//! The library's rule is one writer per tenant; the server keeps it by giving each
//! tenant an owner thread that takes jobs from a bounded queue. Requests never wait for
//! one another's locks: a request's handler puts a job in the queue and awaits the
//! answer, so the async workers never run wasm nor touch the disk. Ingest jobs that are
//! waiting together run as one group and are made durable by one flush (group commit),
//! which is what lets many clients posting one record each go faster than one disk sync
//! per record. Between jobs, and when the queue is quiet, the owner does the tenant's
//! background work (`background.rs`).
//!
//! Tenants open on first use and close when idle, or when more than `max_open` are open
//! (the least recently used first): closing is dropping the queue's sender; the owner
//! finishes what is queued, then drops the tenant.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use spark_host::{
    Destinations, Error, IngestAnswer, IngestRequest, Rerendered, SendReport, Spark, Tenant,
};
use tokio::sync::oneshot;

use super::background::Background;
use super::errors::ApiError;
use super::flusher::Flusher;
use super::metrics::Metrics;
use super::sender::SendJob;

/// Requests of one group at most, and the bytes of their bodies at most: a group is
/// committed at once, and an answer waits for its whole group.
const MAX_GROUP_REQUESTS: usize = 256;
const MAX_GROUP_BYTES: usize = 16 << 20;

/// How often an owner whose queue is quiet looks at its background work.
const TICK: Duration = Duration::from_millis(250);

/// Work for a tenant's owner, given the tenant (or why it could not be opened).
pub type Work = Box<dyn FnOnce(Result<&mut Tenant, Error>) + Send>;

/// A job in an owner's queue.
enum Job {
    Ingest {
        request: IngestRequest,
        /// The logical time the request gave, if any.
        now: Option<i64>,
        reply: oneshot::Sender<Result<IngestAnswer, Error>>,
    },
    Work {
        work: Work,
        /// Whether it may change the tenant's set-up (settings, modules), which
        /// the background work then looks at again.
        changes_setup: bool,
    },
    /// For the tenant's sender.
    Outbox(OutboxJob),
}

/// What the API asks of a tenant's outbox, done by its sender.
pub enum OutboxJob {
    /// Send now, through the tenant's transports.
    SendNow(oneshot::Sender<Result<SendReport, Error>>),
    /// Make failed items (those of the ids, or all) pending again.
    Retry(Option<Vec<u64>>, oneshot::Sender<Result<u64, Error>>),
    /// Remove unsent items; strictly (unknown and sent ids refused) or not (passed by).
    Cancel {
        ids: Vec<u64>,
        strict: bool,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    /// Render queued mails again (those of the ids, or all): rendered by the owner,
    /// which has the templates and the ledger, written by the sender.
    Rerender(Option<Vec<u64>>, oneshot::Sender<Result<Rerendered, Error>>),
}

impl Job {
    /// Answers the job with `error` instead of doing it.
    fn fail(self, error: Error) {
        match self {
            Job::Ingest { reply, .. } => drop(reply.send(Err(error))),
            Job::Work { work, .. } => work(Err(error)),
            Job::Outbox(OutboxJob::SendNow(reply)) => drop(reply.send(Err(error))),
            Job::Outbox(OutboxJob::Retry(_, reply)) => drop(reply.send(Err(error))),
            Job::Outbox(OutboxJob::Cancel { reply, .. }) => drop(reply.send(Err(error))),
            Job::Outbox(OutboxJob::Rerender(_, reply)) => drop(reply.send(Err(error))),
        }
    }
}

/// The answer a job sends back, as the API's; `who` stopped if none comes.
async fn answered<T>(
    answer: oneshot::Receiver<Result<T, Error>>,
    who: &str,
) -> Result<T, ApiError> {
    answer
        .await
        .map_err(|_| ApiError::internal(format!("the tenant's {who} stopped")))?
        .map_err(ApiError::from)
}

/// How the owners are run.
#[derive(Debug, Clone)]
pub struct OwnerSettings {
    /// Tenants open at once at most.
    pub max_open: usize,
    /// Jobs waiting per tenant at most; more are refused with 429.
    pub queue: usize,
    /// A tenant with nothing to do for this long is closed.
    pub idle: Duration,
}

struct Handle {
    jobs: SyncSender<Job>,
    last_used: Instant,
    /// Tells this owner from a later one of the same tenant.
    generation: u64,
    thread: JoinHandle<()>,
}

struct Registry {
    open: HashMap<String, Handle>,
    next_generation: u64,
    /// Set when the server stops: no owner is started after.
    closed: bool,
    /// Owners closed (evicted or stopped) whose threads are still finishing.
    closing: Vec<JoinHandle<()>>,
}

/// Says whether this server may open a tenant now (on a cluster, only the tenants of
/// the shards it owns), or why not.
pub type Gate = Arc<dyn Fn(&str) -> Result<(), ApiError> + Send + Sync>;

/// The owners of the open tenants.
pub struct Owners {
    spark: Arc<Spark>,
    settings: OwnerSettings,
    metrics: Arc<Metrics>,
    registry: Mutex<Registry>,
    gate: std::sync::OnceLock<Gate>,
    /// Why a tenant's store broke (a write failed part-way), once one did: the server
    /// stops then, to be started again (see [`Owners::broken`]).
    broken: tokio::sync::watch::Sender<Option<String>>,
}

impl Owners {
    pub fn new(spark: Arc<Spark>, settings: OwnerSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            spark,
            settings,
            metrics,
            registry: Mutex::new(Registry {
                open: HashMap::new(),
                next_generation: 0,
                closed: false,
                closing: Vec::new(),
            }),
            gate: std::sync::OnceLock::new(),
            broken: tokio::sync::watch::Sender::new(None),
        })
    }

    /// Resolves once a tenant's store broke, with why: a write failed part-way (a disk
    /// that failed, or filled past the reserve), after which the store writes nothing
    /// more in this process and keeps its files locked. The next process to open it
    /// rolls the failed write back, so the server stops (its other tenants' requests
    /// answered first) and exits with an error, for its supervisor to start it again
    /// (the systemd unit in the README restarts it on failure).
    pub async fn broken(&self) -> String {
        let mut broken = self.broken.subscribe();
        match broken.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The owners are gone: nothing will break.
            Err(_) => std::future::pending().await,
        }
    }

    /// Lets `gate` say which tenants may be opened, from now on.
    pub fn set_gate(&self, gate: Gate) {
        let _ = self.gate.set(gate);
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Nothing panics while holding the lock; a poisoned one holds good data.
        self.registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Ingests one request on `tenant`'s owner, grouped with the requests waiting
    /// beside it.
    pub async fn ingest(
        self: &Arc<Self>,
        tenant: &str,
        request: IngestRequest,
        now: Option<i64>,
    ) -> Result<IngestAnswer, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(
            tenant,
            false,
            Job::Ingest {
                request,
                now,
                reply,
            },
        )?;
        answered(answer, "owner").await
    }

    /// Sends `tenant`'s outbox now, through its transports, on its sender.
    pub async fn send_outbox(self: &Arc<Self>, tenant: &str) -> Result<SendReport, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(tenant, false, Job::Outbox(OutboxJob::SendNow(reply)))?;
        answered(answer, "sender").await
    }

    /// Makes `tenant`'s failed outbox items (of `ids`, or all) pending again.
    pub async fn retry_outbox(
        self: &Arc<Self>,
        tenant: &str,
        ids: Option<Vec<u64>>,
    ) -> Result<u64, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(tenant, false, Job::Outbox(OutboxJob::Retry(ids, reply)))?;
        answered(answer, "sender").await
    }

    /// Removes `tenant`'s unsent outbox items of `ids`, on its sender: `strict`
    /// refuses an unknown or sent id (and changes nothing), else those are passed by.
    pub async fn cancel_outbox(
        self: &Arc<Self>,
        tenant: &str,
        ids: Vec<u64>,
        strict: bool,
    ) -> Result<u64, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job = OutboxJob::Cancel { ids, strict, reply };
        self.submit(tenant, false, Job::Outbox(job))?;
        answered(answer, "sender").await
    }

    /// Renders `tenant`'s queued mails (of `ids`, or all) again: on its owner, then
    /// written by its sender.
    pub async fn rerender_outbox(
        self: &Arc<Self>,
        tenant: &str,
        ids: Option<Vec<u64>>,
    ) -> Result<Rerendered, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(tenant, false, Job::Outbox(OutboxJob::Rerender(ids, reply)))?;
        answered(answer, "sender").await
    }

    /// Runs `work`, which only reads, on `tenant`'s owner and returns what it
    /// returns. An unknown tenant is a 404.
    pub async fn call<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        create: bool,
        work: impl FnOnce(&mut Tenant) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run(tenant, create, false, work).await
    }

    /// Runs `work`, which may change the tenant's set-up or data, on `tenant`'s owner
    /// and returns what it returns. `create` makes the tenant if it does not exist
    /// (setting a tenant up); otherwise an unknown tenant is a 404.
    pub async fn call_setup<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        create: bool,
        work: impl FnOnce(&mut Tenant) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run(tenant, create, true, work).await
    }

    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        create: bool,
        changes_setup: bool,
        work: impl FnOnce(&mut Tenant) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |tenant| {
            let _ = reply.send(tenant.and_then(work));
        });
        self.submit(
            tenant,
            create,
            Job::Work {
                work,
                changes_setup,
            },
        )?;
        answered(answer, "owner").await
    }

    /// Puts `job` in `tenant`'s queue, starting an owner if none is open.
    fn submit(self: &Arc<Self>, tenant: &str, create: bool, mut job: Job) -> Result<(), ApiError> {
        spark_host::validate_tenant_name(tenant)?;
        if let Some(gate) = self.gate.get() {
            gate(tenant)?;
        }
        // An owner that closes between our taking its sender and sending gives the job
        // back; the next turn starts a new owner.
        for _ in 0..3 {
            let jobs = {
                let mut registry = self.registry();
                if registry.closed {
                    return Err(ApiError::shutting_down());
                }
                match registry.open.get_mut(tenant) {
                    Some(handle) => {
                        handle.last_used = Instant::now();
                        handle.jobs.clone()
                    }
                    None => {
                        if !create && !self.exists(tenant) {
                            return Err(Error::UnknownTenant {
                                tenant: tenant.to_owned(),
                                data_dir: self.spark.data_dir().to_owned(),
                            }
                            .into());
                        }
                        self.start(&mut registry, tenant)?
                    }
                }
            };
            match jobs.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(_)) => {
                    self.metrics.queue_full.inc();
                    return Err(ApiError::busy(tenant));
                }
                Err(TrySendError::Disconnected(returned)) => job = returned,
            }
        }
        Err(ApiError::busy(tenant))
    }

    fn exists(&self, tenant: &str) -> bool {
        self.spark.data_dir().join("tenants").join(tenant).is_dir()
    }

    /// Starts an owner for `tenant`, closing the least recently used one first if as
    /// many as allowed are open.
    fn start(
        self: &Arc<Self>,
        registry: &mut Registry,
        tenant: &str,
    ) -> Result<SyncSender<Job>, ApiError> {
        if registry.open.len() >= self.settings.max_open
            && let Some(oldest) = registry
                .open
                .iter()
                .min_by_key(|(_, handle)| handle.last_used)
                .map(|(name, _)| name.clone())
            && let Some(handle) = registry.open.remove(&oldest)
        {
            tracing::debug!(
                "closing tenant `{oldest}`: {} are open",
                self.settings.max_open
            );
            registry.closing.push(handle.thread);
        }
        registry.closing.retain(|thread| !thread.is_finished());
        let (jobs, queue) = std::sync::mpsc::sync_channel(self.settings.queue);
        let generation = registry.next_generation;
        registry.next_generation += 1;
        let owners = Arc::clone(self);
        let name = tenant.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("tenant {tenant}"))
            .spawn(move || owners.own(&name, generation, queue))
            .map_err(|error| ApiError::internal(format!("cannot start an owner: {error}")))?;
        registry.open.insert(
            tenant.to_owned(),
            Handle {
                jobs: jobs.clone(),
                last_used: Instant::now(),
                generation,
                thread,
            },
        );
        self.metrics.tenants_open.set(registry.open.len() as i64);
        Ok(jobs)
    }

    /// The owner's thread: opens the tenant, then does its jobs and its background
    /// work until it is closed or idle.
    fn own(&self, name: &str, generation: u64, queue: Receiver<Job>) {
        let mut tenant = match self.open_tenant(name) {
            Ok(tenant) => tenant,
            Err(error) => {
                tracing::error!("cannot open tenant `{name}`: {error}");
                self.forget(name, generation);
                // Each waiting job gets the error (the first the very one).
                let again = again(&error);
                let mut error = Some(error);
                while let Ok(job) = queue.try_recv() {
                    job.fail(error.take().unwrap_or_else(&again));
                }
                return;
            }
        };
        let started = Background::new(&tenant, &self.metrics).and_then(|background| {
            let flusher = Flusher::start(name)
                .map_err(|error| Error::Engine(format!("cannot start a flusher: {error}")))?;
            Ok((background, flusher))
        });
        let (mut background, flusher) = match started {
            Ok(started) => started,
            Err(error) => {
                tracing::error!("cannot start tenant `{name}`'s background work: {error}");
                self.forget(name, generation);
                while let Ok(job) = queue.try_recv() {
                    job.fail(Error::Storage(error.to_string()));
                }
                return;
            }
        };
        let mut quiet_since = Instant::now();
        let mut next: Option<Job> = None;
        loop {
            background.run_due(&mut tenant);
            // A write failed part-way (by a job, the background work or the sender):
            // this process can do nothing more with the store.
            if tenant.is_broken() {
                let why = format!(
                    "tenant `{name}`'s store failed a write and writes nothing more in this \
                     process"
                );
                tracing::error!("{why}: the server stops, to be started again");
                self.broken.send_replace(Some(why));
                break;
            }
            let job = match next.take() {
                Some(job) => job,
                None => match queue.recv_timeout(TICK) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        // Quiet for a moment: its module instances go back to the
                        // process's pool, for busier tenants.
                        tenant.rest();
                        if quiet_since.elapsed() >= self.settings.idle
                            && !background.has_work_soon()
                            && self.close_if_quiet(name, generation, &queue, &mut next)
                        {
                            break;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            quiet_since = Instant::now();
            match job {
                Job::Work {
                    work,
                    changes_setup,
                } => {
                    work(Ok(&mut tenant));
                    if changes_setup {
                        background.note_setup_changed(&tenant);
                    }
                }
                Job::Outbox(OutboxJob::SendNow(reply)) => {
                    let destinations = tenant
                        .settings()
                        .and_then(|settings| Destinations::new(&settings, None, []));
                    match destinations {
                        Ok(destinations) => background.send(SendJob::SendNow {
                            destinations,
                            reply,
                        }),
                        Err(error) => drop(reply.send(Err(error))),
                    }
                }
                Job::Outbox(OutboxJob::Retry(ids, reply)) => {
                    background.send(SendJob::Retry { ids, reply });
                }
                Job::Outbox(OutboxJob::Cancel { ids, strict, reply }) => {
                    background.send(SendJob::Cancel { ids, strict, reply });
                }
                Job::Outbox(OutboxJob::Rerender(ids, reply)) => {
                    // Rendered here, with the owner's templates and ledger; written by
                    // the sender, the one writer of items, which leaves alone a mail
                    // it sent meanwhile.
                    match tenant.render_outbox(ids.as_deref()) {
                        Ok(rendering) => background.send(SendJob::Rerender { rendering, reply }),
                        Err(error) => drop(reply.send(Err(error))),
                    }
                }
                Job::Ingest {
                    request,
                    now,
                    reply,
                } => {
                    next = self.ingest_group(
                        &mut tenant,
                        &mut background,
                        &flusher,
                        &queue,
                        (request, now, reply),
                    );
                }
            }
        }
        // The answers waiting for a flush go, then the sender stops (after what it is
        // sending): the tenant's store closes after them.
        drop(flusher);
        drop(background);
        if let Err(error) = tenant.flush() {
            tracing::error!("tenant `{name}` did not flush as it closed: {error}");
        }
        tracing::debug!("tenant `{name}` closed");
    }

    /// Opens a tenant for an owner. An owner of the same tenant that was just closed
    /// may still hold it for a moment, so a tenant in use is tried again for a while.
    fn open_tenant(&self, name: &str) -> Result<Tenant, Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.spark.tenant(name) {
                Ok(mut tenant) => {
                    // Runs leave retries to the background work, and answer at once.
                    tenant.set_retry_wait(Duration::ZERO);
                    return Ok(tenant);
                }
                Err(Error::TenantInUse { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                result => return result,
            }
        }
    }

    /// Runs `first` with the ingest requests queued right behind it that share its
    /// logical time, as one group; answers each, through the `flusher` once the group
    /// is durable. Returns the job that ended the group, if one was taken from the
    /// queue.
    fn ingest_group(
        &self,
        tenant: &mut Tenant,
        background: &mut Background,
        flusher: &Flusher,
        queue: &Receiver<Job>,
        first: (
            IngestRequest,
            Option<i64>,
            oneshot::Sender<Result<IngestAnswer, Error>>,
        ),
    ) -> Option<Job> {
        let now = first.1;
        let mut bytes = first.0.body.len();
        let mut requests = vec![first.0];
        let mut replies = vec![first.2];
        let mut left = None;
        while requests.len() < MAX_GROUP_REQUESTS && bytes < MAX_GROUP_BYTES {
            match queue.try_recv() {
                Ok(Job::Ingest {
                    request,
                    now: theirs,
                    reply,
                }) if theirs == now => {
                    bytes += request.body.len();
                    requests.push(request);
                    replies.push(reply);
                }
                Ok(other) => {
                    left = Some(other);
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        self.metrics.group_size.observe(requests.len() as f64);
        let name = tenant.name().to_owned();
        let mut note = |answer: &Result<IngestAnswer, Error>| {
            if let Ok(IngestAnswer::Ran(report)) = answer {
                self.metrics.count_run(&name, report);
                background.note_run(report);
            }
        };
        match tenant.ingest_group_unflushed(&requests, now) {
            Ok((answers, flush)) => {
                answers.iter().for_each(&mut note);
                flusher.answer_after(flush, replies.into_iter().zip(answers).collect());
            }
            Err(error) if is_too_large(&error) && requests.len() > 1 => {
                // A change too large for the cluster's log: one request's records made
                // it (runs commit in groups that fit, so one record's work did). Each
                // request alone, so that only that one is refused and the others run.
                tracing::warn!(
                    "tenant `{}`: a group of requests is run one by one: {error}",
                    tenant.name()
                );
                for (request, reply) in requests.iter().zip(replies) {
                    let result = tenant
                        .ingest_group(std::slice::from_ref(request), now)
                        .and_then(|mut answers| answers.pop().expect("one answer a request"));
                    note(&result);
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                if is_too_large(&error) {
                    // A group of one (larger ones are split above): the request's own
                    // fault, told to its client (413).
                    tracing::warn!("tenant `{}`: a request was refused: {error}", tenant.name());
                } else {
                    tracing::error!(
                        "tenant `{}`: a group of requests failed: {error}",
                        tenant.name()
                    );
                }
                let again = again(&error);
                let mut error = Some(error);
                for reply in replies {
                    let _ = reply.send(Err(error.take().unwrap_or_else(&again)));
                }
            }
        }
        left
    }

    /// Closes an idle owner: under the registry's lock, so that no job can be given to
    /// it after, it leaves the registry if its queue is empty. A job that came in the
    /// meantime is kept in `next` and the owner stays.
    fn close_if_quiet(
        &self,
        name: &str,
        generation: u64,
        queue: &Receiver<Job>,
        next: &mut Option<Job>,
    ) -> bool {
        let mut registry = self.registry();
        match queue.try_recv() {
            Ok(job) => {
                *next = Some(job);
                false
            }
            Err(_) => {
                if registry
                    .open
                    .get(name)
                    .is_some_and(|handle| handle.generation == generation)
                {
                    registry.open.remove(name);
                    self.metrics.tenants_open.set(registry.open.len() as i64);
                }
                true
            }
        }
    }

    /// Removes an owner that failed to open from the registry.
    fn forget(&self, name: &str, generation: u64) {
        let mut registry = self.registry();
        if registry
            .open
            .get(name)
            .is_some_and(|handle| handle.generation == generation)
        {
            registry.open.remove(name);
            self.metrics.tenants_open.set(registry.open.len() as i64);
        }
    }

    /// The names of the open tenants.
    pub fn open_tenants(&self) -> Vec<String> {
        let mut names: Vec<String> = self.registry().open.keys().cloned().collect();
        names.sort();
        names
    }

    /// Gives `tenant`'s owner a look at its background work now, opening the tenant if
    /// needed (the sweep over closed tenants does this).
    pub fn wake(self: &Arc<Self>, tenant: &str) {
        let work: Work = Box::new(|_| {});
        let job = Job::Work {
            work,
            changes_setup: false,
        };
        if let Err(error) = self.submit(tenant, false, job) {
            tracing::debug!("tenant `{tenant}` not woken: {}", error.message);
        }
    }

    /// Closes the owners of the tenants `which` picks (the tenants of a shard this
    /// node stops owning): their queued work is done (or refused by the store), then
    /// they close. Waits up to `patience`; whether all closed in time.
    pub fn close_where(&self, which: &dyn Fn(&str) -> bool, patience: Duration) -> bool {
        let threads: Vec<JoinHandle<()>> = {
            let mut registry = self.registry();
            let names: Vec<String> = registry
                .open
                .keys()
                .filter(|name| which(name))
                .cloned()
                .collect();
            let threads = names
                .iter()
                .filter_map(|name| registry.open.remove(name))
                .map(|handle| handle.thread)
                .collect();
            self.metrics.tenants_open.set(registry.open.len() as i64);
            threads
        };
        join_within(threads, patience)
    }

    /// Stops every owner: no new work is taken, queued work is done, every tenant is
    /// flushed and closed. Waits up to `patience`; whether all closed in time.
    pub fn close_all(&self, patience: Duration) -> bool {
        let threads: Vec<JoinHandle<()>> = {
            let mut registry = self.registry();
            registry.closed = true;
            let mut threads: Vec<JoinHandle<()>> = registry
                .open
                .drain()
                .map(|(_, handle)| handle.thread)
                .collect();
            threads.append(&mut registry.closing);
            threads
        };
        join_within(threads, patience)
    }
}

/// What failed: the cause of a run stopped part-way, or the error itself.
fn cause_of(error: &Error) -> &Error {
    match error {
        Error::Interrupted { cause, .. } => cause,
        other => other,
    }
}

/// Whether `error` is a change larger than the cluster's log takes.
fn is_too_large(error: &Error) -> bool {
    matches!(cause_of(error), Error::ChangeTooLarge(_))
}

/// Makes `error` again for each other job it fails (an `Error` is not `Clone`), as
/// its client should hear it: the cluster's refusal stays one, so that every client
/// is told to try again (503), a change too large for it stays one (413), and so do a
/// full disk (507) and a failed write; any other error is the store's.
pub(super) fn again(error: &Error) -> impl Fn() -> Error + use<> {
    let cause = cause_of(error);
    let disk_full = match cause {
        Error::DiskFull {
            path,
            free_bytes,
            needed_bytes,
        } => Some((path.clone(), *free_bytes, *needed_bytes)),
        _ => None,
    };
    let io = match cause {
        Error::Io { what, path, error } => {
            Some((*what, path.clone(), error.kind(), error.to_string()))
        }
        _ => None,
    };
    let journal = matches!(cause, Error::Journal(_));
    let too_large = is_too_large(error);
    let message = error.to_string();
    move || {
        if let Some((path, free_bytes, needed_bytes)) = &disk_full {
            Error::DiskFull {
                path: path.clone(),
                free_bytes: *free_bytes,
                needed_bytes: *needed_bytes,
            }
        } else if let Some((what, path, kind, text)) = &io {
            Error::Io {
                what,
                path: path.clone(),
                error: std::io::Error::new(*kind, text.clone()),
            }
        } else if journal {
            Error::Journal(message.clone())
        } else if too_large {
            Error::ChangeTooLarge(message.clone())
        } else {
            Error::Storage(message.clone())
        }
    }
}

/// Waits for `threads` to finish, up to `patience`; whether all did.
fn join_within(threads: Vec<JoinHandle<()>>, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    for thread in threads {
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = thread.join();
    }
    true
}
