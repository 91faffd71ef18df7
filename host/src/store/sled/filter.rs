//! The [`KeyFilter`] of the ledger and record keys on disk: its header read on first
//! use, its pages when a lookup needs them; rebuilt when it misses commits or a page of
//! it is damaged; saved by `flush`.
//!
//! `f` holds the filter, so that a key never committed is known new without a read
//! (sled's batches lock out every read while they apply, so a read made while the
//! commit thread writes waits for it), and `c` the count of commits, which the saved
//! filter must match. The filter is opened when a lookup or commit first needs it, so
//! listing commands skip it; opening reads its header alone (87 KiB for 10 million
//! keys), and each page (4 KiB) is read when a lookup first needs it: one per table
//! for a key (seven at 10 million keys), so the first lookups of a run on a large
//! ledger read pages, some of them while a batch is in flight (they wait for it, as any
//! read does), and later ones find them in memory.

use std::cell::RefMut;

use super::super::key_filter::{KeyFilter, NoPages, PageId, PageStore};
use super::SledStore;
use super::keys::{FILTER, filter_header_key, filter_page_key};
use super::{ledger, records};
use crate::Error;

/// The key filter in use, with the tree its pages are read from.
pub(super) struct FilterRef<'a> {
    filter: RefMut<'a, KeyFilter>,
    pages: SledPages<'a>,
}

impl FilterRef<'_> {
    /// False when the key was certainly never committed.
    pub(super) fn may_contain(&mut self, key: &[u8]) -> bool {
        self.filter.may_contain(key, &self.pages)
    }

    /// Notes a key about to be committed. A filter that cannot take it (a damaged
    /// page) answers "maybe" from then on, until [`SledStore::filter`] rebuilds it.
    pub(super) fn insert(&mut self, key: &[u8]) {
        self.filter.insert(key, &self.pages);
    }
}

/// The filter's saved pages, in `data`.
struct SledPages<'a>(&'a sled::Tree);

impl PageStore for SledPages<'_> {
    fn read_page(&self, page: PageId) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .0
            .get(filter_page_key(page))?
            .map(|bytes| bytes.to_vec()))
    }
}

impl SledStore {
    /// The key filter, opened or rebuilt (see [`load_filter`]) on first use. Its first
    /// use comes before the first commit, so no batch is in flight while it loads. A
    /// filter that broke (a page of it missing or damaged) is rebuilt here, once the
    /// batch in flight, which holds the last keys it was given, has landed.
    pub(super) fn filter(&self) -> Result<FilterRef<'_>, Error> {
        let mut filter = self.filter.borrow_mut();
        match filter.as_ref().map(KeyFilter::broken) {
            None => *filter = Some(load_filter(&self.data, self.commits)?),
            Some(Some(why)) => {
                tracing::warn!("the key filter is rebuilt from the keys: {why}");
                self.settle()?;
                *filter = Some(rebuild_filter(&self.data, self.commits)?);
            }
            Some(None) => {}
        }
        Ok(FilterRef {
            filter: RefMut::map(filter, |filter| filter.as_mut().expect("loaded just above")),
            pages: SledPages(&self.data),
        })
    }

    /// Saves the pages of the filter that changed since it was last saved, and its
    /// header if it covers fewer commits than there are, if it was opened at all (and
    /// rebuilds it if it broke). The batch in flight has landed.
    pub(super) fn save_dirty_filter(&self) -> Result<(), Error> {
        let mut filter = self.filter.borrow_mut();
        let Some(opened) = filter.as_mut() else {
            return Ok(());
        };
        if let Some(why) = opened.broken() {
            tracing::warn!("the key filter is rebuilt from the keys: {why}");
            *filter = Some(rebuild_filter(&self.data, self.commits)?);
        } else if opened.needs_saving(self.commits) {
            save_filter(&self.data, opened, self.commits, sled::Batch::default())?;
        }
        Ok(())
    }
}

/// The saved key filter if it covers `commits`; else (a crash after a commit, a data
/// dir from before filters or from another format) one rebuilt from the keys, and
/// saved.
fn load_filter(data: &sled::Tree, commits: u64) -> Result<KeyFilter, Error> {
    if let Some(filter) = saved_filter(data, commits)? {
        return Ok(filter);
    }
    rebuild_filter(data, commits)
}

/// A filter of every ledger and record key in `data`, saved in place of the one there
/// was, all at once.
fn rebuild_filter(data: &sled::Tree, commits: u64) -> Result<KeyFilter, Error> {
    let mut filter = KeyFilter::new();
    for key in ledger::filter_keys(data).chain(records::filter_keys(data)) {
        // A new filter holds every page it has in memory: none is read.
        filter.insert(&key?, &NoPages);
    }
    // The pages of the filter there was go, in the same batch.
    let mut batch = sled::Batch::default();
    for key in data.scan_prefix([FILTER]).keys() {
        batch.remove(key?);
    }
    save_filter(data, &mut filter, commits, batch)?;
    Ok(filter)
}

/// The saved key filter, if there is one of this format covering `commits`: its header
/// alone is read.
fn saved_filter(data: &sled::Tree, commits: u64) -> Result<Option<KeyFilter>, Error> {
    Ok(data
        .get(filter_header_key())?
        .and_then(|header| KeyFilter::open(&header, commits)))
}

