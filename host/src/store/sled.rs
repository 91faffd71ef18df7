//! [`Store`] on sled: one database per tenant.
//!
//! What the pipeline writes lives in one tree, `data`, so that a group's commit is one
//! atomic `Batch` (cheaper than a transaction over several trees). Its keys start with
//! a byte naming the keyspace: `r` records (`model \0 id`), `l` the ledger (`key`), `o`
//! the outbox, `u` outbox items updated since, `p` pending and `d` dead deliveries
//! (`event \0 handler`). Modules, generators, templates and settings, written rarely,
//! have trees of their own, keyed by name.
//!
//! A commit's outbox items are one value, a segment (a JSON array keyed by its first
//! id as a big-endian u64, so scans come out in id order): sled copies a tree node for
//! every key a batch inserts, and a key per item made the outbox the largest part of a
//! commit's cost. A send attempt changes one item, so the item's new state goes to `u`
//! under its own id, and reading the outbox takes it in place of the segment's copy.
//! Pruning rewrites a segment without its removed items and with its updates folded
//! in (or removes it), and keeps the next id under `n`.
//! Data dirs written before segments hold one item per `o` key; both are read.
//!
//! Values are JSON, but for records, the key filter's pages and the count of commits
//! (both described below): a record's value is its JSON text, then, if it has source
//! memos, a `\0` (which JSON text never holds) and 36 bytes per memo, the call's digest
//! and the event count as little-endian u32. The memos live in the record's value so
//! that a record and what its sources made of it change together.
//!
//! Two more keyspaces serve reads: `f` holds the [`KeyFilter`] of the ledger and record
//! keys, so that a key never committed is known new without a read (sled's batches
//! lock out every read while they apply, so a read made while the commit thread writes
//! waits for it), and `c` the count of commits, which the saved filter must match. The
//! filter is read when a lookup or commit first needs it, so listing commands skip it.
//!
//! A commit's batch is applied on a thread of its own while the pipeline goes on with
//! the next group (both cores work: one runs modules, the other writes). Batches land
//! one at a time, in order; reads see the batch in flight (the ledger keys and records
//! it holds) or wait for it to land; a failed batch fails the next commit or flush, and
//! nothing after it is applied.
//! Model names, event keys and handler names never contain `\0` (they are checked
//! before they get here), so these keys are unambiguous.

use std::cell::{RefCell, RefMut};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::key_filter::{KeyFilter, PageId};
use super::{
    Commit, DeadLetter, Items, LedgerEntry, OutboxItem, OutboxPayload, PendingDelivery, Pruned,
    Registration, SourceMemo, Store, StoredRecord, TenantSettings,
};
use crate::Error;
use crate::generators::Generator;

impl From<sled::Error> for Error {
    fn from(error: sled::Error) -> Self {
        Error::Storage(error.to_string())
    }
}

/// A tenant's data in a sled database.
pub struct SledStore {
    db: sled::Db,
    data: sled::Tree,
    in_flight: Mutex<Option<InFlight>>,
    /// The ledger and record keys of every commit so far (see [`KeyFilter`]), read (or
    /// rebuilt) on first use: a command that only lists never needs it.
    filter: RefCell<Option<KeyFilter>>,
    /// Commits so far, the last perhaps still in flight.
    commits: u64,
    modules: sled::Tree,
    generators: sled::Tree,
    templates: sled::Tree,
    meta: sled::Tree,
    next_outbox_id: u64,
}

/// How long opening waits for a dropped database of this process to let go of its
/// files (see [`SledStore::open`]).
const RELEASE_PATIENCE: Duration = Duration::from_secs(10);

/// Whether `error` is sled saying another handle holds the database's files.
fn is_lock_held(error: &sled::Error) -> bool {
    // sled 0.34 reports it only in the message of an `io::Error` of kind `Other`.
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

const SETTINGS: &[u8] = b"settings";
const MODULE_ORDER: &[u8] = b"module-order";

impl SledStore {
    /// Opens (or creates) the database in `path`. The caller holds the tenant's lock,
    /// so sled's own lock on the files can only be held by a database this process
    /// dropped, for a moment after the drop: by sled's background I/O, or by a child
    /// this process was forking (it holds a copy of every file descriptor until it
    /// execs). Opening waits for that, up to [`RELEASE_PATIENCE`].
    pub fn open(path: &Path) -> Result<Self, Error> {
        let deadline = Instant::now() + RELEASE_PATIENCE;
        let db = loop {
            match sled::Config::new().path(path).open() {
                Err(error) if is_lock_held(&error) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                result => break result?,
            }
        };
        Self::from_db(db)
    }

    /// A database that lives in a temporary directory and is deleted when dropped.
    #[cfg(test)]
    pub fn temporary() -> Result<Self, Error> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, Error> {
        let data = db.open_tree("data")?;
        let after_last = match data.scan_prefix([OUTBOX]).next_back().transpose()? {
            Some((_, segment)) => last_outbox_id(&segment)? + 1,
            None => 1,
        };
        let after_pruned = match data.get(OUTBOX_NEXT_ID)? {
            Some(value) => decode_u64(&value, "the next outbox id")?,
            None => 1,
        };
        let next_outbox_id = after_last.max(after_pruned);
        let commits = match data.get(COMMITS)? {
            Some(value) => decode_u64(&value, "the count of commits")?,
            None => 0,
        };
        Ok(Self {
            in_flight: Mutex::new(None),
            filter: RefCell::new(None),
            commits,
            data,
            modules: db.open_tree("modules")?,
            generators: db.open_tree("generators")?,
            templates: db.open_tree("templates")?,
            meta: db.open_tree("meta")?,
            db,
            next_outbox_id,
        })
    }

    /// The key filter, read or rebuilt (see [`load_filter`]) on first use. Its first use
    /// comes before the first commit, so no batch is in flight while it loads.
    fn filter(&self) -> Result<RefMut<'_, KeyFilter>, Error> {
        let mut filter = self.filter.borrow_mut();
        if filter.is_none() {
            *filter = Some(load_filter(&self.data, self.commits)?);
        }
        Ok(RefMut::map(filter, |filter| {
            filter.as_mut().expect("loaded just above")
        }))
    }
}

