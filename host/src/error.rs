//! The errors of the library: [`Error`] for what a caller asked that could not be done,
//! [`CallError`] for a module call that failed, [`RenderError`] for a mail template
//! that did not render.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::limits::Limit;

/// What went wrong in a request to the host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant name that could be a path trick or is otherwise unusable.
    #[error(
        "invalid tenant name `{name}`: {why} (use 1 to 64 characters from a-z, 0-9, `-` and `_`, starting with a letter or digit)"
    )]
    InvalidTenant { name: String, why: &'static str },

    /// A tenant that does not exist, asked for by a command that would not make it.
    #[error(
        "there is no tenant `{tenant}` in `{}`; a tenant is made by `spark apply`, `module \
         add`, `generators add` or `mails set`",
        data_dir.display()
    )]
    UnknownTenant { tenant: String, data_dir: PathBuf },

    /// Another process has this tenant's data open.
    #[error(
        "tenant `{tenant}` in `{}` is in use by another spark process; wait for it to finish",
        data_dir.display()
    )]
    TenantInUse { tenant: String, data_dir: PathBuf },

    /// The storage failed (corruption, permissions, a disk that filled up under it).
    #[error("storage error: {0}")]
    Storage(String),

    /// The disk of the data dir has too little room left for this write and the
    /// reserve kept free (`SPARK_DISK_RESERVE`): nothing of the refused write is stored.
    #[error(
        "the disk of `{}` is full: {free_bytes} bytes free, and this write needs {needed_bytes} \
         (the reserve of SPARK_DISK_RESERVE included); free some space, then run the command \
         again",
        path.display()
    )]
    DiskFull {
        path: PathBuf,
        free_bytes: u64,
        needed_bytes: u64,
    },

    /// A run stopped part-way: the first `records` records were done, and what they made
    /// is stored (durably); the rest were not. Running the same command again goes on
    /// from there (the records done are duplicates then).
    #[error("{cause} (the run stopped after {records} records; their work is kept)")]
    Interrupted { records: u64, cause: Box<Error> },

    /// An environment variable Spark reads has a value it cannot use.
    #[error("{name} is `{value}`: {why}")]
    InvalidSetting {
        name: &'static str,
        value: String,
        why: String,
    },

    /// Reading or writing a file failed. (`error` is in the message, not a `source`:
    /// messages are shown whole, and a chain would say it twice.)
    #[error("{what} `{}`: {error}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },

    /// A file given as a module is not one Spark can run.
    #[error("{name} is not a usable Spark module: {why}")]
    InvalidModule { name: String, why: String },

    /// A module that cannot start under the limits it would run with (or traps while
    /// starting); `error` says which limit, or what went wrong.
    #[error("{name} cannot start: {error}")]
    ModuleCannotStart { name: String, error: CallError },

    /// A module name that is not registered for this tenant.
    #[error("no module named `{0}` is registered")]
    UnknownModule(String),

    /// A module name that is taken.
    #[error("a module named `{0}` is already registered; pass --replace to replace it")]
    ModuleExists(String),

    /// A module name that cannot be used.
    #[error("invalid module name `{name}`: {why}")]
    InvalidModuleName { name: String, why: &'static str },

    /// A registration that does not fit what the module exports, or registers nothing.
    #[error("cannot register module `{name}`: {why}")]
    Registration { name: String, why: String },

    /// A group regex that does not compile.
    #[error("invalid group regex `{regex}`: {why}")]
    InvalidRegex { regex: String, why: String },

    /// A model that no module is registered as a source for.
    #[error("unknown model `{model}`: {}", known_models_hint(known))]
    UnknownModel { model: String, known: Vec<String> },

    /// A schedule that does not parse.
    #[error("invalid schedule {0}")]
    InvalidSchedule(String),

    /// An idempotency key that is empty, too long or not printable ASCII.
    #[error(
        "the idempotency key {0:?} is not one: it must be 1 to 255 printable ASCII \
         characters without spaces"
    )]
    InvalidIdempotencyKey(String),

    /// An idempotency key sent again with another request than the one it first came
    /// with: answering with the first one's answer would hide that this one was not run.
    #[error(
        "the idempotency key `{0}` was used before for another request (another model, \
         time or body); use a new key for a new request"
    )]
    IdempotencyKeyReused(String),

    /// An event key that is not in the ledger.
    #[error("no event with key `{0}` is in the ledger")]
    UnknownEvent(String),

    /// A record or event given to try a module with that is not one.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A generator definition that cannot work (bad name, group or condition).
    #[error("invalid generator `{name}`: {why}")]
    InvalidGenerator { name: String, why: String },

    /// A generator name that is taken.
    #[error("a generator named `{0}` already exists; pass --replace to replace it")]
    GeneratorExists(String),

    /// A generator name that is not defined for this tenant.
    #[error("no generator named `{0}` is defined")]
    UnknownGenerator(String),

    /// A mail template that does not parse.
    #[error("invalid template for `{group}`: {why}")]
    InvalidTemplate { group: String, why: String },

    /// An outbox id that is not an item set aside as failed.
    #[error("outbox item {0} is not a failed item; `spark outbox list` shows their status")]
    NotFailed(u64),

    /// A group that has no template.
    #[error("no template for group `{0}`; `spark mails list` shows those there are")]
    UnknownTemplate(String),

    /// An outbox id that names no item.
    #[error("there is no outbox item {0}; `spark outbox list` shows them")]
    UnknownOutboxItem(u64),

    /// An outbox item that went out, asked to be cancelled or rendered again.
    #[error(
        "outbox item {0} was sent already, so it can be neither cancelled nor rendered again \
         (`spark outbox prune` removes sent items)"
    )]
    AlreadySent(u64),

    /// An outbox item that is an output, asked to be rendered again.
    #[error("outbox item {0} is an output, not a mail: only mails are rendered")]
    NotAMail(u64),

    /// An event key without dead letters (of the handler given, if one is).
    #[error(
        "event `{event}` has no dead letters{}; `spark dead list` shows them",
        handler.as_ref().map(|handler| format!(" of handler `{handler}`")).unwrap_or_default()
    )]
    NoDeadLetters {
        event: String,
        handler: Option<String>,
    },

    /// A mail address in the settings that is not one.
    #[error(
        "invalid {what} `{address}`: {why} (write `name@example.com` or `Name <name@example.com>`)"
    )]
    InvalidAddress {
        what: &'static str,
        address: String,
        why: String,
    },

    /// Settings (or a change to them) that do not read as settings.
    #[error("invalid settings: {0}")]
    InvalidSettings(String),

    /// A template that parses but does not render (for `spark mails preview`): its own
    /// error, or a limit of the sandbox it renders in, named with its value.
    #[error("the template for `{group}` does not render: {error}")]
    TemplateDoesNotRender { group: String, error: RenderError },

    /// A transport that cannot be used (or not for what it is routed).
    #[error("invalid transport `{transport}`: {why}")]
    InvalidTransport { transport: String, why: String },

    /// A manifest that cannot be applied.
    #[error("manifest `{}`: {why}", path.display())]
    Manifest { path: PathBuf, why: String },

    /// A limit value that cannot be used.
    #[error("invalid limits: {0}")]
    InvalidLimits(String),

    /// A time that cannot be parsed.
    #[error(
        "invalid time `{0}`: expected a date like 2024-05-01 or a time like 2024-05-01T12:00:00Z"
    )]
    InvalidTime(String),

    /// A module's clock that is none of `exact`, `minute`, `hour`, `day`.
    #[error("invalid clock `{0}`: expected exact, minute, hour or day")]
    InvalidClock(String),

    /// The WebAssembly engine could not be set up.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),

    /// The tenant's journal (a cluster's replicated log, see
    /// [`Journal`](crate::Journal)) did not take a change, or gave something that is
    /// not one: what the log said, such as "the cluster's log refused the commit:
    /// another node owns the tenant now". A change the log refused was not applied.
    #[error("{0}")]
    Journal(String),

    /// A change is larger than the tenant's journal takes in one entry (a cluster's
    /// log has a largest message): unlike [`Error::Journal`], trying again cannot
    /// help. The message says what was too large and what to do.
    #[error("{0}")]
    ChangeTooLarge(String),
}

