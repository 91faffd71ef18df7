//! The server's metrics, in Prometheus's text format at `/metrics`.
//!
//! Label sets are bounded: routes are the API's route templates (not paths), statuses
//! are numbers, results and limits are fixed words. Tenants are not labels: a server
//! with thousands of them would make a series each (their own numbers are in the API).
//! Modules are, by name (tenants often share them: one name, one series), the first
//! [`MAX_MODULE_LABELS`] names seen; calls of further names count under `other`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use spark_host::{RunReport, SendReport};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModuleLabels {
    pub module: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreachLabels {
    pub module: String,
    pub limit: &'static str,
}

/// Module names that get series of their own, at most.
pub const MAX_MODULE_LABELS: usize = 256;

/// Calls and failed calls, by module name.
pub type ModuleStats = BTreeMap<String, (u64, u64)>;

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Histograms<RouteLabels>,
    pub records: Family<ResultLabels, Counter>,
    pub events: Family<ResultLabels, Counter>,
    pub deliveries: Family<ResultLabels, Counter>,
    pub module_calls: Family<ModuleLabels, Counter>,
    pub module_seconds: Family<ModuleLabels, Counter<f64, AtomicU64>>,
    pub limit_breaches: Family<BreachLabels, Counter>,
    /// The module names that have series of their own.
    module_labels: Mutex<HashSet<String>>,
    /// Each tenant's calls and failed calls per module since the start, for the
    /// console (not series: tenants are many).
    module_stats: Mutex<HashMap<String, ModuleStats>>,
    pub outbox: Family<ResultLabels, Counter>,
    pub queue_full: Counter,
    pub tenants_open: Gauge,
    pub group_size: Histogram,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 26 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("spark");
        let metrics = Self {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            records: Family::default(),
            events: Family::default(),
            deliveries: Family::default(),
            module_calls: Family::default(),
            module_seconds: Family::default(),
            limit_breaches: Family::default(),
            module_labels: Mutex::new(HashSet::new()),
            module_stats: Mutex::new(HashMap::new()),
            outbox: Family::default(),
            queue_full: Counter::default(),
            tenants_open: Gauge::default(),
            group_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            metrics.request_seconds.clone(),
        );
        registry.register(
            "records",
            "Input lines ingested: stored, or invalid",
            metrics.records.clone(),
        );
        registry.register(
            "events",
            "Events made by sources and handlers: new, or duplicate",
            metrics.events.clone(),
        );
        registry.register(
            "deliveries",
            "Handler calls: committed, retried, failed (left for a retry) or dead",
            metrics.deliveries.clone(),
        );
        registry.register(
            "module_calls",
            "Module calls (sources, handlers, contexts), by module name",
            metrics.module_calls.clone(),
        );
        registry.register(
            "module_call_seconds",
            "Time spent in module calls, by module name",
            metrics.module_seconds.clone(),
        );
        registry.register(
            "module_limit_breaches",
            "Module calls stopped by a limit, by module name and limit",
            metrics.limit_breaches.clone(),
        );
        registry.register(
            "outbox",
            "Outbox items sent, failed (stay pending) or set aside by the background sender",
            metrics.outbox.clone(),
        );
        registry.register(
            "queue_full",
            "Requests refused with 429 because their tenant's queue was full",
            metrics.queue_full.clone(),
        );
        registry.register(
            "tenants_open",
            "Tenants open now",
            metrics.tenants_open.clone(),
        );
        registry.register(
            "ingest_group_requests",
            "Requests committed together in one group",
            metrics.group_size.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The metrics in Prometheus's text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn add(family: &Family<ResultLabels, Counter>, result: &'static str, count: u64) {
        if count > 0 {
            family.get_or_create(&ResultLabels { result }).inc_by(count);
        }
    }

    /// `tenant`'s calls and failed calls per module since the server started.
    pub fn module_stats(&self, tenant: &str) -> ModuleStats {
        self.module_stats
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    }

    /// Counts what a run of `tenant` did.
    pub fn count_run(&self, tenant: &str, report: &RunReport) {
        if !report.calls.is_empty() {
            let mut stats = self
                .module_stats
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let tenant = stats.entry(tenant.to_owned()).or_default();
            for (module, calls) in &report.calls {
                let (total, failed) = tenant.entry(module.clone()).or_default();
                *total += calls.calls;
                *failed += calls.failed;
            }
        }
        Self::add(&self.records, "stored", report.records);
        Self::add(&self.records, "invalid", report.invalid);
        Self::add(&self.events, "new", report.new);
        Self::add(&self.events, "duplicate", report.duplicates);
        Self::add(&self.deliveries, "committed", report.deliveries);
        Self::add(&self.deliveries, "retried", report.retried);
        Self::add(&self.deliveries, "dead", report.failed);
        Self::add(&self.deliveries, "pending", report.pending);
        for (module, calls) in &report.calls {
            let module = self.module_label(module);
            let labels = ModuleLabels {
                module: module.clone(),
            };
            self.module_calls.get_or_create(&labels).inc_by(calls.calls);
            self.module_seconds
                .get_or_create(&labels)
                .inc_by(calls.time.as_secs_f64());
            for (limit, count) in &calls.breaches {
                self.limit_breaches
                    .get_or_create(&BreachLabels {
                        module: module.clone(),
                        limit,
                    })
                    .inc_by(*count);
            }
        }
    }

    /// The label of a module name: itself, or `other` once there are enough.
    fn module_label(&self, module: &str) -> String {
        let mut labels = self
            .module_labels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if labels.contains(module) {
            return module.to_owned();
        }
        if labels.len() < MAX_MODULE_LABELS {
            labels.insert(module.to_owned());
            return module.to_owned();
        }
        "other".to_owned()
    }

    /// Counts what a send did.
    pub fn count_send(&self, report: &SendReport) {
        Self::add(&self.outbox, "sent", report.sent);
        Self::add(&self.outbox, "failed", report.failed);
        Self::add(&self.outbox, "set_aside", report.parked);
    }
}
