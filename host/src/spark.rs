//! [`Spark`]: the host, over one data dir.
//!
//! A data dir holds `tenants/` (see [`Tenant`]) and, unless another cache dir is
//! given, `cache/`: compiled components shared by all tenants, named by content hash
//! and engine settings, safe to delete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Error;
use crate::event::Invocation;
use crate::limits::Limits;
use crate::mail::builtin::{BUILTIN_MAILS, BuiltinMails};
use crate::modules::hex_sha256;
use crate::native::{NativeModule, NativeModules};
use crate::registration::is_native;
use crate::runner::Runner;
use crate::store::Journal;
use crate::tenant::Tenant;
use crate::trial::{self, Trial, TrialInput};
use crate::wasm::{ModuleInfo, WasmEngine};

/// The native modules every host has: the built-in mail handler.
fn builtins() -> NativeModules {
    let mut natives = NativeModules::default();
    natives.insert(BUILTIN_MAILS.to_owned(), Arc::new(BuiltinMails));
    natives
}

/// The Spark host over one data dir: a WebAssembly engine shared by its tenants.
pub struct Spark {
    data_dir: PathBuf,
    engine: Arc<WasmEngine>,
    natives: NativeModules,
    store_cache_bytes: Option<u64>,
    /// Where tenants opened from now on journal their changes, if anywhere.
    journal: Option<Arc<dyn Journal>>,
}

impl Spark {
    /// Opens the host over `data_dir` (created on first use), caching compiled
    /// modules in its `cache/`.
    pub fn open(data_dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let data_dir = data_dir.into();
        let cache_dir = data_dir.join("cache");
        Self::open_with_cache(data_dir, cache_dir)
    }

