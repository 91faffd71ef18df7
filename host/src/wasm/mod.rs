//! Everything that knows wasmtime: the engine and its settings, compiling and
//! validating components, instantiating them in a sandbox and calling them under limits.
//! No wasmtime type leaves this module.
//!
//! Expensive things are built once: the process has one wasmtime engine, with its
//! instance pool and deadline thread; [`WasmEngine`] holds it and the linker,
//! [`CompiledModule`] the component and its `InstancePre`; an [`Instance`] lives as
//! long as it behaves and is replaced after any trap. Mail templates render here too,
//! in an instance of the host's own renderer component ([`Renderer`]).

mod cache;
mod instance;
mod language;
mod pool;
mod renderer;
mod sandbox;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Store};

use crate::error::{CallError, Error};
use crate::event::{Event, Invocation};
use crate::limits::Limits;
use cache::ArtifactCache;
use instance::{arm, classify};
use language::Language;
use sandbox::SandboxState;

pub use instance::{CallOutput, Instance, LastCall};
pub use renderer::Renderer;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "any-module",
        // What the host passes in is borrowed (`EventParam<'_>`, `Invocation<'_>`), so
        // that a call does not copy the event and the tenant's name first only to
        // lower the copies; what comes back is owned (`EventResult`).
        ownership: Borrowing {
            duplicate_if_necessary: true
        },
    });
}

use bindings::exports::spark::engine::{context, handler, source};

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

/// A wasmtime engine, its linker, and where compiled components are cached. Every
/// `WasmEngine` of a process shares one wasmtime engine ([`EngineCore::process`]).
pub struct WasmEngine {
    core: Arc<EngineCore>,
    linker: Linker<SandboxState>,
    /// Compiled modules in use, by hash, shared by every tenant that registered the
    /// same component (a module holds no tenant data, and its errors name nobody).
    shared: Mutex<HashMap<String, Weak<CompiledModule>>>,
    /// Where compiled components are kept between runs, if anywhere.
    cache: Option<ArtifactCache>,
}

/// The wasmtime engine with its settings, its instance pool (see [`pool`]) and the
/// thread that drives deadlines.
struct EngineCore {
    engine: Engine,
    /// How many instances the pool of memory slots holds, if there is one.
    pool: Option<u32>,
    /// The mail template renderer, compiled for this engine on first use.
    renderer: renderer::CompiledRenderer,
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
    language: Language,
}

impl WasmEngine {
    /// The process's engine (fuel, epoch deadlines, the instance pool; made on first
    /// use) with the sandboxed WASI linker. With a `cache_dir`, compiled components are
    /// kept there and reused by later runs.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, Error> {
        Self::on(EngineCore::process()?, cache_dir)
    }

    fn on(core: Arc<EngineCore>, cache_dir: Option<PathBuf>) -> Result<Self, Error> {
        let mut linker = Linker::new(&core.engine);
        sandbox::add_wasi(&mut linker).map_err(|error| Error::Engine(format!("{error:#}")))?;
        linker
            .instance(TYPES_IMPORT)
            .map_err(|error| Error::Engine(format!("{error:#}")))?;
        let cache = cache_dir.map(|dir| ArtifactCache::new(dir, &core.engine));
        Ok(Self {
            core,
            linker,
            shared: Mutex::new(HashMap::new()),
            cache,
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
        let language = || Language::of(bytes);
        check_header(bytes).map_err(|why| match why {
            HeaderProblem::CoreModule => invalid(format!(
                "it is a core WebAssembly module, not a component; {}",
                language().build_advice()
            )),
            HeaderProblem::Other(why) => invalid(why),
        })?;
        let component = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.core.engine, bytes, hash),
            None => Component::new(&self.core.engine, bytes),
        }
        .map_err(|error| invalid(format!("it does not compile: {}", root_cause(&error))))?;
        let component_type = component.component_type();
        let imports: Vec<String> = component_type
            .imports(&self.core.engine)
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
                .exports(&self.core.engine)
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            let exports = if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            };
            return Err(invalid(format!(
                "it exports none of `{SOURCE_EXPORT}`, `{HANDLER_EXPORT}` and \
                 `{CONTEXT_EXPORT}` (it exports {exports}); {}",
                language().export_advice()
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
            language: language(),
        })
    }
}

