//! The ledger's values, under `l` and the event key: the group, the time and the
//! context of each seen event.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::codec::utf8;
use crate::Error;
use crate::store::LedgerEntry;

/// The ledger's value: the context is stored as the JSON it is, without re-encoding.
pub(super) fn encode_ledger(entry: &LedgerEntry) -> Result<Vec<u8>, Error> {
    let group = serde_json::to_string(&entry.group)
        .map_err(|error| Error::Storage(format!("encoding: {error}")))?;
    Ok(format!(
        r#"{{"group":{group},"created_at":{},"context":{}}}"#,
        entry.created_at_ms, entry.context
    )
    .into_bytes())
}

pub(super) fn decode_ledger(key: &[u8], value: &[u8]) -> Result<LedgerEntry, Error> {
    #[derive(Deserialize)]
    struct Stored<'a> {
        group: String,
        created_at: i64,
        #[serde(borrow)]
        context: &'a RawValue,
    }
    let stored: Stored<'_> = serde_json::from_slice(value)
        .map_err(|error| Error::Storage(format!("decoding the ledger: {error}")))?;
    Ok(LedgerEntry {
        key: utf8(key)?,
        group: stored.group,
        created_at_ms: stored.created_at,
        context: stored.context.get().to_owned(),
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
    }
}
