//! Records, under `r` and `model \0 id`: their values, and reading a model's records a
//! page at a time.
//!
//! A record's value is its JSON text, then, if it has source memos, a `\0` (which JSON
//! text never holds) and 36 bytes per memo, the call's digest and the event count as
//! little-endian u32. The memos live in the record's value so that a record and what
//! its sources made of it change together.

use super::codec::utf8;
use super::keys::{RECORD, pair_key};
use super::reserve::Reserve;
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

/// Rewrites every record that has source memos without them, a batch at a time (each
/// batch checked against the `reserve` first); how many. Dropping memos is always
/// safe: a record without one is run through its sources again the next time it comes,
/// so a crash part-way leaves nothing wrong. The caller lets the batch in flight land
/// first.
pub(super) fn drop_memos(data: &sled::Tree, reserve: &Reserve) -> Result<u64, Error> {
    let mut dropped = 0;
    let mut batch = sled::Batch::default();
    let (mut in_batch, mut bytes) = (0, 0);
    for item in data.scan_prefix([RECORD]) {
        let (key, value) = item?;
        let Some(end) = value.iter().position(|&byte| byte == 0) else {
            continue;
        };
        bytes += (key.len() + end) as u64;
        batch.insert(key, &value[..end]);
        in_batch += 1;
        dropped += 1;
        if in_batch == MEMO_BATCH {
            reserve.check(bytes)?;
            data.apply_batch(std::mem::take(&mut batch))?;
            (in_batch, bytes) = (0, 0);
        }
    }
    if in_batch > 0 {
        reserve.check(bytes)?;
        data.apply_batch(batch)?;
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
    let prefix = pair_key(RECORD, model, "");
    let skip = prefix.len();
    let range = match after {
        Some(after) => data.range(pair_key(RECORD, model, after)..),
        None => data.range(prefix.clone()..),
    };
    range
        .map(|item| item.map_err(Error::from))
        .take_while(|item| match item {
            Ok((key, _)) => key.starts_with(&prefix),
            Err(_) => true,
        })
        .filter(|item| match (item, after) {
            (Ok((key, _)), Some(after)) => &key[skip..] != after.as_bytes(),
            _ => true,
        })
        .take(limit)
        .map(|item| {
            let (key, value) = item?;
            Ok((utf8(&key[skip..])?, decode_record(&value)?))
        })
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
}