impl WasmEngine {
    /// How many live instances the pool of memory slots holds (the fast way to make a
    /// fresh instance), or `None` where there is none and each instance maps its own
    /// memory; see [`pool`].
    pub fn instance_pool(&self) -> Option<u32> {
        self.core.pool
    }

    /// [`compile`](Self::compile), or the module already compiled for another tenant.
    pub fn compile_shared(
        &self,
        name: &str,
        bytes: &[u8],
        hash: &str,
    ) -> Result<Arc<CompiledModule>, Error> {
        if let Some(module) = self.shared_modules().get(hash).and_then(Weak::upgrade) {
            return Ok(module);
        }
        let module = Arc::new(self.compile(name, bytes, hash)?);
        let mut shared = self.shared_modules();
        shared.retain(|_, module| module.strong_count() > 0);
        shared.insert(hash.to_owned(), Arc::downgrade(&module));
        Ok(module)
    }

    fn shared_modules(&self) -> MutexGuard<'_, HashMap<String, Weak<CompiledModule>>> {
        // Nothing panics while holding the lock; a poisoned map is still a good map.
        self.shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Why a file's first bytes are not a component's.
enum HeaderProblem {
    /// A core module: the author built for the wrong target.
    CoreModule,
    Other(String),
}

fn check_header(bytes: &[u8]) -> Result<(), HeaderProblem> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT_VERSION: &[u8] = &[0x0d, 0x00, 0x01, 0x00];
    let not_wasm = || {
        HeaderProblem::Other(
            "it is not a WebAssembly file (it does not start with `\\0asm`)".to_owned(),
        )
    };
    if bytes.len() < 8 {
        return Err(if bytes.starts_with(MAGIC) || bytes.is_empty() {
            HeaderProblem::Other("it is truncated (fewer than 8 bytes)".to_owned())
        } else {
            not_wasm()
        });
    }
    if !bytes.starts_with(MAGIC) {
        return Err(not_wasm());
    }
    if &bytes[4..8] != COMPONENT_VERSION {
        return Err(HeaderProblem::CoreModule);
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
    pub fn check_instantiates(
        &self,
        engine: &WasmEngine,
        limits: &Limits,
        name: &str,
    ) -> Result<(), Error> {
        self.instantiate(engine, limits)
            .map(drop)
            .map_err(|error| Error::ModuleCannotStart {
                name: name.to_owned(),
                error,
            })?;
        if self.language == Language::JavaScript {
            self.probe_javascript_exports(engine, limits, name)?;
        }
        Ok(())
    }

    /// Calls each export of a JavaScript component once, with harmless input:
    /// componentize-qjs builds a component whose JavaScript lacks an export (a
    /// misnamed one, say) and fails only when it is called, so that a check would pass
    /// and every call fail. A call that fails for any other reason (the module's own
    /// error with this input) is no business of this check.
    fn probe_javascript_exports(
        &self,
        engine: &WasmEngine,
        limits: &Limits,
        name: &str,
    ) -> Result<(), Error> {
        let inv = Invocation {
            tenant: "spark-check".to_owned(),
            now_ms: 0,
            attempt: 1,
        };
        let event = Event {
            group: "spark-check".to_owned(),
            key: "spark-check".to_owned(),
            context: "{}".to_owned(),
        };
        let record = r#"{"id": "spark-check"}"#;
        for (export, exported) in [
            ("source", self.source.is_some()),
            ("handler", self.handler.is_some()),
            ("context", self.context.is_some()),
        ] {
            if !exported {
                continue;
            }
            let mut instance =
                self.instantiate(engine, limits)
                    .map_err(|error| Error::ModuleCannotStart {
                        name: name.to_owned(),
                        error,
                    })?;
            let result = match export {
                "source" => instance.events("spark-check", record, &inv).map(drop),
                "handler" => instance.handle(&event, &inv).map(drop),
                _ => instance.describe("spark-check", &inv).map(drop),
            };
            if let Err(CallError::Trap { log, .. }) = result
                && log.contains("interface 'spark:engine/")
                && log.contains("not found")
            {
                return Err(Error::InvalidModule {
                    name: name.to_owned(),
                    why: format!(
                        "its WebAssembly exports `spark:engine/{export}`, but its JavaScript \
                         defines no `{export}` export (a misnamed one?): write `export const \
                         {export} = ...` (guest-sdk/javascript.md)"
                    ),
                });
            }
        }
        Ok(())
    }

    /// A fresh instance in its own sandbox, under `limits`.
    pub fn instantiate(&self, engine: &WasmEngine, limits: &Limits) -> Result<Instance, CallError> {
        let mut store = Store::new(&engine.core.engine, SandboxState::new(limits));
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
            calls: 0,
            last_call: LastCall::default(),
        })
    }
}

