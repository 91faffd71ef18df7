//! The journal: every change to a tenant's store as an entry on a log, written before
//! the change is applied, so that another process can rebuild the store by applying
//! the log's entries in order (a cluster's replica; see `docs/cluster.md`).
//!
//! An entry is one call of a mutating method of [`Store`] or [`OutboxStore`], with
//! what it needs to be applied again and nothing else: [`apply_entry`] is the one code
//! that applies an entry, both on the node that made it ([`JournaledStore`]) and on
//! one that replays it ([`Tenant::replay`](crate::Tenant::replay)), so the two cannot
//! drift apart. Everything an entry holds is data: a mail left to compose later is
//! composed before its commit is journaled, and a prune's closure is run first, the
//! ids it picked journaled in its place. The store's own answers (outbox ids, module
//! order numbers, what forgetting found) follow from the entries before, which is
//! what makes replaying them give the same store.
//!
//! [`JournaledStore`]: super::JournaledStore

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    Commit, DeadLetter, Forgotten, LedgerEntry, NewOutboxItem, NewPayload, OutboxStore,
    PendingDelivery, Pruned, RememberedRequest, Store, StoredRecord,
};
use crate::Error;
use crate::generators::Generator;
use crate::outbox::{OutboxItem, OutboxPayload};
use crate::registration::{RegisteredCode, Registration};
use crate::settings::TenantSettings;

/// A replicated log of a tenant's changes, handed to
/// [`Spark::set_journal`](crate::Spark::set_journal).
pub trait Journal: Send + Sync {
    /// Puts `entry` on the log of `tenant` and, only if that succeeded, calls `apply`
    /// (which applies it to the local store) and returns what it returned. An error
    /// without calling `apply` fails the store's method with it, nothing changed
    /// locally. The journal may hold a lock across both, so that its log's order is
    /// the order in which the changes were applied (a tenant's outbox is written from
    /// a sending thread of its own beside its owner's).
    fn append(
        &self,
        tenant: &str,
        entry: &JournalEntry,
        apply: &mut dyn FnMut() -> Result<(), Error>,
    ) -> Result<(), Error>;

    /// Keeps a component's bytes where a replica can fetch them by `sha256` (lowercase
    /// hex). Called before an entry that names the component
    /// ([`JournalEntry::component`]) is appended.
    fn save_component(&self, sha256: &str, wasm: &[u8]) -> Result<(), Error>;

    /// The largest entry the log takes, in bytes, if it has a limit. Runs commit
    /// their records in smaller groups to stay well under it (a group's estimated size
    /// is a quarter of it at most, see [`Store::max_commit_bytes`]); an entry still
    /// larger is refused with [`Error::ChangeTooLarge`].
    fn max_entry_bytes(&self) -> Option<u64> {
        None
    }
}

/// One change to a tenant's store, for a [`Journal`]'s log: opaque but for
/// [`encode`](Self::encode), [`decode`](Self::decode) and what logs and fetching
/// components need to know.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry(pub(super) Change);

/// The version of [`JournalEntry::encode`]'s bytes, their first byte.
const FORMAT: u8 = 1;

/// One call of a mutating method of [`Store`] or [`OutboxStore`], by its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Change {
    Commit(CommitChange),
    ForgetRequests {
        before_ms: i64,
    },
    /// The ids the prune's closure picked.
    PruneOutbox {
        ids: Vec<u64>,
    },
    DiscardDead {
        letters: Vec<(String, String)>,
    },
    ForgetEvents {
        keys: Vec<String>,
    },
    PutModule {
        module: Registration,
    },
    RemoveModule {
        name: String,
    },
    NextModuleOrder,
    PutGenerator {
        generator: Generator,
    },
    RemoveGenerator {
        name: String,
    },
    PutTemplate {
        group: String,
        source: String,
    },
    RemoveTemplate {
        group: String,
    },
    PutSettings {
        settings: TenantSettings,
    },
    PutScheduledRun {
        job: String,
        at_ms: i64,
    },
    UpdateOutbox {
        items: Vec<OutboxItem>,
    },
    RemoveOutbox {
        ids: Vec<u64>,
    },
}

