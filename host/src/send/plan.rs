//! One `outbox send` run: which items go by which route, and the workers that send
//! them under two bounds.
//!
//! - **At most a window of items is sent but not yet marked** (the workers, that is
//!   `concurrency` or one when printing, plus [`MARK_BATCH`]): a worker takes no new item while the window is full, and the
//!   marking thread opens it again once a batch of results is durably stored. A crash
//!   therefore sends again at most that many items, whatever the transport.
//! - **A route that fails [`GIVE_UP_AFTER`] times in a row is given up** for the run.
//!   Exactly that many are tried on a dead route: until a route has sent one item, and
//!   again after any failure, no more of its items are in flight than failures are left
//!   before the limit. Only the route's own failures count (connections refused,
//!   timeouts, temporary refusals); an item's own failure (a bad address) does not, and
//!   shows the route works.

use std::sync::mpsc;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Failure, GIVE_UP_AFTER, Route, SendReport, Sender};
use crate::error::Error;
use crate::outbox::OutboxItem;

/// Results marked in one durable write, at most. A crash may send again up to this many
/// items beyond those in flight; a larger batch saves little once the write is shared.
pub const MARK_BATCH: usize = 16;

/// What a run sends: each route that has a transport, with its sender, and each item
/// to send with the index of its route.
pub(super) struct Plan {
    pub(super) routes: Vec<(Route, Sender)>,
    pub(super) items: Vec<(usize, OutboxItem)>,
    /// How many send at once.
    pub(super) workers: usize,
    /// Items taken but not yet marked, at most: the workers and a batch.
    window: usize,
    flow: Mutex<Flow>,
    /// Woken whenever a slot of the window or of a route may have opened.
    changed: Condvar,
}

/// What the workers share.
struct Flow {
    /// The next item to take.
    next: usize,
    /// Items taken whose result is not yet durably marked.
    unmarked: usize,
    routes: Vec<RouteFlow>,
    /// The marking thread stopped (the store refused a mark): no worker takes another
    /// item, and those waiting for the window stop waiting.
    stopped: bool,
}

/// How one route is doing in this run.
#[derive(Default)]
struct RouteFlow {
    /// Route failures since its last success.
    failures: u32,
    in_flight: u32,
    /// Whether an item of it went out in this run.
    proven: bool,
}

impl RouteFlow {
    fn given_up(&self) -> bool {
        self.failures >= GIVE_UP_AFTER
    }

    /// Whether another item may start: always on a route that works; on one not yet
    /// proven or failing, only while the items in flight could not take it past the
    /// give-up rule.
    fn may_start(&self) -> bool {
        (self.proven && self.failures == 0) || self.failures + self.in_flight < GIVE_UP_AFTER
    }
}

/// What a worker says of one item: `None` when it was not tried (its route was given
/// up), else how sending it went.
pub(super) type Attempt = (usize, Option<Result<(), Failure>>);

impl Plan {
    /// Makes a sender for each route of `pending` that has a transport (via `sender`);
    /// the items of the others are counted in `report` as waiting.
    pub(super) fn new(
        pending: Vec<OutboxItem>,
        concurrency: usize,
        report: &mut SendReport,
        mut sender: impl FnMut(&Route) -> Result<Option<Sender>, Error>,
    ) -> Result<Self, Error> {
        let mut routes: Vec<(Route, Sender)> = Vec::new();
        let mut items = Vec::new();
        for item in pending {
            let route = Route::of(&item);
            if let Some(index) = routes.iter().position(|(known, _)| *known == route) {
                items.push((index, item));
            } else if let Some(made) = sender(&route)? {
                routes.push((route, made));
                items.push((routes.len() - 1, item));
            } else {
                report.waiting += 1;
                *report.unrouted.entry(route).or_default() += 1;
            }
        }
        let flow = Flow {
            next: 0,
            unmarked: 0,
            routes: routes.iter().map(|_| RouteFlow::default()).collect(),
            stopped: false,
        };
        // One at a time when anything is printed, else `concurrency` (no more than
        // there are items).
        let workers = if routes.iter().any(|(_, sender)| sender.in_order()) {
            1
        } else {
            concurrency.clamp(1, items.len().max(1))
        };
        Ok(Plan {
            routes,
            items,
            workers,
            window: workers + MARK_BATCH,
            flow: Mutex::new(flow),
            changed: Condvar::new(),
        })
    }

    fn flow(&self) -> MutexGuard<'_, Flow> {
        // A worker that panicked left the counts as they were; they are still right.
        self.flow
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A worker: takes the next item while the window and its route allow, sends it,
    /// and says how it went, until no item is left.
    pub(super) fn work(&self, tenant: &str, results: &mpsc::Sender<Attempt>) {
        let mut flow = self.flow();
        loop {
            if flow.stopped {
                return;
            }
            let Some((route, item)) = self.items.get(flow.next) else {
                return;
            };
            let index = flow.next;
            let state = &flow.routes[*route];
            if state.given_up() {
                flow.next += 1;
                let _ = results.send((index, None));
                continue;
            }
            if flow.unmarked >= self.window || !state.may_start() {
                flow = self
                    .changed
                    .wait(flow)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            flow.next += 1;
            flow.unmarked += 1;
            flow.routes[*route].in_flight += 1;
            drop(flow);

            let result = self.routes[*route].1.send(tenant, item);

            flow = self.flow();
            let state = &mut flow.routes[*route];
            state.in_flight -= 1;
            match &result {
                Ok(()) => {
                    state.failures = 0;
                    state.proven = true;
                }
                // The item's own fault: the transport answered, so the route works.
                Err(failure) if failure.permanent => state.failures = 0,
                Err(_) => state.failures += 1,
            }
            self.changed.notify_all();
            let _ = results.send((index, Some(result)));
        }
    }

    /// Called by the marking thread once `count` results are durably marked: their
    /// slots of the window open again.
    pub(super) fn marked(&self, count: usize) {
        let mut flow = self.flow();
        flow.unmarked -= count;
        self.changed.notify_all();
    }

    /// Called by the marking thread when the store refused a mark (a full disk, a
    /// cluster's log electing a leader): the workers stop, those waiting for the
    /// window included, which would otherwise wait for marks that never come, and
    /// the run with them. An item sent but not marked stays pending: sent again by
    /// the next run, under the same Message-ID.
    pub(super) fn stop(&self) {
        self.flow().stopped = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_starts_no_more_items_than_the_give_up_rule_allows() {
        let fresh = RouteFlow::default();
        assert!(fresh.may_start());
        let busy = RouteFlow {
            in_flight: GIVE_UP_AFTER,
            ..RouteFlow::default()
        };
        assert!(
            !busy.may_start(),
            "an unproven route waits for its first answer"
        );
        let failing = RouteFlow {
            failures: GIVE_UP_AFTER - 1,
            in_flight: 1,
            proven: true,
        };
        assert!(!failing.may_start());
        assert!(!failing.given_up());
        let working = RouteFlow {
            failures: 0,
            in_flight: 64,
            proven: true,
        };
        assert!(working.may_start(), "a working route is not held back");
        let dead = RouteFlow {
            failures: GIVE_UP_AFTER,
            ..RouteFlow::default()
        };
        assert!(dead.given_up());
    }
}
