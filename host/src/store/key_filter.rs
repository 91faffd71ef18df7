//! A filter of the keys a store holds, so that asking for a key it never held (a new
//! event's ledger key, a new record) costs no read of the database.
//!
//! Why: sled's `apply_batch` holds a process-wide lock that every read waits for, so
//! while the commit thread applied one group, the pipeline's ledger and record reads
//! for the next group stood still: a third of a run of new records went to waiting.
//! With the filter, the reads of keys that are certainly new do not happen.
//!
//! It is a Bloom filter: "absent" is certain, "maybe present" costs a read (about one
//! key in a thousand that is absent is answered "maybe"). It is blocked (a key's bits
//! lie in one 64-byte block, so a lookup touches one cache line and an insert changes
//! one page) and scalable (a segment that holds its capacity is kept as it is, and a
//! segment four times as large takes the new keys), so it never needs the keys again
//! to grow. It is saved in pages of 4 KiB, so that a run writes only the pages it
//! changed.

use std::collections::BTreeSet;

/// Bits per key at a segment's capacity, and bits set per key: about 0.1% of absent
/// keys are "maybe present" per segment at capacity.
const BITS_PER_KEY: u64 = 16;
const BITS_SET: u32 = 8;
/// Keys the first segment holds; each later one holds [`GROWTH`] times more.
const FIRST_CAPACITY: u64 = 4_096;
const GROWTH: u64 = 4;
/// A block: 8 words, 512 bits, one cache line.
const BLOCK_WORDS: usize = 8;
/// Words per saved page (4 KiB).
const PAGE_WORDS: usize = 512;
/// Changes whenever the hashing or the layout does: a filter saved by another version
/// is rebuilt instead of read.
const FORMAT: u8 = 1;

/// Where a page lies: (segment, page within it).
pub(crate) type PageId = (u32, u32);

pub(crate) struct KeyFilter {
    segments: Vec<Segment>,
    /// Pages changed since [`KeyFilter::take_dirty`].
    dirty: BTreeSet<PageId>,
}

struct Segment {
    words: Vec<u64>,
    keys: u64,
}

impl Segment {
    fn new(index: usize) -> Self {
        let capacity = capacity(index);
        Self {
            words: vec![0; (capacity * BITS_PER_KEY / 64) as usize],
            keys: 0,
        }
    }

    fn may_contain(&self, hash: KeyHash) -> bool {
        key_bits(hash, self.words.len()).all(|(word, mask)| self.words[word] & mask != 0)
    }
}

/// The word and mask of each of a key's bits in a segment of `words` words.
fn key_bits(hash: KeyHash, words: usize) -> impl Iterator<Item = (usize, u64)> {
    // Block counts are powers of two, so the modulo is a mask; the block index takes
    // the first hash's low bits (at most 40 of them, for any segment that fits memory).
    let blocks = (words / BLOCK_WORDS) as u64;
    let block = (hash.0 & (blocks - 1)) as usize * BLOCK_WORDS;
    // Eight 9-bit positions in the block's 512 bits: seven from the second hash, the
    // eighth from the first hash's top bits.
    (0..BITS_SET).map(move |i| {
        let bit = if i < 7 {
            (hash.1 >> (9 * i)) & 511
        } else {
            hash.0 >> 55
        };
        (block + (bit / 64) as usize, 1u64 << (bit % 64))
    })
}

fn capacity(index: usize) -> u64 {
    FIRST_CAPACITY * GROWTH.pow(index as u32)
}

/// Two independent 64-bit hashes of a key.
#[derive(Clone, Copy)]
struct KeyHash(u64, u64);

impl KeyHash {
    /// FNV-1a, finished with a full avalanche (MurmurHash3's finaliser) so that every
    /// output bit depends on every input bit. Written here, not taken from std, because
    /// saved filters need the same hash from every build.
    fn of(key: &[u8]) -> Self {
        let hash = |seed: u64| {
            let mut hash = 0xcbf2_9ce4_8422_2325 ^ seed;
            for &byte in key {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
            hash ^= hash >> 33;
            hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
            hash ^= hash >> 33;
            hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            hash ^ (hash >> 33)
        };
        Self(hash(0), hash(0x9e37_79b9_7f4a_7c15))
    }
}

impl KeyFilter {
    /// An empty filter, all of whose pages are to be saved.
    pub(crate) fn new() -> Self {
        let mut filter = Self {
            segments: vec![Segment::new(0)],
            dirty: BTreeSet::new(),
        };
        filter.mark_all_dirty();
        filter
    }

    pub(crate) fn insert(&mut self, key: &[u8]) {
        let hash = KeyHash::of(key);
        if self.may_contain_hash(hash) {
            return;
        }
        let mut index = self.segments.len() - 1;
        if self.segments[index].keys >= capacity(index) {
            index += 1;
            self.segments.push(Segment::new(index));
            // A new segment is saved whole, zeros too: a filter is read back only
            // when every page of it is there.
            self.mark_dirty(index);
        }
        let segment = &mut self.segments[index];
        let mut first_word = 0;
        for (word, mask) in key_bits(hash, segment.words.len()) {
            segment.words[word] |= mask;
            first_word = word;
        }
        segment.keys += 1;
        // A block never straddles a page.
        self.dirty
            .insert((index as u32, (first_word / PAGE_WORDS) as u32));
    }

