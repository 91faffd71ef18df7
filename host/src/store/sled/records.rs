//! Records, in runs under `s` (see `runs`), each under `model \0 id` in its run: their
//! values, and reading a model's records a page at a time.
//!
//! A record's value is its JSON text, then, if it has source memos, a `\0` (which JSON
//! text never holds) and 36 bytes per memo, the call's digest and the event count as
//! little-endian u32. The memos live in the record's value so that a record and what
//! its sources made of it change together.
//!
//! Runs, not a key each: a `spark ingest` of 10,000 unchanged records read ~4,000
//! pieces of sled's leaves back from its log (and its open read back each of the
//! 10,000 values the ingest before had written, one message each). Before runs, each
//! record had a key of its own under `r`: opening such a store moves them into runs
//! ([`move_into_runs`]).

use super::codec::utf8;
use super::failure::Writes;
use super::keys::{RECORD, RECORD_RUNS};
use super::reserve::Reserve;
use super::runs::{self, Changes, DecodedRun, RunWrites, each_entry, runs_from};
use crate::Error;
use crate::store::{SourceMemo, StoredRecord};

const MEMO_BYTES: usize = 36;
/// Records rewritten per batch when their memos are dropped.
const MEMO_BATCH: usize = 1_000;

pub(super) fn encode_record(record: StoredRecord) -> Vec<u8> {
    let mut value = record.json.into_bytes();
    if !record.memos.is_empty() {
        value.reserve(1 + MEMO_BYTES * record.memos.len());
        value.push(0);
        for memo in &record.memos {
            value.extend_from_slice(&memo.call);
            value.extend_from_slice(&memo.events.to_le_bytes());
        }
    }
    value
}

pub(super) fn decode_record(value: &[u8]) -> Result<StoredRecord, Error> {
    let (json, memos) = match value.iter().position(|&byte| byte == 0) {
        Some(end) => (&value[..end], &value[end + 1..]),
        None => (value, &[][..]),
    };
    if !memos.len().is_multiple_of(MEMO_BYTES) {
        return Err(Error::Storage(
            "a record's source memos are cut short".to_owned(),
        ));
    }
    let memos = memos
        .chunks_exact(MEMO_BYTES)
        .map(|memo| {
            let (call, events) = memo.split_at(32);
            SourceMemo {
                call: call.try_into().expect("32 bytes"),
                events: u32::from_le_bytes(events.try_into().expect("4 bytes")),
            }
        })
        .collect();
    Ok(StoredRecord {
        json: utf8(json)?,
        memos,
    })
}

/// A record's key within its run: `model \0 id`.
fn record_key(model: &str, id: &str) -> Vec<u8> {
    [model.as_bytes(), &[0], id.as_bytes()].concat()
}

/// The stored version of a record, if any, as it is in `data`.
pub(super) fn get(data: &sled::Tree, model: &str, id: &str) -> Result<Option<StoredRecord>, Error> {
    runs::get(data, RECORD_RUNS, &record_key(model, id))?
        .map(|value| decode_record(&value))
        .transpose()
}

/// [`get`] through `last`, the run of records read before (see `runs::get_through`):
/// for a reader that knows every commit up to the `commits`-th has landed.
pub(super) fn get_through(
    data: &sled::Tree,
    model: &str,
    id: &str,
    commits: u64,
    last: &mut Option<DecodedRun>,
) -> Result<Option<StoredRecord>, Error> {
    runs::get_through(data, RECORD_RUNS, &record_key(model, id), commits, last)?
        .map(|value| decode_record(&value))
        .transpose()
}

/// The runs that `records` (model, id, latest version) rewrite.
pub(super) fn write_changes(
    data: &sled::Tree,
    records: Vec<(String, String, StoredRecord)>,
) -> Result<RunWrites, Error> {
    let changes: Changes = records
        .into_iter()
        .map(|(model, id, record)| (record_key(&model, &id), Some(encode_record(record))))
        .collect();
    runs::write_changes(data, RECORD_RUNS, changes)
}

