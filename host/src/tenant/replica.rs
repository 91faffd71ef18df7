//! A tenant as a cluster's replica sees it: a journal's entries replayed into its
//! store, its store as a snapshot and a snapshot made its store again, its data
//! dropped. A node that takes a tenant over rebuilds it with these (the latest
//! snapshot, then the entries after it), so that it holds what the node before held.
//!
//! Components are not in entries or snapshots, only named by hash (a component is
//! large and rarely changes): each is fetched through the caller's `component` when the
//! tenant's `modules/` lacks it, and checked against its hash.

use std::fs;
use std::path::Path;

use super::{Tenant, lock_tenant};
use crate::error::Error;
use crate::modules::fetch_component;
use crate::registration::RegisteredCode;
use crate::store::{JournalEntry, SledStore, Store, apply_entry};

impl Tenant {
    /// Applies an entry of a journal (of this tenant, from another node) to the
    /// tenant's store, without journaling it again. A component the entry names is
    /// fetched with `component` first if the tenant lacks it; a component no
    /// registration names any more once it is applied is removed, as it was where the
    /// entry was made. Entries replayed in their log's order into an empty tenant give
    /// the store the tenant had.
    pub fn replay(
        &mut self,
        entry: &JournalEntry,
        component: &dyn Fn(&str) -> Result<Vec<u8>, Error>,
    ) -> Result<(), Error> {
        if let Some(sha256) = entry.component() {
            self.modules.fetch_blob(sha256, component)?;
        }
        let replaced = match entry.module_name() {
            Some(name) => self
                .store
                .modules()?
                .into_iter()
                .find(|module| module.name == name),
            None => None,
        };
        apply_entry(self.store.unjournaled(), entry)?;
        if let Some(replaced) = replaced {
            self.modules
                .remove_unused_blob(&*self.store, &replaced.code)?;
        }
        Ok(())
    }

    /// Everything the tenant's store holds, as bytes for
    /// [`Spark::restore_tenant`](crate::Spark::restore_tenant): every commit made
    /// durable first, then every tree of its database copied. Components are named in
    /// it, not held. Take it while nothing else writes the tenant (its outbox sender
    /// included), so that it matches one place in the tenant's journal.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        self.store.snapshot()
    }
}

/// Replaces the store of tenant `name` under `data_dir` with `snapshot`'s content,
/// fetching the components its registrations name that the tenant lacks (see
/// [`Spark::restore_tenant`](crate::Spark::restore_tenant)).
pub(crate) fn restore(
    data_dir: &Path,
    name: &str,
    snapshot: &[u8],
    component: &dyn Fn(&str) -> Result<Vec<u8>, Error>,
) -> Result<(), Error> {
    let (dir, _lock) = lock_tenant(data_dir, name)?;
    let modules_dir = dir.join("modules");
    // Made aside, then put in the old one's place: a restore that fails leaves the
    // tenant as it was.
    let fresh = dir.join("db.restoring");
    remove_dir(&fresh)?;
    SledStore::restore(&fresh, snapshot)?;
    let named = {
        let store = SledStore::open(&fresh, None)?;
        let mut named = Vec::new();
        for module in store.modules()? {
            if let RegisteredCode::Component { sha256 } = module.code {
                named.push(sha256);
            }
        }
        named
    };
    for sha256 in &named {
        fetch_component(&modules_dir, sha256, component)?;
    }
    let db = dir.join("db");
    let replaced = dir.join("db.replaced");
    remove_dir(&replaced)?;
    if db.exists() {
        rename(&db, &replaced)?;
    }
    rename(&fresh, &db)?;
    remove_dir(&replaced)?;
    remove_unnamed_components(&modules_dir, &named);
    Ok(())
}

/// Deletes the directory of tenant `name` under `data_dir` (its store and its
/// components), holding its lock while it does; a tenant that is not there is no
/// error.
pub(crate) fn remove_data(data_dir: &Path, name: &str) -> Result<(), Error> {
    super::validate_tenant_name(name)?;
    if !data_dir.join("tenants").join(name).is_dir() {
        return Ok(());
    }
    let (dir, _lock) = lock_tenant(data_dir, name)?;
    remove_dir(&dir)
}

/// Removes the component files of `dir` that `named` does not name: those of the
/// store a restore replaced. A file left behind only costs disk space.
fn remove_unnamed_components(dir: &Path, named: &[String]) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let unnamed = path.extension().is_some_and(|ext| ext == "wasm")
            && path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .is_some_and(|sha256| !named.iter().any(|named| named == sha256));
        if unnamed {
            let _ = fs::remove_file(path);
        }
    }
}

fn remove_dir(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            what: "cannot remove",
            path: path.to_owned(),
            error,
        }),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(|error| Error::Io {
        what: "cannot rename",
        path: from.to_owned(),
        error,
    })
}
