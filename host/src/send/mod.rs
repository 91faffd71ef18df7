//! Sending the outbox (`spark outbox send`): the bookkeeping that makes each outbox
//! item go out once and never vanish, whatever carries it. "Sending" is this; a
//! "delivery" is a handler's call with an event (see `crate::pipeline`).
//!
//! Each pending item is sent by the transport of its route (mails, or its output's
//! channel), then marked sent at once. A failure leaves it pending, with its error and
//! attempt count, for the next `outbox send`. An item whose route has no transport
//! waits, untouched, and the report says so. A crash sends again at most the items
//! that were in flight, each with its outbox id for the receiver to recognise.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;

mod mail;
mod output;

use crate::error::Error;
use crate::outbox::{OutboxItem, OutboxKind, OutboxPayload, OutboxStatus};
use crate::settings::TenantSettings;
use crate::store::{Pruned, Store};
use crate::time::wall_clock_ms;
use crate::transport::Transport;

use self::mail::MailSender;
use self::output::OutputSender;

/// Where each route of the outbox goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations {
    /// The transport of every mail.
    pub mails: Option<Transport>,
    /// The transport of each output channel.
    pub outputs: BTreeMap<String, Transport>,
}

impl Destinations {
    /// The tenant's `[mails] transport` and `[outputs]`, each replaced by the one given
    /// here, if any. Every transport is checked to carry what it is routed.
    pub fn new(
        settings: &TenantSettings,
        mails: Option<Transport>,
        outputs: impl IntoIterator<Item = (String, Transport)>,
    ) -> Result<Self, Error> {
        let mut destinations = Destinations {
            mails: settings
                .mail
                .transport
                .as_deref()
                .map(str::parse)
                .transpose()?,
            outputs: settings
                .outputs
                .iter()
                .map(|(channel, transport)| Ok((channel.clone(), transport.parse()?)))
                .collect::<Result<_, Error>>()?,
        };
        destinations.mails = mails.or(destinations.mails);
        destinations.outputs.extend(outputs);
        if let Some(transport) = &destinations.mails {
            transport.check_carries(OutboxKind::Mail)?;
        }
        for transport in destinations.outputs.values() {
            transport.check_carries(OutboxKind::Output)?;
        }
        Ok(destinations)
    }

    /// Whether nothing at all can be sent.
    pub fn is_empty(&self) -> bool {
        self.mails.is_none() && self.outputs.is_empty()
    }

    /// Whether some route goes to stdout.
    pub fn prints(&self) -> bool {
        let stdout = Some(&Transport::Stdout);
        self.mails.as_ref() == stdout || self.outputs.values().any(|t| Some(t) == stdout)
    }

    fn transport(&self, route: &Route) -> Option<&Transport> {
        match route {
            Route::Mails => self.mails.as_ref(),
            Route::Channel(channel) => self.outputs.get(channel),
        }
    }
}

/// What an outbox item is routed by: being a mail, or its output's channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    Mails,
    Channel(String),
}

impl Route {
    fn of(item: &OutboxItem) -> Self {
        match &item.payload {
            OutboxPayload::Mail(_) => Route::Mails,
            OutboxPayload::Output(output) => Route::Channel(output.channel.clone()),
        }
    }

    /// What its items are.
    fn kind(&self) -> OutboxKind {
        match self {
            Route::Mails => OutboxKind::Mail,
            Route::Channel(_) => OutboxKind::Output,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Mails => f.write_str("mails"),
            Route::Channel(channel) => write!(f, "outputs of channel `{channel}`"),
        }
    }
}

/// What `send_outbox` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SendReport {
    /// Items sent now.
    pub sent: u64,
    /// Items that failed now; they stay pending.
    pub failed: u64,
    /// Pending items left alone: no transport for their route.
    pub waiting: u64,
    /// Pending items not tried because their route failed [`GIVE_UP_AFTER`] times in
    /// a row in this run.
    pub skipped: u64,
    /// (outbox id, why) for each failure; not part of `--json`.
    #[serde(skip)]
    pub problems: Vec<(u64, String)>,
    /// How many items of each route without a transport wait; not part of `--json`.
    #[serde(skip)]
    pub unrouted: BTreeMap<Route, u64>,
    /// The routes given up in this run, with how many items each left untried; not
    /// part of `--json`.
    #[serde(skip)]
    pub given_up: BTreeMap<Route, u64>,
}

