//! The ledger's values, under `l` and the event key: the group, the time and the
//! context of each seen event.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::codec::utf8;
use crate::Error;
use crate::store::LedgerEntry;
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
