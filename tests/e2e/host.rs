//! Tests through the library, where a failed call is a typed `CallError` to match on.

use std::path::Path;

use serde_json::Value;
use spark_host::{
    CallError, LimitOverrides, ModuleSpec, Problem, RetryPolicy, RunReport, Spark, Tenant,
};

use crate::support::{guests, jsonl};

/// A tenant in a temporary data dir; retries are off so a failure is final at once.
pub struct Host {
    /// `None` only while reopening.
    tenant: Option<Tenant>,
    spark: Spark,
    _dir: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spark-module-cache");
        let spark = Spark::open_with_cache(dir.path().join("data"), cache).unwrap();
        let tenant = spark.tenant("test").unwrap();
        let mut host = Self {
            tenant: Some(tenant),
            spark,
            _dir: dir,
        };
        host.set_attempts(1);
        host
    }

    pub fn spark(&self) -> &Spark {
        &self.spark
    }

    pub fn tenant(&mut self) -> &mut Tenant {
        self.tenant.as_mut().expect("the tenant is open")
    }

    /// Closes the tenant and opens it again, as a new process would.
    pub fn reopen(&mut self) {
        drop(self.tenant.take());
        self.tenant = Some(self.spark.tenant("test").unwrap());
    }

    /// Sets how many attempts a delivery gets (without waiting between them).
    pub fn set_attempts(&mut self, attempts: u32) {
        let mut settings = self.tenant().settings().unwrap();
        settings.retry = RetryPolicy {
            attempts,
            backoff_ms: 0,
        };
        self.tenant().set_settings(&settings).unwrap();
    }

    /// Sets the tenant's limits.
    pub fn set_limits(&mut self, limits: LimitOverrides) {
        let mut settings = self.tenant().settings().unwrap();
        settings.limits = limits;
        self.tenant().set_settings(&settings).unwrap();
    }

    /// Registers a test guest.
    pub fn add(
        &mut self,
        wasm: &str,
        name: &str,
        sources: &[&str],
        handlers: &[&str],
        limits: LimitOverrides,
    ) {
        self.try_add(wasm, name, sources, handlers, limits).unwrap();
    }

    /// Registers a test guest, or says why not.
    pub fn try_add(
        &mut self,
        wasm: &str,
        name: &str,
        sources: &[&str],
        handlers: &[&str],
        limits: LimitOverrides,
    ) -> Result<(), spark_host::Error> {
        let spec = ModuleSpec {
            name: name.to_owned(),
            code: spark_host::ModuleCode::Wasm(std::fs::read(wasm).unwrap()),
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
            handlers: handlers.iter().map(|h| (*h).to_owned()).collect(),
            limits,
            clock: Default::default(),
        };
        self.tenant().add_module(spec, true).map(drop)
    }

    /// Ingests records of the model `thing` at 2024-05-01.
    pub fn ingest(&mut self, records: &[Value]) -> RunReport {
        let input = jsonl(records);
        let now = spark_host::parse_time("2024-05-01").unwrap();
        self.tenant()
            .ingest("thing", &mut input.as_bytes(), now, &mut |_| {})
            .unwrap()
    }
}

/// The errors of the failed handler calls of a run, in order.
pub fn delivery_errors(report: &RunReport) -> Vec<CallError> {
    report
        .problems
        .iter()
        .filter_map(|problem| match problem {
            Problem::DeliveryFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

/// The errors of the failed source calls of a run, in order.
pub fn source_errors(report: &RunReport) -> Vec<CallError> {
    report
        .problems
        .iter()
        .filter_map(|problem| match problem {
            Problem::SourceFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

/// The hostile module as the source of `thing`.
pub fn with_hostile_source() -> Host {
    let mut host = Host::new();
    host.add(guests::HOSTILE, "hostile", &["thing"], &[], fuel_alone());
    host
}

/// The default limits, but for the deadline, set to its most: tests that expect a loop
/// to run out of fuel must not see the wall-clock backstop trip first on a loaded
/// machine (the deadline has tests of its own).
pub fn fuel_alone() -> LimitOverrides {
    LimitOverrides {
        deadline_ms: Some(600_000),
        ..LimitOverrides::default()
    }
}

/// [`fuel_alone`] as a manifest's `[limits]` table.
pub const FUEL_ALONE: &str = "[limits]\ndeadline-ms = 600_000";

/// The recorder as source of `thing`.
pub fn with_recorder_source() -> Host {
    let mut host = Host::new();
    host.add(
        guests::RECORDER,
        "source",
        &["thing"],
        &[],
        LimitOverrides::default(),
    );
    host
}