/// A [`Commit`] as data: its outbox items' payloads made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CommitChange {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    records: Vec<(String, String, StoredRecord)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ledger: Vec<LedgerEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    retraced: Vec<LedgerEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    outbox: Vec<NewItem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<PendingDelivery>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending_done: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dead: Vec<DeadLetter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dead_done: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    requests: Vec<RememberedRequest>,
}

/// A [`NewOutboxItem`] with its payload made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NewItem {
    event: String,
    handler: String,
    payload: OutboxPayload,
    created_at_ms: i64,
}

impl CommitChange {
    /// `commit` as data. A mail left for later ([`NewPayload::LaterMail`]) is composed
    /// here, on the caller's thread: a closure cannot go onto a log, so a journaled
    /// store composes mails on the tenant owner's thread, not on its commit thread.
    pub(super) fn new(commit: Commit) -> Self {
        let outbox = commit
            .outbox
            .into_iter()
            .map(|item| NewItem {
                event: item.event,
                handler: item.handler,
                payload: item.payload.into_payload(),
                created_at_ms: item.created_at_ms,
            })
            .collect();
        CommitChange {
            records: commit.records,
            ledger: commit.ledger,
            retraced: commit.retraced,
            outbox,
            pending: commit.pending,
            pending_done: commit.pending_done,
            dead: commit.dead,
            dead_done: commit.dead_done,
            requests: commit.requests,
        }
    }

    fn to_commit(&self) -> Commit {
        Commit {
            records: self.records.clone(),
            ledger: self.ledger.clone(),
            retraced: self.retraced.clone(),
            outbox: self
                .outbox
                .iter()
                .map(|item| NewOutboxItem {
                    event: item.event.clone(),
                    handler: item.handler.clone(),
                    payload: NewPayload::Ready(Box::new(item.payload.clone())),
                    created_at_ms: item.created_at_ms,
                })
                .collect(),
            pending: self.pending.clone(),
            pending_done: self.pending_done.clone(),
            dead: self.dead.clone(),
            dead_done: self.dead_done.clone(),
            requests: self.requests.clone(),
        }
    }
}

impl JournalEntry {
    /// The entry as bytes for the log: a format version byte, then JSON.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![FORMAT];
        // Plain data with string keys only: encoding it as JSON cannot fail.
        serde_json::to_writer(&mut bytes, &self.0).expect("a journal entry encodes as JSON");
        bytes
    }

    /// An entry from [`encode`](Self::encode)'s bytes; [`Error::Journal`] for bytes of
    /// another format version or that are not an entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        match bytes.split_first() {
            None => Err(Error::Journal("a journal entry is empty".to_owned())),
            Some((&FORMAT, json)) => serde_json::from_slice(json).map(Self).map_err(|error| {
                Error::Journal(format!("a journal entry does not decode: {error}"))
            }),
            Some((version, _)) => Err(Error::Journal(format!(
                "a journal entry is of format {version}, and this spark reads format {FORMAT} \
                 only (written by another version of spark?)"
            ))),
        }
    }

    /// The SHA-256 (lowercase hex) of the component a module's registration names, for
    /// the entry that registers it; `None` for a native module and every other entry.
    pub fn component(&self) -> Option<&str> {
        match &self.0 {
            Change::PutModule { module } => match &module.code {
                RegisteredCode::Component { sha256 } => Some(sha256),
                RegisteredCode::Native { .. } => None,
            },
            _ => None,
        }
    }

    /// What the entry does (its store method's name), for logs.
    pub fn describe(&self) -> &'static str {
        match &self.0 {
            Change::Commit(_) => "commit",
            Change::ForgetRequests { .. } => "forget_requests",
            Change::PruneOutbox { .. } => "prune_outbox",
            Change::DiscardDead { .. } => "discard_dead",
            Change::ForgetEvents { .. } => "forget_events",
            Change::PutModule { .. } => "put_module",
            Change::RemoveModule { .. } => "remove_module",
            Change::NextModuleOrder => "next_module_order",
            Change::PutGenerator { .. } => "put_generator",
            Change::RemoveGenerator { .. } => "remove_generator",
            Change::PutTemplate { .. } => "put_template",
            Change::RemoveTemplate { .. } => "remove_template",
            Change::PutSettings { .. } => "put_settings",
            Change::PutScheduledRun { .. } => "put_scheduled_run",
            Change::UpdateOutbox { .. } => "update_outbox",
            Change::RemoveOutbox { .. } => "remove_outbox",
        }
    }

    /// The module an entry registers or removes, if it does: replaying it may leave a
    /// component no registration names.
    pub(crate) fn module_name(&self) -> Option<&str> {
        match &self.0 {
            Change::PutModule { module } => Some(&module.name),
            Change::RemoveModule { name } => Some(name),
            _ => None,
        }
    }
}