/// A batch being applied on another thread, with what reads must see of it meanwhile.
struct InFlight {
    applying: JoinHandle<sled::Result<()>>,
    ledger: HashSet<String>,
    /// (model, id) -> record.
    records: HashMap<(String, String), StoredRecord>,
}

impl SledStore {
    fn in_flight(&self) -> MutexGuard<'_, Option<InFlight>> {
        // Nothing panics while holding the lock; a poisoned one holds good data.
        self.in_flight
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Waits for the batch in flight to land; its error if it failed.
    fn settle(&self) -> Result<(), Error> {
        let Some(in_flight) = self.in_flight().take() else {
            return Ok(());
        };
        in_flight
            .applying
            .join()
            .map_err(|_| Error::Storage("the thread applying a commit panicked".to_owned()))??;
        Ok(())
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Err(error) = self.settle() {
            tracing::error!("a commit failed as the store closed: {error}");
        }
    }
}

/// The first byte of each keyspace of the `data` tree.
const RECORD: u8 = b'r';
const LEDGER: u8 = b'l';
const OUTBOX: u8 = b'o';
const OUTBOX_UPDATE: u8 = b'u';
const PENDING: u8 = b'p';
const DEAD: u8 = b'd';

/// The key filter's header (`h`) and pages (`p`, then table and page as big-endian
/// u32), saved by `flush`.
const FILTER: u8 = b'f';
/// The number of commits the tree holds, as a big-endian u64: each commit's batch
/// writes it, and a saved filter is used only if it covers that many.
const COMMITS: &[u8] = b"c";
/// The id the next outbox item gets, as a big-endian u64, once pruning has removed
/// items: the last segment no longer tells, and an id must never be given twice (it is
/// how receivers recognise an item sent again).
const OUTBOX_NEXT_ID: &[u8] = b"n";

fn filter_header_key() -> [u8; 2] {
    [FILTER, b'h']
}

fn filter_page_key((table, page): PageId) -> Vec<u8> {
    let mut key = vec![FILTER, b'p'];
    key.extend_from_slice(&table.to_be_bytes());
    key.extend_from_slice(&page.to_be_bytes());
    key
}

/// The saved key filter if it covers `commits`; else (a crash after a commit, a data
/// dir from before filters) one rebuilt from the keys, and saved.
fn load_filter(data: &sled::Tree, commits: u64) -> Result<KeyFilter, Error> {
    if let Some(filter) = saved_filter(data, commits)? {
        return Ok(filter);
    }
    let mut filter = KeyFilter::new();
    for item in data.scan_prefix([LEDGER]).chain(data.scan_prefix([RECORD])) {
        filter.insert(&item?.0);
    }
    // Pages of an older filter, which may have had more tables than this one, go.
    let mut batch = sled::Batch::default();
    for key in data.scan_prefix([FILTER]).keys() {
        batch.remove(key?);
    }
    save_filter(data, &mut filter, commits, batch)?;
    Ok(filter)
}

/// The saved key filter, if there is one, whole, and covering `commits`.
fn saved_filter(data: &sled::Tree, commits: u64) -> Result<Option<KeyFilter>, Error> {
    let Some(header) = data.get(filter_header_key())? else {
        return Ok(None);
    };
    let mut pages = Vec::new();
    for item in data.scan_prefix([FILTER, b'p']) {
        let (key, bytes) = item?;
        let number = |at: usize| {
            key.get(at..at + 4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        };
        let (Some(table), Some(page)) = (number(2), number(6)) else {
            return Ok(None);
        };
        pages.push(((table, page), bytes.to_vec()));
    }
    Ok(KeyFilter::read(&header, commits, pages))
}

/// Saves the filter's changed pages, and that it covers `commits`, in `batch`.
fn save_filter(
    data: &sled::Tree,
    filter: &mut KeyFilter,
    commits: u64,
    mut batch: sled::Batch,
) -> Result<(), Error> {
    for (page, bytes) in filter.take_dirty() {
        batch.insert(filter_page_key(page), bytes);
    }
    batch.insert(&filter_header_key()[..], filter.header(commits));
    data.apply_batch(batch)?;
    Ok(())
}

fn key(space: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(space);
    key.extend_from_slice(name.as_bytes());
    key
}

fn pair_key(space: u8, first: &str, second: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + first.len() + second.len());
    key.push(space);
    key.extend_from_slice(first.as_bytes());
    key.push(0);
    key.extend_from_slice(second.as_bytes());
    key
}

