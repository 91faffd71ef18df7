//! A tenant: its directory, its lock, its store and its modules.
//!
//! Layout of a data dir: `tenants/<name>/LOCK` (held while a process uses the tenant),
//! `tenants/<name>/db/` (the store), `tenants/<name>/modules/<sha256>.wasm` (the
//! registered components). Nothing of one tenant is reachable from another's handle.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::limits::{LimitOverrides, Limits};
use crate::native::{NativeModules, is_native};
use crate::routes::compile_regex;
use crate::store::{
    DeadLetter, LedgerEntry, ModuleRecord, OutboxItem, PendingDelivery, SledStore, Store,
    TenantSettings,
};
use crate::time::Clock;
use crate::wasm::{CompiledModule, WasmEngine};

/// The longest tenant, module or model name.
const MAX_NAME_LEN: usize = 64;

/// An open tenant. Holds the tenant's lock until dropped.
pub struct Tenant {
    pub(crate) name: String,
    dir: PathBuf,
    pub(crate) store: Box<dyn Store>,
    pub(crate) engine: Arc<WasmEngine>,
    pub(crate) natives: NativeModules,
    compiled: HashMap<String, Arc<CompiledModule>>,
    _lock: File,
}

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

/// What a module runs.
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
        fs::read(path)
            .map(ModuleCode::Wasm)
            .map_err(|source| Error::Io {
                what: "cannot read module",
                path: path.to_owned(),
                error: source,
            })
    }
}

/// A module that passed every check, ready to store.
#[derive(Debug)]
pub(crate) struct PreparedModule {
    spec: ModuleSpec,
    hash: String,
    exports: Vec<String>,
}

impl PreparedModule {
    /// The name it will be registered under.
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }
}

/// What registering a module did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleChange {
    Added,
    Replaced,
    /// The same component with the same registration was already there.
    Unchanged,
}

/// A registered module with what it is and the limits it runs under.
#[derive(Debug, Clone)]
pub struct ModuleSummary {
    pub record: ModuleRecord,
    pub limits: Limits,
}

/// Checks a tenant name: it becomes a directory name, so nothing that could climb out
/// of `tenants/` or collide on a case-insensitive file system is allowed.
pub fn validate_tenant_name(name: &str) -> Result<(), Error> {
    let invalid = |why| Error::InvalidTenant {
        name: name.to_owned(),
        why,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 64 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(invalid("it contains a character that is not allowed"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid("it does not start with a letter or digit"));
    }
    Ok(())
}

/// Checks a module or model name: letters, digits, `_`, `-`, `.`; at most 64.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("it is longer than 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err("use letters, digits, `-`, `_` and `.` only");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("it does not start with a letter or digit");
    }
    Ok(())
}

