//! The commit writer: a [`Commit`] as one `sled::Batch`, applied on a thread of its own.
//!
//! A commit's batch is applied on a thread of its own while the pipeline goes on with
//! the next group (both cores work: one runs modules, the other writes): the store's
//! writer, started with its first commit and kept for the next ones. Batches land
//! one at a time, in order; reads see the batch in flight (the ledger keys and records
//! it holds) or wait for it to land; a failed batch fails the next commit or flush, and
//! nothing after it is applied: the store answers its error from then on, and the next
//! open rolls it back (`failure`). A commit's mails are composed by whichever of the
//! two threads is free (`compose_while_landing`).

use std::collections::{HashMap, HashSet};
use std::sync::MutexGuard;
use std::sync::mpsc::{self, Receiver, RecvError, Sender, TryRecvError};
use std::thread::JoinHandle;

use super::SledStore;
use super::codec::to_json;
use super::failure::Writes;
use super::keys::{
    COMMITS, DEAD, EVENT, GROUP, OUTBOX, PENDING, RECORD, REQUEST, key, outbox_key, pair_key,
};
use super::ledger::{self, encode_ledger};
use super::outbox::encode_segment;
use super::records;
use super::runs::Changes;
use crate::Error;
use crate::store::{Commit, NewOutboxItem, NewPayload, StoredRecord};

/// A batch being applied on another thread, with what reads must see of it meanwhile.
pub(super) struct InFlight {
    /// Its outcome, once it landed (closed without one if the writer panicked).
    applying: Receiver<sled::Result<()>>,
    /// The outcome, once [`InFlight::has_landed`] took it off `applying`.
    landed: Option<Result<sled::Result<()>, RecvError>>,
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

