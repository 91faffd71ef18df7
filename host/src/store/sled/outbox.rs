//! The outbox: segments under `o`, items updated since under `u`, the next id under
//! `n`, and how pruning folds them together again.
//!
//! A commit's outbox items are one value, a segment (a JSON array keyed by its first
//! id as a big-endian u64, so scans come out in id order): sled copies a tree node for
//! every key a batch inserts, and a key per item made the outbox the largest part of a
//! commit's cost. A segment is compressed (zstd, `codec::to_compressed_json`): a
//! thousand mails are 1.5 MB of JSON and about 60 KB so, and sled writes a node past
//! 128 KiB as a blob, whole, every time the node changes, then reads it again on the
//! next open (the log since the last open is checked there): plain, the outbox was a
//! third of what a 10,000-record run wrote and half of what the next open read. A send
//! attempt changes one item, so the item's new state goes to `u` under its own id, and
//! reading the outbox takes it in place of the segment's copy.
//! Pruning rewrites a segment without its removed items and with its updates folded
//! in (or removes it), and keeps the next id under `n`. Cancelling items (removing some
//! that were never sent) rewrites their segments without them and leaves the other
//! items' updates where they are, so that it may run beside commits, which only add
//! segments (see [`remove_items`]).
//! Data dirs written before segments hold one item per `o` key, and those written
//! before compression plain JSON segments; all are read.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::SledStore;
use super::codec::{
    Level, compress, decode_u64, from_json, from_maybe_compressed_json, to_compressed_json,
};
use super::keys::{OUTBOX, OUTBOX_NEXT_ID, OUTBOX_UPDATE, outbox_key};
use super::reserve::Reserve;
use crate::Error;
use crate::outbox::{OutboxItem, OutboxPayload};
use crate::store::{Items, NewOutboxItem, Pruned};

/// The id the next outbox item gets: after the last segment's, or after the last one
/// pruning removed, whichever is later.
pub(super) fn next_outbox_id(data: &sled::Tree) -> Result<u64, Error> {
    let after_last = match data.scan_prefix([OUTBOX]).next_back().transpose()? {
        Some((_, segment)) => last_outbox_id(&segment)? + 1,
        None => 1,
    };
    let after_pruned = match data.get(OUTBOX_NEXT_ID)? {
        Some(value) => decode_u64(&value, "the next outbox id")?,
        None => 1,
    };
    Ok(after_last.max(after_pruned))
}

/// The items of an outbox value, as `T`: a segment, or a single item (see the module's
/// docs).
fn outbox_value<T: DeserializeOwned>(value: &[u8]) -> Result<Vec<T>, Error> {
    if value.first() != Some(&b'{') {
        from_maybe_compressed_json(value)
    } else {
        Ok(vec![from_json(value)?])
    }
}

/// The id of the last item of an outbox value, read without decoding the items (a
/// segment of a thousand mails is most of a megabyte, and every open reads one).
fn last_outbox_id(value: &[u8]) -> Result<u64, Error> {
    #[derive(Deserialize)]
    struct Id {
        id: u64,
    }
    let last = outbox_value::<Id>(value)?.pop();
    last.map(|item| item.id)
        .ok_or_else(|| Error::Storage("an outbox segment is empty".to_owned()))
}

/// Each item of `segments` as it is now: its update, if `updates` (in id order, as
/// `segments`) has one.
pub(super) fn latest_outbox<'a>(
    segments: impl Iterator<Item = sled::Result<sled::IVec>> + 'a,
    updates: impl Iterator<Item = sled::Result<sled::IVec>> + 'a,
) -> Items<'a, OutboxItem> {
    let items = segments.flat_map(|segment| {
        let items = segment
            .map_err(Error::from)
            .and_then(|value| outbox_value::<OutboxItem>(&value));
        match items {
            Ok(items) => items.into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        }
    });
    let mut updates = updates
        .map(|value| from_json::<OutboxItem>(&value?))
        .peekable();
    Box::new(items.map(move |item| {
        let item = item?;
        // Updates before this item's id would belong to no item (items are never
        // removed): they are passed over.
        while let Some(update) = updates.next_if(|update| match update {
            Ok(update) => update.id <= item.id,
            Err(_) => true,
        }) {
            let update = update?;
            if update.id == item.id {
                return Ok(update);
            }
        }
        Ok(item)
    }))
}