impl Tenant {
    /// Opens tenant `name` under `data_dir`, creating it if needed. Fails with
    /// [`Error::TenantInUse`] when another process has it open.
    pub(crate) fn open(
        data_dir: &Path,
        name: &str,
        engine: Arc<WasmEngine>,
        natives: NativeModules,
    ) -> Result<Self, Error> {
        validate_tenant_name(name)?;
        let dir = data_dir.join("tenants").join(name);
        create_dir(&dir.join("modules"))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                what: "cannot open the lock file",
                path: lock_path.clone(),
                error: source,
            })?;
        lock_or_wait(&lock).map_err(|error| match error {
            TryLockError::WouldBlock => Error::TenantInUse {
                tenant: name.to_owned(),
                data_dir: data_dir.to_owned(),
            },
            TryLockError::Error(source) => Error::Io {
                what: "cannot lock",
                path: lock_path,
                error: source,
            },
        })?;
        let store = SledStore::open(&dir.join("db"))?;
        Ok(Self {
            name: name.to_owned(),
            dir,
            store: Box::new(store),
            engine,
            natives,
            compiled: HashMap::new(),
            _lock: lock,
        })
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant's settings (limits, retry policy).
    pub fn settings(&self) -> Result<TenantSettings, Error> {
        self.store.settings()
    }

    /// Replaces the tenant's settings.
    pub fn set_settings(&mut self, settings: &TenantSettings) -> Result<(), Error> {
        settings.limits.validate()?;
        if settings.retry.attempts == 0 {
            return Err(Error::InvalidLimits(
                "retry `attempts` must be at least 1".to_owned(),
            ));
        }
        self.store.put_settings(settings)
    }

    /// Registers a module, or replaces one of the same name when `replace` is set.
    /// Everything is checked before anything is stored.
    pub fn add_module(&mut self, spec: ModuleSpec, replace: bool) -> Result<ModuleChange, Error> {
        let tenant_limits = self.store.settings()?.limits;
        let prepared = self.prepare_module(spec, &tenant_limits)?;
        self.install_module(prepared, replace)
    }

    /// Checks a module for registration without storing anything: its name, models
    /// and regexes, its component, that it exports what it is registered for, and that
    /// it starts under its limits (the tenant's `tenant_limits`, then its own).
    pub(crate) fn prepare_module(
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
        let wasm = match &spec.code {
            ModuleCode::Wasm(wasm) => wasm,
            ModuleCode::Native(name) => {
                let native = self.natives.get(name).ok_or_else(|| {
                    refuse(format!(
                        "this host has no native module `{name}`; it has: {}",
                        self.natives.names().join(", ")
                    ))
                })?;
                let exports = native.exports();
                if !spec.sources.is_empty() && !exports.contains(&"source") {
                    return Err(refuse(format!(
                        "`{name}` is not a source, so it cannot be registered with --source"
                    )));
                }
                if !spec.handlers.is_empty() && !exports.contains(&"handler") {
                    return Err(refuse(format!(
                        "`{name}` is not a handler, so it cannot be registered with --handler"
                    )));
                }
                return Ok(PreparedModule {
                    hash: name.clone(),
                    exports: exports.into_iter().map(str::to_owned).collect(),
                    spec,
                });
            }
        };
        let hash = hex_sha256(wasm);
        let compiled = self.compile(&format!("module `{}`", spec.name), &hash, wasm)?;
        let limits = Limits::layered(tenant_limits, &spec.limits);
        compiled.check_instantiates(&self.engine, &limits, &format!("module `{}`", spec.name))?;
        let info = compiled.info();
        if !spec.sources.is_empty() && !info.source {
            return Err(refuse(
                "it does not export a source, so it cannot be registered with --source".to_owned(),
            ));
        }
        if !spec.handlers.is_empty() && !info.handler {
            return Err(refuse(
                "it does not export a handler, so it cannot be registered with --handler"
                    .to_owned(),
            ));
        }
        let exports = info.exports().into_iter().map(str::to_owned).collect();
        Ok(PreparedModule {
            spec,
            hash,
            exports,
        })
    }

    /// Stores a module checked by [`prepare_module`](Self::prepare_module). A replaced
    /// module keeps its place in the registration order.
    pub(crate) fn install_module(
        &mut self,
        prepared: PreparedModule,
        replace: bool,
    ) -> Result<ModuleChange, Error> {
        let PreparedModule {
            spec,
            hash,
            exports,
        } = prepared;
        let existing = self
            .store
            .modules()?
            .into_iter()
            .find(|module| module.name == spec.name);
        let order = match &existing {
            Some(_) if !replace => return Err(Error::ModuleExists(spec.name)),
            Some(existing) => existing.order,
            None => self.store.next_module_order()?,
        };
        let record = ModuleRecord {
            name: spec.name,
            hash: hash.clone(),
            order,
            sources: spec.sources,
            handlers: spec.handlers,
            exports,
            limits: spec.limits,
            clock: spec.clock,
        };
        if existing.as_ref() == Some(&record) {
            return Ok(ModuleChange::Unchanged);
        }
        if let ModuleCode::Wasm(wasm) = &spec.code {
            self.write_blob(&hash, wasm)?;
        }
        self.store.put_module(&record)?;
        if let Some(old) = existing {
            self.remove_unused_blob(&old.hash)?;
            Ok(ModuleChange::Replaced)
        } else {
            Ok(ModuleChange::Added)
        }
    }

    /// Unregisters a module. Its dead letters stay, kept by name, for a module
    /// registered under that name later.
    pub fn remove_module(&mut self, name: &str) -> Result<(), Error> {
        let Some(record) = self
            .store
            .modules()?
            .into_iter()
            .find(|module| module.name == name)
        else {
            return Err(Error::UnknownModule(name.to_owned()));
        };
        self.store.remove_module(name)?;
        self.remove_unused_blob(&record.hash)
    }

    /// The registered modules in registration order, with their effective limits.
    pub fn modules(&self) -> Result<Vec<ModuleSummary>, Error> {
        let tenant_limits = self.store.settings()?.limits;
        Ok(self
            .store
            .modules()?
            .into_iter()
            .map(|record| ModuleSummary {
                limits: Limits::layered(&tenant_limits, &record.limits),
                record,
            })
            .collect())
    }

    /// Models with at least one source or generator, sorted.
    pub fn known_models(&self) -> Result<Vec<String>, Error> {
        let mut models: BTreeSet<String> = self
            .store
            .modules()?
            .into_iter()
            .flat_map(|module| module.sources)
            .collect();
        models.extend(
            self.store
                .generators()?
                .into_iter()
                .map(|generator| generator.model),
        );
        Ok(models.into_iter().collect())
    }

    /// Refuses a model that no source or generator makes known, naming those that are.
    pub(crate) fn require_model(&self, model: &str) -> Result<(), Error> {
        let known = self.known_models()?;
        if known.iter().any(|known| known == model) {
            Ok(())
        } else {
            Err(Error::UnknownModel {
                model: model.to_owned(),
                known,
            })
        }
    }

    /// The limits a registered module runs under: the engine's defaults, then the
    /// tenant's, then its own.
    pub(crate) fn limits_of(&self, record: &ModuleRecord) -> Result<Limits, Error> {
        let tenant = self.store.settings()?.limits;
        Ok(Limits::layered(&tenant, &record.limits))
    }

    /// One event of the ledger.
    pub fn event(&self, key: &str) -> Result<LedgerEntry, Error> {
        self.store
            .ledger_entry(key)?
            .ok_or_else(|| Error::UnknownEvent(key.to_owned()))
    }

    /// The ledger in key order.
    pub fn events(&self) -> impl Iterator<Item = Result<LedgerEntry, Error>> + '_ {
        self.store.ledger()
    }

    /// The outbox in id order.
    pub fn outbox(&self) -> impl Iterator<Item = Result<OutboxItem, Error>> + '_ {
        self.store.outbox()
    }

    /// Deliveries waiting for their next attempt.
    pub fn pending(&self) -> impl Iterator<Item = Result<PendingDelivery, Error>> + '_ {
        self.store.pending()
    }

    /// Deliveries that failed every attempt.
    pub fn dead(&self) -> impl Iterator<Item = Result<DeadLetter, Error>> + '_ {
        self.store.dead()
    }

    /// Makes everything so far durable.
    pub fn flush(&self) -> Result<(), Error> {
        self.store.flush()
    }

    /// The compiled component of a registered module, compiled once per handle.
    pub(crate) fn compiled(&mut self, record: &ModuleRecord) -> Result<Arc<CompiledModule>, Error> {
        if let Some(compiled) = self.compiled.get(&record.hash) {
            return Ok(compiled.clone());
        }
        let path = self.blob_path(&record.hash);
        let wasm = fs::read(&path).map_err(|source| Error::Io {
            what: "cannot read the component of a registered module",
            path,
            error: source,
        })?;
        self.compile(&format!("module `{}`", record.name), &record.hash, &wasm)
    }

    fn compile(
        &mut self,
        name: &str,
        hash: &str,
        wasm: &[u8],
    ) -> Result<Arc<CompiledModule>, Error> {
        if let Some(compiled) = self.compiled.get(hash) {
            return Ok(compiled.clone());
        }
        let compiled = self.engine.compile_shared(name, wasm, hash)?;
        self.compiled.insert(hash.to_owned(), compiled.clone());
        Ok(compiled)
    }

    fn blob_path(&self, hash: &str) -> PathBuf {
        self.dir.join("modules").join(format!("{hash}.wasm"))
    }

    /// Stores a component under its hash: written aside, synced, then renamed, so a
    /// crash never leaves a half-written component under a registered name.
    fn write_blob(&self, hash: &str, wasm: &[u8]) -> Result<(), Error> {
        let path = self.blob_path(hash);
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

    fn remove_unused_blob(&self, hash: &str) -> Result<(), Error> {
        if is_native(hash) {
            return Ok(());
        }
        let in_use = self
            .store
            .modules()?
            .iter()
            .any(|module| module.hash == hash);
        if !in_use {
            let path = self.blob_path(hash);
            // A blob left behind only costs disk space; failing the command for it
            // would be worse.
            let _ = fs::remove_file(path);
        }
        Ok(())
    }
}

