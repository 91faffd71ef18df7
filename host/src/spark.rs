//! [`Spark`]: the host, over one data dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Error;
use crate::tenant::Tenant;
use crate::wasm::{ModuleInfo, WasmEngine};

/// The Spark host over one data dir: a WebAssembly engine shared by its tenants.
pub struct Spark {
    data_dir: PathBuf,
    engine: Arc<WasmEngine>,
}

impl Spark {
    /// Opens the host over `data_dir` (created on first use).
    pub fn open(data_dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let data_dir = data_dir.into();
        std::fs::create_dir_all(&data_dir).map_err(|source| Error::Io {
            what: "cannot create the data dir",
            path: data_dir.clone(),
            source,
        })?;
        Ok(Self {
            data_dir,
            engine: Arc::new(WasmEngine::new()?),
        })
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Opens a tenant (created on first use). Only one process at a time may hold a
    /// tenant: another gets [`Error::TenantInUse`].
    pub fn tenant(&self, name: &str) -> Result<Tenant, Error> {
        Tenant::open(&self.data_dir, name, self.engine.clone())
    }

    /// What a component is, or why it is not a usable module. `name` names it in
    /// errors (a file path, say). Needs no data dir.
    pub fn check(name: &str, wasm: &[u8]) -> Result<ModuleInfo, Error> {
        Ok(WasmEngine::new()?.compile(name, wasm)?.info().clone())
    }
}
