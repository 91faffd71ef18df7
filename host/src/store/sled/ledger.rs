//! The ledger: each seen event's group, time, context and trace, kept in runs under
//! `e` (see `runs`: why, and what it costs when keys come out of order).
//!
//! An entry is JSON (`encode_ledger`), under its event key in its run. Before runs
//! (stores written before this format), each entry had a key of its own under `l`:
//! opening such a store moves them into runs ([`move_into_runs`]).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::codec::utf8;
use super::keys::{EVENT, LEDGER};
use super::reserve::Reserve;
use super::runs::{self, Changes, RunWrites, each_entry, runs_from};
use crate::Error;
use crate::store::{Items, LedgerEntry};
use crate::trace::Trace;

/// The ledger's value: the context is stored as the JSON it is, without re-encoding;
/// the trace follows it when there is one.
pub(super) fn encode_ledger(entry: &LedgerEntry) -> Result<Vec<u8>, Error> {
    let encoding = |error: serde_json::Error| Error::Storage(format!("encoding: {error}"));
    let group = serde_json::to_string(&entry.group).map_err(encoding)?;
    let mut value = format!(
        r#"{{"group":{group},"created_at":{},"context":{}"#,
        entry.created_at_ms, entry.context
    )
    .into_bytes();
    if let Some(trace) = &entry.trace {
        value.extend_from_slice(br#","trace":"#);
        serde_json::to_writer(&mut value, trace).map_err(encoding)?;
    }
    value.push(b'}');
    Ok(value)
}

pub(super) fn decode_ledger(key: &[u8], value: &[u8]) -> Result<LedgerEntry, Error> {
    #[derive(Deserialize)]
    struct Stored<'a> {
        group: String,
        created_at: i64,
        #[serde(borrow)]
        context: &'a RawValue,
        #[serde(default)]
        trace: Option<Trace>,
    }
    let stored: Stored<'_> = serde_json::from_slice(value)
        .map_err(|error| Error::Storage(format!("decoding the ledger: {error}")))?;
    Ok(LedgerEntry {
        key: utf8(key)?,
        group: stored.group,
        created_at_ms: stored.created_at,
        context: stored.context.get().to_owned(),
        trace: stored.trace,
    })
}

/// Whether the ledger holds `event`.
pub(super) fn contains(data: &sled::Tree, event: &str) -> Result<bool, Error> {
    Ok(runs::get(data, LEDGER, event.as_bytes())?.is_some())
}

/// `event`'s entry, if the ledger holds one.
pub(super) fn entry(data: &sled::Tree, event: &str) -> Result<Option<LedgerEntry>, Error> {
    runs::get(data, LEDGER, event.as_bytes())?
        .map(|json| decode_ledger(event.as_bytes(), &json))
        .transpose()
}

/// The entries after `after` (all of them if none), in key order.
pub(super) fn entries_after(data: &sled::Tree, after: Option<&str>) -> Items<'static, LedgerEntry> {
    let runs = match runs_from(data, LEDGER, after.map(str::as_bytes)) {
        Ok(runs) => runs,
        Err(error) => return Box::new(std::iter::once(Err(error))),
    };
    let after = after.map(|after| after.as_bytes().to_vec());
    Box::new(each_entry(runs, move |key, json| {
        let is_after = after.as_deref().is_none_or(|after| key > after);
        is_after.then(|| decode_ledger(key, json))
    }))
}

/// Every event key the ledger holds, as the key filter names it (`EVENT` and the key).
pub(super) fn filter_keys(data: &sled::Tree) -> impl Iterator<Item = Result<Vec<u8>, Error>> {
    each_entry(data.scan_prefix([LEDGER]), |event, _| {
        Some(Ok([&[EVENT][..], event].concat()))
    })
}

