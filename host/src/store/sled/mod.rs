//! [`Store`] on sled: one database per tenant.
//!
//! What the pipeline writes lives in one tree, `data`, so that a group's commit is one
//! atomic `Batch` (cheaper than a transaction over several trees). Its keys start with
//! a byte naming the keyspace: `s` records and `e` the ledger, both in runs (several
//! entries a value, each run under the least key it covers: see `runs`, `records`,
//! `ledger`), `o` the outbox, `u` outbox items updated since, `p` pending and `d` dead
//! deliveries (`event \0 handler`); `f` holds the key filter, `c` the count of commits,
//! `n` the next outbox id and `w` the undo record of a commit being written (all in
//! `keys`).
//! Modules, generators, templates and settings, written rarely, have trees of their
//! own, keyed by name.
//!
//! Values are JSON, but for the runs (entries one after the other, compressed with
//! zstd: records' JSON text and source memos, see `records`; the ledger's JSON), the key
//! filter's pages (see `filter`) and the counters (big-endian u64). A commit's outbox
//! items are one value, a segment (JSON compressed with zstd), later updated and pruned
//! item by item (see `outbox`). A commit's batch is applied on a thread of its own
//! while the pipeline goes on with the next group; reads see the batch in flight or
//! wait for it to land (see `commit`). A write the kernel fails stops the store, and
//! the commit it was part of is rolled back at the next open (see `failure`). A
//! snapshot is every tree copied as it is, for a replica (see `snapshot`).

mod codec;
mod commit;
mod failure;
mod filter;
mod keys;
mod ledger;
mod outbox;
mod records;
mod reserve;
mod runs;
mod snapshot;

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use self::codec::{decode_u64, from_json, to_json, utf8};
use self::commit::{InFlight, Writer};
use self::failure::{Poison, Writes};
use self::keys::{
    COMMITS, DEAD, EVENT, GROUP, MODULE_ORDER, OUTBOX, OUTBOX_UPDATE, PENDING, RECORD, REQUEST,
    SETTINGS, key, outbox_key, pair_key,
};
use self::outbox::{latest_outbox, next_outbox_id, remove_items};
use self::records::drop_memos;
use self::reserve::Reserve;
use self::runs::DecodedRun;
use super::key_filter::KeyFilter;
use super::{
    Commit, DeadLetter, Flush, Forgotten, Items, LedgerEntry, OutboxItem, OutboxStore,
    PendingDelivery, Pruned, Registration, RememberedRequest, Store, StoredRecord, TenantSettings,
};
use crate::Error;
use crate::generators::Generator;

impl From<sled::Error> for Error {
    fn from(error: sled::Error) -> Self {
        Error::Storage(error.to_string())
    }
}

/// A tenant's data in a sled database.
pub struct SledStore(ManuallyDrop<Sled>);

/// What a [`SledStore`] holds; behind `ManuallyDrop` so that a store whose disk failed
/// can be closed without sled's destructors (see its `Drop`).
pub struct Sled {
    db: sled::Db,
    data: sled::Tree,
    in_flight: Mutex<Option<InFlight>>,
    /// The thread that applies commits.
    writer: Writer,
    /// The ledger and record keys of every commit so far (see [`KeyFilter`]), read (or
    /// rebuilt) on first use: a command that only lists never needs it.
    filter: RefCell<Option<KeyFilter>>,
    /// The run of records the last lookup read (see `runs::get_through`). Records
    /// change only by commits, which count, and by `forget_events`, which clears it.
    last_record_run: RefCell<Option<DecodedRun>>,
    /// Commits so far, the last perhaps still in flight.
    commits: u64,
    modules: sled::Tree,
    generators: sled::Tree,
    templates: sled::Tree,
    meta: sled::Tree,
    next_outbox_id: u64,
    /// Changes to the settings, modules and templates since the store opened (see
    /// [`Store::setup_version`]).
    setup_changes: u64,
    /// The free space left alone on the disk (see [`Reserve`]).
    reserve: Reserve,
    /// The first write that failed, after which nothing is written (see [`Poison`]).
    poison: Poison,
}

