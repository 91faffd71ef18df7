//! What a tenant keeps: records, the ledger of seen keys, the outbox, deliveries
//! waiting for a retry, dead letters, registered modules and settings.
//!
//! [`Store`] is the seam to the storage engine ([`SledStore`] today). Everything the
//! pipeline changes for a group of records goes into one [`Commit`], applied atomically:
//! that is what makes "the seen mark and each handler's effects (or its pending retry)"
//! one unit, so a crash never loses an event nor commits effects twice.

mod journal;
mod journaled;
mod key_filter;
#[cfg(test)]
mod model_test;
mod sled;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::error::CallError;
use crate::generators::Generator;
use crate::outbox::{ComposedMail, OutboxItem, OutboxPayload};
use crate::registration::Registration;
use crate::settings::TenantSettings;
use crate::trace::Trace;

pub use self::journal::{Journal, JournalEntry};
pub(crate) use self::journal::{apply_entry, is_component_hash};
pub(crate) use self::journaled::JournaledStore;
pub use self::sled::SledStore;

/// A seen event, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub key: String,
    pub group: String,
    /// The logical time of the run that first saw the key (unix ms).
    pub created_at_ms: i64,
    /// The event's context: a JSON object, as text.
    pub context: String,
    /// What happened to it; none for events seen before traces were kept.
    pub trace: Option<Trace>,
}

/// An outbox item before the store gives it an id.
#[derive(Debug)]
pub struct NewOutboxItem {
    pub event: String,
    pub handler: String,
    pub payload: NewPayload,
    pub created_at_ms: i64,
}

/// An outbox item's payload, or how to make it. Composing a mail (rendering its
/// template) depends only on what the handler returned, so it is left to whoever writes
/// the commit: the store does it on its commit thread while the pipeline runs the next
/// records, which moves a fifth of the pipeline's work to the second core (the sled
/// store shares it out between the two: `store::sled::commit`).
pub enum NewPayload {
    Ready(Box<OutboxPayload>),
    /// Composes the mail.
    LaterMail(Box<dyn FnOnce() -> ComposedMail + Send>),
}

impl NewPayload {
    /// The payload, made now if it was left for later.
    pub fn into_payload(self) -> OutboxPayload {
        match self {
            NewPayload::Ready(payload) => *payload,
            NewPayload::LaterMail(compose) => OutboxPayload::Mail(compose()),
        }
    }

    /// The payload made now, ready.
    pub fn composed(self) -> Self {
        match self {
            NewPayload::Ready(_) => self,
            later => NewPayload::Ready(Box::new(later.into_payload())),
        }
    }
}

impl std::fmt::Debug for NewPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NewPayload::Ready(payload) => f.debug_tuple("Ready").field(payload).finish(),
            NewPayload::LaterMail(_) => f.write_str("LaterMail(..)"),
        }
    }
}

/// A handler call that failed and waits for its next attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelivery {
    pub event: String,
    pub handler: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub error: CallError,
    /// When the next attempt is due, in wall-clock unix ms.
    pub next_at_ms: i64,
    /// How deep the event was emitted (0 for events from sources).
    pub depth: u32,
}

/// A handler call that failed every attempt. `spark dead retry` delivers it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event: String,
    pub handler: String,
    pub attempts: u32,
    pub error: CallError,
    /// When it was parked, in wall-clock unix ms.
    pub dead_at_ms: i64,
    pub depth: u32,
}

/// A stored record, with what its sources' last calls on it returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// The record, a JSON object, as text.
    pub json: String,
    /// One per source with a coarse clock whose last call on this very text succeeded.
    pub memos: Vec<SourceMemo>,
}

/// A source's successful call on a record, kept with the record for a module with a
/// coarse clock: which call it was (the digest of the module's code, the model and the
/// time it saw), and how many events it returned, all of them in the ledger once the
/// memo is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMemo {
    pub call: [u8; 32],
    pub events: u32,
}

/// What pruning the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Items removed.
    pub removed: u64,
    /// Items left.
    pub kept: u64,
}

