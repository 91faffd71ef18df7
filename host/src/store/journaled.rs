//! A store whose every change goes onto a [`Journal`] before it is applied: what a
//! tenant of a host with a journal ([`Spark::set_journal`](crate::Spark::set_journal))
//! has, so that a cluster's replica can rebuild it from the journal's log.
//!
//! Reads go straight to the store beneath; `flush` is not journaled (it changes what
//! is durable, not what is stored). An entry the journal took but whose application
//! failed is on the log and not in the store: the store is then stopped or behind the
//! log, and the node is to rebuild it from the log, as after a crash.

use std::path::PathBuf;
use std::sync::Arc;

use super::journal::{Applied, Change, CommitChange, apply, apply_to_outbox};
use super::{
    Commit, DeadLetter, Flush, Forgotten, Items, Journal, JournalEntry, LedgerEntry, OutboxItem,
    OutboxStore, PendingDelivery, Pruned, Registration, RememberedRequest, Store, StoredRecord,
    TenantSettings,
};
use crate::Error;
use crate::generators::Generator;
use crate::registration::RegisteredCode;

/// A tenant's store behind a journal.
pub(crate) struct JournaledStore {
    tenant: String,
    inner: Box<dyn Store>,
    journal: Arc<dyn Journal>,
    /// The tenant's `modules/`, where the components its registrations name are.
    modules_dir: PathBuf,
}

impl JournaledStore {
    pub(crate) fn new(
        tenant: &str,
        inner: Box<dyn Store>,
        journal: Arc<dyn Journal>,
        modules_dir: PathBuf,
    ) -> Self {
        JournaledStore {
            tenant: tenant.to_owned(),
            inner,
            journal,
            modules_dir,
        }
    }

    /// Puts `change` on the journal, then applies it to the store beneath.
    fn journaled(&mut self, change: Change) -> Result<Applied, Error> {
        let entry = JournalEntry(change);
        let inner = &mut self.inner;
        append(&*self.journal, &self.tenant, &entry, || {
            apply(&mut **inner, &entry)
        })
    }
}

/// Appends `entry` to `journal`, applying it with `apply` once the journal took it;
/// what `apply` answered.
fn append(
    journal: &dyn Journal,
    tenant: &str,
    entry: &JournalEntry,
    apply: impl FnOnce() -> Result<Applied, Error>,
) -> Result<Applied, Error> {
    let mut apply = Some(apply);
    let mut applied = None;
    journal.append(tenant, entry, &mut || {
        let apply = apply.take().ok_or_else(|| {
            Error::Journal(format!("the journal applied `{}` twice", entry.describe()))
        })?;
        applied = Some(apply()?);
        Ok(())
    })?;
    applied.ok_or_else(|| {
        Error::Journal(format!(
            "the journal took `{}` but did not apply it",
            entry.describe()
        ))
    })
}

impl Store for JournaledStore {
    fn commit(&mut self, commit: Commit) -> Result<(), Error> {
        if commit.is_empty() {
            return Ok(());
        }
        self.journaled(Change::Commit(CommitChange::new(commit)))?
            .done()
    }

    fn flush(&self) -> Result<(), Error> {
        self.inner.flush()
    }

    fn flusher(&self) -> Result<Flush, Error> {
        self.inner.flusher()
    }

    fn setup_version(&self) -> u64 {
        self.inner.setup_version()
    }

    fn is_broken(&self) -> bool {
        self.inner.is_broken()
    }

    /// Each commit waits for the journal's acknowledgement, a round trip to the
    /// cluster: larger groups, fewer of them.
    fn commit_records(&self) -> usize {
        1_000
    }

    fn max_commit_bytes(&self) -> Option<u64> {
        self.journal.max_entry_bytes().map(|bytes| bytes / 4)
    }

    fn is_seen(&self, key: &str) -> Result<bool, Error> {
        self.inner.is_seen(key)
    }

    fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, Error> {
        self.inner.ledger_entry(key)
    }