/// The runs `changes` (each event's new entry JSON, or `None` to remove it) rewrite.
pub(super) fn write_changes(data: &sled::Tree, changes: Changes) -> Result<RunWrites, Error> {
    runs::write_changes(data, LEDGER, changes)
}

/// Moves the entries of the older format (one key each under `EVENT`) into runs (see
/// `runs::move_into_runs`). How many entries moved.
pub(super) fn move_into_runs(data: &sled::Tree, reserve: &Reserve) -> Result<u64, Error> {
    runs::move_into_runs(data, EVENT, LEDGER, "ledger entries", reserve)
}

#[cfg(test)]
mod tests {
    use super::super::SledStore;
    use super::super::tests::entry;
    use crate::store::{Commit, Store};

    #[test]
    fn the_ledger_keeps_group_time_and_context_exactly() {
        let mut store = SledStore::temporary().unwrap();
        assert!(!store.is_seen("a_1").unwrap());
        store
            .commit(Commit {
                ledger: vec![entry("a_1", "a"), entry("b_1", "b")],
                ..Commit::default()
            })
            .unwrap();
        assert!(store.is_seen("a_1").unwrap());
        assert_eq!(store.ledger_entry("a_1").unwrap(), Some(entry("a_1", "a")));
        assert_eq!(store.ledger_entry("c_1").unwrap(), None);
        let keys: Vec<String> = store.ledger().map(|e| e.unwrap().key).collect();
        assert_eq!(keys, ["a_1", "b_1"]);
        assert_eq!(store.groups().unwrap(), ["a", "b"]);
    }

