//! A tenant's background work, done by its owner between jobs: deliveries whose retry
//! is due are retried, `process-sources` and `generate` run on the tenant's schedule,
//! requests remembered by idempotency key are forgotten after a day, and the tenant's
//! sender (`sender.rs`, a thread of its own) is woken when there may be mail to send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spark_host::{Destinations, Error, RunReport, Tenant, wall_clock_ms};

use super::metrics::Metrics;
use super::sender::{SendJob, Sender};

/// How long a request is remembered by its idempotency key: a client retrying for
/// longer than a day is sending a new request.
const REMEMBER_REQUESTS_MS: i64 = 24 * 60 * 60 * 1000;
/// How often the forgetting is done.
const FORGET_EVERY: Duration = Duration::from_secs(60 * 60);

/// What an owner knows of its tenant's background work.
pub struct Background {
    tenant: String,
    metrics: Arc<Metrics>,
    /// When the next pending delivery is due (wall-clock unix ms); `None` if none is,
    /// and stale (to read again) after a run that may have left some.
    next_retry_at: Option<i64>,
    retry_stale: bool,
    /// When the next scheduled job is due (wall-clock unix ms), if any is scheduled;
    /// stale after the settings changed or a job ran.
    next_scheduled_at: Option<i64>,
    schedule_stale: bool,
    next_forget: Instant,
    /// Where the outbox goes, from the tenant's settings.
    destinations: Option<Destinations>,
    /// Stopped (after what it is sending) when the background is dropped, before the
    /// tenant closes.
    sender: Sender,
}

impl Background {
    pub fn new(tenant: &Tenant, metrics: &Arc<Metrics>) -> Result<Self, Error> {
        let destinations = destinations(tenant);
        let sender = Sender::start(
            tenant.name(),
            tenant.outbox_sender()?,
            destinations.clone(),
            metrics,
        )
        .map_err(|error| Error::Engine(format!("cannot start a sender: {error}")))?;
        Ok(Self {
            tenant: tenant.name().to_owned(),
            metrics: Arc::clone(metrics),
            next_retry_at: None,
            // On opening, nothing is known: look at everything once.
            retry_stale: true,
            next_scheduled_at: None,
            schedule_stale: true,
            next_forget: Instant::now(),
            destinations,
            sender,
        })
    }

    /// Hands a job to the tenant's sender.
    pub fn send(&self, job: SendJob) {
        self.sender.submit(job);
    }

    /// Takes note of a run: its deliveries may have filled the outbox, and its failed
    /// deliveries wait for a retry.
    pub fn note_run(&mut self, report: &RunReport) {
        if report.deliveries > 0 {
            self.sender.submit(SendJob::Wake(self.destinations.clone()));
        }
        if report.pending > 0 || report.retried > 0 {
            self.retry_stale = true;
        }
    }

    /// Takes note that the tenant's set-up may have changed (settings, modules): the
    /// outbox may go elsewhere now, and the schedule may be another.
    pub fn note_setup_changed(&mut self, tenant: &Tenant) {
        self.destinations = destinations(tenant);
        self.sender.submit(SendJob::Wake(self.destinations.clone()));
        self.retry_stale = true;
        self.schedule_stale = true;
    }

    /// Whether there is work due within a minute, which keeps the tenant open.
    pub fn has_work_soon(&self) -> bool {
        let soon = |at: Option<i64>| at.is_some_and(|at| at - wall_clock_ms() < 60_000);
        soon(self.next_retry_at) || soon(self.next_scheduled_at) || self.sender.is_busy()
    }

    /// Does the work that is due.
    pub fn run_due(&mut self, tenant: &mut Tenant) {
        self.retry_due(tenant);
        self.run_scheduled(tenant);
        if Instant::now() >= self.next_forget {
            self.next_forget = Instant::now() + FORGET_EVERY;
            if let Err(error) = tenant.forget_requests(wall_clock_ms() - REMEMBER_REQUESTS_MS) {
                tracing::error!(
                    "tenant `{}`: cannot forget old requests: {error}",
                    self.tenant
                );
            }
        }
    }

    fn retry_due(&mut self, tenant: &mut Tenant) {
        if self.retry_stale {
            match tenant.next_retry_at() {
                Ok(next) => {
                    self.next_retry_at = next;
                    self.retry_stale = false;
                }
                Err(error) => {
                    tracing::error!(
                        "tenant `{}`: cannot read pending deliveries: {error}",
                        self.tenant
                    );
                    return;
                }
            }
        }
        if self.next_retry_at.is_none_or(|at| at > wall_clock_ms()) {
            return;
        }
        match tenant.retry_due() {
            Ok(report) => self.ran("retries", &report),
            Err(error) => tracing::error!("tenant `{}`: retrying failed: {error}", self.tenant),
        }
        self.retry_stale = true;
    }

    fn run_scheduled(&mut self, tenant: &mut Tenant) {
        let now = wall_clock_ms();
        if self.schedule_stale {
            match tenant.next_scheduled_at(now) {
                Ok(next) => {
                    self.next_scheduled_at = next;
                    self.schedule_stale = false;
                }
                Err(error) => {
                    tracing::error!(
                        "tenant `{}`: cannot read its schedule: {error}",
                        self.tenant
                    );
                    return;
                }
            }
        }
        if self.next_scheduled_at.is_none_or(|at| at > now) {
            return;
        }
        self.schedule_stale = true;
        match tenant.run_scheduled(now) {
            Ok(ran) => {
                for (job, report) in ran {
                    match report {
                        Ok(report) => self.ran(job.name(), &report),
                        Err(error) => tracing::error!(
                            "tenant `{}`: scheduled {} failed: {error}",
                            self.tenant,
                            job.name()
                        ),
                    }
                }
            }
            Err(error) => {
                tracing::error!("tenant `{}`: scheduled runs failed: {error}", self.tenant);
            }
        }
    }

    /// Logs and counts a run of the background's own.
    fn ran(&mut self, what: &str, report: &RunReport) {
        tracing::info!(
            "tenant `{}`: {what}: {} records, {} new events, {} retried",
            self.tenant,
            report.records,
            report.new,
            report.retried
        );
        for problem in &report.problems {
            tracing::warn!("tenant `{}`: {problem}", self.tenant);
        }
        self.metrics.count_run(&self.tenant, report);
        self.note_run(report);
    }
}

/// Where `tenant`'s outbox goes, or `None` (logged) when its settings name a transport
/// that cannot be used.
fn destinations(tenant: &Tenant) -> Option<Destinations> {
    match tenant
        .settings()
        .and_then(|settings| Destinations::new(&settings, None, []))
    {
        Ok(destinations) => Some(destinations),
        Err(error) => {
            tracing::error!(
                "tenant `{}`: cannot send the outbox: {error}",
                tenant.name()
            );
            None
        }
    }
}
