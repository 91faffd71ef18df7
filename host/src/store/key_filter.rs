//! A filter of the keys a store holds, so that asking for a key it never held (a new
//! event's ledger key, a new record) costs no read of the database.
//!
//! Why: sled's `apply_batch` holds a process-wide lock that every read waits for, so
//! while the commit thread applied one group, each ledger or record read of the
//! pipeline stood still until the batch had landed: a third of a run of new records
//! went to waiting. Even a Bloom filter's rare false "maybe" (0.1%, four reads in a
//! group) kept most of that waiting, so this filter is nearly exact.
//!
//! It keeps a 32-bit fingerprint of each key in open-addressed tables, each cut in
//! pages of 1,024 slots (4 KiB): a key's hash picks its page in each table and its home
//! slot there, and its run (linear probing) wraps within that page, so a lookup reads
//! one page per table. A table is at most half full on average; a page that holds
//! [`PAGE_LIMIT`] fingerprints takes no more (the keys that would go there are kept
//! whole in an overflow list, which a fair hash never fills: it takes a page 16
//! standard deviations above its mean). "Absent" is certain; "maybe present" for a key
//! never inserted needs a key with the same fingerprint in the slots it probes (two or
//! three per table at half full, each a 1 in 2^32 chance): under one lookup in a
//! hundred million, even with several tables, and it costs one read. It is scalable: a
//! table that holds its capacity is kept as it is, and one four times as large takes
//! the new keys, so it never needs the keys again to grow. It takes 8 bytes per key in
//! a full table (171 MiB of tables for 10 million keys, a quarter of them empty).
//!
//! It is saved as a header (the format, the count of commits it covers, the keys of
//! each table, the fingerprints of each page, the overflow list: 2 bytes per page, 87
//! KiB for 10 million keys) and a value per page that holds a fingerprint (an empty
//! page is not saved). Opening reads the header alone; a page is read from the store
//! when a lookup or an insert first needs it, and checked against the header's count
//! (a page missing or older than the header, which only a damaged store can have,
//! makes the filter [broken](KeyFilter::broken): it answers "maybe" to everything until
//! its owner rebuilds it from the keys). The pages read are cached, at most
//! [`CACHED_PAGES`] of them beyond those changed since the last save (which are kept
//! until they are saved, one per new key at most), so a process that opens a large
//! ledger holds only the pages it used, and at most 64 MiB of them more than it
//! changed. A run writes only the pages it changed and the header.

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::Error;

/// Keys the first table holds; each later one holds [`GROWTH`] times more.
const FIRST_CAPACITY: u64 = 4_096;
const GROWTH: u64 = 4;
/// Slots per key at capacity: tables are at most half full, so probes stay short.
const SLOTS_PER_KEY: u64 = 2;
/// Slots per page (4 KiB).
const PAGE_SLOTS: usize = 1_024;
/// Fingerprints a page takes at most (7/8 of its slots), so that its runs end.
const PAGE_LIMIT: u16 = 896;
/// Hashes of keys found absent that are remembered at most (8 to 16 MiB), should
/// lookups of keys that are never inserted pile up.
const KNOWN_ABSENT_LIMIT: usize = 1 << 20;
/// Pages that are kept in memory once read, besides those changed since the last save
/// (4 KiB each: 64 MiB).
pub(crate) const CACHED_PAGES: usize = 16_384;
/// Changes whenever the hashing or the layout does: a filter saved by another version
/// is rebuilt instead of read.
const FORMAT: u8 = 2;
/// Tables a header may name: 4,096 * 4^19 keys is far beyond a store's.
const MAX_TABLES: usize = 20;

/// Where a page lies: (table, page within it).
pub(crate) type PageId = (u32, u32);

/// Where the pages of a saved filter are read from.
pub(crate) trait PageStore {
    /// The bytes saved for `page`, if any were.
    fn read_page(&self, page: PageId) -> Result<Option<Vec<u8>>, Error>;
}

/// A store with no saved pages: for a filter built from nothing, which never reads one.
pub(crate) struct NoPages;

impl PageStore for NoPages {
    fn read_page(&self, _: PageId) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }
}

