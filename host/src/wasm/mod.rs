//! Everything that knows wasmtime: the engine and its settings, compiling and
//! validating components, instantiating them in a sandbox and calling them under limits.
//! No wasmtime type leaves this module.
//!
//! Expensive things are built once ([`WasmEngine`] holds the engine and linker,
//! [`CompiledModule`] the component and its `InstancePre`); an [`Instance`] lives as
//! long as it behaves and is replaced after any trap.

mod sandbox;

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, Store, Trap};

use crate::error::{CallError, Error};
use crate::event::{Effect, Event, Invocation, Mail, check_json_object};
use crate::limits::{Limit, Limits, MAX_CONTEXT_BYTES};
use sandbox::{LimitHit, SandboxState};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "any-module",
    });
}

use bindings::exports::spark::engine::{context, handler, source};
use bindings::spark::engine::types as wit;

/// The interface version this host implements.
pub const INTERFACE_VERSION: &str = "0.1.0";
const SOURCE_EXPORT: &str = "spark:engine/source@0.1.0";
/// The interface of shared types. Components "import" it because their exports use its
/// types; it has no functions, so importing it grants nothing.
const TYPES_IMPORT: &str = "spark:engine/types@0.1.0";
const HANDLER_EXPORT: &str = "spark:engine/handler@0.1.0";
const CONTEXT_EXPORT: &str = "spark:engine/context@0.1.0";

/// WASI packages a module may import. The sandbox grants none of their authority
/// (no files, sockets, environment, real clock), so importing them is harmless, and the
/// Rust standard library imports several of them in every component.
const ALLOWED_WASI_PACKAGES: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// How often the epoch advances; wall-clock deadlines are rounded up to it.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The wasmtime engine, its linker, and the thread that drives deadlines.
pub struct WasmEngine {
    engine: Engine,
    linker: Linker<SandboxState>,
    /// Where compiled components are kept between runs, if anywhere.
    cache: Option<ArtifactCache>,
    _ticker: EpochTicker,
}

/// What a module is, as found when it was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// It exports `spark:engine/source`.
    pub source: bool,
    /// It exports `spark:engine/handler`.
    pub handler: bool,
    /// It exports `spark:engine/context` (for generators).
    pub context: bool,
    /// The interface version it was built against.
    pub interface_version: String,
    /// The interfaces it imports (all WASI, all sandboxed).
    pub imports: Vec<String>,
}

impl ModuleInfo {
    /// The Spark interfaces it exports: `source`, `handler`, `context`, in that order.
    pub fn exports(&self) -> Vec<&'static str> {
        [
            ("source", self.source),
            ("handler", self.handler),
            ("context", self.context),
        ]
        .into_iter()
        .filter(|(_, exported)| *exported)
        .map(|(name, _)| name)
        .collect()
    }

    /// Its exports joined with `+`, e.g. `source+context`.
    pub fn kind(&self) -> String {
        self.exports().join("+")
    }
}

/// A compiled, validated component, ready to instantiate.
pub struct CompiledModule {
    pre: InstancePre<SandboxState>,
    source: Option<source::GuestIndices>,
    handler: Option<handler::GuestIndices>,
    context: Option<context::GuestIndices>,
    info: ModuleInfo,
    /// What errors call it.
    name: String,
}

