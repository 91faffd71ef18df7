//! Snapshots: every tree of a tenant's database as bytes, and a database made of them
//! again, so that a cluster's replica starts from a snapshot and replays only the
//! journal's entries after it.
//!
//! The bytes are a format version byte, then each tree in name order: its name, its
//! number of pairs, and each key and value, every length a big-endian integer (u32
//! for names and keys, u64 for values). The trees are copied as they are (the key
//! filter's saved pages, the commit count, the outbox's segments and next id), so a
//! restored database reads exactly as the original did; nothing in them names the
//! directory they were in.

use std::path::Path;

use super::SledStore;
use super::reserve::Reserve;
use crate::Error;

/// The version of a snapshot's bytes, their first byte.
const FORMAT: u8 = 1;

/// Pairs written per batch on restore.
const RESTORE_BATCH: usize = 10_000;

/// Every tree of `db`, as a snapshot's bytes.
pub(super) fn export(db: &sled::Db) -> Result<Vec<u8>, Error> {
    let mut names = db.tree_names();
    names.sort();
    let mut bytes = vec![FORMAT];
    for name in names {
        let tree = db.open_tree(&name)?;
        put_len32(&mut bytes, name.len())?;
        bytes.extend_from_slice(&name);
        // The count, written once the pairs are.
        let count_at = bytes.len();
        bytes.extend_from_slice(&0u64.to_be_bytes());
        let mut count = 0u64;
        for pair in tree.iter() {
            let (key, value) = pair?;
            put_len32(&mut bytes, key.len())?;
            bytes.extend_from_slice(&key);
            bytes.extend_from_slice(&(value.len() as u64).to_be_bytes());
            bytes.extend_from_slice(&value);
            count += 1;
        }
        bytes[count_at..count_at + 8].copy_from_slice(&count.to_be_bytes());
    }
    Ok(bytes)
}

fn put_len32(bytes: &mut Vec<u8>, len: usize) -> Result<(), Error> {
    let len = u32::try_from(len)
        .map_err(|_| Error::Storage("a key too long for a snapshot".to_owned()))?;
    bytes.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

/// A tree of a snapshot: its name and pairs.
type Tree<'a> = (&'a [u8], Vec<(&'a [u8], &'a [u8])>);

/// The trees of a snapshot's bytes, or why they are not one.
fn read(snapshot: &[u8]) -> Result<Vec<Tree<'_>>, Error> {
    let mut reader = Reader(snapshot);
    match reader.take(1)? {
        [FORMAT] => {}
        [version] => {
            return Err(Error::Storage(format!(
                "the snapshot is of format {version}, and this spark reads format {FORMAT} \
                 only (made by another version of spark?)"
            )));
        }
        _ => unreachable!("took one byte"),
    }
    let mut trees = Vec::new();
    while !reader.0.is_empty() {
        let name = reader.chunk32()?;
        let count = reader.u64()?;
        let mut pairs = Vec::new();
        for _ in 0..count {
            let key = reader.chunk32()?;
            let value_len = usize::try_from(reader.u64()?).map_err(|_| cut_short())?;
            pairs.push((key, reader.take(value_len)?));
        }
        trees.push((name, pairs));
    }
    Ok(trees)
}

fn cut_short() -> Error {
    Error::Storage("the snapshot is cut short or is not one".to_owned())
}

/// Reads a snapshot's bytes from the front.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < len {
            return Err(cut_short());
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn chunk32(&mut self) -> Result<&'a [u8], Error> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes"));
        self.take(len as usize)
    }
}

impl SledStore {
    /// Makes a database in `path` (which must not exist yet) holding what `snapshot`
    /// (the bytes of [`Store::snapshot`](crate::store::Store::snapshot)) holds, durably.
    /// Bytes that are not a snapshot are refused before anything is written.
    pub fn restore(path: &Path, snapshot: &[u8]) -> Result<(), Error> {
        let trees = read(snapshot)?;
        if path.exists() {
            return Err(Error::Storage(format!(
                "cannot restore a snapshot into `{}`: it exists",
                path.display()
            )));
        }
        let disk = path.parent().unwrap_or(path);
        Reserve::from_env(disk)?.check(snapshot.len() as u64)?;
        let db = sled::Config::new().path(path).open()?;
        for (name, pairs) in trees {
            let tree = db.open_tree(name)?;
            for chunk in pairs.chunks(RESTORE_BATCH) {
                let mut batch = sled::Batch::default();
                for (key, value) in chunk {
                    batch.insert(*key, *value);
                }
                tree.apply_batch(batch)?;
            }
        }
        db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Commit, SourceMemo, Store, StoredRecord};

    #[test]
    fn a_restored_database_reads_as_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(&dir.path().join("a"), None).unwrap();
        let record = StoredRecord {
            json: r#"{"id":1}"#.to_owned(),
            memos: vec![SourceMemo {
                call: [3; 32],
                events: 1,
            }],
        };
        store
            .commit(Commit {
                records: vec![("m".to_owned(), "1".to_owned(), record.clone())],
                ..Commit::default()
            })
            .unwrap();
        store.put_template("g", "{{ x }}").unwrap();
        let snapshot = store.snapshot().unwrap();
        SledStore::restore(&dir.path().join("b"), &snapshot).unwrap();
        let restored = SledStore::open(&dir.path().join("b"), None).unwrap();
        assert_eq!(restored.record("m", "1").unwrap(), Some(record));
        assert_eq!(restored.templates().unwrap(), store.templates().unwrap());
        assert_eq!(restored.snapshot().unwrap(), snapshot);
    }

    #[test]
    fn bytes_that_are_not_a_snapshot_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        for bad in [&b""[..], b"\x02", b"\x01\x00\x00\x00\x09name"] {
            assert!(matches!(
                SledStore::restore(&path, bad),
                Err(Error::Storage(_))
            ));
            assert!(!path.exists());
        }
    }
}