/// Failures in a row after which a run stops trying a route: its transport looks down
/// (an unreachable server costs a timeout per item, 30 s each), and the rest of its
/// items wait, untried, for the next `outbox send`.
pub const GIVE_UP_AFTER: u32 = 5;

/// A transport made ready for one kind of item.
enum Sender {
    Mail(MailSender),
    Output(OutputSender),
}

impl Sender {
    /// A sender for items of `kind`, keeping up to `connections` open at once.
    fn new(kind: OutboxKind, transport: &Transport, connections: usize) -> Result<Self, Error> {
        Ok(match kind {
            OutboxKind::Mail => Sender::Mail(MailSender::new(transport, connections)?),
            OutboxKind::Output => Sender::Output(OutputSender::new(transport, connections)?),
        })
    }

    fn send(&self, tenant: &str, item: &OutboxItem) -> Result<(), String> {
        match (self, &item.payload) {
            (Sender::Mail(sender), OutboxPayload::Mail(mail)) => sender.send(tenant, item.id, mail),
            (Sender::Output(sender), OutboxPayload::Output(output)) => {
                sender.send(tenant, item, output)
            }
            // A sender is made for a route's kind, and items are grouped by route.
            _ => unreachable!("an item of one kind went to the sender of the other"),
        }
    }

    /// Whether items must go one at a time, in id order: printed ones must not mix.
    fn in_order(&self) -> bool {
        matches!(
            self,
            Sender::Mail(MailSender::Stdout) | Sender::Output(OutputSender::Stdout)
        )
    }
}

/// How many items `outbox send` has in flight at once by default. Sending one waits on
/// the network (an SMTP exchange with lettre waits ~40 ms for a delayed ACK, as it
/// does not set TCP_NODELAY), so a few at once multiply the rate; more would crowd a
/// receiver that limits connections per client.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Sends every pending outbox item of `tenant` whose route has a transport in
/// `destinations`, up to `concurrency` at once (one at a time, in id order, when
/// anything goes to stdout), marking each sent as soon as it went out, or recording its
/// error (it stays pending). Every transport needed is made ready (a directory created,
/// say) before the first item goes. `progress` is told of each item sent or failed,
/// with the number of items to send.
pub(crate) fn send_outbox(
    tenant: &str,
    store: &mut dyn Store,
    destinations: &Destinations,
    concurrency: usize,
    progress: &mut dyn FnMut(&SendReport, usize),
) -> Result<SendReport, Error> {
    let pending: Vec<OutboxItem> = store
        .outbox()
        .filter(|item| {
            item.as_ref()
                .map_or(true, |item| item.status == OutboxStatus::Pending)
        })
        .collect::<Result<_, _>>()?;
    let mut report = SendReport::default();
    let plan = Plan::new(pending, destinations, concurrency, &mut report)?;

    // Workers send; this thread marks each result as it comes, so the store has
    // one writer and an item is marked right after it went out.
    let (results, received) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..plan.workers(concurrency) {
            let results = results.clone();
            let plan = &plan;
            scope.spawn(move || plan.work(tenant, &results));
        }
        drop(results);
        for (index, result) in received {
            let (route, item) = &plan.items[index];
            let Some(result) = result else {
                report.skipped += 1;
                *report
                    .given_up
                    .entry(plan.routes[*route].0.clone())
                    .or_default() += 1;
                continue;
            };
            let mut item = item.clone();
            settle(&mut item, result, &mut report);
            // Marked at once: a crash after this line never sends the item again.
            store.update_outbox(&item)?;
            progress(&report, plan.items.len());
        }
        Ok::<_, Error>(())
    })?;
    report.problems.sort_unstable();
    store.flush()?;
    Ok(report)
}

/// Removes the sent items of the outbox that were sent before `sent_before_ms`
/// (wall-clock unix ms); pending ones always stay. Their ids are not given again.
pub(crate) fn prune_outbox(store: &mut dyn Store, sent_before_ms: i64) -> Result<Pruned, Error> {
    let pruned = store.prune_outbox(&|item| {
        item.status == OutboxStatus::Sent
            && item.sent_at_ms.is_some_and(|sent| sent < sent_before_ms)
    })?;
    store.flush()?;
    Ok(pruned)
}

/// What a run sends: each route that has a transport, with its sender, and each item
/// to send with the index of its route.
struct Plan {
    routes: Vec<(Route, Sender)>,
    items: Vec<(usize, OutboxItem)>,
    /// The next item to send, for the workers to share.
    next: AtomicUsize,
    /// Per route, counted by the workers, so that the next item of a route that just
    /// failed for the fifth time in a row is not even begun.
    failures_in_a_row: Vec<AtomicU32>,
}