impl WasmEngine {
    /// An engine with fuel, epoch deadlines and the sandboxed WASI linker. With a
    /// `cache_dir`, compiled components are kept there and reused by later runs.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, Error> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|error| Error::Engine(format!("{error:#}")))?;
        let mut linker = Linker::new(&engine);
        sandbox::add_wasi(&mut linker).map_err(|error| Error::Engine(format!("{error:#}")))?;
        linker
            .instance(TYPES_IMPORT)
            .map_err(|error| Error::Engine(format!("{error:#}")))?;
        let ticker = EpochTicker::start(&engine);
        let cache = cache_dir.map(|dir| ArtifactCache::new(dir, &engine));
        Ok(Self {
            engine,
            linker,
            cache,
            _ticker: ticker,
        })
    }

    /// Compiles and validates a component: it must be a component (not a core module),
    /// import nothing outside sandboxed WASI and export a Spark interface. `name` names
    /// it in errors; `hash` (the SHA-256 of `bytes`) keys the compiled artifact in the
    /// cache. [`CompiledModule::check_instantiates`] completes the checks.
    pub fn compile(&self, name: &str, bytes: &[u8], hash: &str) -> Result<CompiledModule, Error> {
        let invalid = |why: String| Error::InvalidModule {
            name: name.to_owned(),
            why,
        };
        check_header(bytes).map_err(invalid)?;
        let component = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes, hash),
            None => Component::new(&self.engine, bytes),
        }
        .map_err(|error| invalid(format!("it does not compile: {}", root_cause(&error))))?;
        let component_type = component.component_type();
        let imports: Vec<String> = component_type
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        if let Some(import) = imports.iter().find(|import| !import_allowed(import)) {
            return Err(invalid(format!(
                "it imports `{import}`, which Spark does not provide; a module may import only \
                 `{TYPES_IMPORT}` and WASI 0.2 interfaces (wasi:{}), which Spark sandboxes",
                ALLOWED_WASI_PACKAGES.join(", wasi:")
            )));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|error| invalid(format!("its imports do not fit: {}", root_cause(&error))))?;
        let source = source::GuestIndices::new(&pre).ok();
        let handler = handler::GuestIndices::new(&pre).ok();
        let context = context::GuestIndices::new(&pre).ok();
        if source.is_none() && handler.is_none() && context.is_none() {
            let exports: Vec<String> = component_type
                .exports(&self.engine)
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            let exports = if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            };
            return Err(invalid(format!(
                "it exports none of `{SOURCE_EXPORT}`, `{HANDLER_EXPORT}` and \
                 `{CONTEXT_EXPORT}` (it exports {exports}); build it with spark-guest's \
                 #[source], #[handler] or #[context]"
            )));
        }
        let info = ModuleInfo {
            source: source.is_some(),
            handler: handler.is_some(),
            context: context.is_some(),
            interface_version: INTERFACE_VERSION.to_owned(),
            imports,
        };
        Ok(CompiledModule {
            pre,
            source,
            handler,
            context,
            info,
            name: name.to_owned(),
        })
    }
}

/// Compiled components on disk, named by the component's hash and the engine's
/// settings, so a module is compiled once, not on every run (compiling costs tens of
/// milliseconds for a small Rust component and seconds for an interpreter-based one).
struct ArtifactCache {
    dir: PathBuf,
    /// Which engine settings (and wasmtime version) the artifacts fit.
    fingerprint: String,
}

impl ArtifactCache {
    fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            fingerprint: format!("{:016x}", hasher.finish()),
        }
    }

    fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &str,
    ) -> wasmtime::Result<Component> {
        let path = self.dir.join(format!("{hash}-{}.cwasm", self.fingerprint));
        if path.exists() {
            // SAFETY: files here are written only by `store` below, from
            // `Component::serialize` of an engine with the same fingerprint, in the
            // operator's data dir; modules cannot write files. wasmtime also checks
            // the artifact's header against the engine.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(error) => {
                    tracing::warn!(path = %path.display(), "recompiling a cached module that does not load: {error:#}");
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        self.store(&path, &component);
        Ok(component)
    }

    /// Writes an artifact aside and renames it into place, so a reader never sees half
    /// a file. A failure only costs a recompile next time, so it is logged, not raised.
    fn store(&self, path: &Path, component: &Component) {
        let result = (|| -> anyhow::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let partial = path.with_extension(format!("{}.partial", std::process::id()));
            std::fs::write(&partial, component.serialize()?)?;
            std::fs::rename(&partial, path)?;
            Ok(())
        })();
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), "cannot cache a compiled module: {error:#}");
        }
    }
}

fn check_header(bytes: &[u8]) -> Result<(), String> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT_VERSION: &[u8] = &[0x0d, 0x00, 0x01, 0x00];
    if bytes.len() < 8 {
        return Err(if bytes.starts_with(MAGIC) || bytes.is_empty() {
            "it is truncated (fewer than 8 bytes)".to_owned()
        } else {
            "it is not a WebAssembly file (it does not start with `\\0asm`)".to_owned()
        });
    }
    if !bytes.starts_with(MAGIC) {
        return Err("it is not a WebAssembly file (it does not start with `\\0asm`)".to_owned());
    }
    if &bytes[4..8] != COMPONENT_VERSION {
        return Err(
            "it is a core WebAssembly module, not a component; build it with \
             `cargo build --target wasm32-wasip2`"
                .to_owned(),
        );
    }
    Ok(())
}