pub(crate) struct KeyFilter {
    tables: Vec<Table>,
    /// The whole hashes of the keys whose page in the last table was full, in order.
    overflow: Vec<u64>,
    /// Pages changed since the last save: always in memory.
    dirty: BTreeSet<PageId>,
    /// Whether keys were inserted since the last save (the header changes too).
    changed: bool,
    /// The count of commits the saved header covers.
    saved_covers: Option<u64>,
    /// Pages in memory, changed or not.
    resident: usize,
    /// Unchanged pages kept in memory at most.
    budget: usize,
    /// Where the eviction's clock hand is: (table, page).
    hand: (usize, usize),
    /// Why the filter can no longer answer, if it cannot (see [`KeyFilter::broken`]).
    broken: Option<String>,
    /// The hashes of keys a lookup found absent, until they are inserted: the pipeline
    /// asks for each new event's and record's key, then commits it, and the insert
    /// needs no lookup of its own (one cache miss per large table: at 3.3 million keys
    /// that second lookup was a third of the filter's time).
    known_absent: HashSet<u64, BuildHasherDefault<AsIs>>,
}

/// The hash of a set of [`KeyHash`]es: the hash itself, already well mixed.
#[derive(Default)]
struct AsIs(u64);

impl Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64s are hashed")
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// Pages of fingerprints, each in memory or not, and how many each holds.
struct Table {
    pages: Vec<Option<Page>>,
    counts: Vec<u16>,
    keys: u64,
}

/// Fingerprints in slots; 0 is an empty slot.
struct Page {
    slots: Box<[u32; PAGE_SLOTS]>,
    /// Used since the clock hand last passed (see [`KeyFilter::make_room`]).
    referenced: bool,
}

fn capacity(index: usize) -> u64 {
    FIRST_CAPACITY * GROWTH.pow(index as u32)
}

fn page_count(index: usize) -> usize {
    (capacity(index) * SLOTS_PER_KEY) as usize / PAGE_SLOTS
}

impl Table {
    fn new(index: usize) -> Self {
        let pages = page_count(index);
        Self {
            pages: std::iter::repeat_with(|| None).take(pages).collect(),
            counts: vec![0; pages],
            keys: 0,
        }
    }

    /// The key's page in this table and its home slot there. Page counts are powers of
    /// two, so the modulo is a mask.
    fn place(&self, hash: KeyHash) -> (usize, usize) {
        let page = (hash.hash >> PAGE_SLOTS.trailing_zeros()) as usize & (self.pages.len() - 1);
        (page, hash.hash as usize & (PAGE_SLOTS - 1))
    }
}

/// What a page's run says of a fingerprint.
enum Probe {
    Found,
    /// Not there; the first empty slot of its run.
    Empty(usize),
    /// Not there, and no slot free (a page is never this full).
    Full,
}

/// The run from the home slot to the first empty one, wrapping within the page.
fn probe(slots: &[u32; PAGE_SLOTS], home: usize, fingerprint: u32) -> Probe {
    for step in 0..PAGE_SLOTS {
        let slot = (home + step) & (PAGE_SLOTS - 1);
        match slots[slot] {
            0 => return Probe::Empty(slot),
            found if found == fingerprint => return Probe::Found,
            _ => {}
        }
    }
    Probe::Full
}

