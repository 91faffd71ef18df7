//! A filter of the keys a store holds, so that asking for a key it never held (a new
//! event's ledger key, a new record) costs no read of the database.
//!
//! Why: sled's `apply_batch` holds a process-wide lock that every read waits for, so
//! while the commit thread applied one group, each ledger or record read of the
//! pipeline stood still until the batch had landed: a third of a run of new records
//! went to waiting. Even a Bloom filter's rare false "maybe" (0.1%, four reads in a
//! group) kept most of that waiting, so this filter is nearly exact.
//!
//! It keeps a 32-bit fingerprint of each key in open-addressed tables (linear probing,
//! at most half full). "Absent" is certain; "maybe present" for a key never inserted
//! needs a key with the same fingerprint in the slots it probes (two or three per table
//! at half full, each a 1 in 2^32 chance): under one lookup in a hundred million, even
//! with several tables, and it costs one read. It is scalable: a table that holds its
//! capacity is kept as it is, and one four times as large takes the new keys, so it
//! never needs the keys again to grow. It takes 8 bytes per key in a full table, up to
//! 32 just after a new table was added (2.7 MiB for 250,000 keys, 171 MiB for 10
//! million), all of it read when the store opens; it is saved in pages of 4 KiB, so
//! that a run writes only the pages it changed (one per new key).

use std::collections::BTreeSet;

/// Keys the first table holds; each later one holds [`GROWTH`] times more.
const FIRST_CAPACITY: u64 = 4_096;
const GROWTH: u64 = 4;
/// Slots per key at capacity: tables are at most half full, so probes stay short.
const SLOTS_PER_KEY: u64 = 2;
/// Slots per saved page (4 KiB).
const PAGE_SLOTS: usize = 1_024;
/// Changes whenever the hashing or the layout does: a filter saved by another version
/// is rebuilt instead of read.
const FORMAT: u8 = 1;

/// Where a page lies: (table, page within it).
pub(crate) type PageId = (u32, u32);

pub(crate) struct KeyFilter {
    tables: Vec<Table>,
    /// Pages changed since [`KeyFilter::take_dirty`].
    dirty: BTreeSet<PageId>,
}

/// Fingerprints in slots; 0 is an empty slot.
struct Table {
    slots: Vec<u32>,
    keys: u64,
}

fn capacity(index: usize) -> u64 {
    FIRST_CAPACITY * GROWTH.pow(index as u32)
}

impl Table {
    fn new(index: usize) -> Self {
        Self {
            slots: vec![0; (capacity(index) * SLOTS_PER_KEY) as usize],
            keys: 0,
        }
    }

    /// The slots from the key's home slot to the first empty one (which ends the run).
    fn probe(&self, hash: KeyHash) -> impl Iterator<Item = usize> {
        // Slot counts are powers of two, so the modulo is a mask.
        let mask = self.slots.len() - 1;
        let home = hash.home as usize & mask;
        (0..self.slots.len()).map(move |step| (home + step) & mask)
    }

    fn may_contain(&self, hash: KeyHash) -> bool {
        for slot in self.probe(hash) {
            match self.slots[slot] {
                0 => return false,
                fingerprint if fingerprint == hash.fingerprint => return true,
                _ => {}
            }
        }
        false
    }

    /// Puts the fingerprint in the first empty slot of its run; returns the slot.
    fn insert(&mut self, hash: KeyHash) -> usize {
        let slot = self
            .probe(hash)
            .find(|&slot| self.slots[slot] == 0)
            .expect("a table at most half full has empty slots");
        self.slots[slot] = hash.fingerprint;
        self.keys += 1;
        slot
    }
}

/// Where a key's run starts, and its fingerprint (never 0, which marks empty slots).
#[derive(Clone, Copy)]
struct KeyHash {
    home: u64,
    fingerprint: u32,
}

impl KeyHash {
    /// FNV-1a, finished with a full avalanche (MurmurHash3's finaliser) so that every
    /// output bit depends on every input bit; the home slot takes the low bits, the
    /// fingerprint the high ones. Written here, not taken from std, because saved
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
            home: hash,
            fingerprint: ((hash >> 32) as u32).max(1),
        }
    }
}

impl KeyFilter {
    /// An empty filter, all of whose pages are to be saved.
    pub(crate) fn new() -> Self {
        let mut filter = Self {
            tables: vec![Table::new(0)],
            dirty: BTreeSet::new(),
        };
        filter.mark_dirty(0);
        filter
    }

    pub(crate) fn insert(&mut self, key: &[u8]) {
        let hash = KeyHash::of(key);
        if self.may_contain_hash(hash) {
            return;
        }
        let mut index = self.tables.len() - 1;
        if self.tables[index].keys >= capacity(index) {
            index += 1;
            self.tables.push(Table::new(index));
            // A new table is saved whole, empty slots too: a filter is read back only
            // when every page of it is there.
            self.mark_dirty(index);
        }
        let slot = self.tables[index].insert(hash);
        self.dirty
            .insert((index as u32, (slot / PAGE_SLOTS) as u32));
    }

