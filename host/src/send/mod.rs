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
use std::sync::mpsc;

mod mail;
mod output;
mod plan;
mod repair;

use crate::error::Error;
use crate::outbox::{OutboxItem, OutboxKind, OutboxPayload, OutboxStatus};
use crate::settings::{MailSettings, TenantSettings};
use crate::store::{OutboxStore, Pruned, Store};
use crate::time::wall_clock_ms;
use crate::transport::Transport;

use self::mail::MailSender;
use self::output::OutputSender;
pub use self::plan::MARK_BATCH;
use self::plan::Plan;
pub(crate) use self::repair::render_again;
pub use self::repair::{Rerendered, Rerendering};

/// Where each route of the outbox goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations {
    /// The transport of every mail.
    pub mails: Option<Transport>,
    /// The transport of each output channel.
    pub outputs: BTreeMap<String, Transport>,
    /// The sender and reply address of mails that name none: the tenant's, as they are
    /// when the mails are sent.
    pub mail_defaults: MailSettings,
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
            mail_defaults: settings.mail.clone(),
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

    pub(crate) fn transport(&self, route: &Route) -> Option<&Transport> {
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
    pub(crate) fn of(item: &OutboxItem) -> Self {
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
    /// Items that failed now through their route (a refused connection, a timeout, a
    /// temporary refusal); they stay pending.
    pub failed: u64,
    /// Items set aside now (status `failed`): their own fault, not the route's (an
    /// address that can never be valid, a receiver's permanent refusal). `outbox retry`
    /// makes them pending again.
    pub parked: u64,
    /// Pending items left alone: no transport for their route.
    pub waiting: u64,
    /// Pending items not tried because their route failed [`GIVE_UP_AFTER`] times in
    /// a row in this run (only the route's own failures count).
    pub skipped: u64,
    /// Each failure, in id order; not part of `--json`.
    #[serde(skip)]
    pub problems: Vec<SendProblem>,
    /// How many items of each route without a transport wait; not part of `--json`.
    #[serde(skip)]
    pub unrouted: BTreeMap<Route, u64>,
    /// The routes given up in this run, with how many items each left untried; not
    /// part of `--json`.
    #[serde(skip)]
    pub given_up: BTreeMap<Route, u64>,
}

/// An item that failed to go out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SendProblem {
    /// Its outbox id.
    pub id: u64,
    pub why: String,
    /// Whether it was set aside (its own fault) rather than left pending.
    pub parked: bool,
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
    /// A sender for the items of `route`, keeping up to `connections` open at once.
    fn new(
        route: &Route,
        transport: &Transport,
        connections: usize,
        destinations: &Destinations,
    ) -> Result<Self, Error> {
        Ok(match route.kind() {
            OutboxKind::Mail => Sender::Mail(MailSender::new(
                transport,
                connections,
                destinations.mail_defaults.clone(),
            )?),
            OutboxKind::Output => Sender::Output(OutputSender::new(transport, connections)?),
        })
    }

    fn send(&self, tenant: &str, item: &OutboxItem) -> Result<(), Failure> {
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
            Sender::Mail(MailSender::Stdout { .. }) | Sender::Output(OutputSender::Stdout)
        )
    }
}

/// Why sending one item failed, and whether it is the item's own fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) why: String,
    /// Sending it again will not mend it (an address that can never be valid, a
    /// receiver's permanent refusal of this item): it is set aside, and does not count
    /// against its route. Otherwise the route failed (a connection refused, a timeout,
    /// a temporary refusal): the item stays pending.
    pub(crate) permanent: bool,
}

impl Failure {
    /// A failure of the route: the item stays pending.
    pub(crate) fn route(why: String) -> Self {
        Failure {
            why,
            permanent: false,
        }
    }

    /// A failure of the item itself: it is set aside.
    pub(crate) fn item(why: String) -> Self {
        Failure {
            why,
            permanent: true,
        }
    }
}

/// How many items `outbox send` has in flight at once by default. Sending one waits on
/// the network (an SMTP exchange with lettre waits ~40 ms for a delayed ACK, as it
/// does not set TCP_NODELAY), so a few at once multiply the rate; more would crowd a
/// receiver that limits connections per client.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// A run of [`send_outbox`]: its report, and the id before which every item is
/// settled for its destinations.
#[derive(Debug)]
struct Sent {
    report: SendReport,
    /// Every item before this id is sent, set aside, or waiting for a route the
    /// destinations have no transport for: the next run through the same
    /// destinations may start here.
    settled_below: u64,
}

