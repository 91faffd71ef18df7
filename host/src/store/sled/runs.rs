//! Runs: the small values of a keyspace kept several to a sled value. The ledger's
//! entries (`ledger`) and the records (`records`) are kept this way.
//!
//! Why: sled 0.34 splits a tree's leaf past 16 keys, writes each key a commit changes
//! to its log as a message of its own, and at every open reads back each message
//! written since the open before and rebuilds a table of every leaf in memory. With a
//! key per ledger entry, opening a ledger of 10 million events took 0.8 s and 470 MiB
//! (BENCHMARKS.md); with a key per record, a `spark ingest` of 10,000 unchanged records
//! read ~4,000 pieces of leaves back from the log, one `pread` each.
//!
//! A run is one value, under the keyspace's byte and the least entry key it covers,
//! holding the entries of the keys from there up to the next run's key, in key order;
//! a run over [`RUN_ENTRIES`] entries or [`RUN_BYTES`] bytes is split. The cost is in
//! keys that come out of order: a run is rewritten whole for each commit that changes
//! it, and sled copies and rewrites the leaves that hold it. A commit's new keys in
//! order share runs, keys scattered across the keyspace each rewrite one. Measured on
//! the ledger through `spark ingest`, 100,000 challenges: in id order 4.66 s with a key
//! per event, 4.05 s in runs of 8 (3.98 s in runs of 16); in random order 5.45 s, 8.08
//! s (9.49 s in runs of 16; runs of 4 were no better and slower in order). The
//! 10-million-key ledger in runs of 8 opens in 118 ms and 74 MiB of sled's.
//!
//! A run is its entries one after the other, each its key and its value, both prefixed
//! with their length, compressed with zstd. The entries of a run share their shape
//! (field names, JSON of the same kind), so the example's ledger runs shrink about 3.7
//! times at zstd's level -1, for 6 µs a run written and 2 read (see `codec::Level`). It
//! pays because sled writes a run's bytes to its log once or twice (with the leaf that
//! holds it), and the next open reads back everything written since the one before.
//! Runs written plain (the ledger's, before the compression) are read as they are and
//! written compressed when next changed. A keyspace that kept a key per entry before
//! has its entries moved into runs at open ([`move_into_runs`]).

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::codec::{Level, compress, maybe_decompress, put_bytes, take_bytes};
use super::failure::Writes;
use super::reserve::Reserve;
use crate::Error;

/// The most entries a run holds (see above for why 8).
pub(super) const RUN_ENTRIES: usize = 8;
/// The most bytes a run of several entries holds: a run rewritten for one entry
/// costs at most this, and sled's leaves (up to 17 keys) stay well under 128 KiB,
/// past which sled writes a leaf as a file of its own. An entry larger than this is a
/// run of its own.
pub(super) const RUN_BYTES: usize = 3 * 1024;
/// How many entries of an older format move into runs a batch at a time.
const MOVE_BATCH: usize = 4096;

/// An entry of a run: its key (within the keyspace) and its value.
pub(super) type Entry = (Vec<u8>, Vec<u8>);
/// An entry as read from a run's value, borrowed from it.
pub(super) type EntryRef<'a> = (&'a [u8], &'a [u8]);

/// The entries of a run's (decoded) value, in key order.
pub(super) fn run_entries(mut run: &[u8]) -> Result<Vec<EntryRef<'_>>, Error> {
    let damaged = || Error::Storage("a run of entries is damaged".to_owned());
    let mut entries = Vec::with_capacity(RUN_ENTRIES);
    while !run.is_empty() {
        let key = take_bytes(&mut run).ok_or_else(damaged)?;
        let value = take_bytes(&mut run).ok_or_else(damaged)?;
        entries.push((key, value));
    }
    Ok(entries)
}

/// A run's value: its entries, compressed (see the module's docs).
fn encode_run(entries: &[Entry]) -> Result<Vec<u8>, Error> {
    let mut run = Vec::with_capacity(run_bytes(entries) + 8 * entries.len());
    for (key, value) in entries {
        put_bytes(&mut run, key)?;
        put_bytes(&mut run, value)?;
    }
    compress(&run, Level::Fast)
}