/// Spark's own types, or `wasi:<package>/<interface>@0.2.*` with an allowed package.
fn import_allowed(name: &str) -> bool {
    if name == TYPES_IMPORT {
        return true;
    }
    let Some(rest) = name.strip_prefix("wasi:") else {
        return false;
    };
    let Some((path, version)) = rest.split_once('@') else {
        return false;
    };
    let package = path.split('/').next().unwrap_or_default();
    ALLOWED_WASI_PACKAGES.contains(&package) && version.starts_with("0.2.")
}

fn root_cause(error: &wasmtime::Error) -> String {
    error.root_cause().to_string()
}

impl CompiledModule {
    /// What the module is.
    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// Instantiates the module once, under the limits it will run with: this checks the
    /// types of its exported functions and that it can start at all, so that a broken
    /// module is refused when it is added rather than at its first event.
    pub fn check_instantiates(&self, engine: &WasmEngine, limits: &Limits) -> Result<(), Error> {
        self.instantiate(engine, limits)
            .map(drop)
            .map_err(|error| Error::ModuleCannotStart {
                name: self.name.clone(),
                error,
            })
    }

    /// A fresh instance in its own sandbox, under `limits`.
    pub fn instantiate(&self, engine: &WasmEngine, limits: &Limits) -> Result<Instance, CallError> {
        let mut store = Store::new(&engine.engine, SandboxState::new(limits));
        store.limiter(|state| &mut state.limiter);
        // Instantiation runs start functions, so it is fuelled and timed like a call.
        arm(&mut store, limits);
        let started = (|| -> wasmtime::Result<_> {
            let instance = self.pre.instantiate(&mut store)?;
            let source = match &self.source {
                Some(indices) => Some(indices.load(&mut store, &instance)?),
                None => None,
            };
            let handler = match &self.handler {
                Some(indices) => Some(indices.load(&mut store, &instance)?),
                None => None,
            };
            let context = match &self.context {
                Some(indices) => Some(indices.load(&mut store, &instance)?),
                None => None,
            };
            Ok((source, handler, context))
        })();
        let log = store.data().call.take_log();
        let (source, handler, context) = started.map_err(|error| classify(error, limits, log))?;
        Ok(Instance {
            store,
            source,
            handler,
            context,
            limits: *limits,
            poisoned: false,
        })
    }
}

/// One live instance of a module. After a call fails with anything but the module's
/// own error, the instance is poisoned and must be replaced (its memory may be in any
/// state).
pub struct Instance {
    store: Store<SandboxState>,
    source: Option<source::Guest>,
    handler: Option<handler::Guest>,
    context: Option<context::Guest>,
    limits: Limits,
    poisoned: bool,
}

/// A successful call's result with what the module logged.
pub struct CallOutput<T> {
    pub value: T,
    pub log: String,
}

impl Instance {
    /// Whether this instance must be replaced before the next call.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Calls the module's source with one record.
    pub fn events(
        &mut self,
        model: &str,
        record: &str,
        inv: &Invocation,
    ) -> Result<CallOutput<Vec<Event>>, CallError> {
        let Some(source) = self.source.clone() else {
            return Err(CallError::Host {
                message: "the module does not export a source".to_owned(),
            });
        };
        let wit_inv = wit_invocation(inv);
        let output = self.call(record.len() + model.len(), seed(record), inv, |store| {
            source.call_events(store, model, record, &wit_inv)
        })?;
        let events: Vec<Event> = output.value.into_iter().map(from_wit_event).collect();
        check_count(
            Limit::EventsPerCall,
            events.len(),
            self.limits.events_per_call,
        )?;
        check_size(events.iter().map(Event::text_len).sum(), &self.limits)?;
        for event in &events {
            event.validate()?;
        }
        Ok(CallOutput {
            value: events,
            log: output.log,
        })
    }

