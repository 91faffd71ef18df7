//! What a failed write leaves, and how the store gets over it: the undo record of the
//! commit being written, and a store that stops at its first failed write.
//!
//! sled 0.34 keeps a batch whole across a crash, but not across a write the kernel
//! fails (EIO, ENOSPC, a quota) while the batch is being applied: sled then cancels
//! the batch's manifest, and those of the batch's writes that had reached its log are
//! recovered at the next open on their own; measured, a group's ledger entries without
//! its outbox items, or the reverse, so that the same ingest run again sent mails
//! twice. And after the write of a blob file (a value over about 128 KiB) failed, a
//! buffer of sled's log stays claimed for ever, and its `flush` never returns.
//! (`tests/e2e/io_faults.rs` fails sled's writes and syncs with `tests/faultfs`.)
//!
//! So:
//!
//! - Before its batch, a commit writes the undo record ([`UNDO`]): every key the batch
//!   changes and what it held. Once the batch is applied the record is removed. sled
//!   recovers its log as a prefix (up to the first write missing from it), and the
//!   record comes before the batch in it: after any failure or crash, if some of the
//!   batch is there, the record is too, unless all of the batch is, and the removal
//!   that followed it. Opening a store that holds the record ([`roll_back`]) puts each
//!   key back as it was: the commit that failed, whole or in part, is gone, as if the
//!   process had been killed before it, and the same command run again redoes it.
//! - A store whose write failed writes nothing more ([`Poison`]): every later commit,
//!   flush, outbox update and settled read answers that first error, so no later
//!   group is committed past the failure, and the store is not closed (closing
//!   flushes, which may wait for ever) but left to the process's exit.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::codec::{put_bytes, take_bytes};
use super::keys::UNDO;
use crate::Error;

/// A batch and the keys it writes (sled's `Batch` does not tell them).
#[derive(Default)]
pub(super) struct Writes {
    pub(super) batch: sled::Batch,
    keys: Vec<Vec<u8>>,
}

impl Writes {
    pub(super) fn insert(&mut self, key: impl Into<sled::IVec>, value: impl Into<sled::IVec>) {
        let key = key.into();
        self.keys.push(key.to_vec());
        self.batch.insert(key, value);
    }

    pub(super) fn remove(&mut self, key: impl Into<sled::IVec>) {
        let key = key.into();
        self.keys.push(key.to_vec());
        self.batch.remove(key);
    }

    /// Applies the batch to `data` between its undo record's writing and removal.
    pub(super) fn apply_undoably(mut self, data: &sled::Tree) -> sled::Result<()> {
        self.keys.sort_unstable();
        self.keys.dedup();
        data.insert(UNDO, undo_record(data, &self.keys)?)?;
        data.apply_batch(self.batch)?;
        data.remove(UNDO)?;
        Ok(())
    }
}

/// The undo record of `keys`: each key (its length as a big-endian u32, then its
/// bytes), then `0` if `data` does not hold it, or `1` and the value it holds (length
/// and bytes).
fn undo_record(data: &sled::Tree, keys: &[Vec<u8>]) -> sled::Result<Vec<u8>> {
    let put = |record: &mut Vec<u8>, bytes: &[u8]| {
        put_bytes(record, bytes).map_err(|error| sled::Error::Unsupported(error.to_string()))
    };
    let mut record = Vec::new();
    for key in keys {
        put(&mut record, key)?;
        match data.get(key)? {
            None => record.push(0),
            Some(value) => {
                record.push(1);
                put(&mut record, &value)?;
            }
        }
    }
    Ok(record)
}

/// A key of an undo record, and the value to put back (none: the key is removed).
type Undo<'a> = (&'a [u8], Option<&'a [u8]>);

/// What an undo record says.
fn read_undo_record(mut record: &[u8]) -> Result<Vec<Undo<'_>>, Error> {
    let damaged = || Error::Storage("the undo record of a failed commit is damaged".to_owned());
    let mut entries = Vec::new();
    while !record.is_empty() {
        let key = take_bytes(&mut record).ok_or_else(damaged)?;
        let (&held, rest) = record.split_first().ok_or_else(damaged)?;
        record = rest;
        let value = match held {
            0 => None,
            1 => Some(take_bytes(&mut record).ok_or_else(damaged)?),
            _ => return Err(damaged()),
        };
        entries.push((key, value));
    }
    Ok(entries)
}