/// A new outbox item as a commit writes it, to be read back as an [`OutboxItem`]: its
/// payload as `kind` and `data`, its sending state left to the defaults.
#[derive(Serialize)]
struct NewOutboxJson {
    id: u64,
    event: String,
    handler: String,
    #[serde(flatten)]
    payload: OutboxPayload,
    created_at_ms: i64,
}

/// A commit's outbox items as one segment, with ids from `first_id` on.
pub(super) fn encode_segment(items: Vec<NewOutboxItem>, first_id: u64) -> Result<Vec<u8>, Error> {
    let segment: Vec<NewOutboxJson> = (first_id..)
        .zip(items)
        .map(|(id, item)| NewOutboxJson {
            id,
            event: item.event,
            handler: item.handler,
            payload: item.payload.into_payload(),
            created_at_ms: item.created_at_ms,
        })
        .collect();
    // Sized up front: grown by doubling, the copies and the fresh pages of a
    // segment of most of a megabyte were a tenth of the commit thread's work.
    let size = segment
        .iter()
        .map(|item| payload_len(&item.payload) + item.event.len() + item.handler.len() + 160)
        .sum();
    let mut value = Vec::with_capacity(size);
    serde_json::to_writer(&mut value, &segment)
        .map_err(|error| Error::Storage(format!("encoding: {error}")))?;
    compress(&value, Level::Small)
}

/// About how long a payload's JSON is: its texts' lengths.
fn payload_len(payload: &OutboxPayload) -> usize {
    match payload {
        OutboxPayload::Mail(mail) => {
            let addresses = [&mail.to, &mail.cc, &mail.bcc]
                .iter()
                .flat_map(|list| list.iter())
                .map(|address| address.len() + 3)
                .sum::<usize>();
            let texts = [
                &mail.from,
                &mail.reply_to,
                &mail.template,
                &mail.render_error,
            ]
            .iter()
            .map(|text| text.as_ref().map_or(0, String::len))
            .sum::<usize>();
            let context = mail
                .context
                .as_ref()
                .map_or(0, |context| context.get().len());
            addresses + texts + mail.subject.len() + mail.body.len() + context
        }
        OutboxPayload::Output(output) => output.channel.len() + 64,
    }
}

/// Removes the items of `ids` from `data`'s outbox (those there are; how many), all in
/// one batch: each segment that holds one is written again without it (the other items
/// as the very text they were), the removed items' updates go, and the next id is kept
/// beyond every removed one, so that no id is given again. The other items' updates
/// stay under `u`, untouched: a sender may write those meanwhile, and commits only add
/// segments, so this needs no lock but being the sender (the one writer of `u`).
pub(super) fn remove_items(
    data: &sled::Tree,
    reserve: &Reserve,
    ids: &[u64],
) -> Result<u64, Error> {
    #[derive(Deserialize)]
    struct Id {
        id: u64,
    }
    let wanted: BTreeSet<u64> = ids.iter().copied().collect();
    let Some(&last_wanted) = wanted.last() else {
        return Ok(0);
    };
    let mut batch = sled::Batch::default();
    let (mut removed, mut bytes, mut after_removed) = (0, 0, 0);
    for entry in data.scan_prefix([OUTBOX]) {
        let (key, value) = entry?;
        // A value's key is its first item's id: values past the last id wanted hold none.
        if decode_u64(&key[1..], "an outbox key")? > last_wanted {
            break;
        }
        let items: Vec<Box<RawValue>> = outbox_value(&value)?;
        let count = items.len();
        let mut kept = Vec::with_capacity(count);
        for item in items {
            let Id { id } = from_json(item.get().as_bytes())?;
            if wanted.contains(&id) {
                batch.remove(outbox_key(OUTBOX_UPDATE, id));
                after_removed = after_removed.max(id + 1);
                removed += 1;
            } else {
                kept.push(item);
            }
        }
        if kept.len() == count {
            continue;
        }
        if kept.is_empty() {
            batch.remove(key);
        } else {
            let segment = to_compressed_json(&kept)?;
            bytes += segment.len() as u64;
            batch.insert(key, segment);
        }
    }
    if removed == 0 {
        return Ok(0);
    }
    let next_id = match data.get(OUTBOX_NEXT_ID)? {
        Some(value) => decode_u64(&value, "the next outbox id")?,
        None => 1,
    };
    batch.insert(OUTBOX_NEXT_ID, &next_id.max(after_removed).to_be_bytes());
    reserve.check(bytes)?;
    data.apply_batch(batch)?;
    data.flush()?;
    Ok(removed)
}