/// What a worker says of one item: `None` when it was not tried (its route was given
/// up), else how sending it went.
type Attempt = (usize, Option<Result<(), String>>);

impl Plan {
    /// Makes a sender for each route of `pending` that has a transport; the items of the
    /// others are counted in `report` as waiting.
    fn new(
        pending: Vec<OutboxItem>,
        destinations: &Destinations,
        connections: usize,
        report: &mut SendReport,
    ) -> Result<Self, Error> {
        let mut routes: Vec<(Route, Sender)> = Vec::new();
        let mut items = Vec::new();
        for item in pending {
            let route = Route::of(&item);
            if let Some(index) = routes.iter().position(|(known, _)| *known == route) {
                items.push((index, item));
            } else if let Some(transport) = destinations.transport(&route) {
                let sender = Sender::new(route.kind(), transport, connections)?;
                routes.push((route, sender));
                items.push((routes.len() - 1, item));
            } else {
                report.waiting += 1;
                *report.unrouted.entry(route).or_default() += 1;
            }
        }
        let failures_in_a_row = routes.iter().map(|_| AtomicU32::new(0)).collect();
        Ok(Plan {
            routes,
            items,
            next: AtomicUsize::new(0),
            failures_in_a_row,
        })
    }

    /// How many workers send at once: one when anything is printed, else `concurrency`
    /// (no more than there are items).
    fn workers(&self, concurrency: usize) -> usize {
        if self.routes.iter().any(|(_, sender)| sender.in_order()) {
            1
        } else {
            concurrency.clamp(1, self.items.len().max(1))
        }
    }

    /// A worker: takes the next item until none is left, and says how each went.
    fn work(&self, tenant: &str, results: &mpsc::Sender<Attempt>) {
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let Some((route, item)) = self.items.get(index) else {
                return;
            };
            let failures = &self.failures_in_a_row[*route];
            let result = if failures.load(Ordering::Relaxed) >= GIVE_UP_AFTER {
                None
            } else {
                let result = self.routes[*route].1.send(tenant, item);
                if result.is_ok() {
                    failures.store(0, Ordering::Relaxed);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                Some(result)
            };
            if results.send((index, result)).is_err() {
                return; // the marking thread stopped on a store error
            }
        }
    }
}

/// Records on `item` and in `report` how sending it went.
fn settle(item: &mut OutboxItem, result: Result<(), String>, report: &mut SendReport) {
    item.attempts += 1;
    match result {
        Ok(()) => {
            item.status = OutboxStatus::Sent;
            item.error = None;
            item.sent_at_ms = Some(wall_clock_ms());
            report.sent += 1;
        }
        Err(why) => {
            item.error = Some(why.clone());
            report.failed += 1;
            report.problems.push((item.id, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_transports_replace_the_settings_route_by_route() {
        let mut settings = TenantSettings::default();
        settings.mail.transport = Some("file:/srv/mails".to_owned());
        settings.outputs = BTreeMap::from([
            ("seen".to_owned(), "file:/srv/seen".to_owned()),
            ("audit".to_owned(), "stdout".to_owned()),
        ]);
        let destinations = Destinations::new(
            &settings,
            None,
            [("seen".to_owned(), "http://localhost/seen".parse().unwrap())],
        )
        .unwrap();
        assert_eq!(
            destinations.mails,
            Some(Transport::File("/srv/mails".into()))
        );
        assert_eq!(
            destinations.transport(&Route::Channel("seen".to_owned())),
            Some(&Transport::Http("http://localhost/seen".to_owned()))
        );
        assert_eq!(
            destinations.transport(&Route::Channel("audit".to_owned())),
            Some(&Transport::Stdout)
        );
        assert_eq!(
            destinations.transport(&Route::Channel("other".to_owned())),
            None
        );
        assert!(
            Destinations::new(&TenantSettings::default(), None, [])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_transport_that_cannot_carry_its_route_is_refused() {
        let http = "http://localhost/hook".parse().unwrap();
        let error = Destinations::new(&TenantSettings::default(), Some(http), []).unwrap_err();
        assert!(
            error.to_string().contains("HTTP carries outputs"),
            "{error}"
        );
        let smtp = "smtp://localhost:25".parse().unwrap();
        let error = Destinations::new(
            &TenantSettings::default(),
            None,
            [("seen".to_owned(), smtp)],
        )
        .unwrap_err();
        assert!(error.to_string().contains("SMTP carries mails"), "{error}");
    }
}