const MEMO_BYTES: usize = 36;

fn encode_record(record: StoredRecord) -> Vec<u8> {
    let mut value = record.json.into_bytes();
    if !record.memos.is_empty() {
        value.reserve(1 + MEMO_BYTES * record.memos.len());
        value.push(0);
        for memo in &record.memos {
            value.extend_from_slice(&memo.call);
            value.extend_from_slice(&memo.events.to_le_bytes());
        }
    }
    value
}

fn decode_record(value: &[u8]) -> Result<StoredRecord, Error> {
    let (json, memos) = match value.iter().position(|&byte| byte == 0) {
        Some(end) => (&value[..end], &value[end + 1..]),
        None => (value, &[][..]),
    };
    if !memos.len().is_multiple_of(MEMO_BYTES) {
        return Err(Error::Storage(
            "a record's source memos are cut short".to_owned(),
        ));
    }
    let memos = memos
        .chunks_exact(MEMO_BYTES)
        .map(|memo| {
            let (call, events) = memo.split_at(32);
            SourceMemo {
                call: call.try_into().expect("32 bytes"),
                events: u32::from_le_bytes(events.try_into().expect("4 bytes")),
            }
        })
        .collect();
    Ok(StoredRecord {
        json: utf8(json)?,
        memos,
    })
}

fn outbox_key(space: u8, id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(space);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The items of an outbox value, as `T`: a segment, or a single item (see the module's
/// docs).
fn outbox_value<T: DeserializeOwned>(value: &[u8]) -> Result<Vec<T>, Error> {
    if value.first() == Some(&b'[') {
        from_json(value)
    } else {
        Ok(vec![from_json(value)?])
    }
}

/// The id of the last item of an outbox value, read without decoding the items (a
/// segment of a thousand mails is most of a megabyte, and every open reads one).
fn last_outbox_id(value: &[u8]) -> Result<u64, Error> {
    #[derive(Deserialize)]
    struct Id {
        id: u64,
    }
    let last = outbox_value::<Id>(value)?.pop();
    last.map(|item| item.id)
        .ok_or_else(|| Error::Storage("an outbox segment is empty".to_owned()))
}

/// Each item of `segments` as it is now: its update, if `updates` (in id order, as
/// `segments`) has one.
fn latest_outbox<'a>(
    segments: impl Iterator<Item = sled::Result<sled::IVec>> + 'a,
    updates: impl Iterator<Item = sled::Result<sled::IVec>> + 'a,
) -> Items<'a, OutboxItem> {
    let items = segments.flat_map(|segment| {
        let items = segment
            .map_err(Error::from)
            .and_then(|value| outbox_value::<OutboxItem>(&value));
        match items {
            Ok(items) => items.into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        }
    });
    let mut updates = updates
        .map(|value| from_json::<OutboxItem>(&value?))
        .peekable();
    Box::new(items.map(move |item| {
        let item = item?;
        // Updates before this item's id would belong to no item (items are never
        // removed): they are passed over.
        while let Some(update) = updates.next_if(|update| match update {
            Ok(update) => update.id <= item.id,
            Err(_) => true,
        }) {
            let update = update?;
            if update.id == item.id {
                return Ok(update);
            }
        }
        Ok(item)
    }))
}

/// A big-endian u64; `what` names it in the error.
fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, Error> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Storage(format!("{what} is not 8 bytes")))?;
    Ok(u64::from_be_bytes(bytes))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|error| Error::Storage(format!("encoding: {error}")))
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|error| Error::Storage(format!("decoding: {error}")))
}

fn utf8(bytes: &[u8]) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::Storage("a stored key is not UTF-8".to_owned()))
}

/// The ledger's value: the context is stored as the JSON it is, without re-encoding.
fn encode_ledger(entry: &LedgerEntry) -> Result<Vec<u8>, Error> {
    let group = serde_json::to_string(&entry.group)
        .map_err(|error| Error::Storage(format!("encoding: {error}")))?;
    Ok(format!(
        r#"{{"group":{group},"created_at":{},"context":{}}}"#,
        entry.created_at_ms, entry.context
    )
    .into_bytes())
}

fn decode_ledger(key: &[u8], value: &[u8]) -> Result<LedgerEntry, Error> {
    #[derive(Deserialize)]
    struct Stored<'a> {
        group: String,
        created_at: i64,
        #[serde(borrow)]
        context: &'a RawValue,
    }
    let stored: Stored<'_> = serde_json::from_slice(value)
        .map_err(|error| Error::Storage(format!("decoding the ledger: {error}")))?;
    Ok(LedgerEntry {
        key: utf8(key)?,
        group: stored.group,
        created_at_ms: stored.created_at,
        context: stored.context.get().to_owned(),
    })
}

fn values<'a, T: DeserializeOwned + 'a>(tree: &sled::Tree) -> Items<'a, T> {
    Box::new(tree.iter().map(|item| {
        let (_, value) = item?;
        from_json(&value)
    }))
}

