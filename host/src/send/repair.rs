//! Repairing the outbox before it is sent: cancelling items that must not go out, and
//! rendering queued mails again with the tenant's templates of now. An item keeps its
//! id either way, so a mail's Message-ID and sending each item once still hold; what
//! was sent is never touched.
//!
//! Both are split as sending is. What reads the tenant (its templates, the ledger's
//! contexts) is done where the tenant is; what writes items is done by the outbox's
//! one writer, the sender ([`OutboxSender`]), which looks again at each item as it is
//! then: in a server the sender works on a thread of its own, and an item it sent in
//! the meantime must neither be removed from the record nor written back as pending.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::OutboxSender;
use crate::error::Error;
use crate::mail::{Recomposed, Templates, recompose};
use crate::outbox::{OutboxItem, OutboxPayload, OutboxStatus};
use crate::store::{Items, OutboxStore, Store};

/// What rendering queued mails again did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rerendered {
    /// Mails whose template rendered: their subject and body are the template's now.
    pub rerendered: u64,
    /// Mails whose template did not render: they keep their subject and body, and
    /// their `render_error` says why.
    pub failed: u64,
    /// Mails without a template to render (they name none, or one the tenant no
    /// longer has): left as they are.
    pub unchanged: u64,
    /// Each mail that failed to render (its id) and why; not part of `--json`.
    #[serde(skip)]
    pub problems: Vec<(u64, String)>,
}

/// Queued mails rendered again and not yet written: made where the tenant is
/// ([`Tenant::render_outbox`](crate::Tenant::render_outbox)), written by the sender
/// ([`OutboxSender::rerender`]).
#[derive(Debug)]
pub struct Rerendering {
    /// Each mail with a template: its id, its payload rendered again, how that went.
    mails: Vec<(u64, OutboxPayload, Recomposed)>,
    unchanged: u64,
}

/// The unsent items of `ids` in `outbox` (pending, or set aside as failed), or every
/// unsent item when no ids are given. An id that names no item, or a sent one, is
/// refused, naming it.
fn unsent_items(
    outbox: Items<'_, OutboxItem>,
    ids: Option<&[u64]>,
) -> Result<Vec<OutboxItem>, Error> {
    let wanted: Option<BTreeSet<u64>> = ids.map(|ids| ids.iter().copied().collect());
    let mut found = Vec::new();
    for item in outbox {
        let item = item?;
        let sent = item.status == OutboxStatus::Sent;
        match &wanted {
            Some(wanted) if !wanted.contains(&item.id) => {}
            Some(_) if sent => return Err(Error::AlreadySent(item.id)),
            None if sent => {}
            _ => found.push(item),
        }
    }
    if let Some(missing) = wanted
        .iter()
        .flatten()
        .find(|id| !found.iter().any(|item| item.id == **id))
    {
        return Err(Error::UnknownOutboxItem(*missing));
    }
    Ok(found)
}

/// The unsent mails of `ids` (every unsent mail without ids) rendered again with
/// `templates`, each with its own context or else its event's, read from `store`'s
/// ledger. An id that names no item, a sent one or an output is refused before
/// anything is rendered.
pub(crate) fn render_again(
    store: &dyn Store,
    templates: &Templates,
    ids: Option<&[u64]>,
) -> Result<Rerendering, Error> {
    let items = unsent_items(store.outbox(), ids)?;
    if ids.is_some()
        && let Some(output) = items.iter().find(|item| item.payload.as_mail().is_none())
    {
        return Err(Error::NotAMail(output.id));
    }
    let mut rendering = Rerendering {
        mails: Vec::new(),
        unchanged: 0,
    };
    for item in items {
        let OutboxPayload::Mail(mut mail) = item.payload else {
            continue;
        };
        let event_context = match mail.context {
            Some(_) => None,
            None => store.ledger_entry(&item.event)?.map(|entry| entry.context),
        };
        match recompose(&mut mail, event_context.as_deref(), templates) {
            Recomposed::NoTemplate => rendering.unchanged += 1,
            outcome => rendering
                .mails
                .push((item.id, OutboxPayload::Mail(mail), outcome)),
        }
    }
    Ok(rendering)
}