/// What forgetting events did ([`Tenant::forget_events`](crate::Tenant::forget_events)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Keys taken out of the ledger: new again.
    pub forgotten: u64,
    /// Deliveries of those events that waited for a retry, dropped.
    pub pending: u64,
    /// Dead letters of those events, dropped.
    pub dead: u64,
    /// The ids of those events' outbox items not sent yet, which stay (the store does
    /// not fill this in; the tenant does, from the outbox).
    pub unsent: Vec<u64>,
}

/// A request that carried an idempotency key, remembered with its answer so that the
/// same request sent again (a client retrying after a timeout) gets the same answer and
/// changes nothing. Committed with the request's last records, so after a crash either
/// both are there or neither is, and a retry runs again over the ledger, which keeps
/// every event key once either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedRequest {
    /// The idempotency key the client chose.
    pub key: String,
    /// A digest of what the request asked (its model, time and body): the same key
    /// with another request is refused, not answered with the first one's answer.
    pub fingerprint: String,
    /// The answer, as the JSON it was sent as.
    pub answer: String,
    /// When it was answered (wall-clock unix ms); forgotten a while after.
    pub at_ms: i64,
}

/// Everything one group of work changes, applied atomically by [`Store::commit`].
#[derive(Debug, Default)]
pub struct Commit {
    /// (model, id, record): the latest version replaces the stored one.
    pub records: Vec<(String, String, StoredRecord)>,
    pub ledger: Vec<LedgerEntry>,
    /// Entries seen before whose trace grew (a retried delivery): written over the
    /// stored ones.
    pub retraced: Vec<LedgerEntry>,
    pub outbox: Vec<NewOutboxItem>,
    pub pending: Vec<PendingDelivery>,
    /// (event, handler) of pending deliveries that are settled.
    pub pending_done: Vec<(String, String)>,
    pub dead: Vec<DeadLetter>,
    /// (event, handler) of dead letters that were delivered after all.
    pub dead_done: Vec<(String, String)>,
    /// Requests answered, by idempotency key.
    pub requests: Vec<RememberedRequest>,
}

impl Commit {
    /// About how many bytes it writes: its texts, and a kilobyte for each outbox item
    /// (a mail is composed only when it is written).
    pub fn size_estimate(&self) -> u64 {
        let records: usize = self
            .records
            .iter()
            .map(|(model, id, record)| model.len() + id.len() + record.json.len() + 64)
            .sum();
        let ledger: usize = self
            .ledger
            .iter()
            .chain(&self.retraced)
            .map(|entry| entry.key.len() + entry.group.len() + entry.context.len() + 512)
            .sum();
        let deliveries = 512 * (self.pending.len() + self.dead.len());
        let requests: usize = self
            .requests
            .iter()
            .map(|request| request.key.len() + request.answer.len() + 128)
            .sum();
        (records + ledger + deliveries + requests + 1024 * self.outbox.len()) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.ledger.is_empty()
            && self.retraced.is_empty()
            && self.outbox.is_empty()
            && self.pending.is_empty()
            && self.pending_done.is_empty()
            && self.dead.is_empty()
            && self.dead_done.is_empty()
            && self.requests.is_empty()
    }
}

/// What sending needs of a tenant's store: its outbox, to read and to mark. A handle of
/// its own ([`Store::outbox_store`]) lets a server send on a thread of its own while
/// the tenant's owner commits: commits only add items (new segments), and marking
/// writes only the items being sent; pruning, which rewrites segments, is never done
/// while a handle sends.
pub trait OutboxStore: Send {
    /// The outbox in id order, as committed so far.
    fn outbox(&self) -> Items<'_, OutboxItem>;
    /// The items of the outbox from id `first` on, in id order: what a sender that
    /// knows the items before `first` settled reads, rather than the whole history.
    fn outbox_from(&self, first: u64) -> Items<'_, OutboxItem> {
        Box::new(
            self.outbox()
                .filter(move |item| item.as_ref().map_or(true, |item| item.id >= first)),
        )
    }
    /// Replaces outbox items (their sending status), all at once and durably.
    fn update_outbox(&mut self, items: &[OutboxItem]) -> Result<(), Error>;
    /// Whether writes would be taken now: refuses with [`Error::DiskFull`] when the
    /// disk has no room left beyond the reserve.
    fn check_space(&self) -> Result<(), Error>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), Error>;
    /// Removes the items of `ids` (those there are; how many), all at once and
    /// durably. No id is given again. Only the sender (the one writer of items'
    /// sending state) calls it, so that an item is never removed while it goes out.
    fn remove_outbox(&mut self, ids: &[u64]) -> Result<u64, Error>;
}