/// Every record key, as the key filter names it (`RECORD`, model, `\0`, id).
pub(super) fn filter_keys(data: &sled::Tree) -> impl Iterator<Item = Result<Vec<u8>, Error>> {
    each_entry(data.scan_prefix([RECORD_RUNS]), |key, _| {
        Some(Ok([&[RECORD][..], key].concat()))
    })
}

/// Moves the records of the older format (one key each under `RECORD`) into runs (see
/// `runs::move_into_runs`). How many records moved.
pub(super) fn move_into_runs(data: &sled::Tree, reserve: &Reserve) -> Result<u64, Error> {
    runs::move_into_runs(data, RECORD, RECORD_RUNS, "records", reserve)
}

/// Rewrites every record that has source memos without them, a batch at a time (each
/// batch checked against the `reserve` first); how many. Dropping memos is always
/// safe: a record without one is run through its sources again the next time it comes,
/// so a crash part-way leaves nothing wrong. The caller lets the batch in flight land
/// first.
pub(super) fn drop_memos(data: &sled::Tree, reserve: &Reserve) -> Result<u64, Error> {
    let mut dropped = 0;
    let mut batch = Changes::new();
    let mut bytes = 0;
    let write = |batch: Changes, bytes: usize| -> Result<(), Error> {
        reserve.check(bytes as u64)?;
        let mut writes = Writes::default();
        runs::write_changes(data, RECORD_RUNS, batch)?.into_writes(&mut writes);
        // Undoably, as a commit: a run rewritten holds other records than these, and a
        // failed write must not leave part of a batch (see `failure`).
        writes.apply_undoably(data)?;
        Ok(())
    };
    let with_memos = each_entry(data.scan_prefix([RECORD_RUNS]), |key, value| {
        let end = value.iter().position(|&byte| byte == 0)?;
        Some(Ok((key.to_vec(), value[..end].to_vec())))
    });
    for item in with_memos {
        let (key, json) = item?;
        bytes += key.len() + json.len();
        batch.insert(key, Some(json));
        dropped += 1;
        if batch.len() == MEMO_BATCH {
            write(std::mem::take(&mut batch), std::mem::take(&mut bytes))?;
        }
    }
    if !batch.is_empty() {
        write(batch, bytes)?;
    }
    Ok(dropped)
}