    /// False when the key was certainly never inserted.
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(KeyHash::of(key))
    }

    fn may_contain_hash(&self, hash: KeyHash) -> bool {
        self.tables.iter().any(|table| table.may_contain(hash))
    }

    /// Whether pages changed since they were last taken.
    pub(crate) fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The pages changed since the last call, as bytes to save.
    pub(crate) fn take_dirty(&mut self) -> Vec<(PageId, Vec<u8>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|(table, page)| {
                let start = page as usize * PAGE_SLOTS;
                let slots = &self.tables[table as usize].slots[start..start + PAGE_SLOTS];
                let bytes = slots.iter().flat_map(|slot| slot.to_le_bytes()).collect();
                ((table, page), bytes)
            })
            .collect()
    }

    fn mark_dirty(&mut self, index: usize) {
        let pages = self.tables[index].slots.len() / PAGE_SLOTS;
        self.dirty
            .extend((0..pages).map(|page| (index as u32, page as u32)));
    }

    /// The header saved with the pages: the format, what the filter `covers` (the
    /// store's own count, checked when it is read back), and the keys per table.
    pub(crate) fn header(&self, covers: u64) -> Vec<u8> {
        let mut header = vec![FORMAT];
        header.extend_from_slice(&covers.to_le_bytes());
        for table in &self.tables {
            header.extend_from_slice(&table.keys.to_le_bytes());
        }
        header
    }

    /// The filter saved as `header` and `pages`, if it is whole, of this format and
    /// covers `covers`; `None` means it must be rebuilt.
    pub(crate) fn read(
        header: &[u8],
        covers: u64,
        pages: impl IntoIterator<Item = (PageId, Vec<u8>)>,
    ) -> Option<Self> {
        let (&format, rest) = header.split_first()?;
        if format != FORMAT || rest.len() < 16 || rest.len() % 8 != 0 {
            return None;
        }
        let (saved_covers, counts) = rest.split_at(8);
        if u64::from_le_bytes(saved_covers.try_into().ok()?) != covers {
            return None;
        }
        let mut tables: Vec<Table> = counts
            .chunks_exact(8)
            .enumerate()
            .map(|(index, count)| Table {
                keys: u64::from_le_bytes(count.try_into().expect("chunks of 8")),
                ..Table::new(index)
            })
            .collect();
        let mut seen = BTreeSet::new();
        for ((table, page), bytes) in pages {
            let slots = &mut tables.get_mut(table as usize)?.slots;
            let start = page as usize * PAGE_SLOTS;
            if start >= slots.len() || bytes.len() != PAGE_SLOTS * 4 {
                return None;
            }
            for (slot, chunk) in slots[start..start + PAGE_SLOTS]
                .iter_mut()
                .zip(bytes.chunks_exact(4))
            {
                *slot = u32::from_le_bytes(chunk.try_into().expect("chunks of 4"));
            }
            seen.insert((table, page));
        }
        let expected: usize = tables
            .iter()
            .map(|table| table.slots.len() / PAGE_SLOTS)
            .sum();
        // Every page is saved at least once (see `new` and `insert`): one missing means
        // the filter is not whole.
        (seen.len() == expected).then_some(Self {
            tables,
            dirty: BTreeSet::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> Vec<u8> {
        format!("lchallenge_created_{n}").into_bytes()
    }

    #[test]
    fn every_inserted_key_is_found_across_tables() {
        let mut filter = KeyFilter::new();
        let keys = 100_000;
        for n in 0..keys {
            filter.insert(&key(n));
        }
        assert!(filter.tables.len() >= 3, "the filter grew");
        assert!((0..keys).all(|n| filter.may_contain(&key(n))));
    }

    #[test]
    fn absent_keys_are_almost_never_taken_for_present() {
        let mut filter = KeyFilter::new();
        for n in 0..100_000 {
            filter.insert(&key(n));
        }
        let false_positives = (100_000..1_100_000)
            .filter(|&n| filter.may_contain(&key(n)))
            .count();
        // Under one in a hundred million; the hash is fixed, so this count is too.
        assert!(false_positives <= 1, "{false_positives} of 1,000,000");
    }

    #[test]
    fn saved_pages_read_back_to_the_same_filter() {
        let mut filter = KeyFilter::new();
        for n in 0..20_000 {
            filter.insert(&key(n));
        }
        let pages = filter.take_dirty();
        assert!(!filter.is_dirty());
        let header = filter.header(7);
        let read = KeyFilter::read(&header, 7, pages.clone()).expect("whole");
        assert!((0..20_000).all(|n| read.may_contain(&key(n))));
        assert!(!(20_000..40_000).any(|n| read.may_contain(&key(n))));
        // Another count of commits, another format, or a missing page: rebuilt.
        assert!(KeyFilter::read(&header, 8, pages.clone()).is_none());
        let mut other_format = header.clone();
        other_format[0] = FORMAT + 1;
        assert!(KeyFilter::read(&other_format, 7, pages.clone()).is_none());
        assert!(KeyFilter::read(&header, 7, pages[1..].to_vec()).is_none());
        assert!(KeyFilter::read(&header[..5], 7, pages).is_none());
    }

    #[test]
    fn only_the_page_a_key_changed_is_saved_again() {
        let mut filter = KeyFilter::new();
        filter.take_dirty();
        filter.insert(&key(1));
        assert_eq!(filter.take_dirty().len(), 1, "one page per key");
        filter.insert(&key(1));
        assert!(!filter.is_dirty(), "a key already there changes nothing");
    }

    #[test]
    fn an_empty_filter_reads_back() {
        let mut filter = KeyFilter::new();
        let pages = filter.take_dirty();
        let read = KeyFilter::read(&filter.header(0), 0, pages).expect("empty");
        assert!(!read.may_contain(&key(1)));
    }
}