/// Asks the CPU to bring `slot`'s cache line in (a hint; nothing where there is no
/// such instruction).
fn prefetch(slot: &u32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing the program sees.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (slot as *const u32).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

/// A key's whole hash (its low bits pick the page and the home slot) and its
/// fingerprint (never 0, which marks empty slots).
#[derive(Clone, Copy)]
struct KeyHash {
    hash: u64,
    fingerprint: u32,
}

impl KeyHash {
    /// FNV-1a, finished with a full avalanche (MurmurHash3's finaliser) so that every
    /// output bit depends on every input bit; the page and home slot take the low bits,
    /// the fingerprint the high ones. Written here, not taken from std, because saved
    /// filters need the same hash from every build.
    fn of(key: &[u8]) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in key {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^= hash >> 33;
        Self {
            hash,
            fingerprint: ((hash >> 32) as u32).max(1),
        }
    }
}

/// What [`KeyFilter::save`] gives to write, in one batch.
pub(crate) struct Saved {
    /// The pages changed since the last save.
    pub(crate) pages: Vec<(PageId, Vec<u8>)>,
    pub(crate) header: Vec<u8>,
}

impl KeyFilter {
    /// An empty filter, to be saved (its header) at the next save.
    pub(crate) fn new() -> Self {
        Self::with_tables(vec![Table::new(0)], Vec::new(), None)
    }

    fn with_tables(tables: Vec<Table>, overflow: Vec<u64>, saved_covers: Option<u64>) -> Self {
        Self {
            tables,
            overflow,
            dirty: BTreeSet::new(),
            changed: saved_covers.is_none(),
            saved_covers,
            resident: 0,
            budget: CACHED_PAGES,
            hand: (0, 0),
            broken: None,
            known_absent: HashSet::default(),
        }
    }

    /// Keeps at most `pages` unchanged pages in memory (a test's small cache).
    #[cfg(test)]
    pub(crate) fn limit_cache(&mut self, pages: usize) {
        self.budget = pages;
        self.make_room(0);
    }

    /// Why the filter cannot answer, if a page it needed was missing, not what its
    /// header says, or could not be read: it then answers "maybe" to every lookup and
    /// takes no key, and its owner rebuilds it from the keys, once every key it was
    /// given is in the store.
    pub(crate) fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Pages in memory (for tests and measurements).
    #[cfg(test)]
    pub(crate) fn resident_pages(&self) -> usize {
        self.resident
    }

    pub(crate) fn insert(&mut self, key: &[u8], store: &dyn PageStore) {
        let hash = KeyHash::of(key);
        // A broken filter says "maybe" to every key, so it takes none either.
        if self.broken.is_some() {
            return;
        }
        if !self.known_absent.remove(&hash.hash) && self.contains(hash, store) {
            return;
        }
        let mut index = self.tables.len() - 1;
        if self.tables[index].keys >= capacity(index) {
            index += 1;
            self.tables.push(Table::new(index));
        }
        self.changed = true;
        let (page, home) = self.tables[index].place(hash);
        if self.tables[index].counts[page] >= PAGE_LIMIT {
            if let Err(at) = self.overflow.binary_search(&hash.hash) {
                self.overflow.insert(at, hash.hash);
            }
            return;
        }
        if self.load(index, page, store).is_none() {
            return;
        }
        let table = &mut self.tables[index];
        let slots = &mut table.pages[page].as_mut().expect("loaded just above").slots;
        match probe(slots, home, hash.fingerprint) {
            Probe::Empty(slot) => slots[slot] = hash.fingerprint,
            // A key of the same fingerprint came in since the lookup that found this
            // one absent (one chance in billions): its slot answers for both.
            Probe::Found => return,
            // The page has room: only a bug gets here.
            Probe::Full => {
                self.broken = Some(format!(
                    "page {page} of table {index} disagrees with itself"
                ));
                return;
            }
        }
        table.counts[page] += 1;
        table.keys += 1;
        self.dirty.insert((index as u32, page as u32));
    }

    /// False when the key was certainly never inserted.
    pub(crate) fn may_contain(&mut self, key: &[u8], store: &dyn PageStore) -> bool {
        let hash = KeyHash::of(key);
        let maybe = self.contains(hash, store);
        if !maybe {
            if self.known_absent.len() >= KNOWN_ABSENT_LIMIT {
                self.known_absent.clear();
            }
            self.known_absent.insert(hash.hash);
        }
        maybe
    }

    /// Whether the key may be there: its slot in every table looked up.
    fn contains(&mut self, hash: KeyHash, store: &dyn PageStore) -> bool {
        if self.broken.is_some() || self.overflow.binary_search(&hash.hash).is_ok() {
            return true;
        }
        // Every table's slot is asked of memory first, so that the cache misses (one
        // per large table) overlap instead of following each other: 380 -> 300 ns per
        // absent key at 3.3 million keys (six tables), measured.
        for table in &self.tables {
            let (page, home) = table.place(hash);
            if let Some(loaded) = &table.pages[page] {
                prefetch(&loaded.slots[home]);
            }
        }
        for index in 0..self.tables.len() {
            let (page, home) = self.tables[index].place(hash);
            if self.tables[index].counts[page] == 0 {
                continue;
            }
            let Some(slots) = self.load(index, page, store) else {
                return true;
            };
            if let Probe::Found = probe(slots, home, hash.fingerprint) {
                return true;
            }
        }
        false
    }

    /// The page, from memory or from the store (an empty one is made, not read); `None`
    /// when it could not be had, which breaks the filter.
    fn load(
        &mut self,
        index: usize,
        page: usize,
        store: &dyn PageStore,
    ) -> Option<&[u32; PAGE_SLOTS]> {
        if self.tables[index].pages[page].is_none() {
            let count = self.tables[index].counts[page];
            let slots = if count == 0 {
                Box::new([0; PAGE_SLOTS])
            } else {
                match read_page(store, (index as u32, page as u32), count) {
                    Ok(slots) => slots,
                    Err(why) => {
                        self.broken = Some(why);
                        return None;
                    }
                }
            };
            self.make_room(1);
            self.tables[index].pages[page] = Some(Page {
                slots,
                referenced: true,
            });
            self.resident += 1;
        }
        let loaded = self.tables[index].pages[page].as_mut().expect("loaded");
        loaded.referenced = true;
        Some(&loaded.slots)
    }

    /// Evicts unchanged pages until `more` of them would fit in the budget: a clock
    /// over every page, which passes over a page used since it last came by once.
    fn make_room(&mut self, more: usize) {
        // Each page gets two passes at most (one to clear its mark, one to evict).
        let total: usize = self.tables.iter().map(|table| table.pages.len()).sum();
        let mut steps = 2 * total;
        while self.resident - self.dirty.len() + more > self.budget && steps > 0 {
            steps -= 1;
            let (index, page) = self.hand;
            self.hand = if page + 1 < self.tables[index].pages.len() {
                (index, page + 1)
            } else {
                ((index + 1) % self.tables.len(), 0)
            };
            if self.dirty.contains(&(index as u32, page as u32)) {
                continue;
            }
            let slot = &mut self.tables[index].pages[page];
            match slot {
                Some(loaded) if loaded.referenced => loaded.referenced = false,
                Some(_) => {
                    *slot = None;
                    self.resident -= 1;
                }
                None => {}
            }
        }
    }

    /// Whether a save is due: keys were inserted since the last one, or the store
    /// counts `covers` commits and the saved header another number.
    pub(crate) fn needs_saving(&self, covers: u64) -> bool {
        self.changed || self.saved_covers != Some(covers)
    }

    /// The pages changed since the last save and the header (which says the filter
    /// covers `covers` commits), to be written in one batch; from then on those pages
    /// may leave memory (they are read back from the store when needed).
    pub(crate) fn save(&mut self, covers: u64) -> Saved {
        let pages = std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|(table, page)| {
                let slots = &self.tables[table as usize].pages[page as usize]
                    .as_ref()
                    .expect("changed pages stay in memory")
                    .slots;
                let bytes = slots.iter().flat_map(|slot| slot.to_le_bytes()).collect();
                ((table, page), bytes)
            })
            .collect();
        let header = self.header(covers);
        self.changed = false;
        self.saved_covers = Some(covers);
        self.make_room(0);
        Saved { pages, header }
    }

    /// The format, what the filter covers (the store's own count, checked when it is
    /// read back), the tables, the overflow list, and each table's keys and page
    /// counts.
    fn header(&self, covers: u64) -> Vec<u8> {
        let pages: usize = self.tables.iter().map(|table| table.counts.len()).sum();
        let mut header =
            Vec::with_capacity(17 + 8 * self.overflow.len() + 8 * self.tables.len() + 2 * pages);
        header.push(FORMAT);
        header.extend_from_slice(&covers.to_le_bytes());
        header.extend_from_slice(&(self.tables.len() as u32).to_le_bytes());
        header.extend_from_slice(&(self.overflow.len() as u32).to_le_bytes());
        for hash in &self.overflow {
            header.extend_from_slice(&hash.to_le_bytes());
        }
        for table in &self.tables {
            header.extend_from_slice(&table.keys.to_le_bytes());
            for count in &table.counts {
                header.extend_from_slice(&count.to_le_bytes());
            }
        }
        header
    }

    /// The filter saved with `header`, if it is of this format, covers `covers` and is
    /// whole; `None` means it must be rebuilt. No page is read: each is, when needed.
    pub(crate) fn open(header: &[u8], covers: u64) -> Option<Self> {
        let mut rest = header;
        let mut take = |bytes: usize| -> Option<&[u8]> {
            let (taken, left) = rest.split_at_checked(bytes)?;
            rest = left;
            Some(taken)
        };
        let u64_of = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        let u32_of = |bytes: &[u8]| u32::from_le_bytes(bytes.try_into().expect("4 bytes"));
        if take(1)? != [FORMAT] || u64_of(take(8)?) != covers {
            return None;
        }
        let tables = u32_of(take(4)?) as usize;
        let overflowing = u32_of(take(4)?) as usize;
        if tables == 0 || tables > MAX_TABLES {
            return None;
        }
        let overflow: Vec<u64> = take(overflowing.checked_mul(8)?)?
            .chunks_exact(8)
            .map(u64_of)
            .collect();
        if !overflow.is_sorted() {
            return None;
        }
        let mut read = Vec::with_capacity(tables);
        for index in 0..tables {
            let keys = u64_of(take(8)?);
            let counts: Vec<u16> = take(page_count(index) * 2)?
                .chunks_exact(2)
                .map(|count| u16::from_le_bytes(count.try_into().expect("2 bytes")))
                .collect();
            let sum: u64 = counts.iter().map(|&count| u64::from(count)).sum();
            if sum != keys || counts.iter().any(|&count| count > PAGE_LIMIT) {
                return None;
            }
            read.push(Table {
                counts,
                keys,
                ..Table::new(index)
            });
        }
        // Nothing after the last table.
        rest.is_empty()
            .then(|| Self::with_tables(read, overflow, Some(covers)))
    }
}