/// About what an outbox item's update takes: the item again, under `u`.
const ITEM_UPDATE_BYTES: u64 = 2048;

/// About what removing a key takes in sled's log.
const DELETE_BYTES: u64 = 512;

/// How long opening waits for a dropped database of this process to let go of its
/// files (see [`SledStore::open`]).
const RELEASE_PATIENCE: Duration = Duration::from_secs(10);

/// Whether `error` is sled saying another handle holds the database's files.
fn is_lock_held(error: &sled::Error) -> bool {
    // sled 0.34 reports it only in the message of an `io::Error` of kind `Other`.
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

impl SledStore {
    /// Opens (or creates) the database in `path`. The caller holds the tenant's lock,
    /// so sled's own lock on the files can only be held by a database this process
    /// dropped, for a moment after the drop: by sled's background I/O, or by a child
    /// this process was forking (it holds a copy of every file descriptor until it
    /// execs). Opening waits for that, up to [`RELEASE_PATIENCE`].
    /// `cache_bytes` caps sled's page cache (1 GiB by default): a server with
    /// thousands of tenants open gives each a small one.
    pub fn open(path: &Path, cache_bytes: Option<u64>) -> Result<Self, Error> {
        let deadline = Instant::now() + RELEASE_PATIENCE;
        let mut config = sled::Config::new().path(path);
        if let Some(bytes) = cache_bytes {
            config = config.cache_capacity(bytes);
        }
        let mut snapshots_checked = false;
        let db = loop {
            match config.open() {
                Err(error) if is_lock_held(&error) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                // A snapshot left unfinished by a failed write (see `failure`).
                Err(error @ sled::Error::Corruption { .. }) if !snapshots_checked => {
                    snapshots_checked = true;
                    if failure::remove_unfinished_snapshots(path) == 0 {
                        return Err(error.into());
                    }
                }
                result => break result?,
            }
        };
        Self::from_db(db, Reserve::from_env(path)?, Poison::new(path))
    }

    /// A database that lives in a temporary directory and is deleted when dropped.
    #[cfg(test)]
    pub fn temporary() -> Result<Self, Error> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::from_db(db, Reserve::none(Path::new("")), Poison::new(Path::new("")))
    }

    fn from_db(db: sled::Db, reserve: Reserve, poison: Poison) -> Result<Self, Error> {
        let data = db.open_tree("data")?;
        let undone = failure::roll_back(&data)?;
        if undone > 0 {
            tracing::warn!(
                "a commit that failed part-way was rolled back ({undone} keys put back as \
                 they were); running the same command again redoes it"
            );
        }
        ledger::move_into_runs(&data, &reserve)?;
        records::move_into_runs(&data, &reserve)?;
        let next_outbox_id = next_outbox_id(&data)?;
        let commits = match data.get(COMMITS)? {
            Some(value) => decode_u64(&value, "the count of commits")?,
            None => 0,
        };
        Ok(Self(ManuallyDrop::new(Sled {
            in_flight: Mutex::new(None),
            writer: Writer::default(),
            filter: RefCell::new(None),
            last_record_run: RefCell::new(None),
            commits,
            data,
            modules: db.open_tree("modules")?,
            generators: db.open_tree("generators")?,
            templates: db.open_tree("templates")?,
            meta: db.open_tree("meta")?,
            db,
            next_outbox_id,
            setup_changes: 0,
            reserve,
            poison,
        })))
    }

    /// The values of a keyspace of `data`, once the batch in flight has landed.
    fn settled_values<'a, T: DeserializeOwned + 'a>(&self, space: u8) -> Items<'a, T> {
        if let Err(error) = self.settle() {
            return Box::new(std::iter::once(Err(error)));
        }
        Box::new(self.data.scan_prefix([space]).map(|item| {
            let (_, value) = item?;
            from_json(&value)
        }))
    }
}

impl Deref for SledStore {
    type Target = Sled;

    fn deref(&self) -> &Sled {
        &self.0
    }
}