impl SledStore {
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

/// A new outbox item as a commit writes it, to be read back as an [`OutboxItem`]: its
/// payload as `kind` and `data`, its sending state left to the defaults.
#[derive(Serialize)]
struct NewOutboxJson {
    id: u64,
    event: String,
    handler: String,
    #[serde(flatten)]
    payload: OutboxPayload,
    created_at_ms: i64,
}

/// A commit as one batch: after a crash, all of it is there or none of it. Within a
/// batch the last write to a key wins, so settled deliveries are removed before new
/// ones (a delivery that failed again replaces itself). Outbox items get ids from
/// `first_id` on.
fn encode(commit: Commit, first_id: u64, commits: u64) -> Result<sled::Batch, Error> {
    let mut batch = sled::Batch::default();
    batch.insert(COMMITS, &commits.to_be_bytes());
    for (model, id, record) in commit.records {
        batch.insert(pair_key(RECORD, &model, &id), encode_record(record));
    }
    for entry in &commit.ledger {
        batch.insert(key(LEDGER, &entry.key), encode_ledger(entry)?);
    }
    if !commit.outbox.is_empty() {
        let segment: Vec<NewOutboxJson> = (first_id..)
            .zip(commit.outbox)
            .map(|(id, item)| NewOutboxJson {
                id,
                event: item.event,
                handler: item.handler,
                payload: item.payload.into_payload(),
                created_at_ms: item.created_at_ms,
            })
            .collect();
        // Sized up front: grown by doubling, the copies and the fresh pages of a
        // segment of most of a megabyte were a tenth of the commit thread's work.
        let size = segment
            .iter()
            .map(|item| payload_len(&item.payload) + item.event.len() + item.handler.len() + 160)
            .sum();
        let mut value = Vec::with_capacity(size);
        serde_json::to_writer(&mut value, &segment)
            .map_err(|error| Error::Storage(format!("encoding: {error}")))?;
        batch.insert(outbox_key(OUTBOX, first_id), value);
    }
    for (event, handler) in &commit.pending_done {
        batch.remove(pair_key(PENDING, event, handler));
    }
    for pending in &commit.pending {
        batch.insert(
            pair_key(PENDING, &pending.event, &pending.handler),
            to_json(pending)?,
        );
    }
    for (event, handler) in &commit.dead_done {
        batch.remove(pair_key(DEAD, event, handler));
    }
    for dead in &commit.dead {
        batch.insert(pair_key(DEAD, &dead.event, &dead.handler), to_json(dead)?);
    }
    Ok(batch)
}

/// About how long a payload's JSON is: its texts' lengths.
fn payload_len(payload: &OutboxPayload) -> usize {
    match payload {
        OutboxPayload::Mail(mail) => {
            let addresses = [&mail.to, &mail.cc, &mail.bcc]
                .iter()
                .flat_map(|list| list.iter())
                .map(|address| address.len() + 3)
                .sum::<usize>();
            let texts = [
                &mail.from,
                &mail.reply_to,
                &mail.template,
                &mail.render_error,
            ]
            .iter()
            .map(|text| text.as_ref().map_or(0, String::len))
            .sum::<usize>();
            addresses
                + texts
                + mail.subject.len()
                + mail.body.len()
                + mail
                    .context
                    .as_ref()
                    .map_or(0, |context| context.get().len())
        }
        OutboxPayload::Output(output) => output.channel.len() + 64,
    }
}

impl Store for SledStore {
    fn commit(&mut self, commit: Commit) -> Result<(), Error> {
        if commit.is_empty() {
            return Ok(());
        }
        // The previous batch lands first: order is kept, and its failure stops this one.
        self.settle()?;
        let ledger: HashSet<String> = commit.ledger.iter().map(|e| e.key.clone()).collect();
        {
            let mut filter = self.filter()?;
            for entry in &commit.ledger {
                filter.insert(&key(LEDGER, &entry.key));
            }
            for (model, id, _) in &commit.records {
                filter.insert(&pair_key(RECORD, model, id));
            }
        }
        self.commits += 1;
        let commits = self.commits;
        let records: HashMap<(String, String), StoredRecord> = commit
            .records
            .iter()
            .map(|(model, id, record)| ((model.clone(), id.clone()), record.clone()))
            .collect();
        let first_id = self.next_outbox_id;
        let next_id = first_id + commit.outbox.len() as u64;
        let data = self.data.clone();
        // Encoding happens on the commit thread too: it is work the pipeline need not wait for.
        let applying = std::thread::Builder::new()
            .name("spark-commit".to_owned())
            .spawn(move || match encode(commit, first_id, commits) {
                Ok(batch) => data.apply_batch(batch),
                Err(error) => Err(sled::Error::Unsupported(error.to_string())),
            })
            .map_err(|error| Error::Storage(format!("cannot start a commit thread: {error}")))?;
        *self.in_flight() = Some(InFlight {
            applying,
            ledger,
            records,
        });
        self.next_outbox_id = next_id;
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        self.settle()?;
        if let Some(filter) = self.filter.borrow_mut().as_mut()
            && filter.is_dirty()
        {
            save_filter(&self.data, filter, self.commits, sled::Batch::default())?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn is_seen(&self, event: &str) -> Result<bool, Error> {
        let key = key(LEDGER, event);
        if !self.filter()?.may_contain(&key) {
            return Ok(false);
        }
        if let Some(in_flight) = self.in_flight().as_ref()
            && in_flight.ledger.contains(event)
        {
            return Ok(true);
        }
        Ok(self.data.contains_key(key)?)
    }

    fn ledger_entry(&self, event: &str) -> Result<Option<LedgerEntry>, Error> {
        self.settle()?;
        self.data
            .get(key(LEDGER, event))?
            .map(|value| decode_ledger(event.as_bytes(), &value))
            .transpose()
    }

    fn ledger(&self) -> Items<'_, LedgerEntry> {
        if let Err(error) = self.settle() {
            return Box::new(std::iter::once(Err(error)));
        }
        Box::new(self.data.scan_prefix([LEDGER]).map(|item| {
            let (key, value) = item?;
            decode_ledger(&key[1..], &value)
        }))
    }

    fn record(&self, model: &str, id: &str) -> Result<Option<StoredRecord>, Error> {
        let key = pair_key(RECORD, model, id);
        if !self.filter()?.may_contain(&key) {
            return Ok(None);
        }
        if let Some(in_flight) = self.in_flight().as_ref()
            && let Some(record) = in_flight.records.get(&(model.to_owned(), id.to_owned()))
        {
            return Ok(Some(record.clone()));
        }
        self.data
            .get(key)?
            .map(|value| decode_record(&value))
            .transpose()
    }

    fn records(
        &self,
        model: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, Error> {
        self.settle()?;
        let prefix = pair_key(RECORD, model, "");
        let skip = prefix.len();
        let range = match after {
            Some(after) => self.data.range(pair_key(RECORD, model, after)..),
            None => self.data.range(prefix.clone()..),
        };
        range
            .map(|item| item.map_err(Error::from))
            .take_while(|item| match item {
                Ok((key, _)) => key.starts_with(&prefix),
                Err(_) => true,
            })
            .filter(|item| match (item, after) {
                (Ok((key, _)), Some(after)) => &key[skip..] != after.as_bytes(),
                _ => true,
            })
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((utf8(&key[skip..])?, decode_record(&value)?))
            })
            .collect()
    }