/// How long to wait for a tenant's lock before calling the tenant in use. A moment's
/// patience covers a process that is just exiting, and a child process that this one
/// forked still holding a copy of the lock's file descriptor until it execs.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);

fn lock_or_wait(lock: &File) -> Result<(), TryLockError> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match lock.try_lock() {
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

fn create_dir(path: &Path) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(|source| Error::Io {
        what: "cannot create directory",
        path: path.to_owned(),
        error: source,
    })
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
    fn tenant_names() {
        for good in ["default", "acme", "a", "team-7", "x_y", "0day"] {
            assert!(validate_tenant_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a\\b",
            "Acme",
            "-lead",
            "_lead",
            "spaced name",
            "nul\0",
            "ünïcode",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(validate_tenant_name(bad), Err(Error::InvalidTenant { .. })),
                "{bad:?} must be refused"
            );
        }
        assert!(validate_tenant_name(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn module_and_model_names() {
        for good in ["mailer", "challenge.v2", "A-b_c"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a\0b", "a/b", ".hidden", &"m".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hex_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

#[cfg(test)]
mod lock_tests {
    use crate::Spark;

    #[test]
    fn a_tenant_can_be_reopened_after_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spark = Spark::open(dir.path()).unwrap();
        let tenant = spark.tenant("t").unwrap();
        assert!(matches!(
            spark.tenant("t"),
            Err(crate::Error::TenantInUse { .. })
        ));
        drop(tenant);
        let again = spark.tenant("t");
        assert!(again.is_ok(), "{:?}", again.err());
    }

    #[test]
    fn a_tenant_that_wrote_can_be_reopened_at_once_again_and_again() {
        // A dropped database's files stay locked while a child forked at that moment
        // holds their descriptors (until it execs); opening again at once waits for
        // that. Without the wait this failed within 200 reopens.
        let dir = tempfile::tempdir().unwrap();
        let spark = Spark::open(dir.path()).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let forks = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::process::Command::new("true").status();
                }
            })
        };
        for attempts in 1..=200 {
            let mut tenant = spark.tenant("t").unwrap();
            let mut settings = tenant.settings().unwrap();
            settings.retry.attempts = attempts;
            tenant.set_settings(&settings).unwrap();
            drop(tenant);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        forks.join().unwrap();
        assert_eq!(
            spark
                .tenant("t")
                .unwrap()
                .settings()
                .unwrap()
                .retry
                .attempts,
            200
        );
    }
}