    fn ledger(&self) -> Items<'_, LedgerEntry> {
        self.inner.ledger()
    }

    fn ledger_after(&self, after: Option<&str>) -> Items<'_, LedgerEntry> {
        self.inner.ledger_after(after)
    }

    fn groups(&self) -> Result<Vec<String>, Error> {
        self.inner.groups()
    }

    fn remembered_request(&self, key: &str) -> Result<Option<RememberedRequest>, Error> {
        self.inner.remembered_request(key)
    }

    fn forget_requests(&mut self, before_ms: i64) -> Result<u64, Error> {
        self.journaled(Change::ForgetRequests { before_ms })?
            .count()
    }

    fn record(&self, model: &str, id: &str) -> Result<Option<StoredRecord>, Error> {
        self.inner.record(model, id)
    }

    fn records(
        &self,
        model: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, Error> {
        self.inner.records(model, after, limit)
    }

    fn outbox(&self) -> Items<'_, OutboxItem> {
        self.inner.outbox()
    }

    fn outbox_from(&self, first: u64) -> Items<'_, OutboxItem> {
        self.inner.outbox_from(first)
    }

    fn outbox_store(&self) -> Result<Box<dyn OutboxStore>, Error> {
        Ok(Box::new(JournaledOutbox {
            tenant: self.tenant.clone(),
            inner: self.inner.outbox_store()?,
            journal: self.journal.clone(),
        }))
    }

    fn prune_outbox(&mut self, remove: &dyn Fn(&OutboxItem) -> bool) -> Result<Pruned, Error> {
        // The closure is run here, once; the log gets the ids it picked.
        let mut ids = Vec::new();
        for item in self.inner.outbox() {
            let item = item?;
            if remove(&item) {
                ids.push(item.id);
            }
        }
        self.journaled(Change::PruneOutbox { ids })?.pruned()
    }

    fn pending(&self) -> Items<'_, PendingDelivery> {
        self.inner.pending()
    }

    fn dead(&self) -> Items<'_, DeadLetter> {
        self.inner.dead()
    }

    fn discard_dead(&mut self, letters: &[(String, String)]) -> Result<u64, Error> {
        let letters = letters.to_vec();
        self.journaled(Change::DiscardDead { letters })?.count()
    }

    fn forget_events(&mut self, keys: &[String]) -> Result<Forgotten, Error> {
        let keys = keys.to_vec();
        self.journaled(Change::ForgetEvents { keys })?.forgotten()
    }

    fn modules(&self) -> Result<Vec<Registration>, Error> {
        self.inner.modules()
    }

    fn put_module(&mut self, module: &Registration) -> Result<(), Error> {
        // The component first: a replica that reads the registration can fetch it.
        if let RegisteredCode::Component { sha256 } = &module.code {
            let path = self.modules_dir.join(format!("{sha256}.wasm"));
            let wasm = std::fs::read(&path).map_err(|error| Error::Io {
                what: "cannot read the component to journal",
                path,
                error,
            })?;
            self.journal.save_component(sha256, &wasm)?;
        }
        let module = module.clone();
        self.journaled(Change::PutModule { module })?.done()
    }

    fn remove_module(&mut self, name: &str) -> Result<bool, Error> {
        let name = name.to_owned();
        self.journaled(Change::RemoveModule { name })?.existed()
    }

    fn next_module_order(&mut self) -> Result<u64, Error> {
        self.journaled(Change::NextModuleOrder)?.count()
    }

    fn generators(&self) -> Result<Vec<Generator>, Error> {
        self.inner.generators()
    }

    fn put_generator(&mut self, generator: &Generator) -> Result<(), Error> {
        let generator = generator.clone();
        self.journaled(Change::PutGenerator { generator })?.done()
    }

    fn remove_generator(&mut self, name: &str) -> Result<bool, Error> {
        let name = name.to_owned();
        self.journaled(Change::RemoveGenerator { name })?.existed()
    }

    fn templates(&self) -> Result<Vec<(String, String)>, Error> {
        self.inner.templates()
    }

    fn put_template(&mut self, group: &str, source: &str) -> Result<(), Error> {
        let (group, source) = (group.to_owned(), source.to_owned());
        self.journaled(Change::PutTemplate { group, source })?
            .done()
    }

    fn remove_template(&mut self, group: &str) -> Result<bool, Error> {
        let group = group.to_owned();
        self.journaled(Change::RemoveTemplate { group })?.existed()
    }

    fn settings(&self) -> Result<TenantSettings, Error> {
        self.inner.settings()
    }

    fn put_settings(&mut self, settings: &TenantSettings) -> Result<(), Error> {
        let settings = settings.clone();
        self.journaled(Change::PutSettings { settings })?.done()
    }

    fn last_scheduled_run(&self, job: &str) -> Result<Option<i64>, Error> {
        self.inner.last_scheduled_run(job)
    }

    fn put_scheduled_run(&mut self, job: &str, at_ms: i64) -> Result<(), Error> {
        let job = job.to_owned();
        self.journaled(Change::PutScheduledRun { job, at_ms })?
            .done()
    }

    fn snapshot(&self) -> Result<Vec<u8>, Error> {
        self.inner.snapshot()
    }

    fn unjournaled(&mut self) -> &mut dyn Store {
        self.inner.unjournaled()
    }
}

/// The outbox handle of a [`JournaledStore`]: its sending marks and removals go onto
/// the journal too, from the sending thread.
struct JournaledOutbox {
    tenant: String,
    inner: Box<dyn OutboxStore>,
    journal: Arc<dyn Journal>,
}

impl JournaledOutbox {
    fn journaled(&mut self, change: Change) -> Result<Applied, Error> {
        let entry = JournalEntry(change);
        let inner = &mut self.inner;
        append(&*self.journal, &self.tenant, &entry, || {
            apply_to_outbox(&mut **inner, &entry)
        })
    }
}

impl OutboxStore for JournaledOutbox {
    fn outbox(&self) -> Items<'_, OutboxItem> {
        self.inner.outbox()
    }

    fn outbox_from(&self, first: u64) -> Items<'_, OutboxItem> {
        self.inner.outbox_from(first)
    }

    fn update_outbox(&mut self, items: &[OutboxItem]) -> Result<(), Error> {
        if items.is_empty() {
            return Ok(());
        }
        let items = items.to_vec();
        self.journaled(Change::UpdateOutbox { items })?.done()
    }

    fn check_space(&self) -> Result<(), Error> {
        self.inner.check_space()
    }

    fn flush(&self) -> Result<(), Error> {
        self.inner.flush()
    }

    fn remove_outbox(&mut self, ids: &[u64]) -> Result<u64, Error> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.journaled(Change::RemoveOutbox { ids })?.count()
    }
}