impl SledStore {
    /// Removes the items `remove` picks, segment by segment, once the batch in flight
    /// has landed.
    pub(super) fn prune_segments(
        &mut self,
        remove: &dyn Fn(&OutboxItem) -> bool,
    ) -> Result<Pruned, Error> {
        let mut pruned = Pruned::default();
        // Keys first: each segment is rewritten while the scan would still be open.
        let segments: Vec<sled::IVec> = self
            .data
            .scan_prefix([OUTBOX])
            .keys()
            .collect::<Result<_, _>>()?;
        for key in segments {
            let Some(value) = self.data.get(&key)? else {
                continue;
            };
            let mut items: Vec<OutboxItem> = outbox_value(&value)?;
            let (Some(first), Some(last)) = (items.first(), items.last()) else {
                continue;
            };
            let updates: Vec<(sled::IVec, OutboxItem)> = self
                .data
                .range(outbox_key(OUTBOX_UPDATE, first.id)..=outbox_key(OUTBOX_UPDATE, last.id))
                .map(|entry| {
                    let (key, value) = entry?;
                    Ok((key, from_json(&value)?))
                })
                .collect::<Result<_, Error>>()?;
            for (_, update) in &updates {
                if let Some(item) = items.iter_mut().find(|item| item.id == update.id) {
                    *item = update.clone();
                }
            }
            let before = items.len();
            items.retain(|item| !remove(item));
            pruned.removed += (before - items.len()) as u64;
            pruned.kept += items.len() as u64;
            if items.len() == before && updates.is_empty() {
                continue;
            }
            // The segment and its updates become one value again, in one batch.
            let mut batch = sled::Batch::default();
            batch.insert(OUTBOX_NEXT_ID, &self.next_outbox_id.to_be_bytes());
            for (key, _) in updates {
                batch.remove(key);
            }
            if items.is_empty() {
                batch.remove(key);
            } else {
                batch.insert(key, to_compressed_json(&items)?);
            }
            self.data.apply_batch(batch)?;
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::to_json;
    use super::*;
    use crate::outbox::OutboxStatus;
    use crate::store::{Commit, NewPayload, Store};

    fn output(event: &str) -> NewOutboxItem {
        NewOutboxItem {
            event: event.to_owned(),
            handler: "h".to_owned(),
            payload: NewPayload::Ready(Box::new(OutboxPayload::from_output("c", "p"))),
            created_at_ms: 5,
        }
    }

    #[test]
    fn outbox_ids_increase_across_commits_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            store
                .commit(Commit {
                    outbox: vec![output("e1"), output("e2")],
                    ..Commit::default()
                })
                .unwrap();
            store
                .commit(Commit {
                    outbox: vec![output("e3")],
                    ..Commit::default()
                })
                .unwrap();
            store.flush().unwrap();
        }
        let mut store = SledStore::open(dir.path(), None).unwrap();
        store
            .commit(Commit {
                outbox: vec![output("e4")],
                ..Commit::default()
            })
            .unwrap();
        let items: Vec<(u64, String)> = store
            .outbox()
            .map(|item| {
                let item = item.unwrap();
                (item.id, item.event)
            })
            .collect();
        assert_eq!(
            items,
            [
                (1, "e1".to_owned()),
                (2, "e2".to_owned()),
                (3, "e3".to_owned()),
                (4, "e4".to_owned())
            ]
        );
    }

    fn outbox_events(store: &SledStore) -> Vec<(u64, String, OutboxStatus, u32)> {
        store
            .outbox()
            .map(|item| {
                let item = item.unwrap();
                (item.id, item.event, item.status, item.attempts)
            })
            .collect()
    }

    /// Two commits of outputs: events e1 to e3 (ids 1-3), then e4 and e5 (ids 4, 5).
    fn commit_segments(store: &mut SledStore) {
        for events in [&["e1", "e2", "e3"][..], &["e4", "e5"]] {
            let outbox = events.iter().map(|event| output(event)).collect();
            store
                .commit(Commit {
                    outbox,
                    ..Commit::default()
                })
                .unwrap();
        }
    }