/// Puts back what the undo record of `data` says, if it holds one (a commit that did
/// not finish): how many keys. Done at open, before anything reads the tree.
pub(super) fn roll_back(data: &sled::Tree) -> Result<usize, Error> {
    let Some(record) = data.get(UNDO)? else {
        return Ok(0);
    };
    let entries = read_undo_record(&record)?;
    let mut batch = sled::Batch::default();
    for (key, value) in &entries {
        match value {
            Some(value) => batch.insert(*key, *value),
            None => batch.remove(*key),
        }
    }
    // Putting keys back twice does no harm: should this fail part-way, the record is
    // still there for the next open.
    data.apply_batch(batch)?;
    data.remove(UNDO)?;
    data.flush()?;
    Ok(entries.len())
}

/// Removes the snapshots sled began in `path` and did not finish (`snap.*.generating`):
/// how many. sled 0.34 leaves one when a write or a sync of it fails (or the process
/// is killed meanwhile), and at its next open reads it as the latest snapshot and
/// refuses to open ("corrupted data"). None is ever needed: sled renames a snapshot
/// once it is whole and synced, and only then removes the one before, which the log
/// since then completes. Called only after an open that failed so, while this
/// process holds the database's lock: nothing is writing a snapshot.
pub(super) fn remove_unfinished_snapshots(path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.")
            && name.ends_with(".generating")
            && std::fs::remove_file(entry.path()).is_ok()
        {
            tracing::warn!("removed {name}, a snapshot sled began and did not finish");
            removed += 1;
        }
    }
    removed
}

/// The first failed write of a store, shared by its handles (the store and its outbox
/// handle): once there is one, they write nothing more and answer it.
#[derive(Debug, Clone)]
pub(super) struct Poison {
    path: PathBuf,
    first: Arc<Mutex<Option<(ErrorKind, String)>>>,
}

/// An error of a write, as a [`Poison`] takes it.
pub(super) enum Failure {
    /// The write failed: the kind and text of its error, kept (sled's errors are not
    /// `Clone`, and every later call answers it again).
    Failed(ErrorKind, String),
    /// The write was refused before it began (the disk's reserve): nothing failed.
    Refused(Error),
}

impl From<sled::Error> for Failure {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(io) => {
                let io = os_error_in_text(&io).unwrap_or(io);
                Failure::Failed(io.kind(), io.to_string())
            }
            other => Failure::Failed(ErrorKind::Other, other.to_string()),
        }
    }
}

/// The OS error whose `Debug` text `io` carries: sled hands its first I/O error on to
/// later calls so (`Os { code: 5, kind: .. }`), and it is told as the first was.
fn os_error_in_text(io: &std::io::Error) -> Option<std::io::Error> {
    if io.raw_os_error().is_some() {
        return None;
    }
    os_error_named_in(&io.to_string())
}

/// The OS error a text names as sled does (`Os { code: 28, kind: .. }`), wherever in
/// the text: sled's errors that reached us as text ("storage error: IO error: Os ..").
fn os_error_named_in(text: &str) -> Option<std::io::Error> {
    const NAMED: &str = "Os { code: ";
    let at = text.find(NAMED)? + NAMED.len();
    let code = text[at..].split(',').next()?;
    Some(std::io::Error::from_raw_os_error(code.parse().ok()?))
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        match error {
            Error::DiskFull { .. } => Failure::Refused(error),
            Error::Io { error, .. } => Failure::Failed(error.kind(), error.to_string()),
            // sled's error as text: the OS error it names, if any (a full disk is
            // told as one, 507 from a server).
            other => {
                let text = other.to_string();
                match os_error_named_in(&text) {
                    Some(io) => Failure::Failed(io.kind(), io.to_string()),
                    None => Failure::Failed(ErrorKind::Other, text),
                }
            }
        }
    }
}