/// Removes the items of `ids`, none of which may have been sent (`strict`: an id that
/// names no item or a sent one is refused and nothing changes), or those of them that
/// are still unsent (not `strict`). How many.
fn cancel(store: &mut dyn OutboxStore, ids: &[u64], strict: bool) -> Result<u64, Error> {
    let unsent: Vec<u64> = if strict {
        unsent_items(store.outbox(), Some(ids))?
            .iter()
            .map(|item| item.id)
            .collect()
    } else {
        let wanted: BTreeSet<u64> = ids.iter().copied().collect();
        let mut unsent = Vec::new();
        for item in store.outbox() {
            let item = item?;
            if wanted.contains(&item.id) && item.status != OutboxStatus::Sent {
                unsent.push(item.id);
            }
        }
        unsent
    };
    store.remove_outbox(&unsent)
}

impl OutboxSender {
    /// Removes outbox items that were never sent (pending, or set aside as failed), for
    /// good; how many. An id that names no item, or a sent item, is refused, naming it,
    /// and nothing changes.
    pub fn cancel(&mut self, ids: &[u64]) -> Result<u64, Error> {
        cancel(&mut *self.store, ids, true)
    }

    /// Removes those of the items of `ids` that are still unsent, passing the others by
    /// (for the items of forgotten events, some of which may have gone out meanwhile);
    /// how many.
    pub fn cancel_unsent(&mut self, ids: &[u64]) -> Result<u64, Error> {
        cancel(&mut *self.store, ids, false)
    }