impl DerefMut for SledStore {
    fn deref_mut(&mut self) -> &mut Sled {
        &mut self.0
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        let failed_before = self.poison.is_set();
        if let Err(error) = self.settle()
            && !failed_before
        {
            tracing::error!("a commit failed as the store closed: {error}");
        }
        if self.poison.is_set() {
            // A write failed: sled is left open, not flushed, for the process's exit to
            // end (see `failure`). The next open rolls back the commit that failed.
            return;
        }
        // sled's trees flush as they drop, and after a failed write to its log (a full
        // disk) that flush may wait for ever. So they are dropped on a thread of their
        // own, given a moment; one that does not return by then is left blocked, and
        // what was committed is in sled's log, recovered on the next open, as after a
        // kill. (sled's own flush does not tell beforehand: it can answer Ok in that
        // state.)
        // SAFETY: `self.0` is taken once, here, and never used again.
        let sled = unsafe { ManuallyDrop::take(&mut self.0) };
        let (dropped, done) = std::sync::mpsc::channel();
        let closing = std::thread::Builder::new()
            .name("spark-store-close".to_owned())
            .spawn(move || {
                drop(sled);
                let _ = dropped.send(());
            });
        if closing.is_err() || done.recv_timeout(CLOSE_PATIENCE).is_err() {
            tracing::error!(
                "the store did not close within {CLOSE_PATIENCE:?} (a disk that failed?); \
                 left as it is"
            );
        }
    }
}

/// How long closing waits for sled to let go of a store.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

fn values<'a, T: DeserializeOwned + 'a>(tree: &sled::Tree) -> Items<'a, T> {
    Box::new(tree.iter().map(|item| {
        let (_, value) = item?;
        from_json(&value)
    }))
}

impl Store for SledStore {
    fn commit(&mut self, commit: Commit) -> Result<(), Error> {
        if commit.is_empty() {
            return Ok(());
        }
        self.poison.check()?;
        self.reserve.check(commit.size_estimate())?;
        self.start_commit(commit)
    }

    fn flush(&self) -> Result<(), Error> {
        self.flusher()?.run()
    }

    fn setup_version(&self) -> u64 {
        self.setup_changes
    }

    fn is_broken(&self) -> bool {
        self.poison.is_set()
    }

    fn flusher(&self) -> Result<Flush, Error> {
        self.settle()?;
        // A flush that failed stops the store too: sled's next one could wait for ever.
        self.save_dirty_filter()
            .map_err(|error| self.poison.fail(error))?;
        let (db, poison) = (self.db.clone(), self.poison.clone());
        Ok(Flush::new(move || {
            poison.check()?;
            db.flush().map(drop).map_err(|error| poison.fail(error))
        }))
    }

    fn is_seen(&self, event: &str) -> Result<bool, Error> {
        if !self.filter()?.may_contain(&key(EVENT, event)) {
            return Ok(false);
        }
        if self.in_flight_has_seen(event) {
            return Ok(true);
        }
        // One read of the tree: a batch landing meanwhile is seen whole or not at all.
        ledger::contains(&self.data, event)
    }

    fn ledger_entry(&self, event: &str) -> Result<Option<LedgerEntry>, Error> {
        self.settle()?;
        ledger::entry(&self.data, event)
    }