/// The entries' bytes of a stored run: decompressed, or as they are in a run written
/// plain (before runs were compressed). A plain run starts with its first key's
/// length, which is never zstd's magic (that would be a key of 680 MB).
pub(super) fn decode_run(stored: &[u8]) -> Result<Cow<'_, [u8]>, Error> {
    maybe_decompress(stored)
}

fn run_bytes(entries: &[Entry]) -> usize {
    entries
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum()
}

/// The run of `space` that covers `key` (the last whose key is not after `key`): its
/// key and value.
fn run_covering(
    data: &sled::Tree,
    space: u8,
    key: &[u8],
) -> Result<Option<(sled::IVec, sled::IVec)>, Error> {
    // The least key after `space key` is `space key \0`.
    let mut after = Vec::with_capacity(key.len() + 2);
    after.push(space);
    after.extend_from_slice(key);
    after.push(0);
    Ok(data.get_lt(after)?.filter(|(run, _)| run[0] == space))
}

/// The value of `key`'s entry in `space`, if there is one.
pub(super) fn get(data: &sled::Tree, space: u8, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let Some((_, run)) = run_covering(data, space, key)? else {
        return Ok(None);
    };
    find(&decode_run(&run)?, key)
}

/// The value of `key`'s entry in a run's decoded entries, if it holds one.
fn find(run: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let entries = run_entries(run)?;
    Ok(entries
        .binary_search_by(|(entry, _)| (*entry).cmp(key))
        .ok()
        .map(|at| entries[at].1.to_vec()))
}

/// A run read and decoded, kept by a reader whose next lookups are likely to fall in it
/// (records come in id order, and ids close together share runs: a `spark ingest` of
/// 10,000 unchanged records decompresses 1,300 runs instead of 10,000).
pub(super) struct DecodedRun {
    /// The count of commits the tree held when the run was read: it stands for the
    /// tree only as long as that count does (see [`get_through`]).
    commits: u64,
    /// The run's entries, decompressed.
    bytes: Vec<u8>,
    /// Its first and last entries' keys: it answers for the keys from one to the other
    /// (a key after its last may be in the next run).
    first: Vec<u8>,
    last: Vec<u8>,
}

/// [`get`], through `last`, the run read before, if it covers `key` and was read from
/// a tree that held the same count of `commits` (every commit landed, and none since:
/// the caller knows); else read from `data` and kept in `last` in its place.
pub(super) fn get_through(
    data: &sled::Tree,
    space: u8,
    key: &[u8],
    commits: u64,
    last: &mut Option<DecodedRun>,
) -> Result<Option<Vec<u8>>, Error> {
    if let Some(run) = last.as_ref().filter(|run| {
        run.commits == commits && run.first.as_slice() <= key && key <= run.last.as_slice()
    }) {
        return find(&run.bytes, key);
    }
    let Some((_, stored)) = run_covering(data, space, key)? else {
        return Ok(None);
    };
    let bytes = decode_run(&stored)?.into_owned();
    let (first, last_key) = match run_entries(&bytes)?.as_slice() {
        [first, .., last] => (first.0.to_vec(), last.0.to_vec()),
        [only] => (only.0.to_vec(), only.0.to_vec()),
        [] => return Ok(None),
    };
    let run = DecodedRun {
        commits,
        bytes,
        first,
        last: last_key,
    };
    let value = find(&run.bytes, key);
    *last = Some(run);
    value
}

/// The runs of `space` in key order, from the one covering `from` (from the first if
/// `from` is `None` or comes before every run).
pub(super) fn runs_from(
    data: &sled::Tree,
    space: u8,
    from: Option<&[u8]>,
) -> Result<impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + use<>, Error> {
    let start = match from {
        Some(from) => run_covering(data, space, from)?.map(|(run, _)| run.to_vec()),
        None => None,
    };
    let runs = data
        .range(start.unwrap_or_else(|| vec![space])..)
        .take_while(move |item| item.as_ref().map_or(true, |(run, _)| run[0] == space));
    Ok(runs)
}

