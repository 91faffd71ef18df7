//! A tenant's background work, done by its owner between jobs: deliveries whose retry
//! is due are retried, `process-sources` and `generate` run on the tenant's schedule,
//! the outbox is sent through the tenant's transports (with the same once-each
//! guarantees and give-up rule as `spark outbox send`), and requests remembered by
//! idempotency key are forgotten after a day.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spark_host::{DEFAULT_CONCURRENCY, Destinations, RunReport, Tenant, wall_clock_ms};

use super::metrics::Metrics;

/// How long a request is remembered by its idempotency key: a client retrying for
/// longer than a day is sending a new request.
const REMEMBER_REQUESTS_MS: i64 = 24 * 60 * 60 * 1000;
/// How often the forgetting is done.
const FORGET_EVERY: Duration = Duration::from_secs(60 * 60);
/// The wait after a send that failed doubles from the first to the last.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const LAST_BACKOFF: Duration = Duration::from_secs(60);
/// How often an outbox that cannot be sent (no transport for a route) is looked at
/// again: the settings may have changed.
const UNROUTED_RECHECK: Duration = Duration::from_secs(60);

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
    /// Whether the outbox may hold items to send.
    outbox_waiting: bool,
    /// Whether what waits can go nowhere (no transport for its route).
    outbox_unroutable: bool,
    next_send: Instant,
    backoff: Duration,
    next_forget: Instant,
}

impl Background {
    pub fn new(tenant: &str, metrics: &Arc<Metrics>) -> Self {
        Self {
            tenant: tenant.to_owned(),
            metrics: Arc::clone(metrics),
            next_retry_at: None,
            // On opening, nothing is known: look at everything once.
            retry_stale: true,
            next_scheduled_at: None,
            schedule_stale: true,
            outbox_waiting: true,
            outbox_unroutable: false,
            next_send: Instant::now(),
            backoff: FIRST_BACKOFF,
            next_forget: Instant::now(),
        }
    }

    /// Takes note of a run: its deliveries may have filled the outbox, and its failed
    /// deliveries wait for a retry.
    pub fn note_run(&mut self, report: &RunReport) {
        if report.deliveries > 0 {
            self.outbox_waiting = true;
            self.outbox_unroutable = false;
        }
        if report.pending > 0 || report.retried > 0 {
            self.retry_stale = true;
        }
    }

    /// Takes note that the tenant's set-up changed (settings, modules): what could
    /// not be sent may go now.
    pub fn note_setup_changed(&mut self) {
        self.outbox_waiting = true;
        self.outbox_unroutable = false;
        self.next_send = Instant::now();
        self.retry_stale = true;
        self.schedule_stale = true;
    }

    /// Whether there is work due within a minute, which keeps the tenant open.
    pub fn has_work_soon(&self) -> bool {
        let soon = |at: Option<i64>| at.is_some_and(|at| at - wall_clock_ms() < 60_000);
        soon(self.next_retry_at)
            || soon(self.next_scheduled_at)
            || (self.outbox_waiting && !self.outbox_unroutable)
    }

    /// Does the work that is due.
    pub fn run_due(&mut self, tenant: &mut Tenant) {
        self.retry_due(tenant);
        self.run_scheduled(tenant);
        self.send_due(tenant);
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
            Ok(report) => {
                for problem in &report.problems {
                    tracing::warn!("tenant `{}`: {problem}", self.tenant);
                }
                self.metrics.count_run(&report);
                self.note_run(&report);
            }
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
        let ran = match tenant.run_scheduled(now) {
            Ok(ran) => ran,
            Err(error) => {
                tracing::error!("tenant `{}`: scheduled runs failed: {error}", self.tenant);
                return;
            }
        };
        for (job, report) in ran {
            match report {
                Ok(report) => {
                    tracing::info!(
                        "tenant `{}`: scheduled {}: {} records, {} new events",
                        self.tenant,
                        job.name(),
                        report.records,
                        report.new
                    );
                    for problem in &report.problems {
                        tracing::warn!("tenant `{}`: {problem}", self.tenant);
                    }
                    self.metrics.count_run(&report);
                    self.note_run(&report);
                }
                Err(error) => {
                    tracing::error!(
                        "tenant `{}`: scheduled {} failed: {error}",
                        self.tenant,
                        job.name()
                    );
                }
            }
        }
    }

    fn send_due(&mut self, tenant: &mut Tenant) {
        if !self.outbox_waiting || Instant::now() < self.next_send {
            return;
        }
        let destinations = tenant
            .settings()
            .and_then(|settings| Destinations::new(&settings, None, []));
        let destinations = match destinations {
            Ok(destinations) => destinations,
            Err(error) => {
                tracing::error!("tenant `{}`: cannot send the outbox: {error}", self.tenant);
                self.outbox_unroutable = true;
                self.next_send = Instant::now() + UNROUTED_RECHECK;
                return;
            }
        };
        let report = match tenant.send_outbox(&destinations, DEFAULT_CONCURRENCY, &mut |_, _| {}) {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(
                    "tenant `{}`: sending the outbox failed: {error}",
                    self.tenant
                );
                self.back_off();
                return;
            }
        };
        self.metrics.count_send(&report);
        for problem in &report.problems {
            tracing::warn!(
                "tenant `{}`: outbox item {} was not sent: {}",
                self.tenant,
                problem.id,
                spark_host::printable(&problem.why)
            );
        }
        if report.failed > 0 || report.skipped > 0 {
            // The route's fault (a receiver down): try again later, waiting longer
            // each time.
            self.back_off();
        } else if report.waiting > 0 {
            self.outbox_unroutable = true;
            self.next_send = Instant::now() + UNROUTED_RECHECK;
        } else {
            self.outbox_waiting = false;
            self.backoff = FIRST_BACKOFF;
        }
    }

    fn back_off(&mut self) {
        self.next_send = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(LAST_BACKOFF);
    }
}
