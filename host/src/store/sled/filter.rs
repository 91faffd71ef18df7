//! The [`KeyFilter`] of the ledger and record keys on disk: read on first use, rebuilt
//! when it misses commits, saved by `flush`.
//!
//! `f` holds the filter, so that a key never committed is known new without a read
//! (sled's batches lock out every read while they apply, so a read made while the
//! commit thread writes waits for it), and `c` the count of commits, which the saved
//! filter must match. The filter is read when a lookup or commit first needs it, so
//! listing commands skip it.

use std::cell::RefMut;

use super::super::key_filter::KeyFilter;
use super::SledStore;
use super::keys::{FILTER, LEDGER, RECORD, filter_header_key, filter_page_key};
use crate::Error;

impl SledStore {
    /// The key filter, read or rebuilt (see [`load_filter`]) on first use. Its first use
    /// comes before the first commit, so no batch is in flight while it loads.
    pub(super) fn filter(&self) -> Result<RefMut<'_, KeyFilter>, Error> {
        let mut filter = self.filter.borrow_mut();
        if filter.is_none() {
            *filter = Some(load_filter(&self.data, self.commits)?);
        }
        Ok(RefMut::map(filter, |filter| {
            filter.as_mut().expect("loaded just above")
        }))
    }

    /// Saves the pages of the filter that changed since it was last saved, if it was
    /// read at all.
    pub(super) fn save_dirty_filter(&self) -> Result<(), Error> {
        if let Some(filter) = self.filter.borrow_mut().as_mut()
            && filter.is_dirty()
        {
            save_filter(&self.data, filter, self.commits, sled::Batch::default())?;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::super::keys::COMMITS;
    use super::super::tests::entry;
    use super::*;
    use crate::store::{Commit, Store, StoredRecord};

    /// A record without source memos.
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
            let mut store = SledStore::open(dir.path(), None).unwrap();
            commit_keys(&mut store, 0..3_000);
            commit_keys(&mut store, 3_000..6_000);
            store.flush().unwrap();
            assert!(knows_keys(&store, 0..6_000));
        }
        let mut store = SledStore::open(dir.path(), None).unwrap();
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
    fn a_forgotten_key_is_new_again_after_reopening_too() {
        let dir = tempfile::tempdir().unwrap();
        let forget =
            |keys: &[&str]| -> Vec<String> { keys.iter().map(|k| k.to_string()).collect() };
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            commit_keys(&mut store, 0..10);
            store.flush().unwrap();
            let forgotten = store
                .forget_events(&forget(&["a_3", "a_7", "a_99"]))
                .unwrap();
            assert_eq!(
                forgotten.forgotten, 2,
                "a key not in the ledger is passed by"
            );
            assert!(!store.is_seen("a_3").unwrap());
            assert!(store.is_seen("a_4").unwrap());
            store.flush().unwrap();
        }
        let mut store = SledStore::open(dir.path(), None).unwrap();
        // The saved filter still covers every commit (it is read, not rebuilt), and
        // still holds the forgotten keys' fingerprints: a "maybe", which a read answers.
        assert!(saved_filter(&store.data, store.commits).unwrap().is_some());
        assert!(
            store
                .filter()
                .unwrap()
                .may_contain(&super::super::keys::key(LEDGER, "a_3"))
        );
        assert!(!store.is_seen("a_3").unwrap());
        assert!(!store.is_seen("a_7").unwrap());
        assert!(knows_keys(&store, 0..3));
        assert_eq!(store.ledger().count(), 8);
        // Committed again, a key is seen again, after reopening too.
        store
            .commit(Commit {
                ledger: vec![entry("a_3", "a")],
                ..Commit::default()
            })
            .unwrap();
        assert!(store.is_seen("a_3").unwrap());
        store.flush().unwrap();
        drop(store);
        let store = SledStore::open(dir.path(), None).unwrap();
        assert!(store.is_seen("a_3").unwrap());
        assert!(!store.is_seen("a_7").unwrap());
    }

    #[test]
    fn a_filter_that_misses_commits_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            commit_keys(&mut store, 0..100);
            store.flush().unwrap();
            // Committed and on disk, but the filter is not saved again, as when the
            // process dies after a commit.
            commit_keys(&mut store, 100..200);
            store.settle().unwrap();
            store.db.flush().unwrap();
        }
        let store = SledStore::open(dir.path(), None).unwrap();
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
            let store = SledStore::open(dir.path(), None).unwrap();
            let mut batch = sled::Batch::default();
            for key in store.data.scan_prefix([FILTER]).keys() {
                batch.remove(key.unwrap());
            }
            batch.remove(COMMITS);
            store.data.apply_batch(batch).unwrap();
            store.db.flush().unwrap();
        }
        let store = SledStore::open(dir.path(), None).unwrap();
        assert_eq!(store.commits, 0);
        assert!(knows_keys(&store, 0..200));
    }
}