    fn ledger(&self) -> Items<'_, LedgerEntry> {
        self.ledger_after(None)
    }

    fn ledger_after(&self, after: Option<&str>) -> Items<'_, LedgerEntry> {
        if let Err(error) = self.settle() {
            return Box::new(std::iter::once(Err(error)));
        }
        ledger::entries_after(&self.data, after)
    }

    fn groups(&self) -> Result<Vec<String>, Error> {
        self.settle()?;
        self.data
            .scan_prefix([GROUP])
            .map(|item| utf8(&item?.0[1..]))
            .collect()
    }

    fn remembered_request(&self, request: &str) -> Result<Option<RememberedRequest>, Error> {
        self.settle()?;
        self.data
            .get(key(REQUEST, request))?
            .map(|value| from_json(&value))
            .transpose()
    }

    fn forget_requests(&mut self, before_ms: i64) -> Result<u64, Error> {
        self.settle()?;
        let mut batch = sled::Batch::default();
        let mut forgotten = 0;
        for item in self.data.scan_prefix([REQUEST]) {
            let (key, value) = item?;
            let request: RememberedRequest = from_json(&value)?;
            if request.at_ms < before_ms {
                batch.remove(key);
                forgotten += 1;
            }
        }
        self.data.apply_batch(batch)?;
        Ok(forgotten)
    }

    fn record(&self, model: &str, id: &str) -> Result<Option<StoredRecord>, Error> {
        let key = pair_key(RECORD, model, id);
        if !self.filter()?.may_contain(&key) {
            return Ok(None);
        }
        if let Some(record) = self.in_flight_record(model, id) {
            return Ok(Some(record));
        }
        if !self.nothing_in_flight() {
            // The tree is changing under this read: not one to keep.
            return records::get(&self.data, model, id);
        }
        let mut last = self.last_record_run.borrow_mut();
        records::get_through(&self.data, model, id, self.commits, &mut last)
    }

    fn records(
        &self,
        model: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, Error> {
        self.settle()?;
        records::page(&self.data, model, after, limit)
    }

    fn outbox(&self) -> Items<'_, OutboxItem> {
        if let Err(error) = self.settle() {
            return Box::new(std::iter::once(Err(error)));
        }
        outbox_from(&self.data, 0)
    }

    fn outbox_from(&self, first: u64) -> Items<'_, OutboxItem> {
        if let Err(error) = self.settle() {
            return Box::new(std::iter::once(Err(error)));
        }
        outbox_from(&self.data, first)
    }

    fn outbox_store(&self) -> Result<Box<dyn OutboxStore>, Error> {
        self.settle()?;
        Ok(Box::new(SledOutbox {
            data: self.data.clone(),
            reserve: self.reserve.clone(),
            poison: self.poison.clone(),
        }))
    }

    fn prune_outbox(&mut self, remove: &dyn Fn(&OutboxItem) -> bool) -> Result<Pruned, Error> {
        self.settle()?;
        self.prune_segments(remove)
    }

    fn pending(&self) -> Items<'_, PendingDelivery> {
        self.settled_values(PENDING)
    }

    fn dead(&self) -> Items<'_, DeadLetter> {
        self.settled_values(DEAD)
    }

    fn discard_dead(&mut self, letters: &[(String, String)]) -> Result<u64, Error> {
        self.settle()?;
        let mut batch = sled::Batch::default();
        let mut discarded = 0;
        for (event, handler) in letters {
            let key = pair_key(DEAD, event, handler);
            if self.data.contains_key(&key)? {
                batch.remove(key);
                discarded += 1;
            }
        }
        self.reserve.check(DELETE_BYTES * discarded)?;
        self.data.apply_batch(batch)?;
        self.data.flush()?;
        Ok(discarded)
    }

    fn forget_events(&mut self, keys: &[String]) -> Result<Forgotten, Error> {
        self.settle()?;
        self.reserve.check(DELETE_BYTES * keys.len() as u64)?;
        // The memos go first, on their own: dropping them is always safe, so a crash
        // before the ledger's batch leaves nothing wrong.
        self.last_record_run.take();
        drop_memos(&self.data, &self.reserve)?;
        let mut forgotten = Forgotten::default();
        let mut batch = Writes::default();
        let mut ledger = runs::Changes::new();
        for event in keys {
            ledger.insert(event.clone().into_bytes(), None);
            // `event \0`: the deliveries of this event to every handler.
            for (space, count) in [
                (PENDING, &mut forgotten.pending),
                (DEAD, &mut forgotten.dead),
            ] {
                for delivery in self.data.scan_prefix(pair_key(space, event, "")).keys() {
                    batch.remove(delivery?);
                    *count += 1;
                }
            }
        }
        // The key filter keeps the keys' fingerprints: a table of fingerprints cannot
        // lose one without losing others' (linear probing), and a "maybe" for a key not
        // in the ledger costs one read, which answers "new".
        let runs = ledger::write_changes(&self.data, ledger)?;
        forgotten.forgotten = runs.removed;
        runs.into_writes(&mut batch);
        batch.apply_undoably(&self.data)?;
        self.data.flush()?;
        Ok(forgotten)
    }

    fn modules(&self) -> Result<Vec<Registration>, Error> {
        let mut modules: Vec<Registration> = values(&self.modules).collect::<Result<_, _>>()?;
        modules.sort_by_key(|module| module.order);
        Ok(modules)
    }

    fn put_module(&mut self, module: &Registration) -> Result<(), Error> {
        self.setup_changes += 1;
        self.modules
            .insert(module.name.as_bytes(), to_json(module)?)?;
        self.modules.flush()?;
        Ok(())
    }

    fn remove_module(&mut self, name: &str) -> Result<bool, Error> {
        self.setup_changes += 1;
        let removed = self.modules.remove(name.as_bytes())?.is_some();
        self.modules.flush()?;
        Ok(removed)
    }

    fn next_module_order(&mut self) -> Result<u64, Error> {
        let next = self
            .meta
            .update_and_fetch(MODULE_ORDER, |old| {
                let current = old
                    .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                    .map_or(0, u64::from_be_bytes);
                Some((current + 1).to_be_bytes().to_vec())
            })?
            .ok_or_else(|| Error::Storage("module order counter vanished".to_owned()))?;
        decode_u64(&next, "the module order")
    }

    fn generators(&self) -> Result<Vec<Generator>, Error> {
        values(&self.generators).collect()
    }

    fn put_generator(&mut self, generator: &Generator) -> Result<(), Error> {
        self.generators
            .insert(generator.name.as_bytes(), to_json(generator)?)?;
        self.generators.flush()?;
        Ok(())
    }

    fn remove_generator(&mut self, name: &str) -> Result<bool, Error> {
        let removed = self.generators.remove(name.as_bytes())?.is_some();
        self.generators.flush()?;
        Ok(removed)
    }

    fn templates(&self) -> Result<Vec<(String, String)>, Error> {
        self.templates
            .iter()
            .map(|item| {
                let (group, source) = item?;
                Ok((utf8(&group)?, utf8(&source)?))
            })
            .collect()
    }

    fn put_template(&mut self, group: &str, source: &str) -> Result<(), Error> {
        self.setup_changes += 1;
        self.templates.insert(group.as_bytes(), source.as_bytes())?;
        self.templates.flush()?;
        Ok(())
    }

    fn remove_template(&mut self, group: &str) -> Result<bool, Error> {
        self.setup_changes += 1;
        let removed = self.templates.remove(group.as_bytes())?.is_some();
        self.templates.flush()?;
        Ok(removed)
    }

    fn settings(&self) -> Result<TenantSettings, Error> {
        match self.meta.get(SETTINGS)? {
            Some(bytes) => from_json(&bytes),
            None => Ok(TenantSettings::default()),
        }
    }

    fn put_settings(&mut self, settings: &TenantSettings) -> Result<(), Error> {
        self.setup_changes += 1;
        self.meta.insert(SETTINGS, to_json(settings)?)?;
        self.meta.flush()?;
        Ok(())
    }

    fn last_scheduled_run(&self, job: &str) -> Result<Option<i64>, Error> {
        self.meta
            .get(scheduled_run_key(job))?
            .map(|value| decode_u64(&value, "a scheduled run's time").map(|ms| ms as i64))
            .transpose()
    }

    fn put_scheduled_run(&mut self, job: &str, at_ms: i64) -> Result<(), Error> {
        self.meta
            .insert(scheduled_run_key(job), &(at_ms.max(0) as u64).to_be_bytes())?;
        self.meta.flush()?;
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<u8>, Error> {
        // Flushed first, the key filter saved: a restored store need not rebuild it.
        self.flush()?;
        snapshot::export(&self.db)
    }

    fn unjournaled(&mut self) -> &mut dyn Store {
        self
    }
}