fn known_models_hint(known: &[String]) -> String {
    if known.is_empty() {
        "no models are known yet; register a source with `spark module add FILE.wasm --name N --source MODEL`".to_owned()
    } else {
        format!("known models: {}", known.join(", "))
    }
}

/// Why one call into a module failed. The variants are what an operator acts on; each
/// message names the limit and its value where one was hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CallError {
    /// The module returned an error of its own.
    #[error("the module returned an error: {message}")]
    Guest { message: String },

    /// The module trapped (a panic, `unreachable`, a stack overflow, ...). `log` holds
    /// the end of what it wrote to stderr, where a Rust panic message goes.
    #[error("the module trapped: {message}{}", log_suffix(log))]
    Trap { message: String, log: String },

    /// A limit of the sandbox was hit.
    #[error("{limit} limit of {max} exceeded{}", actual_suffix(*actual))]
    Limit {
        limit: Limit,
        max: u64,
        /// What the module asked for, where it is known.
        actual: Option<u64>,
    },

    /// The module returned something the host refuses (an empty key, a context that is
    /// not a JSON object, ...).
    #[error("the module returned an invalid {what}: {why}")]
    InvalidOutput { what: String, why: String },

    /// A handler emitted an event deeper than the emit depth limit.
    #[error("emitted event `{key}` is at depth {depth}, beyond the emit depth limit of {max}")]
    EmitDepth { key: String, depth: u32, max: u32 },

    /// The module a delivery was meant for is no longer registered as a handler.
    #[error("module `{module}` is not registered as a handler")]
    NoSuchHandler { module: String },

    /// The host could not run the module at all (compilation, instantiation).
    #[error("the module could not be run: {message}")]
    Host { message: String },
}