    #[test]
    fn a_retraced_entry_replaces_the_stored_trace_and_nothing_else() {
        let mut store = SledStore::temporary().unwrap();
        store
            .commit(Commit {
                ledger: vec![entry("a_1", "a")],
                ..Commit::default()
            })
            .unwrap();
        let mut retraced = entry("a_1", "a");
        let trace = retraced.trace.as_mut().unwrap();
        let mut retry = trace.steps[0].clone();
        retry.attempt = 2;
        trace.push(retry);
        store
            .commit(Commit {
                retraced: vec![retraced.clone()],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(store.ledger_entry("a_1").unwrap(), Some(retraced));
        assert_eq!(store.ledger().count(), 1);
        // An entry from before traces reads back without one.
        let mut old = entry("b_1", "b");
        old.trace = None;
        store
            .commit(Commit {
                ledger: vec![old.clone()],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(store.ledger_entry("b_1").unwrap(), Some(old));
    }
}

#[cfg(test)]
mod paging_tests {
    use super::super::SledStore;
    use super::super::tests::entry;
    use crate::store::{Commit, RememberedRequest, Store};

    #[test]
    fn the_ledger_pages_from_after_a_key_and_stops_at_its_end() {
        let mut store = SledStore::temporary().unwrap();
        store
            .commit(Commit {
                ledger: vec![entry("a", "g"), entry("a\u{1}", "g"), entry("b", "g")],
                // A keyspace after the ledger's must not show up in it.
                requests: vec![RememberedRequest {
                    key: "k".to_owned(),
                    fingerprint: "f".to_owned(),
                    answer: "{}".to_owned(),
                    at_ms: 5,
                }],
                ..Commit::default()
            })
            .unwrap();
        let keys = |after: Option<&str>| -> Vec<String> {
            store.ledger_after(after).map(|e| e.unwrap().key).collect()
        };
        assert_eq!(keys(None), ["a", "a\u{1}", "b"]);
        assert_eq!(keys(Some("a")), ["a\u{1}", "b"]);
        assert_eq!(keys(Some("a\u{1}")), ["b"]);
        assert_eq!(keys(Some("aa")), ["b"]);
        assert!(keys(Some("b")).is_empty());
    }

    #[test]
    fn remembered_requests_are_kept_until_forgotten() {
        let mut store = SledStore::temporary().unwrap();
        let request = |key: &str, at_ms| RememberedRequest {
            key: key.to_owned(),
            fingerprint: "f".to_owned(),
            answer: r#"{"records":1}"#.to_owned(),
            at_ms,
        };
        store
            .commit(Commit {
                requests: vec![request("old", 10), request("new", 20)],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(
            store.remembered_request("old").unwrap(),
            Some(request("old", 10))
        );
        assert_eq!(store.forget_requests(15).unwrap(), 1);
        assert_eq!(store.remembered_request("old").unwrap(), None);
        assert_eq!(
            store.remembered_request("new").unwrap(),
            Some(request("new", 20))
        );
        assert!(store.ledger().next().is_none());
    }
}

#[cfg(test)]
mod run_tests {
    use super::super::SledStore;
    use super::super::codec::ZSTD_MAGIC;
    use super::super::codec::put_bytes;
    use super::super::failure::Writes;
    use super::super::keys::{EVENT, LEDGER, key};
    use super::super::runs::{Changes, RUN_BYTES, RUN_ENTRIES, decode_run, run_entries};
    use super::super::tests::entry;
    use super::{encode_ledger, write_changes};
    use crate::store::{Commit, LedgerEntry, Store};

    /// Every run of `store`: its key and its entries' keys, checking the bounds and
    /// that each run's entries come in order, from its own key on, before the next's.
    fn runs(store: &SledStore) -> Vec<(String, Vec<String>)> {
        store.settle().unwrap();
        let mut runs: Vec<(String, Vec<String>)> = Vec::new();
        for item in store.data.scan_prefix([LEDGER]) {
            let (key, run) = item.unwrap();
            let run_key = String::from_utf8(key[1..].to_vec()).unwrap();
            let run = decode_run(&run).unwrap();
            let entries = run_entries(&run).unwrap();
            assert!(!entries.is_empty(), "an empty run is removed");
            let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(entries.len() <= RUN_ENTRIES, "{} entries", entries.len());
            assert!(entries.len() == 1 || bytes <= RUN_BYTES, "{bytes} bytes");
            let keys: Vec<String> = entries
                .iter()
                .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
                .collect();
            assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "{keys:?}");
            assert!(run_key <= keys[0], "{run_key} covers {keys:?}");
            if let Some((_, before)) = runs.last() {
                assert!(before.last().unwrap() < &run_key);
            }
            runs.push((run_key, keys));
        }
        runs
    }

    fn commit(store: &mut SledStore, ledger: Vec<LedgerEntry>) {
        store
            .commit(Commit {
                ledger,
                ..Commit::default()
            })
            .unwrap();
    }

    /// The keys 0..n in an order that jumps about (a fixed permutation).
    fn scattered(n: u64) -> Vec<String> {
        (0..n).map(|i| format!("k{:05}", (i * 7_919) % n)).collect()
    }

    #[test]
    fn keys_in_order_fill_whole_runs_and_keys_out_of_order_split_them() {
        let mut store = SledStore::temporary().unwrap();
        // Keys in order, as sources make them of record ids: a commit's fill runs.
        let ordered: Vec<LedgerEntry> = (0..250).map(|i| entry(&format!("a{i:04}"), "a")).collect();
        for group in ordered.chunks(100) {
            commit(&mut store, group.to_vec());
        }
        let filled = runs(&store);
        assert!(
            filled.len() <= 250 / RUN_ENTRIES + 3,
            "{} runs",
            filled.len()
        );
        // Keys in no order, spread over commits: every one lands, runs stay in bounds.
        let keys = scattered(997);
        for group in keys.chunks(60) {
            commit(&mut store, group.iter().map(|k| entry(k, "k")).collect());
        }
        let all = runs(&store);
        assert!(all.len() < (250 + 997) / 4, "{} runs", all.len());
        let stored: Vec<String> = all.into_iter().flat_map(|(_, keys)| keys).collect();
        let mut expected: Vec<String> = (0..250).map(|i| format!("a{i:04}")).collect();
        expected.extend((0..997).map(|i| format!("k{i:05}")));
        assert_eq!(stored, expected);
        let listed: Vec<String> = store.ledger().map(|e| e.unwrap().key).collect();
        assert_eq!(listed, expected);
        for key in &expected {
            assert!(store.is_seen(key).unwrap(), "{key}");
            assert_eq!(store.ledger_entry(key).unwrap().unwrap().key, *key);
        }
        for absent in ["", "a", "a0250", "k", "k00997", "k00500x", "z"] {
            assert!(!store.is_seen(absent).unwrap(), "{absent}");
            assert_eq!(store.ledger_entry(absent).unwrap(), None);
        }
        let after: Vec<String> = store
            .ledger_after(Some("k00994"))
            .map(|e| e.unwrap().key)
            .collect();
        assert_eq!(after, ["k00995", "k00996"]);
    }

    #[test]
    fn runs_are_stored_compressed_and_plain_runs_of_before_still_read() {
        let mut store = SledStore::temporary().unwrap();
        let written: Vec<LedgerEntry> = (0..4).map(|i| entry(&format!("b{i}"), "b")).collect();
        commit(&mut store, written.clone());
        let first_run = |store: &SledStore| {
            store.settle().unwrap();
            store.data.scan_prefix([LEDGER]).next().unwrap().unwrap()
        };
        let (_, stored) = first_run(&store);
        assert!(stored.starts_with(&ZSTD_MAGIC), "compressed");

        // A run as the version before wrote it: its entries' bytes as they are.
        let older = entry("a0", "a");
        let json = encode_ledger(&older).unwrap();
        let mut value = Vec::new();
        put_bytes(&mut value, b"a0").unwrap();
        put_bytes(&mut value, &json).unwrap();
        store
            .data
            .insert([&[LEDGER][..], b"a0"].concat(), value)
            .unwrap();
        // (Read from the run itself: the key filter, which `is_seen` asks first, was
        // not told of this entry.)
        assert_eq!(store.ledger_entry("a0").unwrap(), Some(older.clone()));
        let listed: Vec<LedgerEntry> = store.ledger().map(Result::unwrap).collect();
        assert_eq!(listed[0], older);
        assert_eq!(listed[1..], written[..]);
        // A change to it writes it compressed, with what it held.
        commit(&mut store, vec![entry("a1", "a")]);
        let (key, stored) = first_run(&store);
        assert_eq!(&key[..], b"ea0");
        assert!(stored.starts_with(&ZSTD_MAGIC));
        assert_eq!(runs(&store)[0].1, ["a0", "a1"]);

        // A damaged compressed run is a storage error, not a run of nothing.
        let cut = stored.len() / 2;
        store.data.insert(key, &stored[..cut]).unwrap();
        assert!(matches!(
            store.ledger_entry("a0"),
            Err(crate::Error::Storage(_))
        ));
    }

    #[test]
    fn an_entry_larger_than_a_run_is_a_run_of_its_own() {
        let mut store = SledStore::temporary().unwrap();
        let mut large = entry("m", "g");
        large.context = format!(r#"{{"text":"{}"}}"#, "x".repeat(RUN_BYTES));
        let small: Vec<LedgerEntry> = ["a", "b", "y", "z"].iter().map(|k| entry(k, "g")).collect();
        commit(&mut store, small);
        commit(&mut store, vec![large.clone()]);
        let keys: Vec<Vec<String>> = runs(&store).into_iter().map(|(_, keys)| keys).collect();
        assert!(keys.contains(&vec!["m".to_owned()]), "{keys:?}");
        assert_eq!(store.ledger_entry("m").unwrap(), Some(large));
        assert_eq!(store.ledger().count(), 5);
    }

    #[test]
    fn forgetting_takes_entries_out_of_their_runs_and_empty_runs_go() {
        let mut store = SledStore::temporary().unwrap();
        let keys = scattered(100);
        commit(&mut store, keys.iter().map(|k| entry(k, "k")).collect());
        let before = runs(&store);
        let first_run = before[0].1.clone();
        let mut forget = first_run.clone();
        forget.push("k00050".to_owned());
        forget.push("not-there".to_owned());
        let forgotten = store.forget_events(&forget).unwrap();
        assert_eq!(forgotten.forgotten, first_run.len() as u64 + 1);
        let after = runs(&store);
        assert_eq!(after.len(), before.len() - 1, "the emptied run is removed");
        for key in &forget {
            assert_eq!(store.ledger_entry(key).unwrap(), None, "{key}");
        }
        assert_eq!(store.ledger().count(), 100 - forget.len() + 1);
        // A forgotten key comes back as new, into the run that now covers it.
        commit(&mut store, vec![entry(&first_run[0], "k")]);
        assert!(store.is_seen(&first_run[0]).unwrap());
        runs(&store);
    }

    #[test]
    fn a_store_with_an_entry_per_key_has_them_moved_into_runs_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let old: Vec<LedgerEntry> = (0..5_000)
            .map(|i| entry(&format!("old{i:05}"), "o"))
            .collect();
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            commit(&mut store, old.clone());
            // Some entries stay in runs, as after a move that stopped part-way.
            commit(&mut store, vec![entry("old00100x", "o"), entry("p", "o")]);
            store.flush().unwrap();
            // The others as the older format held them: a key per entry.
            let mut changes = Changes::new();
            for entry in &old {
                store
                    .data
                    .insert(key(EVENT, &entry.key), encode_ledger(entry).unwrap())
                    .unwrap();
                changes.insert(entry.key.clone().into_bytes(), None);
            }
            let mut writes = Writes::default();
            write_changes(&store.data, changes)
                .unwrap()
                .into_writes(&mut writes);
            writes.apply_undoably(&store.data).unwrap();
            let left: Vec<String> = runs(&store)
                .into_iter()
                .flat_map(|(_, keys)| keys)
                .collect();
            assert_eq!(left, ["old00100x", "p"]);
        }
        let store = SledStore::open(dir.path(), None).unwrap();
        assert_eq!(store.data.scan_prefix([EVENT]).count(), 0);
        // Several entries a run (in order, they fill runs).
        assert!(
            runs(&store).len() <= 5_002 / 4,
            "{} runs",
            runs(&store).len()
        );
        assert_eq!(store.ledger().count(), 5_002);
        for entry in &old {
            assert_eq!(
                store.ledger_entry(&entry.key).unwrap().as_ref(),
                Some(entry)
            );
        }
        assert!(store.is_seen("old04999").unwrap());
        assert!(store.is_seen("old00100x").unwrap());
        assert!(!store.is_seen("old05000").unwrap());
    }

    #[test]
    fn a_move_that_would_eat_into_the_disk_reserve_is_refused_and_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), None).unwrap();
        for n in 0..10 {
            let entry = entry(&format!("old{n}"), "o");
            store
                .data
                .insert(key(EVENT, &entry.key), encode_ledger(&entry).unwrap())
                .unwrap();
        }
        // A reserve larger than any disk.
        let tight = super::super::reserve::Reserve::of(dir.path(), u64::MAX / 4);
        assert!(matches!(
            super::move_into_runs(&store.data, &tight),
            Err(crate::Error::DiskFull { .. })
        ));
        assert_eq!(store.data.scan_prefix([EVENT]).count(), 10);
        assert!(runs(&store).is_empty());
        let roomy = super::super::reserve::Reserve::of(dir.path(), 1);
        assert_eq!(super::move_into_runs(&store.data, &roomy).unwrap(), 10);
        assert_eq!(store.data.scan_prefix([EVENT]).count(), 0);
        assert_eq!(store.ledger().count(), 10);
    }
}