/// What applying an entry answered: the answer of its store method.
#[derive(Debug)]
pub(super) enum Applied {
    Done,
    Count(u64),
    Existed(bool),
    Pruned(Pruned),
    Forgotten(Forgotten),
}

impl Applied {
    fn mismatch(self, wanted: &str) -> Error {
        Error::Storage(format!(
            "applying a journal entry answered {self:?}, not {wanted}"
        ))
    }

    pub(super) fn done(self) -> Result<(), Error> {
        match self {
            Applied::Done => Ok(()),
            other => Err(other.mismatch("nothing")),
        }
    }

    pub(super) fn count(self) -> Result<u64, Error> {
        match self {
            Applied::Count(count) => Ok(count),
            other => Err(other.mismatch("a count")),
        }
    }

    pub(super) fn existed(self) -> Result<bool, Error> {
        match self {
            Applied::Existed(existed) => Ok(existed),
            other => Err(other.mismatch("whether it existed")),
        }
    }

    pub(super) fn pruned(self) -> Result<Pruned, Error> {
        match self {
            Applied::Pruned(pruned) => Ok(pruned),
            other => Err(other.mismatch("what pruning did")),
        }
    }

    pub(super) fn forgotten(self) -> Result<Forgotten, Error> {
        match self {
            Applied::Forgotten(forgotten) => Ok(forgotten),
            other => Err(other.mismatch("what forgetting did")),
        }
    }
}

/// Applies `entry` to `store` (the store itself, not journaling it again), as the
/// store method it records would have.
pub(crate) fn apply_entry(store: &mut dyn Store, entry: &JournalEntry) -> Result<(), Error> {
    apply(store, entry).map(drop)
}

pub(super) fn apply(store: &mut dyn Store, entry: &JournalEntry) -> Result<Applied, Error> {
    Ok(match &entry.0 {
        Change::Commit(commit) => {
            store.commit(commit.to_commit())?;
            Applied::Done
        }
        Change::ForgetRequests { before_ms } => Applied::Count(store.forget_requests(*before_ms)?),
        Change::PruneOutbox { ids } => {
            let ids: BTreeSet<u64> = ids.iter().copied().collect();
            Applied::Pruned(store.prune_outbox(&|item| ids.contains(&item.id))?)
        }
        Change::DiscardDead { letters } => Applied::Count(store.discard_dead(letters)?),
        Change::ForgetEvents { keys } => Applied::Forgotten(store.forget_events(keys)?),
        Change::PutModule { module } => {
            store.put_module(module)?;
            Applied::Done
        }
        Change::RemoveModule { name } => Applied::Existed(store.remove_module(name)?),
        Change::NextModuleOrder => Applied::Count(store.next_module_order()?),
        Change::PutGenerator { generator } => {
            store.put_generator(generator)?;
            Applied::Done
        }
        Change::RemoveGenerator { name } => Applied::Existed(store.remove_generator(name)?),
        Change::PutTemplate { group, source } => {
            store.put_template(group, source)?;
            Applied::Done
        }
        Change::RemoveTemplate { group } => Applied::Existed(store.remove_template(group)?),
        Change::PutSettings { settings } => {
            store.put_settings(settings)?;
            Applied::Done
        }
        Change::PutScheduledRun { job, at_ms } => {
            store.put_scheduled_run(job, *at_ms)?;
            Applied::Done
        }
        Change::UpdateOutbox { .. } | Change::RemoveOutbox { .. } => {
            apply_to_outbox(&mut *store.outbox_store()?, entry)?
        }
    })
}