    /// Opens the host over `data_dir`, caching compiled modules in `cache_dir` (which
    /// several data dirs may share).
    pub fn open_with_cache(
        data_dir: impl Into<PathBuf>,
        cache_dir: impl Into<PathBuf>,
    ) -> Result<Self, Error> {
        let data_dir = data_dir.into();
        std::fs::create_dir_all(&data_dir).map_err(|source| Error::Io {
            what: "cannot create the data dir",
            path: data_dir.clone(),
            error: source,
        })?;
        Ok(Self {
            data_dir,
            engine: Arc::new(WasmEngine::new(Some(cache_dir.into()))?),
            natives: builtins(),
            store_cache_bytes: None,
            journal: None,
        })
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// How many module instances the process's pool of memory slots holds (4,096, or
    /// what the environment variable `SPARK_INSTANCE_POOL` said when the process first
    /// opened a host), or `None` where there is no pool: turned off with
    /// `SPARK_INSTANCE_POOL=0`, or its address space could not be reserved (under
    /// `ulimit -v`, for one), and each instance maps memory of its own. The pool is what
    /// makes a fresh instance per call (`calls-per-instance = 1`) cheap.
    pub fn instance_pool(&self) -> Option<u32> {
        self.engine.instance_pool()
    }

    /// Opens a tenant that exists, and never makes one: a read of a mistyped name is
    /// [`Error::UnknownTenant`], not a new empty tenant.
    pub fn existing_tenant(&self, name: &str) -> Result<Tenant, Error> {
        crate::tenant::validate_tenant_name(name)?;
        if !self.data_dir.join("tenants").join(name).is_dir() {
            return Err(Error::UnknownTenant {
                tenant: name.to_owned(),
                data_dir: self.data_dir.clone(),
            });
        }
        self.tenant(name)
    }

    /// Opens a tenant (created on first use). Only one process at a time may hold a
    /// tenant: another gets [`Error::TenantInUse`].
    pub fn tenant(&self, name: &str) -> Result<Tenant, Error> {
        Tenant::open(
            &self.data_dir,
            name,
            self.engine.clone(),
            self.natives.clone(),
            self.store_cache_bytes,
            self.journal.clone(),
        )
    }

    /// Journals every change to the store of each tenant opened from now on: each goes
    /// onto `journal`'s log before it is applied (see [`Journal`]), so that another
    /// process can rebuild the tenant with [`Tenant::replay`]. Tenants opened before
    /// are not journaled.
    pub fn set_journal(&mut self, journal: Arc<dyn Journal>) {
        self.journal = Some(journal);
    }

    /// Replaces the store of tenant `name` (created if needed) with the content of
    /// `snapshot` ([`Tenant::snapshot`]'s bytes), and fetches with `component` each
    /// component its registrations name that the tenant lacks (checked against its
    /// hash). The tenant must not be open: this takes its lock as opening does
    /// ([`Error::TenantInUse`] otherwise). The tenant's store is left as it was when the
    /// snapshot does not read or a component cannot be had.
    pub fn restore_tenant(
        &self,
        name: &str,
        snapshot: &[u8],
        component: &dyn Fn(&str) -> Result<Vec<u8>, Error>,
    ) -> Result<(), Error> {
        crate::tenant::restore(&self.data_dir, name, snapshot, component)
    }

    /// Deletes tenant `name`'s directory (its store and components), taking its lock
    /// first ([`Error::TenantInUse`] while it is open): a cluster's node drops its stale
    /// view of a tenant so before it rebuilds it. A tenant that is not there is no error.
    pub fn remove_tenant_data(&self, name: &str) -> Result<(), Error> {
        crate::tenant::remove_tenant_data(&self.data_dir, name)
    }

    /// Caps the page cache of each tenant opened from now on at `bytes` (sled's
    /// default is 1 GiB, fine for one tenant at a time, not for a server that keeps
    /// many open).
    pub fn set_store_cache(&mut self, bytes: u64) {
        self.store_cache_bytes = Some(bytes);
    }

    /// The names of the tenants of the data dir, sorted. Directories under `tenants/`
    /// whose names are not tenant names are not listed.
    pub fn tenant_names(&self) -> Result<Vec<String>, Error> {
        let dir = self.data_dir.join("tenants");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(Error::Io {
                    what: "cannot list the tenants in",
                    path: dir,
                    error,
                });
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| Error::Io {
                what: "cannot list the tenants in",
                path: dir.clone(),
                error,
            })?;
            if let Some(name) = entry.file_name().to_str()
                && entry.path().is_dir()
                && crate::tenant::validate_tenant_name(name).is_ok()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Makes a native module available to this host's tenants under `name`, which must
    /// start with `builtin:` (tenants then register it with [`ModuleCode::Native`]).
    /// Tenants opened before see only the modules registered before them.
    ///
    /// [`ModuleCode::Native`]: crate::ModuleCode::Native
    pub fn register_native(
        &mut self,
        name: &str,
        module: Arc<dyn NativeModule>,
    ) -> Result<(), Error> {
        if !is_native(name) {
            return Err(Error::InvalidModuleName {
                name: name.to_owned(),
                why: "a native module's name starts with `builtin:`",
            });
        }
        self.natives.insert(name.to_owned(), module);
        Ok(())
    }

    /// Checks and compiles a component with this host's engine, into its cache: a
    /// server does this before it hands the component to the tenant, so that
    /// registering it finds it compiled. What it is, or why it is not a usable module.
    pub fn precompile(&self, name: &str, wasm: &[u8]) -> Result<ModuleInfo, Error> {
        let module = self.engine.compile(name, wasm, &hex_sha256(wasm))?;
        module.check_instantiates(&self.engine, &Limits::default(), name)?;
        Ok(module.info().clone())
    }

    /// What a component is, or why it is not a usable module. `name` names it in
    /// errors (a file path, say). Needs no data dir.
    pub fn check(name: &str, wasm: &[u8]) -> Result<ModuleInfo, Error> {
        Self::check_with_cache(name, wasm, None)
    }

    /// [`check`](Self::check), compiling through the compiled-module cache in
    /// `cache_dir` (if given): a component checked or registered before is not
    /// compiled again, and one checked now is ready for `module add`.
    pub fn check_with_cache(
        name: &str,
        wasm: &[u8],
        cache_dir: Option<PathBuf>,
    ) -> Result<ModuleInfo, Error> {
        let hash = hex_sha256(wasm);
        let engine = WasmEngine::new(cache_dir)?;
        let module = engine.compile(name, wasm, &hash)?;
        module.check_instantiates(&engine, &Limits::default(), name)?;
        Ok(module.info().clone())
    }

    /// Calls a component that is not registered anywhere once, with `input`, under
    /// the default limits, as tenant `default` at `now_ms`: an author trying a module
    /// before it is registered. Nothing is stored; `cache_dir` as for
    /// [`check_with_cache`](Self::check_with_cache).
    pub fn try_component(
        name: &str,
        wasm: &[u8],
        input: &TrialInput,
        now_ms: i64,
        cache_dir: Option<PathBuf>,
    ) -> Result<Trial, Error> {
        let engine = WasmEngine::new(cache_dir)?;
        let module = engine.compile(name, wasm, &hex_sha256(wasm))?;
        trial::check_exports(name, &module.info().exports(), input)?;
        let limits = Limits::default();
        let inv = Invocation {
            tenant: "default".to_owned(),
            now_ms,
            attempt: 1,
        };
        let runner = module
            .instantiate(&engine, &limits)
            .map(|instance| Runner::Wasm(Box::new(instance)));
        Ok(trial::run(runner, input, &inv, limits))
    }
}