/// The `meta` key of when a scheduled job last ran.
fn scheduled_run_key(job: &str) -> Vec<u8> {
    format!("scheduled-run:{job}").into_bytes()
}

/// A tenant's outbox on its own (see [`OutboxStore`]): the same tree as its store's.
struct SledOutbox {
    data: sled::Tree,
    reserve: Reserve,
    /// The store's: a failed write of either stops both.
    poison: Poison,
}

impl OutboxStore for SledOutbox {
    fn outbox(&self) -> Items<'_, OutboxItem> {
        outbox_from(&self.data, 0)
    }

    fn outbox_from(&self, first: u64) -> Items<'_, OutboxItem> {
        outbox_from(&self.data, first)
    }

    fn update_outbox(&mut self, items: &[OutboxItem]) -> Result<(), Error> {
        self.poison.check()?;
        write_updates(&self.data, &self.reserve, items).map_err(|error| self.poison.fail(error))
    }

    fn check_space(&self) -> Result<(), Error> {
        self.reserve.check(0)
    }

    fn flush(&self) -> Result<(), Error> {
        self.poison.check()?;
        self.data.flush().map_err(|error| self.poison.fail(error))?;
        Ok(())
    }

    fn remove_outbox(&mut self, ids: &[u64]) -> Result<u64, Error> {
        self.poison.check()?;
        remove_items(&self.data, &self.reserve, ids)
    }
}