/// The saved page, if it is there and holds the `count` fingerprints the header says;
/// else why not.
fn read_page(
    store: &dyn PageStore,
    page: PageId,
    count: u16,
) -> Result<Box<[u32; PAGE_SLOTS]>, String> {
    let (table, number) = page;
    let bytes = match store.read_page(page) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(format!("page {number} of table {table} is missing")),
        Err(error) => return Err(format!("page {number} of table {table}: {error}")),
    };
    if bytes.len() != PAGE_SLOTS * 4 {
        return Err(format!(
            "page {number} of table {table} has {} bytes",
            bytes.len()
        ));
    }
    let mut slots = Box::new([0; PAGE_SLOTS]);
    for (slot, chunk) in slots.iter_mut().zip(bytes.chunks_exact(4)) {
        *slot = u32::from_le_bytes(chunk.try_into().expect("chunks of 4"));
    }
    let held = slots.iter().filter(|&&slot| slot != 0).count();
    if held != usize::from(count) {
        return Err(format!(
            "page {number} of table {table} holds {held} keys, its header says {count}"
        ));
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    fn key(n: u64) -> Vec<u8> {
        format!("lchallenge_created_{n}").into_bytes()
    }

    /// Saved pages in memory, counting the reads.
    #[derive(Default)]
    struct Pages {
        saved: HashMap<PageId, Vec<u8>>,
        reads: RefCell<usize>,
    }

    impl PageStore for Pages {
        fn read_page(&self, page: PageId) -> Result<Option<Vec<u8>>, Error> {
            *self.reads.borrow_mut() += 1;
            Ok(self.saved.get(&page).cloned())
        }
    }

    impl Pages {
        /// Writes what `filter` saves; returns its header.
        fn save(&mut self, filter: &mut KeyFilter, covers: u64) -> Vec<u8> {
            let saved = filter.save(covers);
            self.saved.extend(saved.pages);
            saved.header
        }

        fn reads(&self) -> usize {
            *self.reads.borrow()
        }
    }

    fn filled(keys: std::ops::Range<u64>) -> KeyFilter {
        let mut filter = KeyFilter::new();
        for n in keys {
            filter.insert(&key(n), &NoPages);
        }
        filter
    }

    #[test]
    fn every_inserted_key_is_found_across_tables() {
        let keys = 100_000;
        let mut filter = filled(0..keys);
        assert!(filter.tables.len() >= 3, "the filter grew");
        assert!((0..keys).all(|n| filter.may_contain(&key(n), &NoPages)));
        assert!(
            filter.overflow.is_empty(),
            "no page fills up with a fair hash"
        );
    }

    #[test]
    fn absent_keys_are_almost_never_taken_for_present() {
        let mut filter = filled(0..100_000);
        let false_positives = (100_000..1_100_000)
            .filter(|&n| filter.may_contain(&key(n), &NoPages))
            .count();
        // Under one in a hundred million; the hash is fixed, so this count is too.
        assert!(false_positives <= 1, "{false_positives} of 1,000,000");
    }

    #[test]
    fn a_saved_filter_is_read_a_page_at_a_time() {
        let mut filter = filled(0..20_000);
        let mut pages = Pages::default();
        let header = pages.save(&mut filter, 7);
        assert!(!filter.needs_saving(7));
        let mut read = KeyFilter::open(&header, 7).expect("whole");
        assert_eq!(read.resident_pages(), 0, "opening reads no page");
        // One lookup reads at most one page per table.
        assert!(read.may_contain(&key(5), &pages));
        assert!(pages.reads() <= read.tables.len());
        assert!((0..20_000).all(|n| read.may_contain(&key(n), &pages)));
        assert!(!(20_000..40_000).any(|n| read.may_contain(&key(n), &pages)));
        assert!(read.broken().is_none());
        // Another count of commits, another format, or a header cut short: rebuilt.
        assert!(KeyFilter::open(&header, 8).is_none());
        let mut other_format = header.clone();
        other_format[0] = FORMAT + 1;
        assert!(KeyFilter::open(&other_format, 7).is_none());
        assert!(KeyFilter::open(&header[..header.len() - 1], 7).is_none());
        assert!(KeyFilter::open(&[header.clone(), vec![0]].concat(), 7).is_none());
        assert!(KeyFilter::open(&header[..5], 7).is_none());
        // A count that does not add up to its table's keys.
        let mut miscounted = header.clone();
        miscounted[17 + 8] ^= 1;
        assert!(KeyFilter::open(&miscounted, 7).is_none());
    }

    #[test]
    fn a_missing_or_older_page_breaks_the_filter_which_then_says_maybe() {
        let mut filter = filled(0..5_000);
        let mut pages = Pages::default();
        pages.save(&mut filter, 1);
        let older = pages.saved.clone();
        for n in 5_000..10_000 {
            filter.insert(&key(n), &pages);
        }
        let header = pages.save(&mut filter, 2);
        let (&changed, _) = pages
            .saved
            .iter()
            .find(|(page, bytes)| older.get(page).is_some_and(|old| old != *bytes))
            .expect("a page changed by the second save");

        let mut missing = Pages {
            saved: pages.saved.clone(),
            ..Pages::default()
        };
        missing.saved.remove(&changed);
        let mut stale = Pages {
            saved: pages.saved.clone(),
            ..Pages::default()
        };
        stale.saved.insert(changed, older[&changed].clone());
        for (store, why) in [(&missing, "missing"), (&stale, "holds")] {
            let mut read = KeyFilter::open(&header, 2).expect("the header is whole");
            // Every key is "maybe" still: never a false "absent".
            assert!((0..10_000).all(|n| read.may_contain(&key(n), store)));
            let broken = read.broken().expect("broken").to_owned();
            assert!(broken.contains(why), "{broken}");
            assert!(read.may_contain(&key(20_000), store), "maybe, once broken");
            // It takes no key: its owner rebuilds it.
            read.insert(&key(20_001), store);
            assert!(!read.changed);
        }
    }

    #[test]
    fn only_the_page_a_key_changed_is_saved_again() {
        let mut filter = KeyFilter::new();
        let mut pages = Pages::default();
        let saved = filter.save(0);
        assert!(saved.pages.is_empty(), "empty pages are not saved");
        filter.insert(&key(1), &pages);
        assert!(filter.needs_saving(0));
        assert_eq!(filter.save(1).pages.len(), 1, "one page per key");
        filter.insert(&key(1), &pages);
        assert!(
            !filter.needs_saving(1),
            "a key already there changes nothing"
        );
        // A commit without new keys needs the header saved again, covering it.
        assert!(filter.needs_saving(2));
        let header = pages.save(&mut filter, 2);
        assert!(KeyFilter::open(&header, 2).is_some());
    }

    #[test]
    fn an_empty_filter_reads_back() {
        let mut filter = KeyFilter::new();
        assert!(filter.needs_saving(0));
        let mut pages = Pages::default();
        let header = pages.save(&mut filter, 0);
        let mut read = KeyFilter::open(&header, 0).expect("empty");
        assert!(!read.may_contain(&key(1), &pages));
        assert_eq!(pages.reads(), 0, "an empty page is never read");
    }

    #[test]
    fn pages_read_are_cached_up_to_the_budget_and_changed_ones_kept() {
        let mut filter = filled(0..50_000);
        let mut pages = Pages::default();
        let header = pages.save(&mut filter, 3);
        let total = pages.saved.len();
        assert!(total > 100);
        let mut read = KeyFilter::open(&header, 3).expect("whole");
        read.limit_cache(16);
        assert!((0..50_000).all(|n| read.may_contain(&key(n), &pages)));
        assert!(read.resident_pages() <= 16);
        assert!(
            pages.reads() > total,
            "pages left memory and were read again"
        );
        // Pages changed are kept until saved, whatever the budget.
        for n in 50_000..51_000 {
            read.insert(&key(n), &pages);
        }
        let changed = read.dirty.len();
        assert!(changed > 16 && read.resident_pages() >= changed);
        assert!((0..51_000).all(|n| read.may_contain(&key(n), &pages)));
        let header = pages.save(&mut read, 4);
        assert!(read.resident_pages() <= 16, "saved, they may go");
        let mut again = KeyFilter::open(&header, 4).expect("whole");
        assert!((0..51_000).all(|n| again.may_contain(&key(n), &pages)));
        assert!(!(51_000..60_000).any(|n| again.may_contain(&key(n), &pages)));
    }

    #[test]
    fn a_key_just_found_absent_is_inserted_without_looking_it_up_again() {
        let mut filter = filled(0..50_000);
        let mut pages = Pages::default();
        let header = pages.save(&mut filter, 1);
        let mut read = KeyFilter::open(&header, 1).expect("whole");
        let tables = read.tables.len();
        assert!(tables >= 3);
        // No page stays in memory but the last one read: each lookup reads its own.
        read.limit_cache(0);
        let reads_of = |read: &mut KeyFilter, pages: &Pages, n: u64, looked_up: bool| {
            if looked_up {
                assert!(!read.may_contain(&key(n), pages));
            }
            let before = pages.reads();
            read.insert(&key(n), pages);
            pages.reads() - before
        };
        assert_eq!(
            reads_of(&mut read, &pages, 60_000, false),
            tables,
            "a page per table"
        );
        assert_eq!(
            reads_of(&mut read, &pages, 60_001, true),
            0,
            "its page, just read"
        );
        assert!(read.known_absent.is_empty(), "forgotten once inserted");
        // Inserted once, however often, and found.
        let keys = read.tables.iter().map(|table| table.keys).sum::<u64>();
        read.insert(&key(60_001), &pages);
        assert_eq!(
            read.tables.iter().map(|table| table.keys).sum::<u64>(),
            keys
        );
        assert!(read.may_contain(&key(60_000), &pages) && read.may_contain(&key(60_001), &pages));
        assert!(read.broken().is_none());
    }

    #[test]
    fn keys_found_absent_are_remembered_up_to_a_limit() {
        let mut filter = filled(0..1_000);
        let limit = KNOWN_ABSENT_LIMIT as u64;
        for n in 1_000..1_000 + limit + 10 {
            assert!(!filter.may_contain(&key(n), &NoPages));
        }
        assert!(
            filter.known_absent.len() <= KNOWN_ABSENT_LIMIT,
            "cleared when full"
        );
        // A key whose lookup was forgotten is looked up at its insert, as before.
        filter.insert(&key(1_000), &NoPages);
        filter.insert(&key(1_000), &NoPages);
        assert_eq!(
            filter.tables.iter().map(|table| table.keys).sum::<u64>(),
            1_001
        );
        assert!(filter.may_contain(&key(1_000), &NoPages));
        assert!(filter.broken().is_none());
    }

    #[test]
    fn keys_whose_page_is_full_go_to_the_overflow_list() {
        // Keys that all fall in page 0 of the first table (one in eight do).
        let table = Table::new(0);
        let crowded: Vec<u64> = (0..)
            .filter(|&n| table.place(KeyHash::of(&key(n))).0 == 0)
            .take(1_000)
            .collect();
        let mut filter = KeyFilter::new();
        let mut pages = Pages::default();
        for &n in &crowded {
            filter.insert(&key(n), &pages);
        }
        assert_eq!(filter.tables[0].counts[0], PAGE_LIMIT);
        assert_eq!(filter.overflow.len(), 1_000 - usize::from(PAGE_LIMIT));
        assert!(crowded.iter().all(|&n| filter.may_contain(&key(n), &pages)));
        let header = pages.save(&mut filter, 1);
        let mut read = KeyFilter::open(&header, 1).expect("whole");
        assert!(crowded.iter().all(|&n| read.may_contain(&key(n), &pages)));
        assert!(read.broken().is_none());
    }
}