    /// Writes mails rendered again ([`Tenant::render_outbox`](crate::Tenant::render_outbox))
    /// over the queued ones, keeping each item's id and sending state, all at once and
    /// durably. A mail sent since it was rendered went out as it was and is left alone
    /// (it is not counted).
    pub fn rerender(&mut self, rendering: Rerendering) -> Result<Rerendered, Error> {
        let mut report = Rerendered {
            unchanged: rendering.unchanged,
            ..Rerendered::default()
        };
        let mut rendered: BTreeMap<u64, (OutboxPayload, Recomposed)> = rendering
            .mails
            .into_iter()
            .map(|(id, payload, outcome)| (id, (payload, outcome)))
            .collect();
        let mut updated = Vec::new();
        for item in self.store.outbox() {
            let mut item = item?;
            let Some((payload, outcome)) = rendered.remove(&item.id) else {
                continue;
            };
            if item.status == OutboxStatus::Sent {
                continue;
            }
            item.payload = payload;
            match outcome {
                Recomposed::Rendered => report.rerendered += 1,
                Recomposed::Failed(why) => {
                    report.failed += 1;
                    report.problems.push((item.id, why));
                }
                Recomposed::NoTemplate => report.unchanged += 1,
            }
            updated.push(item);
        }
        if !updated.is_empty() {
            super::update_outbox(&mut *self.store, &updated)?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::ComposedMail;
    use crate::store::{Commit, NewOutboxItem, NewPayload, SledStore};
    use crate::wasm::WasmEngine;

    fn mail(subject: &str) -> NewOutboxItem {
        NewOutboxItem {
            event: "hello_1".to_owned(),
            handler: "h".to_owned(),
            payload: NewPayload::Ready(Box::new(OutboxPayload::Mail(ComposedMail {
                to: vec!["ada@example.com".to_owned()],
                subject: subject.to_owned(),
                body: "Fallback".to_owned(),
                template: Some("hello".to_owned()),
                ..ComposedMail::default()
            }))),
            created_at_ms: 5,
        }
    }

    fn output() -> NewOutboxItem {
        NewOutboxItem {
            event: "hello_1".to_owned(),
            handler: "h".to_owned(),
            payload: NewPayload::Ready(Box::new(OutboxPayload::from_output("c", "{}"))),
            created_at_ms: 5,
        }
    }

    /// A store with mails 1 and 2, an output 3 and a mail 4, item 2 sent; the ledger
    /// holds their event.
    fn store() -> SledStore {
        let mut store = SledStore::temporary().unwrap();
        store
            .commit(Commit {
                ledger: vec![
                    serde_json::from_value(serde_json::json!({
                        "key": "hello_1",
                        "group": "hello",
                        "created_at_ms": 5,
                        "context": r#"{"name": "Ada"}"#,
                    }))
                    .unwrap(),
                ],
                outbox: vec![mail("one"), mail("two"), output(), mail("four")],
                ..Commit::default()
            })
            .unwrap();
        let mut sent = store.outbox().nth(1).unwrap().unwrap();
        sent.status = OutboxStatus::Sent;
        store
            .outbox_store()
            .unwrap()
            .update_outbox(&[sent])
            .unwrap();
        store
    }

    fn sender(store: &SledStore) -> OutboxSender {
        OutboxSender::new("t", store.outbox_store().unwrap())
    }

    fn ids(store: &SledStore) -> Vec<u64> {
        store.outbox().map(|item| item.unwrap().id).collect()
    }

    #[test]
    fn cancelling_refuses_unknown_and_sent_items_and_changes_nothing_then() {
        let store = store();
        let mut sender = sender(&store);
        assert!(matches!(
            sender.cancel(&[1, 9]),
            Err(Error::UnknownOutboxItem(9))
        ));
        assert!(matches!(sender.cancel(&[1, 2]), Err(Error::AlreadySent(2))));
        assert_eq!(ids(&store), [1, 2, 3, 4]);
        assert_eq!(sender.cancel(&[1, 3]).unwrap(), 2);
        assert_eq!(ids(&store), [2, 4]);
        // Lenient: the sent one and the unknown one are passed by.
        assert_eq!(sender.cancel_unsent(&[2, 4, 9]).unwrap(), 1);
        assert_eq!(ids(&store), [2]);
    }

    #[test]
    fn rendering_again_keeps_ids_and_sending_state() {
        let store = store();
        let engine = WasmEngine::new(None).unwrap();
        let templates =
            Templates::new(&engine, [("hello".to_owned(), "Hi {{ name }}".to_owned())]).unwrap();
        assert!(matches!(
            render_again(&store, &templates, Some(&[3])),
            Err(Error::NotAMail(3))
        ));
        assert!(matches!(
            render_again(&store, &templates, Some(&[2])),
            Err(Error::AlreadySent(2))
        ));
        let rendering = render_again(&store, &templates, None).unwrap();
        let report = sender(&store).rerender(rendering).unwrap();
        assert_eq!(
            (report.rerendered, report.failed, report.unchanged),
            (2, 0, 0)
        );
        let subjects: Vec<(u64, String, OutboxStatus)> = store
            .outbox()
            .filter_map(|item| {
                let item = item.unwrap();
                let mail = item.payload.as_mail()?.clone();
                Some((item.id, mail.subject, item.status))
            })
            .collect();
        assert_eq!(
            subjects,
            [
                (1, "Hi Ada".to_owned(), OutboxStatus::Pending),
                (2, "two".to_owned(), OutboxStatus::Sent),
                (4, "Hi Ada".to_owned(), OutboxStatus::Pending),
            ]
        );
    }

    #[test]
    fn a_mail_sent_after_it_was_rendered_is_left_as_it_went() {
        let store = store();
        let engine = WasmEngine::new(None).unwrap();
        let templates =
            Templates::new(&engine, [("hello".to_owned(), "Hi {{ name }}".to_owned())]).unwrap();
        let rendering = render_again(&store, &templates, Some(&[1])).unwrap();
        let mut first = store.outbox().next().unwrap().unwrap();
        first.status = OutboxStatus::Sent;
        store
            .outbox_store()
            .unwrap()
            .update_outbox(&[first])
            .unwrap();
        let report = sender(&store).rerender(rendering).unwrap();
        assert_eq!(report, Rerendered::default());
        let first = store.outbox().next().unwrap().unwrap();
        assert_eq!(first.payload.as_mail().unwrap().subject, "one");
        assert_eq!(first.status, OutboxStatus::Sent);
    }
}
