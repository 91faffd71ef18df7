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
//!   walled off from every other tenant's.
//! - [`Event`]: a group, a key unique across groups, a JSON context. The ledger keeps
//!   every key seen ([`LedgerEntry`]); a key seen before goes no further.
//! - [`Effect`]: what a handler returns: emitted events, mails and outputs. Mails and
//!   outputs wait in the outbox ([`OutboxItem`]).
//! - Modules: components exporting `spark:engine/source`, `handler` and/or `context`,
//!   registered with [`ModuleSpec`] and run under [`Limits`]; or [`NativeModule`]s, Rust
//!   code in the host (the built-in mail handler is one).
//! - [`Generator`]: events declared without code, from stored records and conditions.
//! - Mails: rendered with the tenant's templates when committed. Mails and outputs
//!   are sent from the outbox by `Tenant::send_outbox`, each by the [`Transport`] its
//!   route has in [`Destinations`].
//! - [`Error`] for requests that cannot be done; [`CallError`] for a module call that
//!   failed, kept with its delivery in [`PendingDelivery`] or [`DeadLetter`].

mod delivery;
mod error;
mod event;
mod generators;
mod limits;
mod mail;
mod manifest;
pub mod memory;
mod native;
mod outputs;
mod pipeline;
mod records;
mod report;
mod routes;
mod runner;
mod source_memo;
mod spark;
mod store;
mod tenant;
mod time;
mod transport;
mod wasm;

pub use delivery::{DEFAULT_CONCURRENCY, Destinations, GIVE_UP_AFTER, Route, SendReport};
pub use error::{CallError, Error};
pub use event::{Effect, Event, Invocation, Mail, check_channel};
pub use generators::{Condition, Generator, ModelDescription, Verdict};
pub use limits::{
    Limit, LimitOverrides, Limits, MAX_CHANNEL_BYTES, MAX_CONTEXT_BYTES, MAX_EMIT_DEPTH,
    MAX_GROUP_BYTES, MAX_KEY_BYTES,
};
pub use mail::{MailSettings, Rendered};
pub use manifest::{ApplyReport, Manifest, ModuleEntry};
pub use native::NativeModule;
pub use records::MAX_RECORD_BYTES;
pub use report::{Problem, RecordOrigin, RunReport};
pub use routes::compile_regex;
pub use spark::Spark;
pub use store::{
    DeadLetter, LedgerEntry, ModuleRecord, OutboxItem, OutboxKind, OutboxStatus, PendingDelivery,
    Pruned, RetryPolicy, TenantSettings,
};
pub use tenant::{ModuleChange, ModuleCode, ModuleSpec, ModuleSummary, Tenant};
pub use time::{Clock, format_time, parse_time, wall_clock_ms};
pub use transport::Transport;
pub use wasm::{INTERFACE_VERSION, ModuleInfo};
