//! A tenant's modules as code: checking a module for registration, storing its
//! component under its hash, compiling it once per tenant handle, and handing out a
//! [`Runner`] for a registration. What is registered (the [`Registration`]s) is in the
//! store; this part owns the engine, the host's native modules, the compiled cache and
//! the `modules/` directory of component files.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{CallError, Error};
use crate::event::Invocation;
use crate::limits::{LimitOverrides, Limits};
use crate::native::NativeModules;
use crate::registration::{RegisteredCode, Registration, is_native, validate_name};
use crate::routes::compile_regex;
use crate::runner::Runner;
use crate::store::{Store, is_component_hash};
use crate::time::Clock;
use crate::wasm::{CompiledModule, WasmEngine};

/// A module to register.
#[derive(Debug, Clone)]
pub struct ModuleSpec {
    /// The name it is registered under; dead letters are kept by this name.
    pub name: String,
    /// What runs: a component, or a handler built into the host.
    pub code: ModuleCode,
    /// Models it is a source for.
    pub sources: Vec<String>,
    /// Group regexes it handles.
    pub handlers: Vec<String>,
    /// Its own limits, over the tenant's.
    pub limits: LimitOverrides,
    /// How coarsely its calls read the run's time.
    pub clock: Clock,
}

/// What a module to register runs (once registered: a [`RegisteredCode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleCode {
    /// A WebAssembly component.
    Wasm(Vec<u8>),
    /// A native module of the host, by name: `builtin:mails` (events whose context
    /// holds `spark_mail` become mails), or one registered with
    /// [`Spark::register_native`](crate::Spark::register_native).
    Native(String),
}

impl ModuleCode {
    /// A native module's name (`builtin:...`), or the component in the file at `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        if let Some(name) = path.to_str().filter(|name| is_native(name)) {
            return Ok(ModuleCode::Native(name.to_owned()));
        }
        read_component(path).map(ModuleCode::Wasm)
    }
}