    #[test]
    fn the_outbox_from_an_id_is_the_outbox_without_the_items_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path(), None).unwrap();
        commit_segments(&mut store);
        commit_segments(&mut store);
        // Updates in both segments' ways, and one item removed.
        let items: Vec<OutboxItem> = store.outbox().map(Result::unwrap).collect();
        let updates: Vec<OutboxItem> = [0, 2, 4, 7]
            .into_iter()
            .map(|index| {
                let mut item = items[index].clone();
                item.status = OutboxStatus::Sent;
                item
            })
            .collect();
        let mut outbox = store.outbox_store().unwrap();
        outbox.update_outbox(&updates).unwrap();
        outbox.remove_outbox(&[6]).unwrap();
        let whole: Vec<OutboxItem> = outbox.outbox().map(Result::unwrap).collect();
        assert_eq!(whole.len(), 9);
        for first in 0..=12 {
            let from: Vec<OutboxItem> = outbox.outbox_from(first).map(Result::unwrap).collect();
            let expected: Vec<OutboxItem> = whole
                .iter()
                .filter(|item| item.id >= first)
                .cloned()
                .collect();
            assert_eq!(from, expected, "from {first}");
        }
    }

    #[test]
    fn an_updated_outbox_item_replaces_its_copy_in_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let pending = OutboxStatus::Pending;
        let sent = OutboxStatus::Sent;
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            commit_segments(&mut store);
            let items: Vec<OutboxItem> = store.outbox().map(Result::unwrap).collect();
            // The second of the first segment fails once, then goes; the first of the
            // second goes at once; the last fails.
            for (index, status, attempts) in [(1, pending, 1), (1, sent, 2), (3, sent, 1)] {
                let mut item = items[index].clone();
                item.status = status;
                item.attempts = attempts;
                store
                    .outbox_store()
                    .unwrap()
                    .update_outbox(&[item])
                    .unwrap();
            }
            let mut last = items[4].clone();
            last.attempts = 1;
            last.error = Some("refused".to_owned());
            store
                .outbox_store()
                .unwrap()
                .update_outbox(&[last])
                .unwrap();
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path(), None).unwrap();
        let event = |name: &str| name.to_owned();
        assert_eq!(
            outbox_events(&store),
            [
                (1, event("e1"), pending, 0),
                (2, event("e2"), sent, 2),
                (3, event("e3"), pending, 0),
                (4, event("e4"), sent, 1),
                (5, event("e5"), pending, 1),
            ]
        );
        let last = store.outbox().last().unwrap().unwrap();
        assert_eq!(last.error.as_deref(), Some("refused"));
    }

    #[test]
    fn pruning_removes_picked_items_folds_updates_in_and_never_reuses_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let (pending, sent) = (OutboxStatus::Pending, OutboxStatus::Sent);
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            commit_segments(&mut store);
            let items: Vec<OutboxItem> = store.outbox().map(Result::unwrap).collect();
            // e1, e2 and e4 are sent; e5 failed once.
            for index in [0, 1, 3] {
                let mut item = items[index].clone();
                item.status = sent;
                item.attempts = 1;
                store
                    .outbox_store()
                    .unwrap()
                    .update_outbox(&[item])
                    .unwrap();
            }
            let mut failed = items[4].clone();
            failed.attempts = 1;
            store
                .outbox_store()
                .unwrap()
                .update_outbox(&[failed])
                .unwrap();

            let pruned = store
                .prune_outbox(&|item| item.status == sent && item.event != "e4")
                .unwrap();
            assert_eq!(
                pruned,
                Pruned {
                    removed: 2,
                    kept: 3
                }
            );
            store.flush().unwrap();
        }
        let mut store = SledStore::open(dir.path(), None).unwrap();
        let event = |name: &str| name.to_owned();
        assert_eq!(
            outbox_events(&store),
            [
                (3, event("e3"), pending, 0),
                (4, event("e4"), sent, 1),
                (5, event("e5"), pending, 1),
            ]
        );
        // Every update was folded into its segment.
        assert_eq!(store.data.scan_prefix([OUTBOX_UPDATE]).count(), 0);

        // With every item gone, new ones still get new ids, after a reopen too.
        let pruned = store.prune_outbox(&|_| true).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                removed: 3,
                kept: 0
            }
        );
        assert_eq!(store.data.scan_prefix([OUTBOX]).count(), 0);
        store.flush().unwrap();
        drop(store);
        let mut store = SledStore::open(dir.path(), None).unwrap();
        store
            .commit(Commit {
                outbox: vec![output("e6")],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(outbox_events(&store), [(6, event("e6"), pending, 0)]);
        let nothing = store.prune_outbox(&|_| false).unwrap();
        assert_eq!(
            nothing,
            Pruned {
                removed: 0,
                kept: 1
            }
        );
    }

    #[test]
    fn removed_items_go_from_their_segments_and_their_ids_are_never_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let event = |name: &str| name.to_owned();
        {
            let mut store = SledStore::open(dir.path(), None).unwrap();
            commit_segments(&mut store);
            // e2 failed once (an update under `u`), e3 too: e3's update stays.
            let items: Vec<OutboxItem> = store.outbox().map(Result::unwrap).collect();
            let updates: Vec<OutboxItem> = [1, 2]
                .into_iter()
                .map(|index| {
                    let mut item = items[index].clone();
                    item.attempts = 1;
                    item
                })
                .collect();
            let mut outbox = store.outbox_store().unwrap();
            outbox.update_outbox(&updates).unwrap();
            // e2 from the first segment, the whole second one (e4, e5), and an id
            // that is none.
            assert_eq!(outbox.remove_outbox(&[2, 4, 5, 9]).unwrap(), 3);
            assert_eq!(outbox.remove_outbox(&[]).unwrap(), 0);
            assert_eq!(
                outbox_events(&store),
                [
                    (1, event("e1"), OutboxStatus::Pending, 0),
                    (3, event("e3"), OutboxStatus::Pending, 1),
                ]
            );
            assert_eq!(store.data.scan_prefix([OUTBOX_UPDATE]).count(), 1);
            store.flush().unwrap();
        }
        // The last segment is gone, yet the next id is after every removed one.
        let mut store = SledStore::open(dir.path(), None).unwrap();
        store
            .commit(Commit {
                outbox: vec![output("e6")],
                ..Commit::default()
            })
            .unwrap();
        let ids: Vec<u64> = outbox_events(&store).iter().map(|item| item.0).collect();
        assert_eq!(ids, [1, 3, 6]);
    }

    #[test]
    fn outbox_items_stored_one_per_key_or_in_plain_segments_are_read_and_counted_on() {
        let dir = tempfile::tempdir().unwrap();
        let item = |id: u64| {
            OutboxItem::new(
                id,
                format!("old{id}"),
                "h".to_owned(),
                OutboxPayload::from_output("c", "p"),
                5,
            )
        };
        {
            // As data dirs written before segments hold them (1 and 2), and those
            // written before segments were compressed (3 and 4).
            let store = SledStore::open(dir.path(), None).unwrap();
            for id in [1, 2] {
                let key = outbox_key(OUTBOX, id);
                store.data.insert(key, to_json(&item(id)).unwrap()).unwrap();
            }
            let plain = to_json(&vec![item(3), item(4)]).unwrap();
            store.data.insert(outbox_key(OUTBOX, 3), plain).unwrap();
            store.flush().unwrap();
        }
        let mut store = SledStore::open(dir.path(), None).unwrap();
        store
            .commit(Commit {
                outbox: vec![output("new")],
                ..Commit::default()
            })
            .unwrap();
        let ids: Vec<(u64, String)> = outbox_events(&store)
            .into_iter()
            .map(|(id, event, ..)| (id, event))
            .collect();
        let expected: Vec<(u64, String)> = (1..=4)
            .map(|id| (id, format!("old{id}")))
            .chain([(5, "new".to_owned())])
            .collect();
        assert_eq!(ids, expected);
        // The new segment is compressed; the old values stay as they were.
        let new = store.data.get(outbox_key(OUTBOX, 5)).unwrap().unwrap();
        assert!(!new.starts_with(b"[") && !new.starts_with(b"{"));
        let old = store.data.get(outbox_key(OUTBOX, 3)).unwrap().unwrap();
        assert!(old.starts_with(b"["));
    }
}