impl EngineCore {
    /// The process's engine, made on first use. One for all: wasmtime engines are
    /// meant to be shared, the instance pool is reserved once (two pools would take
    /// 32 TiB of address space), and one thread drives every deadline.
    fn process() -> Result<Arc<Self>, Error> {
        static PROCESS: OnceLock<Result<Arc<EngineCore>, String>> = OnceLock::new();
        PROCESS
            .get_or_init(|| {
                let variable = std::env::var(pool::POOL_VARIABLE).ok();
                Self::new(pool::size(variable.as_deref())?).map(Arc::new)
            })
            .clone()
            .map_err(Error::Engine)
    }

    /// An engine whose instances come from a pool of `pool` slots (if possible), or
    /// map their own memory.
    fn new(pool: Option<u32>) -> Result<Self, String> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        // Calls are synchronous; without this, every call and instantiation also sets
        // up the bookkeeping of the component model's async tasks (about 2 µs of a
        // fresh instance).
        config.concurrency_support(false);
        let pooled = pool.and_then(|size| {
            let mut pooled = config.clone();
            pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool::config(size)));
            match Engine::new(&pooled) {
                Ok(engine) => Some((engine, size)),
                Err(error) => {
                    tracing::info!("no instance pool: {error:#}");
                    None
                }
            }
        });
        let (engine, pool) = match pooled {
            Some((engine, size)) => (engine, Some(size)),
            None => {
                tracing::info!(
                    "no instance pool: each instance maps its own memory, so fresh \
                     instances cost more"
                );
                let engine = Engine::new(&config).map_err(|error| format!("{error:#}"))?;
                (engine, None)
            }
        };
        let ticker = EpochTicker::start(&engine);
        Ok(Self {
            engine,
            pool,
            renderer: renderer::CompiledRenderer::new(),
            _ticker: ticker,
        })
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

    /// The process's engine, which on this machine has its instance pool.
    fn pooled_engine() -> WasmEngine {
        let engine = WasmEngine::new(None).unwrap();
        assert!(
            engine.instance_pool().is_some(),
            "the pool could not be reserved"
        );
        engine
    }

    /// A component written in WAT, compiled and linked on `engine`.
    fn prepared(engine: &WasmEngine, wat: &str) -> InstancePre<SandboxState> {
        let component = Component::new(&engine.core.engine, wat).unwrap();
        engine.linker.instantiate_pre(&component).unwrap()
    }

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
        let why = |bytes: &[u8]| match check_header(bytes) {
            Err(HeaderProblem::Other(why)) => why,
            Err(HeaderProblem::CoreModule) => "core module".to_owned(),
            Ok(()) => "a component".to_owned(),
        };
        assert!(why(b"").contains("truncated"));
        assert!(why(b"\0asm").contains("truncated"));
        assert!(why(b"hello, world").contains("not a WebAssembly"));
        assert_eq!(why(b"\0asm\x01\0\0\0"), "core module");
        assert_eq!(why(b"\0asm\x0d\0\x01\0"), "a component");
    }

    #[test]
    fn advice_on_a_module_that_is_not_right_speaks_its_language() {
        let engine = WasmEngine::new(None).unwrap();
        let refusal = |wat: &str| match engine.compile("m", &wat::parse_str(wat).unwrap(), "h") {
            Err(Error::InvalidModule { why, .. }) => why,
            other => panic!("{:?}", other.map(|module| module.info().clone())),
        };
        let core = "(module (@custom \"runtime\" \"componentize_py_runtime.so\"))";
        let why = refusal(core);
        assert!(
            why.contains("core WebAssembly module") && why.contains("componentize-py"),
            "{why}"
        );
        let why = refusal("(module)");
        assert!(why.contains("cargo build --target wasm32-wasip2"), "{why}");
        let exports_nothing = "(component (@custom \"shim\" \"componentize-qjs:shim.js\"))";
        let why = refusal(exports_nothing);
        assert!(
            why.contains("export `source`, `handler` or `context`"),
            "{why}"
        );
        assert!(!why.contains("#[handler]"), "{why}");
        let why = refusal("(component)");
        assert!(why.contains("spark-guest's #[source]"), "{why}");
    }

    #[test]
    fn a_full_instance_pool_says_so_and_frees_slots_as_instances_go() {
        // A pool of its own: filling the process's would fail the tests beside it.
        const SIZE: u32 = 64;
        let core = EngineCore::new(Some(SIZE)).unwrap();
        let engine = WasmEngine::on(Arc::new(core), None).unwrap();
        // A 64-bit Linux process has the address space; without it this test would
        // measure the fallback, which has no pool to fill.
        assert_eq!(engine.instance_pool(), Some(SIZE));
        let pre = prepared(
            &engine,
            "(component (core module $m (memory 1)) (core instance (instantiate $m)))",
        );
        let limits = Limits::default();
        let instantiate = || {
            let mut store = Store::new(&engine.core.engine, SandboxState::new(&limits));
            pre.instantiate(&mut store).map(|_| store)
        };
        let mut live = Vec::new();
        let error = loop {
            match instantiate() {
                Ok(store) => live.push(store),
                Err(error) => break error,
            }
            assert!(live.len() <= SIZE as usize, "the pool never fills");
        };
        assert_eq!(live.len(), SIZE as usize);
        match classify(error, &limits, String::new()) {
            CallError::Host { message } => assert!(
                message.contains("instance pool is full") && message.contains(&SIZE.to_string()),
                "{message}"
            ),
            other => panic!("expected a host error, got {other:?}"),
        }
        live.pop();
        assert!(instantiate().is_ok(), "a dropped instance frees its slot");
    }

    #[test]
    fn the_table_elements_limit_not_the_pool_bounds_tables() {
        let engine = pooled_engine();
        // A table of 30,000 elements: over the limit's default of 20,000 (which is
        // also wasmtime's default for pooled tables), under a raised limit.
        let pre = prepared(
            &engine,
            "(component (core module $m (table 30000 funcref)) (core instance (instantiate $m)))",
        );
        let instantiate = |limits: Limits| {
            let mut store = Store::new(&engine.core.engine, SandboxState::new(&limits));
            store.limiter(|state| &mut state.limiter);
            pre.instantiate(&mut store)
                .map(drop)
                .map_err(|error| classify(error, &limits, String::new()))
        };
        match instantiate(Limits::default()) {
            Err(CallError::Limit {
                limit: crate::Limit::TableElements,
                max: 20_000,
                ..
            }) => {}
            other => panic!("expected the table-elements limit, got {other:?}"),
        }
        let raised = Limits {
            table_elements: 100_000,
            ..Limits::default()
        };
        assert_eq!(instantiate(raised), Ok(()));
    }

    #[test]
    fn modules_that_use_gc_get_a_gc_heap_from_the_pool() {
        let engine = pooled_engine();
        // Its start function allocates a struct: it needs a GC heap to start at all.
        let pre = prepared(
            &engine,
            "(component (core module $m (type $s (struct (field i32))) \
             (func $f (drop (struct.new $s (i32.const 1)))) (start $f)) \
             (core instance (instantiate $m)))",
        );
        let limits = Limits::default();
        let mut store = Store::new(&engine.core.engine, SandboxState::new(&limits));
        arm(&mut store, &limits);
        let started = pre.instantiate(&mut store).map(drop);
        assert!(started.is_ok(), "{:#}", started.unwrap_err());
    }
}