/// The outbox of `data` from id `first` on, each item as its latest update has it:
/// from the segment holding `first` (the last whose first id is not after it), with
/// the updates from `first` on.
fn outbox_from<'a>(data: &sled::Tree, first: u64) -> Items<'a, OutboxItem> {
    let start = match data
        .range(outbox_key(OUTBOX, 0)..=outbox_key(OUTBOX, first))
        .next_back()
    {
        Some(Ok((key, _))) => key.to_vec(),
        Some(Err(error)) => return Box::new(std::iter::once(Err(error.into()))),
        None => outbox_key(OUTBOX, 0),
    };
    let items = latest_outbox(
        data.range(start..outbox_key(OUTBOX + 1, 0)).values(),
        data.range(outbox_key(OUTBOX_UPDATE, first)..outbox_key(OUTBOX_UPDATE + 1, 0))
            .values(),
    );
    Box::new(items.filter(move |item| item.as_ref().map_or(true, |item| item.id >= first)))
}

/// Writes the new state of `items` under `u`, at once and durably.
fn write_updates(data: &sled::Tree, reserve: &Reserve, items: &[OutboxItem]) -> Result<(), Error> {
    reserve.check(ITEM_UPDATE_BYTES * items.len() as u64)?;
    let mut batch = sled::Batch::default();
    for item in items {
        batch.insert(outbox_key(OUTBOX_UPDATE, item.id), to_json(item)?);
    }
    data.apply_batch(batch)?;
    data.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Origin, Outcome, Step, Trace};

    /// A ledger entry of `key` in `group`, with a context that needs escaping and a
    /// trace.
    pub(super) fn entry(key: &str, group: &str) -> LedgerEntry {
        let mut trace = Trace::new(
            Origin::Source {
                module: "source".to_owned(),
            },
            vec!["handler".to_owned()],
        );
        trace.push(Step {
            handler: "handler".to_owned(),
            attempt: 1,
            at_ms: 1_700_000_000_000,
            micros: 120,
            fuel: Some(5_000),
            outcome: Outcome::Done,
            error: None,
            effects: 1,
            emitted: 0,
            emitted_keys: Vec::new(),
            log: "said \"hello\"\n".to_owned(),
        });
        LedgerEntry {
            key: key.to_owned(),
            group: group.to_owned(),
            created_at_ms: 1_700_000_000_000,
            context: r#"{"n": 1, "s": "\"quoted\""}"#.to_owned(),
            trace: Some(trace),
        }
    }

    #[test]
    fn modules_come_back_in_registration_order() {
        let mut store = SledStore::temporary().unwrap();
        for name in ["zeta", "alpha"] {
            let order = store.next_module_order().unwrap();
            store
                .put_module(&Registration {
                    name: name.to_owned(),
                    code: "h".to_owned().into(),
                    order,
                    sources: vec![],
                    handlers: vec!["x".to_owned()],
                    exports: vec!["handler".to_owned()],
                    limits: Default::default(),
                    clock: Default::default(),
                    since_ms: None,
                })
                .unwrap();
        }
        let names: Vec<String> = store
            .modules()
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["zeta", "alpha"]);
        assert!(store.remove_module("zeta").unwrap());
        assert!(!store.remove_module("zeta").unwrap());
    }
}