/// Saves the filter's changed pages, and that it covers `commits`, in `batch`.
fn save_filter(
    data: &sled::Tree,
    filter: &mut KeyFilter,
    commits: u64,
    mut batch: sled::Batch,
) -> Result<(), Error> {
    let saved = filter.save(commits);
    for (page, bytes) in saved.pages {
        batch.insert(filter_page_key(page), bytes);
    }
    batch.insert(&filter_header_key()[..], saved.header);
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
                .may_contain(&super::super::keys::key(super::super::keys::EVENT, "a_3"))
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

    /// Saved pages of the filter: (key, bytes).
    type Pages = Vec<(sled::IVec, sled::IVec)>;

    fn saved_pages(store: &SledStore) -> Pages {
        store
            .data
            .scan_prefix([FILTER, b'p'])
            .map(Result::unwrap)
            .collect()
    }

    fn resident_pages(store: &SledStore) -> usize {
        store.filter.borrow().as_ref().unwrap().resident_pages()
    }

    #[test]
    fn opening_reads_the_header_and_a_lookup_reads_the_pages_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            for start in (0..60_000).step_by(10_000) {
                commit_keys(&mut store, start..start + 10_000);
            }
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path(), None).unwrap();
        let tables = 5; // 120,000 keys: tables of 4,096, 16,384, 65,536, 262,144 keys...
        assert!(saved_pages(&store).len() > 100);
        assert!(store.is_seen("a_123").unwrap());
        assert!(!store.is_seen("a_60000").unwrap());
        assert!(
            resident_pages(&store) <= 2 * tables,
            "two lookups, a page per table each"
        );
        assert!(knows_keys(&store, 0..60_000));
        assert!(store.filter().unwrap().filter.broken().is_none());
    }

    /// A data dir with keys `a_0` to `a_2999` committed in two commits and flushed, the
    /// filter's pages as saved after the first commit, and those saved after both.
    fn two_saves(dir: &std::path::Path) -> (Pages, Pages) {
        let mut store = SledStore::open(dir, None).unwrap();
        commit_keys(&mut store, 0..1_000);
        store.flush().unwrap();
        let first = saved_pages(&store);
        commit_keys(&mut store, 1_000..3_000);
        store.flush().unwrap();
        (first, saved_pages(&store))
    }

    /// Replaces the saved pages of the store in `dir` as `change` says.
    fn damage(dir: &std::path::Path, change: impl FnOnce(&sled::Tree)) {
        let store = SledStore::open(dir, None).unwrap();
        change(&store.data);
        store.db.flush().unwrap();
    }

    /// Every key is known in the store in `dir`, whose filter's page `page` was damaged
    /// (to `damaged`, `None` if removed): the filter breaks, and is rebuilt whole (the
    /// page saved again, not as damaged; the next open reads it without breaking).
    fn rebuilt_after_damage(dir: &std::path::Path, page: &[u8], damaged: Option<&[u8]>) {
        let store = SledStore::open(dir, None).unwrap();
        assert!(knows_keys(&store, 0..3_000));
        assert!(!store.is_seen("a_3000").unwrap());
        assert!(store.filter().unwrap().filter.broken().is_none());
        let saved = store.data.get(page).unwrap();
        assert!(
            saved.is_some() && saved.as_deref() != damaged,
            "rebuilt and saved"
        );
        drop(store);
        let store = SledStore::open(dir, None).unwrap();
        assert!(knows_keys(&store, 0..3_000));
        assert!(store.filter().unwrap().filter.broken().is_none());
    }

    #[test]
    fn a_filter_with_a_page_missing_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (_, pages) = two_saves(dir.path());
        let (page, _) = &pages[pages.len() / 2];
        damage(dir.path(), |data| {
            data.remove(page).unwrap();
        });
        rebuilt_after_damage(dir.path(), page, None);
    }

    #[test]
    fn a_filter_with_a_page_older_than_its_header_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (first, last) = two_saves(dir.path());
        let (page, older) = first
            .iter()
            .find(|(key, bytes)| last.iter().any(|(k, b)| k == key && b != bytes))
            .expect("a page the second commit changed");
        damage(dir.path(), |data| {
            data.insert(page, older).unwrap();
        });
        rebuilt_after_damage(dir.path(), page, Some(older));
    }

    #[test]
    fn a_filter_that_breaks_during_a_commit_is_rebuilt_with_that_commit_in() {
        let dir = tempfile::tempdir().unwrap();
        two_saves(dir.path());
        damage(dir.path(), |data| {
            for key in data.scan_prefix([FILTER, b'p']).keys() {
                data.remove(key.unwrap()).unwrap();
            }
        });
        let mut store = SledStore::open(dir.path(), None).unwrap();
        // The commit is the filter's first use: its inserts find pages missing.
        commit_keys(&mut store, 3_000..4_000);
        assert!(store.filter.borrow().as_ref().unwrap().broken().is_some());
        // The next lookup waits for that commit to land, then rebuilds with it.
        assert!(knows_keys(&store, 0..4_000));
        assert!(store.filter.borrow().as_ref().unwrap().broken().is_none());
        assert!(!store.is_seen("a_4000").unwrap());
        store.flush().unwrap();
        drop(store);
        let store = SledStore::open(dir.path(), None).unwrap();
        assert!(knows_keys(&store, 0..4_000));
        assert!(store.filter().unwrap().filter.broken().is_none());
    }

    #[test]
    fn a_commit_without_new_keys_is_covered_by_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            commit_keys(&mut store, 0..100);
            store.flush().unwrap();
            // The same keys again: nothing new for the filter, but a commit.
            commit_keys(&mut store, 0..100);
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path(), None).unwrap();
        assert_eq!(store.commits, 2);
        assert!(
            saved_filter(&store.data, store.commits).unwrap().is_some(),
            "read, not rebuilt"
        );
    }
}
