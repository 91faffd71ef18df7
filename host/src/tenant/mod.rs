//! A tenant: the one place that answers "what can a tenant do?".
//!
//! [`Tenant`] holds the tenant's lock and two parts: its store (records, ledger,
//! outbox, deliveries, registrations, settings) and its [`Modules`] (the code those
//! registrations run). Each public method is a thin door: it checks what only the
//! tenant can check (a known model, say) and hands the parts the work needs to the
//! module that does it: the pipeline, the outbox sender, module registration, apply.
//! The methods are grouped by what they touch: reading the tenant's data (here), its
//! set-up (`setup.rs`), runs that process or send (`work.rs`), and an operator's
//! repairs (`repair.rs`).
//!
//! Layout of a data dir: `tenants/<name>/LOCK` (held while a process uses the tenant),
//! `tenants/<name>/db/` (the store), `tenants/<name>/modules/<sha256>.wasm` (the
//! registered components). Nothing of one tenant is reachable from another's handle.

mod repair;
mod replica;
#[cfg(test)]
mod replica_test;
mod setup;
mod work;

pub(crate) use self::replica::{remove_data as remove_tenant_data, restore};

use std::collections::BTreeSet;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::modules::Modules;
use crate::native::NativeModules;
use crate::outbox::OutboxItem;
use crate::pipeline::Setup;
use crate::registration::MAX_NAME_LEN;
use crate::routes::compile_regex;
use crate::store::{
    DeadLetter, Journal, JournaledStore, LedgerEntry, PendingDelivery, SledStore, Store,
};
use crate::wasm::WasmEngine;

/// An open tenant. Holds the tenant's lock until dropped.
pub struct Tenant {
    name: String,
    /// What the last run made of the set-up, with its module instances: kept for the
    /// next run while the set-up stays the same (see [`Tenant::rest`]).
    setup: Option<Setup>,
    store: Box<dyn Store>,
    modules: Modules,
    /// How long a run waits for a failed delivery's retry to come due (ms).
    retry_wait_ms: i64,
    _lock: File,
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

impl Tenant {
    /// Opens tenant `name` under `data_dir`, creating it if needed. Fails with
    /// [`Error::TenantInUse`] when another process has it open. With a `journal`, its
    /// store journals every change (see [`Journal`]).
    pub(crate) fn open(
        data_dir: &Path,
        name: &str,
        engine: Arc<WasmEngine>,
        natives: NativeModules,
        store_cache_bytes: Option<u64>,
        journal: Option<Arc<dyn Journal>>,
    ) -> Result<Self, Error> {
        let (dir, lock) = lock_tenant(data_dir, name)?;
        let modules_dir = dir.join("modules");
        let store = SledStore::open(&dir.join("db"), store_cache_bytes)?;
        let store: Box<dyn Store> = match journal {
            Some(journal) => Box::new(JournaledStore::new(
                name,
                Box::new(store),
                journal,
                modules_dir.clone(),
            )),
            None => Box::new(store),
        };
        Ok(Self {
            name: name.to_owned(),
            store,
            modules: Modules::new(modules_dir, engine, natives),
            retry_wait_ms: crate::pipeline::MAX_RETRY_WAIT_MS,
            setup: None,
            _lock: lock,
        })
    }

    /// How long a run (ingest, process-sources, generate, dead retry) waits at its end
    /// for a failed delivery's retry to come due before it leaves it pending for the
    /// next run: 30 s unless set. A server sets none: its background work retries
    /// deliveries as they come due, and a request should not wait for them.
    pub fn set_retry_wait(&mut self, wait: Duration) {
        self.retry_wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
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
    fn require_model(&self, model: &str) -> Result<(), Error> {
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

    /// The ledger in key order from the first key after `after`: a page of a listing
    /// starts where the one before ended.
    pub fn events_after(
        &self,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<LedgerEntry, Error>> + '_ {
        self.store.ledger_after(after)
    }

    /// The groups of the events the tenant has seen, in order. (Events of a data dir
    /// from before Spark kept them are not counted.)
    pub fn groups(&self) -> Result<Vec<String>, Error> {
        self.store.groups()
    }

    /// The handler regexes of registered modules that match no group the tenant has
    /// seen, as (module, regex): the usual reason a handler never runs (`^order-late`
    /// for `order_late`). Empty while the tenant has seen no group.
    pub fn unmatched_handlers(&self) -> Result<Vec<(String, String)>, Error> {
        let groups = self.store.groups()?;
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut unmatched = Vec::new();
        for module in self.store.modules()? {
            for pattern in &module.handlers {
                let regex = compile_regex(pattern)?;
                if !groups.iter().any(|group| regex.is_match(group)) {
                    unmatched.push((module.name.clone(), pattern.clone()));
                }
            }
        }
        Ok(unmatched)
    }

    /// Whether a write of its store failed part-way: it writes nothing more in this
    /// process, and the next process to open it rolls the failed write back (see
    /// the README's "A failing disk keeps groups whole").
    pub fn is_broken(&self) -> bool {
        self.store.is_broken()
    }

    /// The outbox in id order.
    pub fn outbox(&self) -> impl Iterator<Item = Result<OutboxItem, Error>> + '_ {
        self.store.outbox()
    }

    /// The outbox from id `first` on, in id order: a page after another, read without
    /// the items before it.
    pub fn outbox_from(&self, first: u64) -> impl Iterator<Item = Result<OutboxItem, Error>> + '_ {
        self.store.outbox_from(first)
    }

    /// Deliveries (handler calls) waiting for their next attempt.
    pub fn pending(&self) -> impl Iterator<Item = Result<PendingDelivery, Error>> + '_ {
        self.store.pending()
    }

    /// Deliveries (handler calls) that failed every attempt.
    pub fn dead(&self) -> impl Iterator<Item = Result<DeadLetter, Error>> + '_ {
        self.store.dead()
    }

    /// Makes everything so far durable.
    pub fn flush(&self) -> Result<(), Error> {
        self.store.flush()
    }
}

/// Takes the lock of tenant `name` under `data_dir`, making its directory (and its
/// `modules/`) if needed: the directory and the lock, held until the file is dropped.
/// [`Error::TenantInUse`] when another handle holds it.
fn lock_tenant(data_dir: &Path, name: &str) -> Result<(PathBuf, File), Error> {
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
    Ok((dir, lock))
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