/// The largest component file read: several times the largest real ones (a Python
/// component with its interpreter is about 40 MiB).
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// The bytes of the component file at `path`. Only a regular file of at most
/// [`MAX_COMPONENT_BYTES`] is read: a path such as `/dev/zero` would otherwise be read
/// until memory runs out.
pub fn read_component(path: &Path) -> Result<Vec<u8>, Error> {
    let io = |what, error| Error::Io {
        what,
        path: path.to_owned(),
        error,
    };
    let file = File::open(path).map_err(|error| io("cannot read module", error))?;
    let metadata = file
        .metadata()
        .map_err(|error| io("cannot read module", error))?;
    let refuse = |why: String| Error::InvalidModule {
        name: format!("`{}`", path.display()),
        why,
    };
    if !metadata.is_file() {
        return Err(refuse("it is not a regular file".to_owned()));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&file, MAX_COMPONENT_BYTES + 1),
        &mut bytes,
    )
    .map_err(|error| io("cannot read module", error))?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(refuse(format!(
            "it is larger than {} MiB",
            MAX_COMPONENT_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// What registering a module did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleChange {
    Added,
    Replaced,
    /// The same component with the same registration was already there.
    Unchanged,
}

/// A registered module with the limits it runs under.
#[derive(Debug, Clone)]
pub struct ModuleSummary {
    pub registration: Registration,
    pub limits: Limits,
}

/// A module that passed every check, ready to store.
#[derive(Debug)]
pub(crate) struct PreparedModule {
    spec: ModuleSpec,
    code: RegisteredCode,
    exports: Vec<String>,
}

impl PreparedModule {
    /// The name it will be registered under.
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }
}

/// A tenant's modules as code.
pub(crate) struct Modules {
    engine: Arc<WasmEngine>,
    natives: NativeModules,
    /// Compiled components by hash, for this handle's life.
    compiled: HashMap<String, Arc<CompiledModule>>,
    /// Where the tenant's components are stored, each as `SHA256.wasm`.
    dir: PathBuf,
}

impl Modules {
    pub(crate) fn new(dir: PathBuf, engine: Arc<WasmEngine>, natives: NativeModules) -> Self {
        Self {
            engine,
            natives,
            compiled: HashMap::new(),
            dir,
        }
    }

    /// The engine the modules run on (and mail templates render on).
    pub(crate) fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// Checks a module for registration without storing anything: its name, models
    /// and regexes, its code, that it exports what it is registered for, and that it
    /// starts under its limits (the tenant's `tenant_limits`, then its own).
    pub(crate) fn prepare(
        &mut self,
        spec: ModuleSpec,
        tenant_limits: &LimitOverrides,
    ) -> Result<PreparedModule, Error> {
        validate_name(&spec.name).map_err(|why| Error::InvalidModuleName {
            name: spec.name.clone(),
            why,
        })?;
        let refuse = |why: String| Error::Registration {
            name: spec.name.clone(),
            why,
        };
        for model in &spec.sources {
            validate_name(model)
                .map_err(|why| refuse(format!("invalid model name `{model}`: {why}")))?;
        }
        for pattern in &spec.handlers {
            compile_regex(pattern)?;
        }
        spec.limits.validate()?;
        if spec.sources.is_empty() && spec.handlers.is_empty() {
            return Err(refuse(
                "it is registered for nothing; give --source MODEL or --handler REGEX".to_owned(),
            ));
        }
        let (code, exports) = match &spec.code {
            ModuleCode::Native(name) => {
                let native = self.natives.get(name).ok_or_else(|| {
                    refuse(format!(
                        "this host has no native module `{name}`; it has: {}",
                        self.natives.names().join(", ")
                    ))
                })?;
                let code = RegisteredCode::Native { name: name.clone() };
                (code, native.exports())
            }
            ModuleCode::Wasm(wasm) => {
                let sha256 = hex_sha256(wasm);
                let name = format!("module `{}`", spec.name);
                let compiled = self.compile(&name, &sha256, wasm)?;
                let limits = Limits::layered(tenant_limits, &spec.limits);
                compiled.check_instantiates(&self.engine, &limits, &name)?;
                let exports = compiled.info().exports();
                (RegisteredCode::Component { sha256 }, exports)
            }
        };
        for (registered, interface, flag) in [
            (!spec.sources.is_empty(), "source", "--source"),
            (!spec.handlers.is_empty(), "handler", "--handler"),
        ] {
            if registered && !exports.contains(&interface) {
                let lacks = match &code {
                    RegisteredCode::Native { name } => format!("`{name}` is not a {interface}"),
                    RegisteredCode::Component { .. } => format!("it does not export a {interface}"),
                };
                return Err(refuse(format!(
                    "{lacks}, so it cannot be registered with {flag}"
                )));
            }
        }
        Ok(PreparedModule {
            spec,
            code,
            exports: exports.into_iter().map(str::to_owned).collect(),
        })
    }

    /// Stores a module checked by [`prepare`](Self::prepare): its component, then its
    /// registration in `store`. A replaced module keeps its place in the registration
    /// order.
    pub(crate) fn install(
        &mut self,
        store: &mut dyn Store,
        prepared: PreparedModule,
        replace: bool,
    ) -> Result<ModuleChange, Error> {
        let PreparedModule {
            spec,
            code,
            exports,
        } = prepared;
        let existing = store
            .modules()?
            .into_iter()
            .find(|module| module.name == spec.name);
        let order = match &existing {
            Some(_) if !replace => return Err(Error::ModuleExists(spec.name)),
            Some(existing) => existing.order,
            None => store.next_module_order()?,
        };
        let mut registration = Registration {
            name: spec.name,
            code,
            order,
            sources: spec.sources,
            handlers: spec.handlers,
            exports,
            limits: spec.limits,
            clock: spec.clock,
            since_ms: existing.as_ref().and_then(|existing| existing.since_ms),
        };
        if existing.as_ref() == Some(&registration) {
            return Ok(ModuleChange::Unchanged);
        }
        registration.since_ms = Some(crate::time::wall_clock_ms());
        if let (ModuleCode::Wasm(wasm), RegisteredCode::Component { sha256 }) =
            (&spec.code, &registration.code)
        {
            self.write_blob(sha256, wasm)?;
        }
        store.put_module(&registration)?;
        if let Some(old) = existing {
            self.remove_unused_blob(store, &old.code)?;
            Ok(ModuleChange::Replaced)
        } else {
            Ok(ModuleChange::Added)
        }
    }

    /// Unregisters a module from `store`, and removes its component if no other
    /// registration uses it.
    pub(crate) fn remove(&mut self, store: &mut dyn Store, name: &str) -> Result<(), Error> {
        let Some(registration) = store
            .modules()?
            .into_iter()
            .find(|module| module.name == name)
        else {
            return Err(Error::UnknownModule(name.to_owned()));
        };
        store.remove_module(name)?;
        self.remove_unused_blob(store, &registration.code)
    }

    /// A fresh runner of `registration` under `limits`: its native implementation, or a
    /// new instance of its component.
    pub(crate) fn runner(
        &mut self,
        registration: &Registration,
        limits: &Limits,
    ) -> Result<Runner, CallError> {
        match &registration.code {
            RegisteredCode::Native { name } => self
                .natives
                .get(name)
                .map(Runner::Native)
                .ok_or_else(|| CallError::Host {
                    message: format!("this host has no native module `{name}`"),
                }),
            RegisteredCode::Component { sha256 } => {
                let compiled =
                    self.compiled(&registration.name, sha256)
                        .map_err(|error| CallError::Host {
                            message: error.to_string(),
                        })?;
                compiled
                    .instantiate(&self.engine, limits)
                    .map(|instance| Runner::Wasm(Box::new(instance)))
            }
        }
    }

    /// The variables the context function of `registration` offers for `model`, as
    /// (name, description).
    pub(crate) fn context_variables(
        &mut self,
        registration: &Registration,
        limits: &Limits,
        model: &str,
        inv: &Invocation,
    ) -> Result<Vec<(String, String)>, Error> {
        let cannot_start = |error| Error::ModuleCannotStart {
            name: format!("module `{}`", registration.name),
            error,
        };
        match self.runner(registration, limits).map_err(cannot_start)? {
            Runner::Native(native) => Ok(native.describe(model)),
            Runner::Wasm(mut instance) => {
                Ok(instance.describe(model, inv).map_err(cannot_start)?.value)
            }
        }
    }

    /// The compiled component of module `name`, stored under `sha256`, compiled once
    /// per handle.
    fn compiled(&mut self, name: &str, sha256: &str) -> Result<Arc<CompiledModule>, Error> {
        if let Some(compiled) = self.compiled.get(sha256) {
            return Ok(compiled.clone());
        }
        let path = self.blob_path(sha256);
        let wasm = fs::read(&path).map_err(|source| Error::Io {
            what: "cannot read the component of a registered module",
            path,
            error: source,
        })?;
        self.compile(&format!("module `{name}`"), sha256, &wasm)
    }

    fn compile(
        &mut self,
        name: &str,
        sha256: &str,
        wasm: &[u8],
    ) -> Result<Arc<CompiledModule>, Error> {
        if let Some(compiled) = self.compiled.get(sha256) {
            return Ok(compiled.clone());
        }
        let compiled = self.engine.compile_shared(name, wasm, sha256)?;
        self.compiled.insert(sha256.to_owned(), compiled.clone());
        Ok(compiled)
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    fn write_blob(&self, sha256: &str, wasm: &[u8]) -> Result<(), Error> {
        write_component(&self.dir, sha256, wasm)
    }

    /// Makes sure the component `sha256` is stored, fetching it with `fetch` if it is
    /// not (see [`fetch_component`]).
    pub(crate) fn fetch_blob(
        &self,
        sha256: &str,
        fetch: &dyn Fn(&str) -> Result<Vec<u8>, Error>,
    ) -> Result<(), Error> {
        fetch_component(&self.dir, sha256, fetch)
    }

    /// Removes the component of `code` if no registration in `store` uses it any more.
    pub(crate) fn remove_unused_blob(
        &self,
        store: &dyn Store,
        code: &RegisteredCode,
    ) -> Result<(), Error> {
        let RegisteredCode::Component { sha256 } = code else {
            return Ok(());
        };
        let in_use = store.modules()?.iter().any(|module| &module.code == code);
        if !in_use {
            // A blob left behind only costs disk space; failing the command for it
            // would be worse.
            let _ = fs::remove_file(self.blob_path(sha256));
        }
        Ok(())
    }
}

/// Stores a component under its hash in `dir` (a tenant's `modules/`), unless it is
/// there: written aside, synced, then renamed, so a crash never leaves a half-written
/// component under a registered name.
fn write_component(dir: &Path, sha256: &str, wasm: &[u8]) -> Result<(), Error> {
    let path = dir.join(format!("{sha256}.wasm"));
    if path.exists() {
        return Ok(());
    }
    let partial = path.with_extension("partial");
    let io = |what, source| Error::Io {
        what,
        path: partial.clone(),
        error: source,
    };
    let file = File::create(&partial).map_err(|e| io("cannot create", e))?;
    std::io::Write::write_all(&mut &file, wasm).map_err(|e| io("cannot write", e))?;
    file.sync_all().map_err(|e| io("cannot sync", e))?;
    fs::rename(&partial, &path).map_err(|e| io("cannot rename", e))?;
    Ok(())
}

/// Makes sure the component `sha256` is in `dir` (a tenant's `modules/`): if it is
/// missing, its bytes are fetched with `fetch` (from a cluster's store of components,
/// say), checked to have that hash, and stored. A replica rebuilding a tenant calls it
/// for each component the tenant's registrations name.
pub(crate) fn fetch_component(
    dir: &Path,
    sha256: &str,
    fetch: &dyn Fn(&str) -> Result<Vec<u8>, Error>,
) -> Result<(), Error> {
    if !is_component_hash(sha256) {
        return Err(Error::Journal(format!(
            "a registration names the component `{sha256}`, which is not a SHA-256 in \
             lowercase hex"
        )));
    }
    if dir.join(format!("{sha256}.wasm")).exists() {
        return Ok(());
    }
    let wasm = fetch(sha256)?;
    let actual = hex_sha256(&wasm);
    if actual != sha256 {
        return Err(Error::Journal(format!(
            "the component fetched as {sha256} is not it: its SHA-256 is {actual}"
        )));
    }
    write_component(dir, sha256, &wasm)
}

/// SHA-256 of `bytes` as lowercase hex.
pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hex_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