/// What makes a store's writes up to a point durable ([`Store::flusher`]): run it once,
/// on any thread. A later one covers an earlier one's writes too.
pub struct Flush(Box<dyn FnOnce() -> Result<(), Error> + Send>);

impl Flush {
    pub fn new(flush: impl FnOnce() -> Result<(), Error> + Send + 'static) -> Self {
        Flush(Box::new(flush))
    }

    /// Makes the writes durable (on disk, synced).
    pub fn run(self) -> Result<(), Error> {
        (self.0)()
    }
}

impl std::fmt::Debug for Flush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Flush(..)")
    }
}

/// A boxed iterator over stored items.
pub type Items<'a, T> = Box<dyn Iterator<Item = Result<T, Error>> + 'a>;

/// A tenant's storage. One process at a time opens a tenant; implementations may rely
/// on being the only writer.
pub trait Store: Send {
    /// Applies everything in `commit` at once: after a crash, all of it or none of it
    /// is there.
    fn commit(&mut self, commit: Commit) -> Result<(), Error>;
    /// Makes every commit so far durable (on disk, synced).
    fn flush(&self) -> Result<(), Error>;
    /// Writes out everything committed so far (a commit in flight lands, what the
    /// store keeps beside its data is written) without making it durable, and returns
    /// what makes it durable, to run on any thread: a server answers a group of
    /// requests once that ran, while its tenant's owner runs the next group.
    fn flusher(&self) -> Result<Flush, Error>;
    /// Whether a write failed part-way (a disk that failed, or filled past the
    /// reserve): the store writes nothing more until it is opened again, in a new
    /// process (its files stay locked by this one), which rolls the failed write back.
    fn is_broken(&self) -> bool {
        false
    }
    /// How large a commit may be, by its [`Commit::size_estimate`], if the store has a
    /// limit (a journal's log takes entries up to a size): a run commits its records
    /// in groups that stay under it. The estimate is rough (a mail is counted as a
    /// kilobyte before it is composed), so the limit leaves room: a quarter of the
    /// log's.
    fn max_commit_bytes(&self) -> Option<u64> {
        None
    }
    /// Records a run commits at a time. Small groups suit a store that writes a commit
    /// in the background while the run goes on (the sled store: with groups of 250
    /// instead of 1,000, both cores stay busy through more of a run, the batches are
    /// smaller to copy into sled's pages, and a 10,000-challenge ingest took 0.49 s
    /// instead of 0.57 and left a 28 MB store instead of 37); a store that waits for
    /// each commit to be acknowledged (a journal) wants fewer, larger ones.
    fn commit_records(&self) -> usize {
        250
    }

    fn is_seen(&self, key: &str) -> Result<bool, Error>;
    fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, Error>;
    /// The ledger in key order.
    fn ledger(&self) -> Items<'_, LedgerEntry>;
    /// The ledger in key order from the first key after `after` (from the start
    /// without one).
    fn ledger_after(&self, after: Option<&str>) -> Items<'_, LedgerEntry>;

    /// The groups of the events seen, in order (from the first commit that kept them:
    /// a data dir's events from before then are not counted).
    fn groups(&self) -> Result<Vec<String>, Error>;

    /// The request remembered under an idempotency key, if any.
    fn remembered_request(&self, key: &str) -> Result<Option<RememberedRequest>, Error>;
    /// Forgets the requests answered before `before_ms` (wall-clock unix ms); how many.
    fn forget_requests(&mut self, before_ms: i64) -> Result<u64, Error>;