    /// Calls the module's handler with one event.
    pub fn handle(
        &mut self,
        event: &Event,
        inv: &Invocation,
    ) -> Result<CallOutput<Vec<Effect>>, CallError> {
        let Some(handler) = self.handler.clone() else {
            return Err(CallError::Host {
                message: "the module does not export a handler".to_owned(),
            });
        };
        let wit_inv = wit_invocation(inv);
        let wit_event = wit::Event {
            group: event.group.clone(),
            key: event.key.clone(),
            context: event.context.clone(),
        };
        let output = self.call(event.text_len(), seed(&event.key), inv, |store| {
            handler.call_handle(store, &wit_event, &wit_inv)
        })?;
        let effects: Vec<Effect> = output.value.into_iter().map(from_wit_effect).collect();
        check_count(
            Limit::EffectsPerCall,
            effects.len(),
            self.limits.effects_per_call,
        )?;
        check_size(effects.iter().map(Effect::text_len).sum(), &self.limits)?;
        for effect in &effects {
            effect.validate()?;
        }
        Ok(CallOutput {
            value: effects,
            log: output.log,
        })
    }

    /// Calls the module's context function with one record: the record's context for
    /// generators, a JSON object as text.
    pub fn context(
        &mut self,
        model: &str,
        record: &str,
        inv: &Invocation,
    ) -> Result<CallOutput<String>, CallError> {
        let Some(context) = self.context.clone() else {
            return Err(CallError::Host {
                message: "the module does not export a context function".to_owned(),
            });
        };
        let wit_inv = wit_invocation(inv);
        let output = self.call(record.len() + model.len(), seed(record), inv, |store| {
            context.call_context(store, model, record, &wit_inv)
        })?;
        check_size(output.value.len(), &self.limits)?;
        if output.value.len() > MAX_CONTEXT_BYTES {
            return Err(CallError::Limit {
                limit: Limit::ContextBytes,
                max: MAX_CONTEXT_BYTES as u64,
                actual: Some(output.value.len() as u64),
            });
        }
        check_json_object(&output.value).map_err(|why| CallError::InvalidOutput {
            what: "context".to_owned(),
            why,
        })?;
        Ok(output)
    }

    /// Asks the module's context function which variables it offers for `model`.
    pub fn describe(
        &mut self,
        model: &str,
        inv: &Invocation,
    ) -> Result<CallOutput<Vec<(String, String)>>, CallError> {
        let Some(context) = self.context.clone() else {
            return Err(CallError::Host {
                message: "the module does not export a context function".to_owned(),
            });
        };
        let output = self.call(model.len(), seed(model), inv, |store| {
            context.call_describe(store, model).map(Ok)
        })?;
        let bytes: usize = output.value.iter().map(|(n, d)| n.len() + d.len()).sum();
        check_size(bytes, &self.limits)?;
        Ok(output)
    }

    /// Runs `f` under the per-call limits and sorts its failure into a [`CallError`].
    fn call<T>(
        &mut self,
        input_bytes: usize,
        seed: u64,
        inv: &Invocation,
        f: impl FnOnce(&mut Store<SandboxState>) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<CallOutput<T>, CallError> {
        if self.poisoned {
            return Err(CallError::Host {
                message: "the instance was poisoned by an earlier failure".to_owned(),
            });
        }
        if input_bytes as u64 > self.limits.input_bytes {
            return Err(CallError::Limit {
                limit: Limit::InputBytes,
                max: self.limits.input_bytes,
                actual: Some(input_bytes as u64),
            });
        }
        let log_limit = usize::try_from(self.limits.log_bytes).unwrap_or(usize::MAX);
        self.store.data().call.begin(inv.now_ms, seed, log_limit);
        arm(&mut self.store, &self.limits);
        let result = f(&mut self.store);
        let log = self.store.data().call.take_log();
        match result {
            Ok(Ok(value)) => Ok(CallOutput { value, log }),
            Ok(Err(message)) => Err(CallError::Guest {
                message: bounded(message, self.limits.output_bytes),
            }),
            Err(error) => {
                self.poisoned = true;
                Err(classify(error, &self.limits, log))
            }
        }
    }
}

/// Sets the fuel and the deadline for the next call.
fn arm(store: &mut Store<SandboxState>, limits: &Limits) {
    // Fuel is enabled in the engine config, so setting it cannot fail.
    let _ = store.set_fuel(limits.fuel);
    let tick = EPOCH_TICK.as_millis() as u64;
    store.set_epoch_deadline(limits.deadline_ms.div_ceil(tick) + 1);
}

/// Sorts a wasmtime failure into the variant an operator acts on.
fn classify(error: wasmtime::Error, limits: &Limits, log: String) -> CallError {
    if let Some(hit) = error.downcast_ref::<LimitHit>() {
        return CallError::Limit {
            limit: hit.limit,
            max: hit.max,
            actual: Some(hit.asked),
        };
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => {
                return CallError::Limit {
                    limit: Limit::Fuel,
                    max: limits.fuel,
                    actual: None,
                };
            }
            Trap::Interrupt => {
                return CallError::Limit {
                    limit: Limit::DeadlineMs,
                    max: limits.deadline_ms,
                    actual: None,
                };
            }
            _ => {}
        }
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return CallError::Trap {
            message: format!("the module called exit({})", exit.0),
            log,
        };
    }
    // Limits on instances, tables and memories at instantiation come as plain errors.
    let message = error.root_cause().to_string();
    if message.contains("resource limit exceeded: instance count too high") {
        return CallError::Limit {
            limit: Limit::Instances,
            max: u64::from(limits.instances),
            actual: None,
        };
    }
    CallError::Trap { message, log }
}