    fn outbox(&self) -> Items<'_, OutboxItem> {
        if let Err(error) = self.settle() {
            return Box::new(std::iter::once(Err(error)));
        }
        latest_outbox(
            self.data.scan_prefix([OUTBOX]).values(),
            self.data.scan_prefix([OUTBOX_UPDATE]).values(),
        )
    }

    fn update_outbox(&mut self, item: &OutboxItem) -> Result<(), Error> {
        self.settle()?;
        self.data
            .insert(outbox_key(OUTBOX_UPDATE, item.id), to_json(item)?)?;
        self.data.flush()?;
        Ok(())
    }

    fn prune_outbox(&mut self, remove: &dyn Fn(&OutboxItem) -> bool) -> Result<Pruned, Error> {
        self.settle()?;
        let mut pruned = Pruned::default();
        // Keys first: each segment is rewritten while the scan would still be open.
        let segments: Vec<sled::IVec> = self
            .data
            .scan_prefix([OUTBOX])
            .keys()
            .collect::<Result<_, _>>()?;
        for key in segments {
            let Some(value) = self.data.get(&key)? else {
                continue;
            };
            let mut items: Vec<OutboxItem> = outbox_value(&value)?;
            let (Some(first), Some(last)) = (items.first(), items.last()) else {
                continue;
            };
            let updates: Vec<(sled::IVec, OutboxItem)> = self
                .data
                .range(outbox_key(OUTBOX_UPDATE, first.id)..=outbox_key(OUTBOX_UPDATE, last.id))
                .map(|entry| {
                    let (key, value) = entry?;
                    Ok((key, from_json(&value)?))
                })
                .collect::<Result<_, Error>>()?;
            for (_, update) in &updates {
                if let Some(item) = items.iter_mut().find(|item| item.id == update.id) {
                    *item = update.clone();
                }
            }
            let before = items.len();
            items.retain(|item| !remove(item));
            pruned.removed += (before - items.len()) as u64;
            pruned.kept += items.len() as u64;
            if items.len() == before && updates.is_empty() {
                continue;
            }
            // The segment and its updates become one value again, in one batch.
            let mut batch = sled::Batch::default();
            batch.insert(OUTBOX_NEXT_ID, &self.next_outbox_id.to_be_bytes());
            for (key, _) in updates {
                batch.remove(key);
            }
            if items.is_empty() {
                batch.remove(key);
            } else {
                batch.insert(key, to_json(&items)?);
            }
            self.data.apply_batch(batch)?;
        }
        Ok(pruned)
    }