    /// The stored version of a record, if any.
    fn record(&self, model: &str, id: &str) -> Result<Option<StoredRecord>, Error>;

    /// Up to `limit` stored records of `model` with ids after `after`, in id order:
    /// (id, record). Paging lets callers write while they read.
    fn records(
        &self,
        model: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, Error>;

    /// The outbox in id order.
    fn outbox(&self) -> Items<'_, OutboxItem>;
    /// The outbox from id `first` on (see [`OutboxStore::outbox_from`]).
    fn outbox_from(&self, first: u64) -> Items<'_, OutboxItem> {
        Box::new(
            self.outbox()
                .filter(move |item| item.as_ref().map_or(true, |item| item.id >= first)),
        )
    }
    /// A handle on the outbox alone, for sending (see [`OutboxStore`]); what is
    /// committed so far lands first.
    fn outbox_store(&self) -> Result<Box<dyn OutboxStore>, Error>;
    /// Removes the outbox items `remove` picks. The ids of the others stay, and no id
    /// is given again. Not durable until [`Store::flush`].
    fn prune_outbox(&mut self, remove: &dyn Fn(&OutboxItem) -> bool) -> Result<Pruned, Error>;
    fn pending(&self) -> Items<'_, PendingDelivery>;
    fn dead(&self) -> Items<'_, DeadLetter>;
    /// Removes the dead letters of `letters` (event, handler); how many were there.
    /// Durable when it returns.
    fn discard_dead(&mut self, letters: &[(String, String)]) -> Result<u64, Error>;

    /// Forgets the ledger entries of `keys` (those there are), so that each key is new
    /// again, with the deliveries waiting for a retry and the dead letters of those
    /// events (they would deliver the event a second time once it came back). Every
    /// record's source memos go too: a memo vouches that its call's events are all in
    /// the ledger, which no longer holds. Durable when it returns.
    fn forget_events(&mut self, keys: &[String]) -> Result<Forgotten, Error>;

    /// A number that changes whenever the settings, the modules or the templates
    /// change (through this store, the one writer): what a run made of them is still
    /// good while it stays the same.
    fn setup_version(&self) -> u64;
    fn modules(&self) -> Result<Vec<Registration>, Error>;
    fn put_module(&mut self, module: &Registration) -> Result<(), Error>;
    /// Removes a module; whether it was there.
    fn remove_module(&mut self, name: &str) -> Result<bool, Error>;
    /// The next registration order number (for a new module).
    fn next_module_order(&mut self) -> Result<u64, Error>;

    /// The generators, in name order.
    fn generators(&self) -> Result<Vec<Generator>, Error>;
    fn put_generator(&mut self, generator: &Generator) -> Result<(), Error>;
    /// Removes a generator; whether it was there.
    fn remove_generator(&mut self, name: &str) -> Result<bool, Error>;

    /// Mail templates as (group, source), in group order.
    fn templates(&self) -> Result<Vec<(String, String)>, Error>;
    fn put_template(&mut self, group: &str, source: &str) -> Result<(), Error>;
    /// Removes a template; whether it was there.
    fn remove_template(&mut self, group: &str) -> Result<bool, Error>;

    fn settings(&self) -> Result<TenantSettings, Error>;
    fn put_settings(&mut self, settings: &TenantSettings) -> Result<(), Error>;

    /// When a scheduled job (by name) last ran (wall-clock unix ms), if ever.
    fn last_scheduled_run(&self, job: &str) -> Result<Option<i64>, Error>;
    /// Notes when a scheduled job ran, durably.
    fn put_scheduled_run(&mut self, job: &str, at_ms: i64) -> Result<(), Error>;

    /// Everything the store holds, as versioned bytes that [`SledStore::restore`]
    /// makes a store of again: a replica's starting point. Makes every commit durable
    /// first; the caller makes sure nothing else writes meanwhile.
    fn snapshot(&self) -> Result<Vec<u8>, Error>;

    /// The store beneath any journal ([`JournaledStore`]): what replaying a journal's
    /// entries writes to, so that they do not go onto the journal a second time.
    fn unjournaled(&mut self) -> &mut dyn Store;
}