/// Why a mail template did not render. Templates render in the WebAssembly sandbox
/// under fixed limits (`wasm/renderer.rs`); each message names the limit it hit and
/// its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// Rendering needed more linear memory than the renderer may have.
    #[error("rendering needed more than its memory limit of {}", bytes(*limit_bytes))]
    Memory { limit_bytes: u64 },

    /// Rendering ran past its wall-clock deadline.
    #[error("rendering took longer than its time limit of {limit_ms} ms")]
    Time { limit_ms: u64 },

    /// Rendering executed more WebAssembly instructions than its fuel allows (the
    /// time limit that does not depend on the machine or its load).
    #[error("rendering did more work than its fuel limit of {limit} WebAssembly instructions")]
    Fuel { limit: u64 },

    /// The rendered text would be longer than the renderer may return.
    #[error("the rendered text is longer than its output limit of {}", bytes(*limit_bytes))]
    Output { limit_bytes: u64 },

    /// The template's own failure (minijinja's message, with its line), such as a
    /// division by zero or minijinja's fuel for template loops used up.
    #[error("{0}")]
    Template(String),

    /// The renderer could not run: the process's instance pool is full, or it trapped
    /// for another reason than a limit (a bug in it).
    #[error("the template renderer failed: {0}")]
    Sandbox(String),
}

/// `bytes` in MiB when it is a whole number of them, with the exact count.
fn bytes(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB ({bytes} bytes)", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn log_suffix(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("; its output ends with: {}", log.trim())
    }
}

fn actual_suffix(actual: Option<u64>) -> String {
    actual
        .map(|actual| format!(" ({actual})"))
        .unwrap_or_default()
}

impl CallError {
    /// A short stable name for the variant, for scripts (`--json`).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Guest { .. } => "guest-error",
            CallError::Trap { .. } => "trap",
            CallError::Limit { .. } => "limit",
            CallError::InvalidOutput { .. } => "invalid-output",
            CallError::EmitDepth { .. } => "emit-depth",
            CallError::NoSuchHandler { .. } => "no-such-handler",
            CallError::Host { .. } => "host",
        }
    }
}
