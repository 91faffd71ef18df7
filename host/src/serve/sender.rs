//! A tenant's sender: a thread of its own that sends the tenant's outbox, so that a
//! receiver that is slow or down (30 s per attempt, before the route is given up)
//! never holds up the tenant's owner and the requests queued behind it.
//!
//! The owner wakes it when new items may wait (a run made deliveries, the settings
//! changed) and hands it the API's outbox requests; everything that marks the outbox
//! happens here, one thing at a time. After a send that failed through a route, it
//! waits longer each time (half a second, doubling, up to a minute) before it tries
//! again; what waits for a route without a transport waits for the settings to change
//! (which wakes it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use spark_host::{
    DEFAULT_CONCURRENCY, Destinations, Error, OutboxSender, Rerendered, Rerendering, SendReport,
};
use tokio::sync::oneshot;

use super::metrics::Metrics;

/// The wait after a send that failed doubles from the first to the last.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const LAST_BACKOFF: Duration = Duration::from_secs(60);
/// How long new items wait to be sent with those that follow them: a stream of small
/// groups makes a few sends a second, each reading the outbox once, not one per group.
const GATHER: Duration = Duration::from_millis(200);
/// How long a quiet sender sleeps between looks at its queue.
const QUIET: Duration = Duration::from_secs(60);

/// What the owner asks of the sender.
pub enum SendJob {
    /// Items may wait: send them through these destinations (the tenant's settings
    /// now; `None` when they name no usable transport).
    Wake(Option<Destinations>),
    /// Send now and answer with the report (`POST .../outbox/send`).
    SendNow {
        destinations: Destinations,
        reply: oneshot::Sender<Result<SendReport, Error>>,
    },
    /// Make failed items pending again (`POST .../outbox/retry`).
    Retry {
        ids: Option<Vec<u64>>,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    /// Remove unsent items (`POST .../outbox/cancel`, and the items of forgotten
    /// events): `strict` refuses unknown and sent ones, else they are passed by.
    Cancel {
        ids: Vec<u64>,
        strict: bool,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    /// Write mails rendered again by the owner (`POST .../outbox/rerender`).
    Rerender {
        rendering: Rerendering,
        reply: oneshot::Sender<Result<Rerendered, Error>>,
    },
}

/// A running sender; stopped (after what it is sending) when dropped.
pub struct Sender {
    jobs: Option<mpsc::Sender<SendJob>>,
    thread: Option<JoinHandle<()>>,
    /// Whether items wait that could go: the tenant is not closed for being idle then.
    busy: Arc<AtomicBool>,
}

impl Sender {
    pub fn start(
        tenant: &str,
        outbox: OutboxSender,
        destinations: Option<Destinations>,
        metrics: &Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let busy = Arc::new(AtomicBool::new(true));
        let mut state = State {
            tenant: tenant.to_owned(),
            outbox,
            metrics: Arc::clone(metrics),
            destinations,
            // On opening, nothing is known: look once.
            waiting: true,
            next_send: Instant::now(),
            backoff: FIRST_BACKOFF,
            busy: Arc::clone(&busy),
        };
        let thread = std::thread::Builder::new()
            .name(format!("sender {tenant}"))
            .spawn(move || state.run(&queue))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
            busy,
        })
    }

    pub fn submit(&self, job: SendJob) {
        if let Some(jobs) = &self.jobs {
            // A sender that stopped (it cannot, but for a panic) drops the job, and
            // its reply with it: the request is answered that the owner stopped.
            let _ = jobs.send(job);
        }
    }

    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("a sender thread panicked");
        }
    }
}

struct State {
    tenant: String,
    outbox: OutboxSender,
    metrics: Arc<Metrics>,
    destinations: Option<Destinations>,
    /// Whether the outbox may hold items that can be sent: set when woken, cleared once
    /// a send left nothing but items whose route has no transport (the settings
    /// changing wakes it again).
    waiting: bool,
    next_send: Instant,
    backoff: Duration,
    busy: Arc<AtomicBool>,
}

