//! A tenant's repairs, for an operator mending what went wrong: outbox items cancelled
//! or rendered again, dead letters discarded, events forgotten so that they come again.
//! Each loses something for good (the CLI asks for `--yes`), checks everything it is
//! given before it changes anything, and is durable when it returns.

use std::collections::BTreeSet;

use super::Tenant;
use crate::error::Error;
use crate::mail::Templates;
use crate::outbox::OutboxStatus;
use crate::routes::compile_regex;
use crate::send::{self, Rerendered, Rerendering};
use crate::store::Forgotten;

impl Tenant {
    /// Removes outbox items that were never sent (pending, or set aside as failed), for
    /// good; how many. An id that names no item, or a sent item, is refused, naming it,
    /// and nothing changes. Ids are never given again.
    pub fn cancel_outbox(&mut self, ids: &[u64]) -> Result<u64, Error> {
        self.outbox_sender()?.cancel(ids)
    }

    /// Renders queued mails again with the tenant's templates of now: those of `ids`,
    /// or every mail not sent yet (pending, or set aside). Each keeps its id (so its
    /// Message-ID) and its sending state; a mail set aside stays so until `outbox
    /// retry`. The sender and reply address need no rendering: a mail that names none
    /// gets the tenant's when it is sent. An id that names no item, a sent item or an
    /// output is refused before anything changes.
    pub fn rerender_outbox(&mut self, ids: Option<&[u64]>) -> Result<Rerendered, Error> {
        let rendering = self.render_outbox(ids)?;
        self.outbox_sender()?.rerender(rendering)
    }

    /// The reading half of [`rerender_outbox`](Self::rerender_outbox): the mails
    /// rendered again, for the tenant's sender to write
    /// ([`OutboxSender::rerender`](crate::OutboxSender::rerender)). A server, whose
    /// sender works on a thread of its own, renders here and writes there.
    pub fn render_outbox(&self, ids: Option<&[u64]>) -> Result<Rerendering, Error> {
        let templates = Templates::stored(self.modules.engine(), self.store.templates()?)?;
        send::render_again(&*self.store, &templates, ids)
    }

    /// Discards dead letters for good: those of the events `events` (each must have
    /// one, of `handler` when it is given), or every one (of `handler`) when `events`
    /// is `None`. How many. An event without one is refused, naming it, and nothing
    /// changes.
    pub fn discard_dead(
        &mut self,
        events: Option<&[String]>,
        handler: Option<&str>,
    ) -> Result<u64, Error> {
        let mut letters = Vec::new();
        for letter in self.store.dead() {
            let letter = letter?;
            let wanted = events.is_none_or(|events| events.contains(&letter.event))
                && handler.is_none_or(|handler| letter.handler == handler);
            if wanted {
                letters.push((letter.event, letter.handler));
            }
        }
        if let Some(missing) = events
            .into_iter()
            .flatten()
            .find(|event| !letters.iter().any(|(found, _)| found == *event))
        {
            return Err(Error::NoDeadLetters {
                event: missing.clone(),
                handler: handler.map(str::to_owned),
            });
        }
        self.store.discard_dead(&letters)
    }

    /// Forgets the events of `keys`, each of which must be in the ledger (an unknown
    /// one is refused, naming it, and nothing changes): each key is new again, so the
    /// next ingest, `process-sources` or `generate` that makes it delivers it afresh.
    /// Their deliveries waiting for a retry and their dead letters go too. Their outbox
    /// items stay; the ids of those not sent yet are in the answer, for the caller to
    /// cancel ([`cancel_outbox`](Self::cancel_outbox), or through the sender) if the
    /// events' effects are to come only once. Every stored record's source memos are
    /// dropped (they vouch for keys in the ledger), so the next run of a record calls
    /// its sources again.
    pub fn forget_events(&mut self, keys: &[String]) -> Result<Forgotten, Error> {
        for key in keys {
            if self.store.ledger_entry(key)?.is_none() {
                return Err(Error::UnknownEvent(key.clone()));
            }
        }
        self.forget(keys)
    }

    /// Forgets every event whose group matches `regex` (searched in the group,
    /// unanchored, as handlers' regexes are), as [`forget_events`](Self::forget_events)
    /// does; none matching forgets nothing.
    pub fn forget_group(&mut self, regex: &str) -> Result<Forgotten, Error> {
        let regex = compile_regex(regex)?;
        let mut keys = Vec::new();
        for entry in self.store.ledger() {
            let entry = entry?;
            if regex.is_match(&entry.group) {
                keys.push(entry.key);
            }
        }
        self.forget(&keys)
    }

    fn forget(&mut self, keys: &[String]) -> Result<Forgotten, Error> {
        if keys.is_empty() {
            return Ok(Forgotten::default());
        }
        let mut forgotten = self.store.forget_events(keys)?;
        let keys: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        for item in self.store.outbox() {
            let item = item?;
            if item.status != OutboxStatus::Sent && keys.contains(item.event.as_str()) {
                forgotten.unsent.push(item.id);
            }
        }
        Ok(forgotten)
    }
}