#[cfg(test)]
mod repair_tests {
    use super::*;
    use crate::error::CallError;
    use crate::store::SourceMemo;

    fn delivery(event: &str, handler: &str) -> (PendingDelivery, DeadLetter) {
        let error = CallError::Guest {
            message: "no".to_owned(),
        };
        let pending = PendingDelivery {
            event: event.to_owned(),
            handler: handler.to_owned(),
            attempts: 1,
            error: error.clone(),
            next_at_ms: 10,
            depth: 0,
        };
        let dead = DeadLetter {
            event: event.to_owned(),
            handler: handler.to_owned(),
            attempts: 3,
            error,
            dead_at_ms: 20,
            depth: 0,
        };
        (pending, dead)
    }

    fn record(memos: Vec<SourceMemo>) -> StoredRecord {
        StoredRecord {
            json: r#"{"id":1}"#.to_owned(),
            memos,
        }
    }

    /// Events `e` and `e2`, `e` with a pending delivery and a dead letter, `e2` with
    /// one of each too (to another handler), and records with and without memos.
    fn store() -> SledStore {
        let mut store = SledStore::temporary().unwrap();
        let (pending_e, dead_e) = delivery("e", "h");
        let (pending_e2, dead_e2) = delivery("e2", "h");
        let ledger = ["e", "e2", "e3"]
            .into_iter()
            .map(|key| {
                serde_json::from_value(serde_json::json!({
                    "key": key, "group": "g", "created_at_ms": 1, "context": "{}",
                }))
                .unwrap()
            })
            .collect();
        let memo = SourceMemo {
            call: [7; 32],
            events: 2,
        };
        store
            .commit(Commit {
                ledger,
                records: vec![
                    ("m".to_owned(), "1".to_owned(), record(vec![memo])),
                    ("m".to_owned(), "2".to_owned(), record(Vec::new())),
                    ("n".to_owned(), "1".to_owned(), record(vec![memo, memo])),
                ],
                pending: vec![pending_e, pending_e2],
                dead: vec![dead_e, dead_e2],
                ..Commit::default()
            })
            .unwrap();
        store
    }

    fn pending_events(store: &SledStore) -> Vec<String> {
        store.pending().map(|item| item.unwrap().event).collect()
    }

    fn dead_events(store: &SledStore) -> Vec<String> {
        store.dead().map(|item| item.unwrap().event).collect()
    }

    #[test]
    fn forgetting_takes_the_deliveries_of_those_events_and_every_memo() {
        let mut store = store();
        // A record read once the commit has landed: its run is kept for the next
        // lookups, and must not answer for it after the memos go.
        store.flush().unwrap();
        assert_eq!(store.record("m", "1").unwrap().unwrap().memos.len(), 1);
        let forgotten = store
            .forget_events(&["e".to_owned(), "e9".to_owned()])
            .unwrap();
        assert_eq!(
            forgotten,
            Forgotten {
                forgotten: 1,
                pending: 1,
                dead: 1,
                unsent: Vec::new(),
            }
        );
        let keys: Vec<String> = store.ledger().map(|entry| entry.unwrap().key).collect();
        assert_eq!(keys, ["e2", "e3"]);
        assert_eq!(pending_events(&store), ["e2"]);
        assert_eq!(dead_events(&store), ["e2"]);
        // Every record is kept, without its memos.
        for (model, id) in [("m", "1"), ("m", "2"), ("n", "1")] {
            assert_eq!(store.record(model, id).unwrap(), Some(record(Vec::new())));
        }
    }

    #[test]
    fn discarding_removes_just_the_dead_letters_named() {
        let mut store = store();
        let (pending, _) = delivery("e", "h");
        let letters = [
            ("e".to_owned(), "h".to_owned()),
            ("e".to_owned(), "other".to_owned()),
        ];
        assert_eq!(store.discard_dead(&letters).unwrap(), 1);
        assert_eq!(dead_events(&store), ["e2"]);
        assert_eq!(store.pending().map(Result::unwrap).next(), Some(pending));
        assert!(store.is_seen("e").unwrap(), "the event stays in the ledger");
        assert_eq!(store.discard_dead(&[]).unwrap(), 0);
    }
}