impl Poison {
    /// No failure yet, for the store in `path`.
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            first: Arc::default(),
        }
    }

    fn first(&self) -> std::sync::MutexGuard<'_, Option<(ErrorKind, String)>> {
        // Nothing panics while holding the lock; a poisoned one holds good data.
        self.first
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Keeps `failure` as the store's, unless an earlier one is; the error to report.
    pub(super) fn fail(&self, failure: impl Into<Failure>) -> Error {
        match failure.into() {
            Failure::Refused(error) => error,
            Failure::Failed(kind, text) => {
                let first = self.first().get_or_insert((kind, text)).clone();
                self.error(first)
            }
        }
    }

    /// The first failure's error, if a write failed.
    pub(super) fn check(&self) -> Result<(), Error> {
        match self.first().clone() {
            None => Ok(()),
            Some(first) => Err(self.error(first)),
        }
    }

    pub(super) fn is_set(&self) -> bool {
        self.first().is_some()
    }

    fn error(&self, (kind, text): (ErrorKind, String)) -> Error {
        Error::Io {
            what: "cannot write the store",
            path: self.path.clone(),
            error: std::io::Error::new(kind, text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_named_in_sleds_text_is_told_as_itself() {
        let text = "storage error: IO error: Os { code: 28, kind: StorageFull, \
                    message: \"No space left on device\" }";
        let failure = Failure::from(Error::Storage(text.to_owned()));
        let Failure::Failed(kind, text) = failure else {
            panic!("a failure, not a refusal");
        };
        assert_eq!(kind, ErrorKind::StorageFull);
        assert_eq!(text, "No space left on device (os error 28)");
        let Failure::Failed(kind, _) = Failure::from(Error::Storage("other".to_owned())) else {
            panic!("a failure, not a refusal");
        };
        assert_eq!(kind, ErrorKind::Other);
    }

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("data").unwrap()
    }

    fn contents(data: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        data.iter()
            .map(|item| {
                let (key, value) = item.unwrap();
                (key.to_vec(), value.to_vec())
            })
            .collect()
    }

    #[test]
    fn a_batch_applied_undoably_leaves_no_record() {
        let data = tree();
        data.insert("kept", "old").unwrap();
        let mut writes = Writes::default();
        writes.insert("kept", "new");
        writes.insert("added", "value");
        writes.remove("absent");
        writes.apply_undoably(&data).unwrap();
        assert_eq!(data.get(UNDO).unwrap(), None);
        assert_eq!(roll_back(&data).unwrap(), 0, "nothing to roll back");
        assert_eq!(data.get("kept").unwrap().unwrap(), "new");
        assert_eq!(data.get("added").unwrap().unwrap(), "value");
    }

    /// A commit that failed after its undo record and part of its batch were written
    /// is rolled back whole at the next open, and rolling back twice changes nothing.
    #[test]
    fn an_unfinished_commit_is_rolled_back_whole() {
        let data = tree();
        data.insert("kept", "old").unwrap();
        data.insert("removed", "there").unwrap();
        data.insert("other", "untouched").unwrap();
        let before = contents(&data);

        let keys: Vec<Vec<u8>> = ["added", "kept", "removed", "also added"]
            .iter()
            .map(|key| key.as_bytes().to_vec())
            .collect();
        data.insert(UNDO, undo_record(&data, &keys).unwrap())
            .unwrap();
        // Part of the batch landed, the rest did not.
        data.insert("kept", "new").unwrap();
        data.remove("removed").unwrap();
        data.insert("added", "value").unwrap();

        assert_eq!(roll_back(&data).unwrap(), 4);
        assert_eq!(contents(&data), before);
        assert_eq!(roll_back(&data).unwrap(), 0);
        assert_eq!(contents(&data), before);
    }

    #[test]
    fn a_damaged_record_is_an_error() {
        let data = tree();
        let record = undo_record(&data, &[b"key".to_vec()]).unwrap();
        for cut in [1, record.len() - 1] {
            data.insert(UNDO, &record[..cut]).unwrap();
            assert!(matches!(roll_back(&data), Err(Error::Storage(_))));
        }
        data.insert(UNDO, record).unwrap();
        assert_eq!(roll_back(&data).unwrap(), 1);
    }

    #[test]
    fn the_first_failure_is_kept_and_answered_again() {
        let poison = Poison::new(Path::new("/data/db"));
        assert!(poison.check().is_ok());
        let eio = std::io::Error::from_raw_os_error(5); // EIO
        let first = poison.fail(sled::Error::Io(eio));
        assert!(
            matches!(&first, Error::Io { path, .. } if path == Path::new("/data/db")),
            "{first:?}"
        );
        assert!(first.to_string().contains("Input/output error"), "{first}");
        let later = poison.fail(sled::Error::Unsupported("later".to_owned()));
        assert_eq!(later.to_string(), first.to_string());
        let again = poison.clone().check().unwrap_err();
        assert_eq!(again.to_string(), first.to_string());
        assert!(poison.is_set());
    }

    #[test]
    fn an_os_error_sled_passed_on_as_text_reads_as_itself() {
        let enospc = std::io::Error::from_raw_os_error(28); // ENOSPC
        let passed_on = std::io::Error::other(format!("{enospc:?}"));
        let Failure::Failed(kind, text) = Failure::from(sled::Error::Io(passed_on)) else {
            panic!("a failed write");
        };
        assert_eq!((kind, text), (enospc.kind(), enospc.to_string()));
    }

    #[test]
    fn a_write_the_reserve_refused_is_not_a_failure() {
        let poison = Poison::new(Path::new("/data/db"));
        let refused = poison.fail(Error::DiskFull {
            path: "/data".into(),
            free_bytes: 1,
            needed_bytes: 2,
        });
        assert!(matches!(refused, Error::DiskFull { .. }));
        assert!(poison.check().is_ok());
    }
}