/// Applies an entry of the outbox handle's ([`OutboxStore`]) to `outbox`.
pub(super) fn apply_to_outbox(
    outbox: &mut dyn OutboxStore,
    entry: &JournalEntry,
) -> Result<Applied, Error> {
    match &entry.0 {
        Change::UpdateOutbox { items } => {
            outbox.update_outbox(items)?;
            Ok(Applied::Done)
        }
        Change::RemoveOutbox { ids } => Ok(Applied::Count(outbox.remove_outbox(ids)?)),
        _ => Err(Error::Storage(format!(
            "a journal entry `{}` is not the outbox's",
            entry.describe()
        ))),
    }
}

/// Whether `text` can be a component's name under `modules/`: a SHA-256 in lowercase
/// hex. What a log names is checked before it becomes a file name.
pub(crate) fn is_component_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::ComposedMail;

    fn mail_commit() -> Commit {
        let mail = ComposedMail {
            to: vec!["a@example.com".to_owned()],
            subject: "Hi".to_owned(),
            body: "there".to_owned(),
            context: Some(
                serde_json::value::RawValue::from_string(r#"{ "n" : 1 }"#.to_owned()).unwrap(),
            ),
            ..ComposedMail::default()
        };
        Commit {
            records: vec![(
                "m".to_owned(),
                "1".to_owned(),
                StoredRecord {
                    json: r#"{"id":1}"#.to_owned(),
                    memos: vec![super::super::SourceMemo {
                        call: [9; 32],
                        events: 2,
                    }],
                },
            )],
            outbox: vec![NewOutboxItem {
                event: "e".to_owned(),
                handler: "h".to_owned(),
                payload: NewPayload::LaterMail(Box::new(move || mail)),
                created_at_ms: 7,
            }],
            pending_done: vec![("e".to_owned(), "h".to_owned())],
            ..Commit::default()
        }
    }

    #[test]
    fn entries_go_through_bytes_and_back() {
        let entries = [
            JournalEntry(Change::Commit(CommitChange::new(mail_commit()))),
            JournalEntry(Change::NextModuleOrder),
            JournalEntry(Change::PruneOutbox { ids: vec![1, 3] }),
            JournalEntry(Change::PutScheduledRun {
                job: "generate".to_owned(),
                at_ms: -1,
            }),
        ];
        for entry in entries {
            let bytes = entry.encode();
            assert_eq!(bytes[0], FORMAT);
            assert_eq!(JournalEntry::decode(&bytes).unwrap(), entry);
        }
    }

    #[test]
    fn a_later_mail_is_composed_into_the_entry() {
        let JournalEntry(Change::Commit(commit)) =
            JournalEntry(Change::Commit(CommitChange::new(mail_commit())))
        else {
            unreachable!()
        };
        let OutboxPayload::Mail(mail) = &commit.outbox[0].payload else {
            panic!("not a mail");
        };
        assert_eq!(mail.subject, "Hi");
        assert_eq!(mail.context.as_ref().unwrap().get(), r#"{ "n" : 1 }"#);
    }

    #[test]
    fn bad_bytes_are_refused_clearly() {
        let message = |bytes: &[u8]| match JournalEntry::decode(bytes) {
            Err(Error::Journal(message)) => message,
            other => panic!("{other:?}"),
        };
        assert!(message(b"").contains("empty"));
        assert!(message(b"\x02{}").contains("format 2"));
        assert!(message(b"\x01{\"nonsense\":1}").contains("does not decode"));
        assert!(message(b"\x01not json").contains("does not decode"));
    }

    #[test]
    fn only_a_component_registration_names_a_component() {
        let registration = |code: &str| Registration {
            name: "m".to_owned(),
            code: code.to_owned().into(),
            order: 1,
            sources: vec![],
            handlers: vec!["x".to_owned()],
            exports: vec!["handler".to_owned()],
            limits: Default::default(),
            clock: Default::default(),
            since_ms: None,
        };
        let sha = "ab".repeat(32);
        let put = |code: &str| {
            JournalEntry(Change::PutModule {
                module: registration(code),
            })
        };
        assert_eq!(put(&sha).component(), Some(sha.as_str()));
        assert_eq!(put("builtin:mails").component(), None);
        assert_eq!(JournalEntry(Change::NextModuleOrder).component(), None);
        assert_eq!(put(&sha).describe(), "put_module");
        assert!(is_component_hash(&sha));
        assert!(!is_component_hash("../../etc/passwd"));
        assert!(!is_component_hash(&"AB".repeat(32)));
    }
}
