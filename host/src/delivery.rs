//! `spark outbox send` and `prune`: the bookkeeping that makes each outbox item go out
//! once and never vanish, whatever carries it, and the removal of sent ones.
//!
//! Each pending item is sent by the transport of its route (mails, or its output's
//! channel), then marked sent at once. A failure leaves it pending, with its error and
//! attempt count, for the next `outbox send`. An item whose route has no transport
//! waits, untouched, and the report says so. A crash sends again at most the items
//! that were in flight, each with its outbox id for the receiver to recognise.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::error::Error;
use crate::mail::MailSender;
use crate::outputs::OutputSender;
use crate::store::{OutboxItem, OutboxKind, OutboxStatus, Pruned, TenantSettings};
use crate::tenant::Tenant;
use crate::time::wall_clock_ms;
use crate::transport::Transport;

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
        if mails.is_some() {
            destinations.mails = mails;
        }
        destinations.outputs.extend(outputs);
        if let Some(transport) = &destinations.mails {
            transport.check_carries(OutboxKind::Mail)?;
        }
        for transport in destinations.outputs.values() {
            transport.check_carries(OutboxKind::Output)?;
        }
        Ok(destinations)
    }

    /// Whether nothing at all can be delivered.
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
        match item.kind {
            OutboxKind::Mail => Route::Mails,
            OutboxKind::Output => Route::Channel(
                item.data
                    .get("channel")
                    .and_then(|channel| channel.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            ),
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
    /// (outbox id, why) for each failure; not part of `--json`.
    #[serde(skip)]
    pub problems: Vec<(u64, String)>,
    /// How many items of each route without a transport wait; not part of `--json`.
    #[serde(skip)]
    pub unrouted: BTreeMap<Route, u64>,
}

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
        match self {
            Sender::Mail(sender) => sender.send(tenant, item),
            Sender::Output(sender) => sender.send(tenant, item),
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

impl Tenant {
    /// Sends every pending outbox item whose route has a transport in `destinations`,
    /// up to `concurrency` at once (one at a time, in id order, when anything goes to
    /// stdout), marking each sent as soon as it went out, or recording its error (it
    /// stays pending). Every transport needed is made ready (a directory created, say)
    /// before the first item goes. `progress` is told of each item sent or failed,
    /// with the number of items to send.
    pub fn send_outbox(
        &mut self,
        destinations: &Destinations,
        concurrency: usize,
        progress: &mut dyn FnMut(&SendReport, usize),
    ) -> Result<SendReport, Error> {
        let pending: Vec<OutboxItem> = self
            .store
            .outbox()
            .filter(|item| {
                item.as_ref()
                    .map_or(true, |item| item.status == OutboxStatus::Pending)
            })
            .collect::<Result<_, _>>()?;
        let mut report = SendReport::default();
        let mut senders = BTreeMap::new();
        let mut routed = Vec::new();
        for item in pending {
            let route = Route::of(&item);
            if !senders.contains_key(&route)
                && let Some(transport) = destinations.transport(&route)
            {
                let sender = Sender::new(item.kind, transport, concurrency)?;
                senders.insert(route.clone(), sender);
            }
            if senders.contains_key(&route) {
                routed.push((route, item));
            } else {
                report.waiting += 1;
                *report.unrouted.entry(route).or_default() += 1;
            }
        }
        let workers = if senders.values().any(Sender::in_order) {
            1
        } else {
            concurrency.clamp(1, routed.len().max(1))
        };

        // Workers send; this thread marks each result as it comes, so the store has
        // one writer and an item is marked right after it went out.
        let next = AtomicUsize::new(0);
        let (results, received) = mpsc::channel();
        let (tenant, store) = (&self.name, &mut self.store);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let results = results.clone();
                let (next, routed, senders) = (&next, &routed, &senders);
                scope.spawn(move || {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some((route, item)) = routed.get(index) else {
                            break;
                        };
                        let result = senders[route].send(tenant, item);
                        if results.send((index, result)).is_err() {
                            break; // the marking thread stopped on a store error
                        }
                    }
                });
            }
            drop(results);
            for (index, result) in received {
                let mut item = routed[index].1.clone();
                settle(&mut item, result, &mut report);
                // Marked at once: a crash after this line never sends the item again.
                store.update_outbox(&item)?;
                progress(&report, routed.len());
            }
            Ok::<_, Error>(())
        })?;
        report.problems.sort_unstable();
        store.flush()?;
        Ok(report)
    }
}

impl Tenant {
    /// Removes the sent items of the outbox that were sent before `sent_before_ms`
    /// (wall-clock unix ms); pending ones always stay. Their ids are not given again.
    /// `outbox list` and `outbox send` read the whole outbox, so a tenant that sends a
    /// lot keeps them quick by pruning.
    pub fn prune_outbox(&mut self, sent_before_ms: i64) -> Result<Pruned, Error> {
        let pruned = self.store.prune_outbox(&|item| {
            item.status == OutboxStatus::Sent
                && item.sent_at_ms.is_some_and(|sent| sent < sent_before_ms)
        })?;
        self.store.flush()?;
        Ok(pruned)
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