/// Sends every pending outbox item of `tenant` from id `from` on (those before are
/// known to be settled for these destinations) whose route has a transport in
/// `destinations`, up to `concurrency` at once (one at a time, in id order, when
/// anything goes to stdout), marking each as soon as it went out: sent, failed (it stays
/// pending, with its error) or set aside (`Failed`: its own fault, not the route's).
/// Every transport needed is made ready (a directory created, say) before the first
/// item goes. `progress` is told of each item settled, with the number of items to send.
fn send_outbox(
    tenant: &str,
    store: &mut dyn OutboxStore,
    from: u64,
    destinations: &Destinations,
    concurrency: usize,
    progress: &mut dyn FnMut(&SendReport, usize),
) -> Result<Sent, Error> {
    // Nothing goes out that could not be marked.
    store.check_space()?;
    // After the last item read, if none is left pending.
    let mut settled_below = from;
    let mut pending: Vec<OutboxItem> = Vec::new();
    for item in store.outbox_from(from) {
        let item = item?;
        settled_below = settled_below.max(item.id + 1);
        if item.status == OutboxStatus::Pending {
            pending.push(item);
        }
    }
    let mut report = SendReport::default();
    let plan = Plan::new(pending, concurrency, &mut report, |route| {
        destinations
            .transport(route)
            .map(|transport| Sender::new(route, transport, concurrency, destinations))
            .transpose()
    })?;
    if !plan.items.is_empty() {
        // Nothing goes out before the commit that made it is durable: a server answers
        // a group once it is flushed, and may send its mails before then (a crash in
        // between would run the group again, and make its mails again under new ids).
        store.flush()?;
    }

    // Workers send; this thread marks the results in small batches, so the store has
    // one writer and the items sent but not yet marked stay within the plan's window.
    let (results, received) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..plan.workers {
            let results = results.clone();
            let plan = &plan;
            scope.spawn(move || plan.work(tenant, &results));
        }
        drop(results);
        let mut batch = Vec::with_capacity(MARK_BATCH);
        while let Ok(first) = received.recv() {
            let mut next = Some(first);
            while let Some((index, result)) = next {
                let (route, item) = &plan.items[index];
                match result {
                    None => {
                        settled_below = settled_below.min(item.id);
                        report.skipped += 1;
                        *report
                            .given_up
                            .entry(plan.routes[*route].0.clone())
                            .or_default() += 1;
                    }
                    Some(result) => {
                        let mut item = item.clone();
                        settle(&mut item, result, &mut report);
                        if item.status == OutboxStatus::Pending {
                            settled_below = settled_below.min(item.id);
                        }
                        batch.push(item);
                    }
                }
                next = if batch.len() < MARK_BATCH {
                    received.try_recv().ok()
                } else {
                    None
                };
            }
            if !batch.is_empty() {
                // Marked durably before the window opens again: a crash after this
                // line never sends these items again.
                if let Err(error) = update_outbox(store, &batch) {
                    plan.stop();
                    return Err(error);
                }
                plan.marked(batch.len());
                batch.clear();
                progress(&report, plan.items.len());
            }
        }
        Ok::<_, Error>(())
    })?;
    report.problems.sort_unstable();
    store.flush()?;
    Ok(Sent {
        report,
        settled_below,
    })
}

/// A tenant's outbox, to send from a thread of its own while the tenant goes on with
/// other work ([`Tenant::outbox_sender`](crate::Tenant::outbox_sender)): a server sends
/// this way, so that a receiver that is slow or down never holds up ingest. All of a
/// tenant's sending and marking goes through one sender at a time.
///
/// It remembers how far the outbox is settled (every item before an id sent, set aside,
/// or waiting for a route without a transport), so that a send reads the items from
/// there on, not the tenant's whole history, as long as the destinations stay the same
/// and no item is made pending again through it.
pub struct OutboxSender {
    tenant: String,
    store: Box<dyn OutboxStore>,
    /// The destinations of the last send, and the id before which it left every item
    /// settled for them.
    settled: Option<(Destinations, u64)>,
}

impl OutboxSender {
    pub(crate) fn new(tenant: &str, store: Box<dyn OutboxStore>) -> Self {
        Self {
            tenant: tenant.to_owned(),
            store,
            settled: None,
        }
    }

    /// Sends the pending items, as [`Tenant::send_outbox`](crate::Tenant::send_outbox).
    pub fn send(
        &mut self,
        destinations: &Destinations,
        concurrency: usize,
        progress: &mut dyn FnMut(&SendReport, usize),
    ) -> Result<SendReport, Error> {
        let from = match &self.settled {
            Some((settled_for, below)) if settled_for == destinations => *below,
            _ => 0,
        };
        let sent = send_outbox(
            &self.tenant,
            &mut *self.store,
            from,
            destinations,
            concurrency,
            progress,
        )?;
        self.settled = Some((destinations.clone(), sent.settled_below));
        Ok(sent.report)
    }

