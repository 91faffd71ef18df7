//! Compiled components on disk, so that a module is compiled once, not on every run.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled components on disk, named by the component's hash and the engine's
/// settings, so a module is compiled once, not on every run (compiling costs tens of
/// milliseconds for a small Rust component and seconds for an interpreter-based one).
pub(super) struct ArtifactCache {
    dir: PathBuf,
    /// Which engine settings (and wasmtime version) the artifacts fit.
    fingerprint: String,
}

impl ArtifactCache {
    pub(super) fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            fingerprint: format!("{:016x}", hasher.finish()),
        }
    }

    pub(super) fn load_or_compile(
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
            let partial = partial_path(path);
            std::fs::write(&partial, component.serialize()?)?;
            std::fs::rename(&partial, path)?;
            Ok(())
        })();
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), "cannot cache a compiled module: {error:#}");
        }
    }
}

/// A name to write `path`'s artifact under before it is renamed into place: unique to
/// this process and to this write, since two threads (two tenants of a server) may
/// compile the same module at once, and processes share the cache.
fn partial_path(path: &Path) -> PathBuf {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_extension(format!("{}.{write}.partial", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_write_has_a_partial_file_of_its_own() {
        let path = Path::new("/cache/abc.cwasm");
        let (first, second) = (partial_path(path), partial_path(path));
        assert_ne!(first, second);
        let pid = std::process::id().to_string();
        assert!(
            first.to_string_lossy().contains(&pid),
            "{}",
            first.display()
        );
        assert!(first.to_string_lossy().ends_with(".partial"));
    }
}