/// Up to `limit` records of `model` with ids after `after`, in id order, as they are
/// in `data` (the caller lets the batch in flight land first).
pub(super) fn page(
    data: &sled::Tree,
    model: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, StoredRecord)>, Error> {
    let prefix = record_key(model, "");
    let from = record_key(model, after.unwrap_or(""));
    let runs = runs_from(data, RECORD_RUNS, Some(&from))?;
    // Each entry: `None` to leave it out (before the page: another model's, or not
    // after `after`), `Some(None)` once past the model's records, which ends the page.
    let entries = each_entry(runs, |key, value| {
        if key < from.as_slice() || (after.is_some() && key == from.as_slice()) {
            return None;
        }
        if !key.starts_with(&prefix) {
            return Some(Ok(None));
        }
        Some(utf8(&key[prefix.len()..]).and_then(|id| Ok(Some((id, decode_record(value)?)))))
    });
    entries
        .take_while(|entry| !matches!(entry, Ok(None)))
        .filter_map(Result::transpose)
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::SledStore;
    use super::*;
    use crate::store::{Commit, Store};

    #[test]
    fn records_keep_the_latest_version_per_model_and_id() {
        let mut store = SledStore::temporary().unwrap();
        let record = |model: &str, id: &str, json: &str| {
            (
                model.to_owned(),
                id.to_owned(),
                StoredRecord {
                    json: json.to_owned(),
                    memos: Vec::new(),
                },
            )
        };
        store
            .commit(Commit {
                records: vec![
                    record("challenge", "1", r#"{"id":1,"v":1}"#),
                    record("challenge", "2", r#"{"id":2}"#),
                    record("challengex", "1", r#"{"id":1,"other":true}"#),
                ],
                ..Commit::default()
            })
            .unwrap();
        store
            .commit(Commit {
                records: vec![record("challenge", "1", r#"{"id":1,"v":2}"#)],
                ..Commit::default()
            })
            .unwrap();
        let json = |records: Vec<(String, StoredRecord)>| -> Vec<(String, String)> {
            records.into_iter().map(|(id, r)| (id, r.json)).collect()
        };
        let records = store.records("challenge", None, 10).unwrap();
        assert_eq!(
            json(records),
            [
                ("1".to_owned(), r#"{"id":1,"v":2}"#.to_owned()),
                ("2".to_owned(), r#"{"id":2}"#.to_owned())
            ]
        );
        let first_page = store.records("challenge", None, 1).unwrap();
        assert_eq!(first_page.len(), 1);
        let second_page = store
            .records("challenge", Some(&first_page[0].0), 1)
            .unwrap();
        assert_eq!(
            json(second_page),
            [("2".to_owned(), r#"{"id":2}"#.to_owned())]
        );
        assert!(store.records("challenge", Some("2"), 1).unwrap().is_empty());
        assert_eq!(store.records("challengex", None, 10).unwrap().len(), 1);
        assert!(store.records("challeng", None, 10).unwrap().is_empty());
    }

    #[test]
    fn records_keep_their_source_memos() {
        let mut store = SledStore::temporary().unwrap();
        let memo = |n: u8| SourceMemo {
            call: [n; 32],
            events: u32::from(n) << 20,
        };
        let with_memos = StoredRecord {
            json: r#"{"id":1,"text":"a\u0000b"}"#.to_owned(),
            memos: vec![memo(1), memo(2)],
        };
        let plain = StoredRecord {
            json: r#"{"id":2}"#.to_owned(),
            memos: Vec::new(),
        };
        store
            .commit(Commit {
                records: vec![
                    ("m".to_owned(), "1".to_owned(), with_memos.clone()),
                    ("m".to_owned(), "2".to_owned(), plain.clone()),
                ],
                ..Commit::default()
            })
            .unwrap();
        // From the batch in flight, then from the tree.
        assert_eq!(store.record("m", "1").unwrap(), Some(with_memos.clone()));
        store.flush().unwrap();
        assert_eq!(store.record("m", "1").unwrap(), Some(with_memos.clone()));
        assert_eq!(store.record("m", "2").unwrap(), Some(plain.clone()));
        let page = store.records("m", None, 10).unwrap();
        assert_eq!(
            page,
            [("1".to_owned(), with_memos), ("2".to_owned(), plain)]
        );
        assert!(decode_record(b"{}\0short").is_err());
    }

    fn plain(json: &str) -> StoredRecord {
        StoredRecord {
            json: json.to_owned(),
            memos: Vec::new(),
        }
    }

    fn commit(store: &mut SledStore, records: Vec<(String, String, StoredRecord)>) {
        store
            .commit(Commit {
                records,
                ..Commit::default()
            })
            .unwrap();
    }

    #[test]
    fn records_share_runs_and_a_model_s_pages_stop_at_its_last() {
        let mut store = SledStore::temporary().unwrap();
        // Three models whose keys sort next to each other, so runs hold several.
        let mut all = Vec::new();
        for model in ["a", "b", "c"] {
            for id in 0..50 {
                let json = format!(r#"{{"model":"{model}","id":{id}}}"#);
                all.push((model.to_owned(), format!("{id:03}"), plain(&json)));
            }
        }
        for group in all.chunks(40) {
            commit(&mut store, group.to_vec());
        }
        store.flush().unwrap();
        let runs = store.data.scan_prefix([RECORD_RUNS]).count();
        assert!(runs <= 150 / 4, "{runs} runs for 150 records");
        assert_eq!(store.data.scan_prefix([RECORD]).count(), 0);
        let ids = |after: Option<&str>, limit| -> Vec<String> {
            let page = store.records("b", after, limit).unwrap();
            page.into_iter().map(|(id, _)| id).collect()
        };
        let every: Vec<String> = (0..50).map(|id| format!("{id:03}")).collect();
        assert_eq!(ids(None, 100), every);
        assert_eq!(ids(Some("047"), 100), ["048", "049"]);
        assert_eq!(ids(Some("0475"), 100), ["048", "049"]);
        assert!(ids(Some("049"), 100).is_empty());
        assert_eq!(ids(Some("010"), 3), ["011", "012", "013"]);
        for (model, id, record) in &all {
            assert_eq!(store.record(model, id).unwrap().as_ref(), Some(record));
        }
        for (model, id) in [("b", "050"), ("b", "0"), ("", "000"), ("d", "000")] {
            assert_eq!(store.record(model, id).unwrap(), None, "{model} {id}");
        }
    }

    #[test]
    fn a_record_read_after_its_run_was_kept_is_its_latest_version() {
        let mut store = SledStore::temporary().unwrap();
        let version = |id: u32, v: u32| {
            let json = format!(r#"{{"id":{id},"v":{v}}}"#);
            ("m".to_owned(), id.to_string(), plain(&json))
        };
        commit(&mut store, (1..=6).map(|id| version(id, 1)).collect());
        store.flush().unwrap();
        // Read once every commit has landed: the run of 1..6 is kept.
        assert_eq!(store.record("m", "2").unwrap(), Some(version(2, 1).2));
        // A commit changes 3 and adds 4x within that run; each read, while the batch
        // is in flight or after it landed, is of the latest version.
        let mut changed = vec![version(3, 2)];
        changed.push(("m".to_owned(), "4x".to_owned(), plain("{}")));
        commit(&mut store, changed);
        for _ in 0..2 {
            assert_eq!(store.record("m", "3").unwrap(), Some(version(3, 2).2));
            assert_eq!(store.record("m", "4x").unwrap(), Some(plain("{}")));
            assert_eq!(store.record("m", "2").unwrap(), Some(version(2, 1).2));
            store.flush().unwrap();
        }
    }

    #[test]
    fn a_store_with_a_key_per_record_has_them_moved_into_runs_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let memo = SourceMemo {
            call: [3; 32],
            events: 2,
        };
        let old: Vec<(String, String, StoredRecord)> = (0..3_000)
            .map(|id| {
                let mut record = plain(&format!(r#"{{"id":{id}}}"#));
                if id % 2 == 0 {
                    record.memos.push(memo);
                }
                ("old".to_owned(), id.to_string(), record)
            })
            .collect();
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            // The key filter learns of the records through a commit, as before runs.
            commit(&mut store, old.clone());
            store.flush().unwrap();
            // Then they are put back as the older format held them: a key each.
            let mut writes = Writes::default();
            for (model, id, record) in &old {
                let key = super::super::keys::pair_key(RECORD, model, id);
                writes.insert(key, encode_record(record.clone()));
            }
            for key in store.data.scan_prefix([RECORD_RUNS]).keys() {
                writes.remove(key.unwrap());
            }
            writes.apply_undoably(&store.data).unwrap();
            assert_eq!(store.data.scan_prefix([RECORD_RUNS]).count(), 0);
        }
        let store = SledStore::open(dir.path(), None).unwrap();
        assert_eq!(store.data.scan_prefix([RECORD]).count(), 0);
        let runs = store.data.scan_prefix([RECORD_RUNS]).count();
        assert!(runs <= 3_000 / 4, "{runs} runs");
        for (model, id, record) in &old {
            assert_eq!(store.record(model, id).unwrap().as_ref(), Some(record));
        }
        let listed = store.records("old", None, 10_000).unwrap();
        assert_eq!(listed.len(), 3_000);
        assert!(store.record("old", "3000").unwrap().is_none());
    }
}