    fn pending(&self) -> Items<'_, PendingDelivery> {
        self.settled_values(PENDING)
    }

    fn dead(&self) -> Items<'_, DeadLetter> {
        self.settled_values(DEAD)
    }

    fn modules(&self) -> Result<Vec<Registration>, Error> {
        let mut modules: Vec<Registration> = values(&self.modules).collect::<Result<_, _>>()?;
        modules.sort_by_key(|module| module.order);
        Ok(modules)
    }

    fn put_module(&mut self, module: &Registration) -> Result<(), Error> {
        self.modules
            .insert(module.name.as_bytes(), to_json(module)?)?;
        self.modules.flush()?;
        Ok(())
    }

    fn remove_module(&mut self, name: &str) -> Result<bool, Error> {
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
        self.templates.insert(group.as_bytes(), source.as_bytes())?;
        self.templates.flush()?;
        Ok(())
    }

    fn remove_template(&mut self, group: &str) -> Result<bool, Error> {
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
        self.meta.insert(SETTINGS, to_json(settings)?)?;
        self.meta.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CallError;
    use crate::outbox::OutboxStatus;
    use crate::store::{NewOutboxItem, NewPayload};

    fn entry(key: &str, group: &str) -> LedgerEntry {
        LedgerEntry {
            key: key.to_owned(),
            group: group.to_owned(),
            created_at_ms: 1_700_000_000_000,
            context: r#"{"n": 1, "s": "\"quoted\""}"#.to_owned(),
        }
    }

    fn output(event: &str) -> NewOutboxItem {
        NewOutboxItem {
            event: event.to_owned(),
            handler: "h".to_owned(),
            payload: NewPayload::Ready(Box::new(OutboxPayload::from_output("c", "p"))),
            created_at_ms: 5,
        }
    }

    #[test]
    fn the_ledger_keeps_group_time_and_context_exactly() {
        let mut store = SledStore::temporary().unwrap();
        assert!(!store.is_seen("a_1").unwrap());
        store
            .commit(Commit {
                ledger: vec![entry("a_1", "a"), entry("b_1", "b")],
                ..Commit::default()
            })
            .unwrap();
        assert!(store.is_seen("a_1").unwrap());
        assert_eq!(store.ledger_entry("a_1").unwrap(), Some(entry("a_1", "a")));
        assert_eq!(store.ledger_entry("c_1").unwrap(), None);
        let keys: Vec<String> = store.ledger().map(|e| e.unwrap().key).collect();
        assert_eq!(keys, ["a_1", "b_1"]);
    }

    #[test]
    fn outbox_ids_increase_across_commits_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = SledStore::open(dir.path()).unwrap();
            store
                .commit(Commit {
                    outbox: vec![output("e1"), output("e2")],
                    ..Commit::default()
                })
                .unwrap();
            store
                .commit(Commit {
                    outbox: vec![output("e3")],
                    ..Commit::default()
                })
                .unwrap();
            store.flush().unwrap();
        }
        let mut store = SledStore::open(dir.path()).unwrap();
        store
            .commit(Commit {
                outbox: vec![output("e4")],
                ..Commit::default()
            })
            .unwrap();
        let items: Vec<(u64, String)> = store
            .outbox()
            .map(|item| {
                let item = item.unwrap();
                (item.id, item.event)
            })
            .collect();
        assert_eq!(
            items,
            [
                (1, "e1".to_owned()),
                (2, "e2".to_owned()),
                (3, "e3".to_owned()),
                (4, "e4".to_owned())
            ]
        );
    }

    fn outbox_events(store: &SledStore) -> Vec<(u64, String, OutboxStatus, u32)> {
        store
            .outbox()
            .map(|item| {
                let item = item.unwrap();
                (item.id, item.event, item.status, item.attempts)
            })
            .collect()
    }

    /// Two commits of outputs: events e1 to e3 (ids 1-3), then e4 and e5 (ids 4, 5).
    fn commit_segments(store: &mut SledStore) {
        for events in [&["e1", "e2", "e3"][..], &["e4", "e5"]] {
            let outbox = events.iter().map(|event| output(event)).collect();
            store
                .commit(Commit {
                    outbox,
                    ..Commit::default()
                })
                .unwrap();
        }
    }

    #[test]
    fn an_updated_outbox_item_replaces_its_copy_in_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let pending = OutboxStatus::Pending;
        let sent = OutboxStatus::Sent;
        {
            let mut store = SledStore::open(dir.path()).unwrap();
            commit_segments(&mut store);
            let items: Vec<OutboxItem> = store.outbox().map(Result::unwrap).collect();
            // The second of the first segment fails once, then goes; the first of the
            // second goes at once; the last fails.
            for (index, status, attempts) in [(1, pending, 1), (1, sent, 2), (3, sent, 1)] {
                let mut item = items[index].clone();
                item.status = status;
                item.attempts = attempts;
                store.update_outbox(&item).unwrap();
            }
            let mut last = items[4].clone();
            last.attempts = 1;
            last.error = Some("refused".to_owned());
            store.update_outbox(&last).unwrap();
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let event = |name: &str| name.to_owned();
        assert_eq!(
            outbox_events(&store),
            [
                (1, event("e1"), pending, 0),
                (2, event("e2"), sent, 2),
                (3, event("e3"), pending, 0),
                (4, event("e4"), sent, 1),
                (5, event("e5"), pending, 1),
            ]
        );
        let last = store.outbox().last().unwrap().unwrap();
        assert_eq!(last.error.as_deref(), Some("refused"));
    }

    #[test]
    fn pruning_removes_picked_items_folds_updates_in_and_never_reuses_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let (pending, sent) = (OutboxStatus::Pending, OutboxStatus::Sent);
        {
            let mut store = SledStore::open(dir.path()).unwrap();
            commit_segments(&mut store);
            let items: Vec<OutboxItem> = store.outbox().map(Result::unwrap).collect();
            // e1, e2 and e4 are sent; e5 failed once.
            for index in [0, 1, 3] {
                let mut item = items[index].clone();
                item.status = sent;
                item.attempts = 1;
                store.update_outbox(&item).unwrap();
            }
            let mut failed = items[4].clone();
            failed.attempts = 1;
            store.update_outbox(&failed).unwrap();

            let pruned = store
                .prune_outbox(&|item| item.status == sent && item.event != "e4")
                .unwrap();
            assert_eq!(
                pruned,
                Pruned {
                    removed: 2,
                    kept: 3
                }
            );
            store.flush().unwrap();
        }
        let mut store = SledStore::open(dir.path()).unwrap();
        let event = |name: &str| name.to_owned();
        assert_eq!(
            outbox_events(&store),
            [
                (3, event("e3"), pending, 0),
                (4, event("e4"), sent, 1),
                (5, event("e5"), pending, 1),
            ]
        );
        // Every update was folded into its segment.
        assert_eq!(store.data.scan_prefix([OUTBOX_UPDATE]).count(), 0);

        // With every item gone, new ones still get new ids, after a reopen too.
        let pruned = store.prune_outbox(&|_| true).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                removed: 3,
                kept: 0
            }
        );
        assert_eq!(store.data.scan_prefix([OUTBOX]).count(), 0);
        store.flush().unwrap();
        drop(store);
        let mut store = SledStore::open(dir.path()).unwrap();
        store
            .commit(Commit {
                outbox: vec![output("e6")],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(outbox_events(&store), [(6, event("e6"), pending, 0)]);
        let nothing = store.prune_outbox(&|_| false).unwrap();
        assert_eq!(
            nothing,
            Pruned {
                removed: 0,
                kept: 1
            }
        );
    }

    #[test]
    fn outbox_items_stored_one_per_key_are_read_and_counted_on() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As data dirs written before segments hold them.
            let store = SledStore::open(dir.path()).unwrap();
            for id in [1, 2] {
                let item = OutboxItem::new(
                    id,
                    format!("old{id}"),
                    "h".to_owned(),
                    OutboxPayload::from_output("c", "p"),
                    5,
                );
                let key = outbox_key(OUTBOX, id);
                store.data.insert(key, to_json(&item).unwrap()).unwrap();
            }
            store.flush().unwrap();
        }
        let mut store = SledStore::open(dir.path()).unwrap();
        store
            .commit(Commit {
                outbox: vec![output("new")],
                ..Commit::default()
            })
            .unwrap();
        let ids: Vec<(u64, String)> = outbox_events(&store)
            .into_iter()
            .map(|(id, event, ..)| (id, event))
            .collect();
        assert_eq!(
            ids,
            [
                (1, "old1".to_owned()),
                (2, "old2".to_owned()),
                (3, "new".to_owned())
            ]
        );
    }

    #[test]
    fn records_keep_the_latest_version_per_model_and_id() {
        let mut store = SledStore::temporary().unwrap();
        let record = |model: &str, id: &str, json: &str| {
            (
                model.to_owned(),
                id.to_owned(),
                StoredRecord {
                    json: json.to_owned(),
                    memos: Vec::new(),
                },
            )
        };
        store
            .commit(Commit {
                records: vec![
                    record("challenge", "1", r#"{"id":1,"v":1}"#),
                    record("challenge", "2", r#"{"id":2}"#),
                    record("challengex", "1", r#"{"id":1,"other":true}"#),
                ],
                ..Commit::default()
            })
            .unwrap();
        store
            .commit(Commit {
                records: vec![record("challenge", "1", r#"{"id":1,"v":2}"#)],
                ..Commit::default()
            })
            .unwrap();
        let json = |records: Vec<(String, StoredRecord)>| -> Vec<(String, String)> {
            records.into_iter().map(|(id, r)| (id, r.json)).collect()
        };
        let records = store.records("challenge", None, 10).unwrap();
        assert_eq!(
            json(records),
            [
                ("1".to_owned(), r#"{"id":1,"v":2}"#.to_owned()),
                ("2".to_owned(), r#"{"id":2}"#.to_owned())
            ]
        );
        let first_page = store.records("challenge", None, 1).unwrap();
        assert_eq!(first_page.len(), 1);
        let second_page = store
            .records("challenge", Some(&first_page[0].0), 1)
            .unwrap();
        assert_eq!(
            json(second_page),
            [("2".to_owned(), r#"{"id":2}"#.to_owned())]
        );
        assert!(store.records("challenge", Some("2"), 1).unwrap().is_empty());
        assert_eq!(store.records("challengex", None, 10).unwrap().len(), 1);
        assert!(store.records("challeng", None, 10).unwrap().is_empty());
    }

    /// Opens the store in `path` again. sled releases a closed database's file lock
    /// when its background threads have stopped, a moment after the drop.
    fn record(json: &str) -> StoredRecord {
        StoredRecord {
            json: json.to_owned(),
            memos: Vec::new(),
        }
    }

    /// Commits ledger keys `a_{n}` and a record `m`/`{n}` for each `n`.
    fn commit_keys(store: &mut SledStore, numbers: std::ops::Range<u32>) {
        store
            .commit(Commit {
                ledger: numbers
                    .clone()
                    .map(|n| entry(&format!("a_{n}"), "a"))
                    .collect(),
                records: numbers
                    .map(|n| ("m".to_owned(), n.to_string(), record("{}")))
                    .collect(),
                ..Commit::default()
            })
            .unwrap();
    }

    fn knows_keys(store: &SledStore, numbers: std::ops::Range<u32>) -> bool {
        numbers.into_iter().all(|n| {
            store.is_seen(&format!("a_{n}")).unwrap()
                && store.record("m", &n.to_string()).unwrap().is_some()
        })
    }

    #[test]
    fn the_key_filter_is_saved_by_flush_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = SledStore::open(dir.path()).unwrap();
            commit_keys(&mut store, 0..3_000);
            commit_keys(&mut store, 3_000..6_000);
            store.flush().unwrap();
            assert!(knows_keys(&store, 0..6_000));
        }
        let mut store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.commits, 2);
        assert!(
            saved_filter(&store.data, store.commits).unwrap().is_some(),
            "the saved filter covers every commit"
        );
        assert!(knows_keys(&store, 0..6_000));
        assert!(!store.is_seen("a_6000").unwrap());
        assert_eq!(store.record("m", "6000").unwrap(), None);
        // Keys committed after reading it are found, in flight and landed.
        commit_keys(&mut store, 6_000..7_000);
        assert!(knows_keys(&store, 6_000..7_000));
        store.flush().unwrap();
        assert!(knows_keys(&store, 0..7_000));
    }

    #[test]
    fn a_filter_that_misses_commits_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = SledStore::open(dir.path()).unwrap();
            commit_keys(&mut store, 0..100);
            store.flush().unwrap();
            // Committed and on disk, but the filter is not saved again, as when the
            // process dies after a commit.
            commit_keys(&mut store, 100..200);
            store.settle().unwrap();
            store.db.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        // Listing the ledger does not need the filter: it is neither rebuilt nor saved.
        assert_eq!(store.ledger().count(), 200);
        assert!(store.filter.borrow().is_none());
        assert!(saved_filter(&store.data, store.commits).unwrap().is_none());
        assert!(knows_keys(&store, 0..200));
        // The filter was rebuilt and saved when first used.
        assert!(saved_filter(&store.data, store.commits).unwrap().is_some());
        drop(store);
        // A data dir from before filters (no filter, no count of commits) is rebuilt too.
        {
            let store = SledStore::open(dir.path()).unwrap();
            let mut batch = sled::Batch::default();
            for key in store.data.scan_prefix([FILTER]).keys() {
                batch.remove(key.unwrap());
            }
            batch.remove(COMMITS);
            store.data.apply_batch(batch).unwrap();
            store.db.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.commits, 0);
        assert!(knows_keys(&store, 0..200));
    }

    #[test]
    fn records_keep_their_source_memos() {
        let mut store = SledStore::temporary().unwrap();
        let memo = |n: u8| SourceMemo {
            call: [n; 32],
            events: u32::from(n) << 20,
        };
        let with_memos = StoredRecord {
            json: r#"{"id":1,"text":"a\u0000b"}"#.to_owned(),
            memos: vec![memo(1), memo(2)],
        };
        let plain = StoredRecord {
            json: r#"{"id":2}"#.to_owned(),
            memos: Vec::new(),
        };
        store
            .commit(Commit {
                records: vec![
                    ("m".to_owned(), "1".to_owned(), with_memos.clone()),
                    ("m".to_owned(), "2".to_owned(), plain.clone()),
                ],
                ..Commit::default()
            })
            .unwrap();
        // From the batch in flight, then from the tree.
        assert_eq!(store.record("m", "1").unwrap(), Some(with_memos.clone()));
        store.flush().unwrap();
        assert_eq!(store.record("m", "1").unwrap(), Some(with_memos.clone()));
        assert_eq!(store.record("m", "2").unwrap(), Some(plain.clone()));
        let page = store.records("m", None, 10).unwrap();
        assert_eq!(
            page,
            [("1".to_owned(), with_memos), ("2".to_owned(), plain)]
        );
        assert!(decode_record(b"{}\0short").is_err());
    }

    #[test]
    fn pending_and_dead_deliveries_move_atomically() {
        let mut store = SledStore::temporary().unwrap();
        let error = CallError::Guest {
            message: "no".to_owned(),
        };
        let pending = PendingDelivery {
            event: "e".to_owned(),
            handler: "h".to_owned(),
            attempts: 1,
            error: error.clone(),
            next_at_ms: 10,
            depth: 0,
        };
        store
            .commit(Commit {
                pending: vec![pending.clone()],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(
            store.pending().map(Result::unwrap).collect::<Vec<_>>(),
            [pending]
        );
        let dead = DeadLetter {
            event: "e".to_owned(),
            handler: "h".to_owned(),
            attempts: 3,
            error,
            dead_at_ms: 20,
            depth: 0,
        };
        store
            .commit(Commit {
                pending_done: vec![("e".to_owned(), "h".to_owned())],
                dead: vec![dead.clone()],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(store.pending().count(), 0);
        assert_eq!(store.dead().map(Result::unwrap).collect::<Vec<_>>(), [dead]);
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