    /// False when the key was certainly never inserted.
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(KeyHash::of(key))
    }

    fn may_contain_hash(&self, hash: KeyHash) -> bool {
        self.segments
            .iter()
            .any(|segment| segment.may_contain(hash))
    }

    /// Whether pages changed since they were last taken.
    pub(crate) fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The pages changed since the last call, as bytes to save.
    pub(crate) fn take_dirty(&mut self) -> Vec<(PageId, Vec<u8>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|(segment, page)| {
                let words = &self.segments[segment as usize].words;
                let start = page as usize * PAGE_WORDS;
                let end = (start + PAGE_WORDS).min(words.len());
                let bytes = words[start..end]
                    .iter()
                    .flat_map(|word| word.to_le_bytes())
                    .collect();
                ((segment, page), bytes)
            })
            .collect()
    }

    /// Every page, as if all had changed (for a filter that was rebuilt).
    pub(crate) fn mark_all_dirty(&mut self) {
        for index in 0..self.segments.len() {
            self.mark_dirty(index);
        }
    }

    fn mark_dirty(&mut self, index: usize) {
        let pages = self.segments[index].words.len().div_ceil(PAGE_WORDS);
        self.dirty
            .extend((0..pages).map(|page| (index as u32, page as u32)));
    }

    /// The header saved with the pages: the format, what the filter `covers` (the
    /// store's own count, checked when it is read back), and the keys per segment.
    pub(crate) fn header(&self, covers: u64) -> Vec<u8> {
        let mut header = vec![FORMAT];
        header.extend_from_slice(&covers.to_le_bytes());
        for segment in &self.segments {
            header.extend_from_slice(&segment.keys.to_le_bytes());
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
        if format != FORMAT || rest.len() < 8 || (rest.len() - 8) % 8 != 0 {
            return None;
        }
        let (saved_covers, counts) = rest.split_at(8);
        if u64::from_le_bytes(saved_covers.try_into().ok()?) != covers {
            return None;
        }
        let mut segments: Vec<Segment> = counts
            .chunks_exact(8)
            .enumerate()
            .map(|(index, count)| Segment {
                keys: u64::from_le_bytes(count.try_into().expect("chunks of 8")),
                ..Segment::new(index)
            })
            .collect();
        if segments.is_empty() {
            return None;
        }
        let mut seen = BTreeSet::new();
        for ((segment, page), bytes) in pages {
            let words = &mut segments.get_mut(segment as usize)?.words;
            let start = page as usize * PAGE_WORDS;
            let end = (start + PAGE_WORDS).min(words.len());
            if start >= end || bytes.len() != (end - start) * 8 {
                return None;
            }
            for (word, chunk) in words[start..end].iter_mut().zip(bytes.chunks_exact(8)) {
                *word = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
            }
            seen.insert((segment, page));
        }
        let expected: usize = segments
            .iter()
            .map(|segment| segment.words.len().div_ceil(PAGE_WORDS))
            .sum();
        // Every page is saved at least once (see `new` and `insert`): one missing means
        // the filter is not whole.
        (seen.len() == expected).then_some(Self {
            segments,
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
    fn every_inserted_key_is_found_across_segments() {
        let mut filter = KeyFilter::new();
        let keys = 100_000;
        for n in 0..keys {
            filter.insert(&key(n));
        }
        assert!(filter.segments.len() >= 3, "the filter grew");
        assert!((0..keys).all(|n| filter.may_contain(&key(n))));
    }

    #[test]
    fn few_absent_keys_are_taken_for_present() {
        let mut filter = KeyFilter::new();
        for n in 0..100_000 {
            filter.insert(&key(n));
        }
        let false_positives = (100_000..200_000)
            .filter(|&n| filter.may_contain(&key(n)))
            .count();
        // About 0.1% per full segment; the hash is fixed, so this count is too.
        assert!(false_positives < 500, "{false_positives} of 100,000");
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
        assert_eq!(
            (20_000..40_000)
                .filter(|&n| read.may_contain(&key(n)))
                .count(),
            (20_000..40_000)
                .filter(|&n| filter.may_contain(&key(n)))
                .count()
        );
        // Another count of commits, another format, or a missing page: rebuilt.
        assert!(KeyFilter::read(&header, 8, pages.clone()).is_none());
        let mut other_format = header.clone();
        other_format[0] = FORMAT + 1;
        assert!(KeyFilter::read(&other_format, 7, pages.clone()).is_none());
        assert!(KeyFilter::read(&header, 7, pages[1..].to_vec()).is_none());
        assert!(KeyFilter::read(&header[..5], 7, pages).is_none());
    }

    #[test]
    fn only_the_pages_a_key_changed_are_saved_again() {
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