/// The entries of `runs` one after the other, each made a `T` by `each` (or left
/// out: `None`).
pub(super) fn each_entry<T>(
    runs: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    mut each: impl FnMut(&[u8], &[u8]) -> Option<Result<T, Error>>,
) -> impl Iterator<Item = Result<T, Error>> {
    runs.flat_map(move |item| -> Vec<Result<T, Error>> {
        let run = match item {
            Ok((_, run)) => run,
            Err(error) => return vec![Err(error.into())],
        };
        match decode_run(&run).and_then(|run| {
            let entries = run_entries(&run)?;
            Ok(entries
                .into_iter()
                .filter_map(|(key, value)| each(key, value))
                .collect())
        }) {
            Ok(items) => items,
            Err(error) => vec![Err(error)],
        }
    })
}

/// Changes to a keyspace's entries: each key's new value, or `None` to remove it.
pub(super) type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What [`write_changes`] changes: the runs written and how many entries were removed.
#[derive(Default)]
pub(super) struct RunWrites {
    /// A run's key and its new value, or `None` to remove it.
    pub(super) runs: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// How many of the entries to remove were there.
    pub(super) removed: u64,
}

impl RunWrites {
    /// Adds the run writes to `writes`.
    pub(super) fn into_writes(self, writes: &mut Writes) {
        for (key, value) in self.runs {
            match value {
                Some(value) => writes.insert(key, value),
                None => writes.remove(key),
            }
        }
    }
}

/// The runs of `space` that `changes` rewrite, read from `data`: each run a change
/// falls in is read once, changed, and split if it grew past a run's bounds.
pub(super) fn write_changes(
    data: &sled::Tree,
    space: u8,
    changes: Changes,
) -> Result<RunWrites, Error> {
    let mut writes = RunWrites::default();
    let mut open: Option<OpenRun> = None;
    for (key, change) in changes {
        let covered = open.as_ref().is_some_and(|run| run.covers(&key));
        if !covered {
            if let Some(run) = open.take() {
                run.finish(&mut writes)?;
            }
            open = Some(OpenRun::read(data, space, &key)?);
        }
        let run = open.as_mut().expect("opened just above");
        writes.removed += u64::from(run.change(key, change));
    }
    if let Some(run) = open {
        run.finish(&mut writes)?;
    }
    Ok(writes)
}

/// A run read to be changed: the entries from its key up to the next run's.
struct OpenRun {
    space: u8,
    /// Its key (the keyspace's byte and the least entry key it covers).
    key: Vec<u8>,
    /// The next run's key, if there is one: this run covers the keys before it.
    next: Option<Vec<u8>>,
    entries: Vec<Entry>,
    /// Whether the run is stored (else it is new, starting at its first entry).
    stored: bool,
    changed: bool,
}

impl OpenRun {
    /// The run covering `key`, or a new one starting at it if none does (the keyspace
    /// is empty or every run's key comes after `key`).
    fn read(data: &sled::Tree, space: u8, key: &[u8]) -> Result<Self, Error> {
        let (run_key, entries, stored) = match run_covering(data, space, key)? {
            Some((run_key, run)) => {
                let entries = run_entries(&decode_run(&run)?)?
                    .into_iter()
                    .map(|(key, value)| (key.to_vec(), value.to_vec()))
                    .collect();
                (run_key.to_vec(), entries, true)
            }
            None => ([&[space][..], key].concat(), Vec::new(), false),
        };
        let next = data
            .get_gt(&run_key)?
            .map(|(next, _)| next.to_vec())
            .filter(|next| next[0] == space);
        Ok(Self {
            space,
            key: run_key,
            next,
            entries,
            stored,
            changed: false,
        })
    }