impl State {
    fn run(&mut self, queue: &mpsc::Receiver<SendJob>) {
        loop {
            let wait = if self.waiting {
                self.next_send.saturating_duration_since(Instant::now())
            } else {
                QUIET
            };
            match queue.recv_timeout(wait) {
                Ok(job) => {
                    // Every job waiting is taken before anything is sent: wakes that
                    // piled up while a send went on make one send, not one each.
                    self.take(job);
                    while let Ok(job) = queue.try_recv() {
                        self.take(job);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.waiting && Instant::now() >= self.next_send {
                self.send();
            }
            self.busy.store(self.waiting, Ordering::Relaxed);
        }
    }

    fn take(&mut self, job: SendJob) {
        match job {
            SendJob::Wake(destinations) => {
                self.destinations = destinations;
                if !self.waiting {
                    // Sending reads the whole outbox: items that come in a stream are
                    // sent a moment later, together, rather than a read per group.
                    self.waiting = true;
                    self.next_send = self.next_send.max(Instant::now() + GATHER);
                }
            }
            SendJob::SendNow {
                destinations,
                reply,
            } => {
                let report = self
                    .outbox
                    .send(&destinations, DEFAULT_CONCURRENCY, &mut |_, _| {});
                if let Ok(report) = &report {
                    self.settle(report);
                }
                let _ = reply.send(report);
            }
            SendJob::Retry { ids, reply } => {
                let retried = self.outbox.retry(ids.as_deref());
                if retried.as_ref().is_ok_and(|count| *count > 0) {
                    self.waiting = true;
                }
                let _ = reply.send(retried);
            }
            SendJob::Cancel { ids, strict, reply } => {
                let cancelled = if strict {
                    self.outbox.cancel(&ids)
                } else {
                    self.outbox.cancel_unsent(&ids)
                };
                let _ = reply.send(cancelled);
            }
            SendJob::Rerender { rendering, reply } => {
                let _ = reply.send(self.outbox.rerender(rendering));
            }
        }
    }

    /// Sends what waits through the destinations it has.
    fn send(&mut self) {
        let Some(destinations) = &self.destinations else {
            // Settings that name no usable transport: until they change.
            self.waiting = false;
            return;
        };
        match self
            .outbox
            .send(destinations, DEFAULT_CONCURRENCY, &mut |_, _| {})
        {
            Ok(report) => self.settle(&report),
            Err(error @ Error::Journal(_)) => {
                // On a cluster, the log did not take the marks (the tenant is moving, or
                // the log elects a leader): not the receiver's fault, and settled within
                // seconds (this sender is closed if the tenant leaves), so again soon
                // rather than after a growing wait.
                tracing::warn!(
                    "tenant `{}`: sending the outbox waits for the cluster: {error}",
                    self.tenant
                );
                self.waiting = true;
                self.next_send = Instant::now() + FIRST_BACKOFF;
            }
            Err(error) => {
                tracing::error!(
                    "tenant `{}`: sending the outbox failed: {error}",
                    self.tenant
                );
                self.back_off();
            }
        }
    }

    /// Takes note of what a send did: done, try again later, or nowhere to send to.
    fn settle(&mut self, report: &SendReport) {
        self.metrics.count_send(report);
        for problem in &report.problems {
            tracing::warn!(
                "tenant `{}`: outbox item {} was not sent: {}",
                self.tenant,
                problem.id,
                spark_host::printable(&problem.why)
            );
        }
        if report.failed > 0 || report.skipped > 0 {
            // The route's fault (a receiver down): again later, waiting longer each time.
            self.back_off();
        } else {
            // Sent, but for items whose route has no transport, which wait for the
            // settings to change.
            self.waiting = false;
            self.backoff = FIRST_BACKOFF;
        }
    }

    fn back_off(&mut self) {
        self.waiting = true;
        self.next_send = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(LAST_BACKOFF);
    }
}
