//! The keys of the database: the byte naming each keyspace of the `data` tree, the
//! single keys beside them, and how names and ids follow a keyspace's byte.
//!
//! Model names, event keys and handler names never contain `\0` (they are checked
//! before they get here), so these keys are unambiguous.

use super::super::key_filter::PageId;

/// The first byte of each keyspace of the `data` tree.
///
/// A record key as the key filter knows it (`r`, model, `\0`, id); and where each
/// record had a key of its own before runs (moved into runs at open: see `records`).
pub(super) const RECORD: u8 = b'r';
/// The records' runs (`s` and the least `model \0 id` a run covers: see `records`).
pub(super) const RECORD_RUNS: u8 = b's';
/// The ledger's runs of entries (`e` and the least event key a run covers: see
/// `ledger`).
pub(super) const LEDGER: u8 = b'e';
/// An event key as the key filter knows it (`l` and the key); and where each ledger
/// entry had a key of its own before runs (moved into runs at open: see `ledger`).
pub(super) const EVENT: u8 = b'l';
pub(super) const OUTBOX: u8 = b'o';
pub(super) const OUTBOX_UPDATE: u8 = b'u';
pub(super) const PENDING: u8 = b'p';
pub(super) const DEAD: u8 = b'd';
/// Requests remembered by idempotency key (`q` and the key).
pub(super) const REQUEST: u8 = b'q';
/// The groups of the events the ledger has seen (`g` and the group), kept by the
/// commits so that "which groups exist" needs no scan of the ledger.
pub(super) const GROUP: u8 = b'g';

/// The key filter's header (`h`) and pages (`p`, then table and page as big-endian
/// u32), saved by `flush`.
pub(super) const FILTER: u8 = b'f';
/// The number of commits the tree holds, as a big-endian u64: each commit's batch
/// writes it, and a saved filter is used only if it covers that many.
pub(super) const COMMITS: &[u8] = b"c";
/// The id the next outbox item gets, as a big-endian u64, once pruning has removed
/// items: the last segment no longer tells, and an id must never be given twice (it is
/// how receivers recognise an item sent again).
pub(super) const OUTBOX_NEXT_ID: &[u8] = b"n";
/// The undo record of the commit being written: there only while its batch is applied,
/// or after that failed (see `failure`).
pub(super) const UNDO: &[u8] = b"w";

/// Keys of the `meta` tree.
pub(super) const SETTINGS: &[u8] = b"settings";
pub(super) const MODULE_ORDER: &[u8] = b"module-order";

pub(super) fn filter_header_key() -> [u8; 2] {
    [FILTER, b'h']
}

pub(super) fn filter_page_key((table, page): PageId) -> Vec<u8> {
    let mut key = vec![FILTER, b'p'];
    key.extend_from_slice(&table.to_be_bytes());
    key.extend_from_slice(&page.to_be_bytes());
    key
}

pub(super) fn key(space: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(space);
    key.extend_from_slice(name.as_bytes());
    key
}

pub(super) fn pair_key(space: u8, first: &str, second: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + first.len() + second.len());
    key.push(space);
    key.extend_from_slice(first.as_bytes());
    key.push(0);
    key.extend_from_slice(second.as_bytes());
    key
}

/// An outbox key: the id as a big-endian u64, so that scans come out in id order.
pub(super) fn outbox_key(space: u8, id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(space);
    key.extend_from_slice(&id.to_be_bytes());
    key
}