    /// Makes failed items pending again, as
    /// [`Tenant::retry_outbox`](crate::Tenant::retry_outbox).
    pub fn retry(&mut self, ids: Option<&[u64]>) -> Result<u64, Error> {
        // Items before the settled mark may be pending again.
        self.settled = None;
        retry_failed(&mut *self.store, ids)
    }
}

/// Makes the failed items of `ids` (or all) pending again; how many. An id that is
/// not a failed item is refused before anything changes.
pub(crate) fn retry_failed(store: &mut dyn OutboxStore, ids: Option<&[u64]>) -> Result<u64, Error> {
    let failed: Vec<OutboxItem> = store
        .outbox()
        .filter(|item| {
            item.as_ref().map_or(true, |item| {
                item.status == OutboxStatus::Failed && ids.is_none_or(|ids| ids.contains(&item.id))
            })
        })
        .collect::<Result<_, _>>()?;
    if let Some(ids) = ids
        && let Some(id) = ids
            .iter()
            .find(|id| !failed.iter().any(|item| item.id == **id))
    {
        return Err(Error::NotFailed(*id));
    }
    let retried: Vec<OutboxItem> = failed
        .into_iter()
        .map(|mut item| {
            item.status = OutboxStatus::Pending;
            item
        })
        .collect();
    update_outbox(store, &retried)?;
    Ok(retried.len() as u64)
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

/// Writes the new state of `items`; one by one if together they are a change larger
/// than the tenant's journal takes (a cluster's log: each item was in a commit the log
/// took, so each fits alone). Marks are idempotent, so a part written before a refusal
/// is harmless.
pub(crate) fn update_outbox(
    store: &mut dyn OutboxStore,
    items: &[OutboxItem],
) -> Result<(), Error> {
    match store.update_outbox(items) {
        Err(Error::ChangeTooLarge(_)) if items.len() > 1 => items
            .iter()
            .try_for_each(|item| store.update_outbox(std::slice::from_ref(item))),
        written => written,
    }
}

/// Records on `item` and in `report` how sending it went.
fn settle(item: &mut OutboxItem, result: Result<(), Failure>, report: &mut SendReport) {
    item.attempts += 1;
    match result {
        Ok(()) => {
            item.status = OutboxStatus::Sent;
            item.error = None;
            item.sent_at_ms = Some(wall_clock_ms());
            report.sent += 1;
        }
        Err(failure) => {
            if failure.permanent {
                item.status = OutboxStatus::Failed;
                report.parked += 1;
            } else {
                report.failed += 1;
            }
            report.problems.push(SendProblem {
                id: item.id,
                why: failure.why.clone(),
                parked: failure.permanent,
            });
            item.error = Some(failure.why);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::outbox::OutputPayload;

    /// An outbox in memory, shared with the test: its items, how many marks it takes
    /// before it refuses every one, and how many items were read.
    #[derive(Clone, Default)]
    struct MemoryOutbox(Arc<Mutex<Memory>>);

    #[derive(Default)]
    struct Memory {
        items: Vec<OutboxItem>,
        marks_left: usize,
        read: usize,
    }

    impl MemoryOutbox {
        fn new(items: Vec<OutboxItem>, marks_left: usize) -> Self {
            Self(Arc::new(Mutex::new(Memory {
                items,
                marks_left,
                read: 0,
            })))
        }

        fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
            self.0.lock().unwrap()
        }

        /// How many items were read since the last call.
        fn read(&self) -> usize {
            std::mem::take(&mut self.memory().read)
        }

        fn status(&self, id: u64) -> OutboxStatus {
            self.memory().items[id as usize].status
        }
    }

    impl OutboxStore for MemoryOutbox {
        fn outbox(&self) -> crate::store::Items<'_, OutboxItem> {
            self.outbox_from(0)
        }
        fn outbox_from(&self, first: u64) -> crate::store::Items<'_, OutboxItem> {
            let mut memory = self.memory();
            let items: Vec<OutboxItem> = memory.items[first as usize..].to_vec();
            memory.read += items.len();
            Box::new(items.into_iter().map(Ok))
        }
        fn update_outbox(&mut self, items: &[OutboxItem]) -> Result<(), Error> {
            let mut memory = self.memory();
            if memory.marks_left == 0 {
                return Err(Error::Journal("the log elects a leader".to_owned()));
            }
            memory.marks_left -= 1;
            for item in items {
                memory.items[item.id as usize] = item.clone();
            }
            Ok(())
        }
        fn check_space(&self) -> Result<(), Error> {
            Ok(())
        }
        fn flush(&self) -> Result<(), Error> {
            Ok(())
        }
        fn remove_outbox(&mut self, _: &[u64]) -> Result<u64, Error> {
            unreachable!("sending removes nothing")
        }
    }

    /// Outputs with ids `ids`, each on the channel `channel`.
    fn outputs(ids: std::ops::Range<u64>, channel: &str) -> Vec<OutboxItem> {
        ids.map(|id| {
            let payload = OutboxPayload::Output(OutputPayload {
                channel: channel.to_owned(),
                payload: serde_json::json!({ "n": id }),
            });
            OutboxItem::new(id, format!("e{id}"), "h".to_owned(), payload, 0)
        })
        .collect()
    }

    /// Destinations that route each of `routes` (channel, transport).
    fn routed(routes: &[(&str, Transport)]) -> Destinations {
        let routes = routes
            .iter()
            .map(|(channel, transport)| ((*channel).to_owned(), transport.clone()));
        Destinations::new(&TenantSettings::default(), None, routes).unwrap()
    }

    #[test]
    fn a_mark_refused_stops_the_run_and_what_was_not_marked_stays_pending() {
        // Many more items than the window of items sent but not marked, so that the
        // workers are waiting for marks when the store refuses one: the run ends with
        // the store's error instead of waiting for ever.
        let dir = tempfile::tempdir().unwrap();
        let mut store = MemoryOutbox::new(outputs(0..10 * MARK_BATCH as u64, "seen"), 1);
        let memory = store.clone();
        let destinations = routed(&[("seen", Transport::File(dir.path().to_owned()))]);

        // On a thread of its own, so that a run that never ends fails the test.
        let (done, ended) = mpsc::channel();
        std::thread::spawn(move || {
            let sent = send_outbox("t", &mut store, 0, &destinations, 4, &mut |_, _| {});
            let _ = done.send(sent);
        });
        let sent = ended
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("the run ended");
        let error = sent.unwrap_err();
        assert!(matches!(error, Error::Journal(_)), "{error}");
        let sent = memory
            .memory()
            .items
            .iter()
            .filter(|item| item.status == OutboxStatus::Sent)
            .count();
        assert!((1..=MARK_BATCH).contains(&sent), "{sent} marked sent");
        // Sent but not marked: at most the window (the workers and a batch).
        let written = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(
            written - sent <= 4 + MARK_BATCH,
            "{written} written, {sent} marked"
        );
    }

    #[test]
    fn a_sender_reads_from_the_first_item_not_settled_and_again_from_the_start_when_it_must() {
        let dir = tempfile::tempdir().unwrap();
        let file = Transport::File(dir.path().to_owned());
        // Nothing listens on port 1: each attempt fails, and the item stays pending.
        let down = Transport::Http("http://127.0.0.1:1/hook".to_owned());
        // 0..10 on `seen`, 10..20 on `audit`, which has no transport yet.
        let mut items = outputs(0..10, "seen");
        items.extend(outputs(10..20, "audit"));
        let memory = MemoryOutbox::new(items, usize::MAX);
        let mut sender = OutboxSender::new("t", Box::new(memory.clone()));
        let seen = routed(&[("seen", file.clone())]);
        let send = |sender: &mut OutboxSender, destinations: &Destinations| {
            sender.send(destinations, 4, &mut |_, _| {}).unwrap()
        };

        let report = send(&mut sender, &seen);
        assert_eq!((report.sent, report.waiting), (10, 10));
        assert_eq!(memory.read(), 20);
        // Nothing new: nothing read (the audit items wait for a transport).
        send(&mut sender, &seen);
        assert_eq!(memory.read(), 0);
        // New items: only they are read.
        memory.memory().items.extend(outputs(20..25, "seen"));
        let report = send(&mut sender, &seen);
        assert_eq!((report.sent, memory.read()), (5, 5));

        // A transport for `audit` now: everything is looked at again, and they go.
        let both = routed(&[("seen", file.clone()), ("audit", file.clone())]);
        let report = send(&mut sender, &both);
        assert_eq!((report.sent, memory.read()), (10, 25));
        assert_eq!(memory.status(15), OutboxStatus::Sent);

        // An item whose route fails stays pending: reading starts from it next time.
        memory.memory().items.extend(outputs(25..26, "hook"));
        memory.memory().items.extend(outputs(26..30, "seen"));
        let hooked = routed(&[("seen", file.clone()), ("hook", down)]);
        let report = send(&mut sender, &hooked);
        assert_eq!((report.sent, report.failed), (4, 1));
        memory.read();
        let report = send(&mut sender, &hooked);
        assert_eq!((report.failed, memory.read()), (1, 5));
        assert_eq!(memory.status(25), OutboxStatus::Pending);

        // An item set aside, then made pending again through the sender: sent.
        memory.memory().items[3].status = OutboxStatus::Failed;
        assert_eq!(sender.retry(None).unwrap(), 1);
        let report = send(&mut sender, &hooked);
        assert_eq!(report.sent, 1);
        assert_eq!(memory.status(3), OutboxStatus::Sent);
    }

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