    /// Waits for the batch in flight to land; its error if it failed, and from then on
    /// (the store is poisoned: see `failure`).
    pub(super) fn settle(&self) -> Result<(), Error> {
        self.poison.check()?;
        let Some(in_flight) = self.in_flight().take() else {
            return Ok(());
        };
        match in_flight.outcome() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.poison.fail(error)),
            Err(_) => Err(self.poison.fail(Error::Storage(
                "the thread applying a commit panicked".to_owned(),
            ))),
        }
    }

    /// Whether the batch in flight marks `event` seen.
    pub(super) fn in_flight_has_seen(&self, event: &str) -> bool {
        self.in_flight()
            .as_ref()
            .is_some_and(|in_flight| in_flight.ledger.contains(event))
    }

    /// The record the batch in flight writes under `model` and `id`, if it writes one.
    pub(super) fn in_flight_record(&self, model: &str, id: &str) -> Option<StoredRecord> {
        self.in_flight()
            .as_ref()?
            .records
            .get(&(model.to_owned(), id.to_owned()))
            .cloned()
    }

    /// Whether no batch is in flight any more (it landed, or failed).
    pub(super) fn nothing_in_flight(&self) -> bool {
        self.in_flight().as_mut().is_none_or(InFlight::has_landed)
    }

    /// Composes the mails of `outbox` (see [`NewPayload`]) here, one after the other,
    /// for as long as the batch before is still landing; the writer's thread composes
    /// the rest. The thread that hands a commit over would otherwise wait idle for that
    /// batch, while the writer's thread, which composes and writes, is the busier one
    /// (a 10,000-challenge ingest: 55% of the CPU against the pipeline's 41%): this way
    /// whichever thread has time renders, and both cores stay busy.
    fn compose_while_landing(&self, outbox: Vec<NewOutboxItem>) -> Vec<NewOutboxItem> {
        let mut landed = false;
        outbox
            .into_iter()
            .map(|mut item| {
                if !landed && matches!(item.payload, NewPayload::LaterMail(_)) {
                    landed = self.nothing_in_flight();
                    if !landed {
                        item.payload = item.payload.composed();
                    }
                }
                item
            })
            .collect()
    }

    /// Starts applying `commit` once the batch before it has landed, and returns
    /// without waiting for it.
    pub(super) fn start_commit(&mut self, mut commit: Commit) -> Result<(), Error> {
        commit.outbox = self.compose_while_landing(std::mem::take(&mut commit.outbox));
        // The previous batch lands first: order is kept, and its failure stops this one.
        self.settle()?;
        let ledger: HashSet<String> = commit.ledger.iter().map(|e| e.key.clone()).collect();
        {
            let mut filter = self.filter()?;
            for entry in &commit.ledger {
                filter.insert(&key(EVENT, &entry.key));
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
        let applying = self
            .writer
            .run(move || match encode(&data, commit, first_id, commits) {
                // Undoably: a batch that fails part-way is not kept in part (`failure`).
                Ok(writes) => writes.apply_undoably(&data),
                Err(error) => Err(sled::Error::Unsupported(error.to_string())),
            })?;
        *self.in_flight() = Some(InFlight {
            applying,
            landed: None,
            ledger,
            records,
        });
        self.next_outbox_id = next_id;
        Ok(())
    }
}

impl InFlight {
    /// Whether the batch has landed (or its writer stopped), without waiting for it.
    fn has_landed(&mut self) -> bool {
        if self.landed.is_none() {
            match self.applying.try_recv() {
                Ok(outcome) => self.landed = Some(Ok(outcome)),
                Err(TryRecvError::Disconnected) => self.landed = Some(Err(RecvError)),
                Err(TryRecvError::Empty) => {}
            }
        }
        self.landed.is_some()
    }

    /// The batch's outcome, once it has landed; an error if its writer panicked.
    fn outcome(self) -> Result<sled::Result<()>, RecvError> {
        match self.landed {
            Some(landed) => landed,
            None => self.applying.recv(),
        }
    }
}

/// A commit's work, run on the writer's thread.
type Job = Box<dyn FnOnce() + Send>;

/// The thread that applies a store's commits, one at a time, in order: started with
/// the first commit and kept for the next (a thread started for each commit cost its
/// stack's page faults every time), stopped when the store closes.
#[derive(Default)]
pub(super) struct Writer {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Runs `apply` on the writer's thread (started now if it is not running, or
    /// stopped after a panic); its outcome comes on the receiver returned.
    fn run(
        &mut self,
        apply: impl FnOnce() -> sled::Result<()> + Send + 'static,
    ) -> Result<Receiver<sled::Result<()>>, Error> {
        let (done, outcome) = mpsc::channel();
        let mut job: Job = Box::new(move || {
            let _ = done.send(apply());
        });
        for _ in 0..2 {
            if let Some(jobs) = &self.jobs {
                match jobs.send(job) {
                    Ok(()) => return Ok(outcome),
                    // The thread is gone (a job panicked): another one.
                    Err(mpsc::SendError(back)) => job = back,
                }
            }
            self.start()?;
        }
        Err(Error::Storage("the commit writer stopped".to_owned()))
    }

    fn start(&mut self) -> Result<(), Error> {
        self.stop();
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("spark-commit".to_owned())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .map_err(|error| Error::Storage(format!("cannot start a commit thread: {error}")))?;
        self.jobs = Some(jobs);
        self.thread = Some(thread);
        Ok(())
    }

    fn stop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A commit as one batch: after a crash, all of it is there or none of it (after a
/// failed write too, with its undo record: see `failure`). Within a batch the last
/// write to a key wins, so settled deliveries are removed before new ones (a delivery
/// that failed again replaces itself). Outbox items get ids from `first_id` on. The
/// ledger's runs the commit changes are read from `data`, where every batch before
/// this one has landed.
fn encode(data: &sled::Tree, commit: Commit, first_id: u64, commits: u64) -> Result<Writes, Error> {
    let mut batch = Writes::default();
    batch.insert(COMMITS, &commits.to_be_bytes());
    records::write_changes(data, commit.records)?.into_writes(&mut batch);
    let mut ledger = Changes::new();
    for entry in commit.ledger.iter().chain(&commit.retraced) {
        ledger.insert(entry.key.clone().into_bytes(), Some(encode_ledger(entry)?));
    }
    ledger::write_changes(data, ledger)?.into_writes(&mut batch);
    // A commit holds few groups and many events: each group is written once.
    let groups: HashSet<&str> = commit.ledger.iter().map(|e| e.group.as_str()).collect();
    for group in groups {
        batch.insert(key(GROUP, group), &[]);
    }
    if !commit.outbox.is_empty() {
        batch.insert(
            outbox_key(OUTBOX, first_id),
            encode_segment(commit.outbox, first_id)?,
        );
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
    for request in &commit.requests {
        batch.insert(key(REQUEST, &request.key), to_json(request)?);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::thread::ThreadId;

    use crate::error::CallError;
    use crate::outbox::{ComposedMail, OutboxPayload};
    use crate::store::{DeadLetter, PendingDelivery, Store};

    /// An outbox item whose mail, when composed, is titled `subject` and notes the
    /// thread that composed it in `composers`, after running `before`.
    fn later_mail(
        subject: String,
        composers: &Arc<Mutex<Vec<(String, ThreadId)>>>,
        before: impl FnOnce() + Send + 'static,
    ) -> NewOutboxItem {
        let composers = Arc::clone(composers);
        NewOutboxItem {
            event: "e".to_owned(),
            handler: "h".to_owned(),
            payload: NewPayload::LaterMail(Box::new(move || {
                before();
                let thread = std::thread::current().id();
                composers.lock().unwrap().push((subject.clone(), thread));
                ComposedMail {
                    subject,
                    ..ComposedMail::default()
                }
            })),
            created_at_ms: 1,
        }
    }

    #[test]
    fn mails_are_composed_once_by_whichever_thread_is_free() {
        let mut store = SledStore::temporary().unwrap();
        let composers = Arc::new(Mutex::new(Vec::new()));
        // The first commit's mail waits to be composed (so the commit cannot land)
        // until the second commit's first mail is: which the committing thread must
        // compose itself, while the first commit is in flight. (Bounded, so that a
        // store that waited for the first commit would fail below, not hang.)
        let (release, released) = mpsc::channel::<()>();
        let first = Commit {
            outbox: vec![later_mail("a".to_owned(), &composers, move || {
                let _ = released.recv_timeout(std::time::Duration::from_secs(10));
            })],
            ..Commit::default()
        };
        let mut second: Vec<NewOutboxItem> = (0..50)
            .map(|i| later_mail(format!("b{i}"), &composers, || {}))
            .collect();
        second[0] = later_mail("b0".to_owned(), &composers, move || {
            let _ = release.send(());
        });
        store.commit(first).unwrap();
        store
            .commit(Commit {
                outbox: second,
                ..Commit::default()
            })
            .unwrap();
        store.flush().unwrap();

        let subjects: Vec<String> = store
            .outbox()
            .map(|item| match item.unwrap().payload {
                OutboxPayload::Mail(mail) => mail.subject,
                other => panic!("not a mail: {other:?}"),
            })
            .collect();
        let expected: Vec<String> = std::iter::once("a".to_owned())
            .chain((0..50).map(|i| format!("b{i}")))
            .collect();
        assert_eq!(subjects, expected);
        let composers = composers.lock().unwrap();
        assert_eq!(composers.len(), 51, "each mail composed once");
        let here = std::thread::current().id();
        let by = |subject: &str| composers.iter().find(|(s, _)| s == subject).unwrap().1;
        assert_ne!(
            by("a"),
            here,
            "the first commit's mail, on the writer's thread"
        );
        assert_eq!(
            by("b0"),
            here,
            "composed here while the first commit was in flight"
        );
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
}