    /// Whether `key` falls in this run (keys come in order, never before it).
    fn covers(&self, key: &[u8]) -> bool {
        self.next.as_ref().is_none_or(|next| key < &next[1..])
    }

    /// Applies one change; whether it removed an entry that was there.
    fn change(&mut self, key: Vec<u8>, change: Option<Vec<u8>>) -> bool {
        let at = self.entries.binary_search_by(|(entry, _)| entry.cmp(&key));
        match (at, change) {
            (Ok(at), Some(value)) => self.entries[at].1 = value,
            (Err(at), Some(value)) => self.entries.insert(at, (key, value)),
            (Ok(at), None) => {
                self.entries.remove(at);
                self.changed = true;
                return true;
            }
            (Err(_), None) => return false,
        }
        self.changed = true;
        false
    }

    /// The writes of the changed run: removed if empty, else written whole, in pieces
    /// if it outgrew a run (the first keeps the run's key, each other gets its first
    /// entry's key).
    fn finish(self, writes: &mut RunWrites) -> Result<(), Error> {
        if !self.changed {
            return Ok(());
        }
        if self.entries.is_empty() {
            if self.stored {
                writes.runs.push((self.key, None));
            }
            return Ok(());
        }
        let mut pieces = Vec::new();
        split(&self.entries, &mut pieces);
        for (index, piece) in pieces.into_iter().enumerate() {
            let key = if index == 0 {
                self.key.clone()
            } else {
                [&[self.space][..], &piece[0].0].concat()
            };
            writes.runs.push((key, Some(encode_run(piece)?)));
        }
        Ok(())
    }
}

/// `entries` in runs within the bounds: as few runs of even counts as
/// [`RUN_ENTRIES`] allows (a commit's new keys in order fill whole runs), each halved
/// again while over [`RUN_BYTES`] (down to one entry).
fn split<'a>(entries: &'a [Entry], pieces: &mut Vec<&'a [Entry]>) {
    let count = entries.len().div_ceil(RUN_ENTRIES);
    let size = entries.len().div_ceil(count);
    for piece in entries.chunks(size) {
        halve_while_large(piece, pieces);
    }
}

fn halve_while_large<'a>(entries: &'a [Entry], pieces: &mut Vec<&'a [Entry]>) {
    if entries.len() > 1 && run_bytes(entries) > RUN_BYTES {
        let (first, second) = entries.split_at(entries.len() / 2);
        halve_while_large(first, pieces);
        halve_while_large(second, pieces);
    } else {
        pieces.push(entries);
    }
}

/// Moves the entries of an older format, a key each under `from` (its byte, then the
/// entry's key), into runs under `to`, a batch at a time, each batch undoable like a
/// commit's (see `failure`) and refused if it would eat into the disk's `reserve`:
/// should the move stop part-way, the next open goes on with it. `what` names the
/// entries in what the move says. How many entries moved.
pub(super) fn move_into_runs(
    data: &sled::Tree,
    from: u8,
    to: u8,
    what: &str,
    reserve: &Reserve,
) -> Result<u64, Error> {
    let mut moved = 0;
    loop {
        let mut writes = Writes::default();
        let mut changes = Changes::new();
        let mut bytes = 0;
        for item in data.scan_prefix([from]).take(MOVE_BATCH) {
            let (key, value) = item?;
            bytes += key.len() + value.len();
            changes.insert(key[1..].to_vec(), Some(value.to_vec()));
            writes.remove(key);
        }
        if changes.is_empty() {
            break;
        }
        reserve.check(bytes as u64)?;
        if moved == 0 {
            // Said at the level commands show: a large store takes a while (about 15 s
            // a million ledger entries), once.
            tracing::warn!(
                "this version keeps {what} in runs: moving this tenant's into them, once"
            );
        }
        moved += changes.len() as u64;
        write_changes(data, to, changes)?.into_writes(&mut writes);
        writes.apply_undoably(data)?;
    }
    if moved > 0 {
        data.flush()?;
        tracing::warn!("{moved} {what} moved into runs");
    }
    Ok(moved)
}
