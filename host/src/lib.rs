//! The Spark host: a rules engine that runs sources (record -> events) and handlers
//! (event -> effects) as sandboxed WebAssembly components, and remembers every event
//! key so that each is processed exactly once.
//!
//! ```
//! # fn main() -> Result<(), spark_host::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! use spark_host::{Error, Spark};
//!
//! let spark = Spark::open(dir.path())?;
//! let mut tenant = spark.tenant("acme")?;
//! assert!(tenant.known_models()?.is_empty());
//!
//! // Records of a model no source is registered for are refused, not stored.
//! let mut input = &b"{\"id\": 1}\n"[..];
//! let error = tenant.ingest("challenge", &mut input, 0, &mut |_| {}).unwrap_err();
//! assert!(matches!(error, Error::UnknownModel { .. }));
//! # Ok(())
//! # }
//! ```
//!
//! With modules (see `guest-sdk/README.md` for writing them):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use spark_host::{ModuleCode, ModuleSpec, Spark, parse_time};
//!
//! let spark = Spark::open("spark-data")?;
//! let mut tenant = spark.tenant("default")?;
//! tenant.add_module(
//!     ModuleSpec {
//!         name: "challenges".into(),
//!         code: ModuleCode::load("challenges_source.wasm".as_ref())?,
//!         sources: vec!["challenge".into()],
//!         handlers: vec![],
//!         limits: Default::default(),
//!         clock: Default::default(),
//!     },
//!     false,
//! )?;
//! let mut records = std::io::BufReader::new(std::fs::File::open("challenges.jsonl")?);
//! let report = tenant.ingest("challenge", &mut records, parse_time("2024-05-01")?, &mut |_| {})?;
//! println!("{} new events, {} duplicates", report.new, report.duplicates);
//! # Ok(())
//! # }
//! ```
//!
//! # Core concepts
//! - [`Spark`]: the host over a data dir; [`Tenant`]: one tenant's modules and data,
//!   walled off from every other tenant's. Everything a tenant can do is a method of
//!   [`Tenant`].
//! - A *record* is an application's input: a JSON object with an `id`, of a model.
//!   Sources turn records into [`Event`]s: a group, a key unique across groups, a JSON
//!   context. The ledger keeps every key seen ([`LedgerEntry`]); a key seen before goes
//!   no further.
//! - A *delivery* is one handler's call with one new event. It returns [`Effect`]s:
//!   emitted events, mails and outputs. A failed delivery is retried
//!   ([`PendingDelivery`]), then parked ([`DeadLetter`]). Each event keeps a bounded
//!   [`Trace`]: where it came from, the handlers its group matched, and each
//!   delivery's [`Outcome`], time, fuel and log.
//! - Mails and outputs wait in the outbox ([`OutboxItem`], its [`OutboxPayload`]) until
//!   it is *sent*: `Tenant::send_outbox`, each item by the [`Transport`] its route has
//!   in [`Destinations`].
//! - Modules: components exporting `spark:engine/source`, `handler` and/or `context`,
//!   registered with a [`ModuleSpec`] and run under [`Limits`]; or [`NativeModule`]s,
//!   Rust code in the host (the built-in mail handler is one). A module's
//!   [`Registration`] says which [`RegisteredCode`] it runs and what for.
//! - [`Generator`]: events declared without code, from stored records and conditions.
//! - Mails: rendered with the tenant's templates when committed.
//! - [`Journal`]: where a host's tenants put each change ([`JournalEntry`]) before
//!   it is applied, so that a cluster's node can rebuild a tenant elsewhere
//!   ([`Tenant::replay`], [`Tenant::snapshot`], [`Spark::restore_tenant`]).
//! - [`Error`] for requests that cannot be done; [`CallError`] for a module call that
//!   failed, kept with its delivery in [`PendingDelivery`] or [`DeadLetter`].

mod error;
mod event;
mod generators;
mod limits;
mod mail;
mod manifest;
pub mod memory;
mod modules;
mod native;
mod outbox;
mod pipeline;
mod records;
mod registration;
mod report;
mod requests;
mod routes;
mod runner;
mod schedule;
mod send;
mod settings;
mod source_memo;
mod spark;
mod store;
mod tenant;
mod text;
mod time;
mod trace;
mod transport;
mod trial;
mod wasm;

pub use error::{CallError, Error, RenderError};
pub use event::{Effect, Event, Invocation, Mail, check_channel};
pub use generators::{Condition, Generator, ModelDescription, Verdict};
pub use limits::{
    Limit, LimitOverrides, Limits, MAX_CHANNEL_BYTES, MAX_CONTEXT_BYTES, MAX_EMIT_DEPTH,
    MAX_GROUP_BYTES, MAX_KEY_BYTES,
};
pub use mail::Rendered;
pub use manifest::{ApplyReport, Manifest, ModuleEntry};
pub use modules::{
    MAX_COMPONENT_BYTES, ModuleChange, ModuleCode, ModuleSpec, ModuleSummary, read_component,
};
pub use native::NativeModule;
pub use outbox::{
    ComposedMail, OutboxItem, OutboxKind, OutboxPayload, OutboxStatus, OutputPayload,
};
pub use pipeline::{DRY_RUN_SHOWN, DryRun, IngestDryRun};
pub use records::MAX_RECORD_BYTES;
pub use registration::{RegisteredCode, Registration, validate_name};
pub use report::{ModuleCalls, Problem, RecordOrigin, RunReport};
pub use requests::{
    IngestAnswer, IngestRequest, MAX_IDEMPOTENCY_KEY_LEN, validate_idempotency_key,
};
pub use routes::compile_regex;
pub use schedule::{Schedule, ScheduledJob, Schedules};
pub use send::{
    DEFAULT_CONCURRENCY, Destinations, GIVE_UP_AFTER, MARK_BATCH, OutboxSender, Rerendered,
    Rerendering, Route, SendProblem, SendReport,
};
pub use settings::{MailSettings, RetryPolicy, TenantSettings};
pub use spark::Spark;
pub use store::{
    DeadLetter, Flush, Forgotten, Journal, JournalEntry, LedgerEntry, PendingDelivery, Pruned,
};
pub use tenant::{Tenant, validate_tenant_name};
pub use text::printable;
pub use time::{Clock, format_time, parse_time, wall_clock_ms};
pub use trace::{Origin, Outcome, Step, Trace};
pub use transport::Transport;
pub use trial::{Trial, TrialInput, TrialOutput};
pub use wasm::{INTERFACE_VERSION, ModuleInfo};