fn check_count(limit: Limit, count: usize, max: u32) -> Result<(), CallError> {
    if count as u64 > u64::from(max) {
        return Err(CallError::Limit {
            limit,
            max: u64::from(max),
            actual: Some(count as u64),
        });
    }
    Ok(())
}

fn check_size(bytes: usize, limits: &Limits) -> Result<(), CallError> {
    if bytes as u64 > limits.output_bytes {
        return Err(CallError::Limit {
            limit: Limit::OutputBytes,
            max: limits.output_bytes,
            actual: Some(bytes as u64),
        });
    }
    Ok(())
}

/// A guest's error message, cut to the output limit so that it cannot flood storage.
fn bounded(mut message: String, max: u64) -> String {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" [cut off]");
    }
    message
}

/// The seed of a call's randomness: the same input gets the same numbers (FNV-1a).
fn seed(input: &str) -> u64 {
    input.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn wit_invocation(inv: &Invocation) -> wit::Invocation {
    wit::Invocation {
        tenant: inv.tenant.clone(),
        now_ms: inv.now_ms,
        attempt: inv.attempt,
    }
}

fn from_wit_event(event: wit::Event) -> Event {
    Event {
        group: event.group,
        key: event.key,
        context: event.context,
    }
}

fn from_wit_effect(effect: wit::Effect) -> Effect {
    match effect {
        wit::Effect::Emit(event) => Effect::Emit(from_wit_event(event)),
        wit::Effect::Mail(mail) => Effect::Mail(Mail {
            to: mail.to,
            subject: mail.subject,
            body: mail.body,
            template: mail.template,
            context: mail.context,
            ..Mail::default()
        }),
        wit::Effect::Output((channel, payload)) => Effect::Output { channel, payload },
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] so that deadlines fire; stops when
/// the engine is dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("spark-epoch".to_owned())
                .spawn(move || {
                    let mut next = Instant::now() + EPOCH_TICK;
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                        next += EPOCH_TICK;
                        match weak.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                })
                .ok()
        };
        Self { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sandboxed_wasi_imports_are_allowed() {
        for name in [
            "wasi:cli/environment@0.2.0",
            "wasi:io/streams@0.2.4",
            "wasi:filesystem/preopens@0.2.12",
            "wasi:sockets/tcp@0.2.3",
            "spark:engine/types@0.1.0",
        ] {
            assert!(import_allowed(name), "{name}");
        }
        for name in [
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:cli/environment@0.3.0",
            "wasi:cli/environment",
            "acme:db/query@1.0.0",
            "spark:engine/types@0.2.0",
            "spark:engine/handler@0.1.0",
        ] {
            assert!(!import_allowed(name), "{name}");
        }
    }

    #[test]
    fn headers_say_what_is_wrong() {
        assert!(check_header(b"").unwrap_err().contains("truncated"));
        assert!(check_header(b"\0asm").unwrap_err().contains("truncated"));
        assert!(
            check_header(b"hello, world")
                .unwrap_err()
                .contains("not a WebAssembly")
        );
        let core = b"\0asm\x01\0\0\0";
        assert!(
            check_header(core)
                .unwrap_err()
                .contains("core WebAssembly module")
        );
        assert_eq!(check_header(b"\0asm\x0d\0\x01\0"), Ok(()));
    }

    #[test]
    fn long_guest_errors_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("short".to_owned(), 10), "short");
        assert_eq!(bounded("ééé".to_owned(), 3), "é [cut off]");
    }
}
