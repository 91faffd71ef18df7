//! Records -> sources -> ledger -> handlers -> effects, committed in groups.
//!
//! For each record the pipeline stages the record, the new events (duplicates stop
//! here), each matching handler's effects or its pending retry, and the events those
//! handlers emit, all in one [`Commit`]. Commits happen between records, every few
//! hundred records ([`Store::commit_records`]), so a record's whole cascade is committed
//! at once: a crash loses at most the uncommitted group, which the next run processes
//! again, and never half of a record. After the records, failed deliveries are retried
//! with backoff until they succeed or are parked as dead.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::BufRead;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CallError, Error};
use crate::event::{Effect, Event, Invocation};
use crate::generators::{Generator, Verdict};
use crate::limits::{Limits, MAX_EMIT_DEPTH};
use crate::mail::{self, Templates};
use crate::modules::Modules;
use crate::outbox::{OutboxItem, OutboxKind, OutboxPayload};
use crate::records::{MAX_RECORD_BYTES, ParsedRecord, parse_record, skip_line};
use crate::registration::Registration;
use crate::report::{Problem, RecordOrigin, RunReport};
use crate::routes::Routes;
use crate::runner::Runner;
use crate::settings::TenantSettings;
use crate::source_memo;
use crate::store::{
    Commit, DeadLetter, Flush, LedgerEntry, NewOutboxItem, NewPayload, PendingDelivery,
    RememberedRequest, SourceMemo, Store, StoredRecord,
};
use crate::text::printable;
use crate::time::wall_clock_ms;
use crate::trace::{self, Origin, Outcome, Step, Trace};
use crate::wasm::CallOutput;

/// A run waits this long at most for a retry to come due, unless its tenant says
/// otherwise; later ones are left pending for the next run.
pub(crate) const MAX_RETRY_WAIT_MS: i64 = 30_000;
/// Groups whose handlers a run remembers at most.
const MAX_MEMOISED_GROUPS: usize = 10_000;
/// Event keys a dry run shows at most.
const DRY_RUN_SAMPLE: usize = 10;

/// What a generator would make now, found without storing anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DryRun {
    /// Stored records of its model read.
    pub records: u64,
    /// Records whose context satisfies its conditions.
    pub matching: u64,
    /// Their events whose keys are not in the ledger: what a run would make.
    pub new: u64,
    /// The first of those new keys.
    pub sample: Vec<String>,
}

/// What an ingest would do, found by running it and storing nothing: the counts of
/// its report, and the first new events and outbox items as they would be kept.
#[derive(Debug, Clone, Default)]
pub struct IngestDryRun {
    /// What the ingest would report. Failed deliveries are not retried: `pending`
    /// counts those that would wait for a retry, `failed` those out of attempts.
    pub report: RunReport,
    /// The first new events (at most [`DRY_RUN_SHOWN`]), with their traces.
    pub events: Vec<LedgerEntry>,
    /// The first outbox items they would make (at most [`DRY_RUN_SHOWN`]), mails
    /// rendered with the tenant's templates now; their ids are 0, none given yet.
    pub outbox: Vec<OutboxItem>,
    /// Mails and outputs the ingest would put in the outbox, in all.
    pub mails: u64,
    pub outputs: u64,
}

/// New events and outbox items an ingest's dry run shows at most.
pub const DRY_RUN_SHOWN: usize = 20;

/// What a call used and logged: a step of an event's trace, once its outcome is known.
struct CallFacts {
    /// When it started (wall clock, unix ms).
    at_ms: i64,
    micros: u64,
    fuel: Option<u64>,
    log: String,
}

impl CallFacts {
    /// A call that never started (no runner, no handler).
    fn never_ran(at_ms: i64) -> Self {
        Self {
            at_ms,
            micros: 0,
            fuel: None,
            log: String::new(),
        }
    }

    /// The call as a step of a trace, done; [`Step::failed`] says otherwise.
    fn step(self, handler: &str, attempt: u32) -> Step {
        Step {
            handler: handler.to_owned(),
            attempt,
            at_ms: self.at_ms,
            micros: self.micros,
            fuel: self.fuel,
            outcome: Outcome::Done,
            error: None,
            effects: 0,
            emitted: 0,
            emitted_keys: Vec::new(),
            log: self.log,
        }
    }
}

/// Records read from the store at a time by `process-sources`.
const RECORD_PAGE: usize = 1_000;

/// A source of a model.
struct Source {
    module: String,
    /// With a coarse clock, what names its calls in this run (see [`source_memo`]).
    memo_call: Option<[u8; 32]>,
}

impl Source {
    /// The memo of this run's call, if the record has one.
    fn memo(&self, known: &[SourceMemo]) -> Option<SourceMemo> {
        let call = self.memo_call?;
        known.iter().find(|memo| memo.call == call).copied()
    }
}

/// What a run needs of a tenant's set-up (settings, modules, templates), made from
/// its store, with the instances of its modules: kept by the tenant between runs
/// while the store's set-up stays the same, so that a server running one small group
/// of requests after another does not parse templates, compile routes and start
/// instances for each.
pub(crate) struct Setup {
    /// The store's [`Store::setup_version`] it was made from.
    version: u64,
    settings: TenantSettings,
    registrations: HashMap<String, Registration>,
    /// Model -> its sources' modules, in registration order.
    sources: HashMap<String, Vec<String>>,
    routes: Routes,
    handlers_by_group: HashMap<String, Arc<[String]>>,
    /// Shared with the commit thread, which composes mails (see [`NewPayload`]).
    templates: Arc<Templates>,
    /// The modules' instances (or native modules) called so far.
    runners: HashMap<String, Runner>,
}

impl Setup {
    /// The set-up of `store` as it is now.
    pub(crate) fn load(store: &dyn Store, modules: &Modules) -> Result<Self, Error> {
        let version = store.setup_version();
        let settings = store.settings()?;
        let registrations = store.modules()?;
        let routes = Routes::new(&registrations)?;
        let templates = Templates::stored(modules.engine(), store.templates()?)?;
        let mut sources: HashMap<String, Vec<String>> = HashMap::new();
        for registration in &registrations {
            for model in &registration.sources {
                sources
                    .entry(model.clone())
                    .or_default()
                    .push(registration.name.clone());
            }
        }
        Ok(Self {
            version,
            settings,
            registrations: registrations
                .into_iter()
                .map(|registration| (registration.name.clone(), registration))
                .collect(),
            sources,
            routes,
            handlers_by_group: HashMap::new(),
            templates: Arc::new(templates),
            runners: HashMap::new(),
        })
    }

    /// Whether it is still the set-up of `store`.
    pub(crate) fn is_current(&self, store: &dyn Store) -> bool {
        self.version == store.setup_version()
    }
}

/// One run of the pipeline over a tenant's parts.
pub(crate) struct Pipeline<'t> {
    tenant: &'t str,
    store: &'t mut dyn Store,
    modules: &'t mut Modules,
    setup: &'t mut Setup,
    now_ms: i64,
    /// Model -> its sources, with this run's memo names.
    sources: HashMap<String, Rc<[Source]>>,
    commit: Commit,
    /// Keys staged in the uncommitted group: a duplicate inside a group stops too.
    staged_keys: HashSet<String>,
    /// (model, id) of the records staged in the uncommitted group.
    staged_record_ids: HashSet<(String, String)>,
    staged_records: usize,
    /// The store's limit on a commit's estimated size, if it has one: a group is
    /// committed early when it reaches it.
    max_commit_bytes: Option<u64>,
    /// Records a group holds at most ([`Store::commit_records`]).
    commit_records: usize,
    /// Records handed to the store in commits so far.
    committed_records: u64,
    /// How long the run waits for a retry to come due (see [`MAX_RETRY_WAIT_MS`]).
    retry_wait_ms: i64,
    /// Set for a generator's dry run: what it would make is counted here, and nothing
    /// is staged.
    dry_run: Option<DryRun>,
    /// Set for an ingest's dry run: each group is kept here instead of committed.
    discarded: Option<IngestDryRun>,
    pub(crate) report: RunReport,
}

impl<'t> Pipeline<'t> {
    /// A run over tenant `tenant`'s `store` and `modules` with their `setup` (current:
    /// see [`Setup::is_current`]) at logical time `now_ms`.
    pub(crate) fn new(
        tenant: &'t str,
        store: &'t mut dyn Store,
        modules: &'t mut Modules,
        setup: &'t mut Setup,
        now_ms: i64,
    ) -> Result<Self, Error> {
        let max_commit_bytes = store.max_commit_bytes();
        let commit_records = store.commit_records();
        let sources = setup
            .sources
            .iter()
            .map(|(model, names)| {
                let sources: Rc<[Source]> = names
                    .iter()
                    .map(|name| {
                        let registration = &setup.registrations[name];
                        let clock = registration.clock;
                        let memo_call = (!clock.is_exact()).then(|| {
                            let code = registration.code.as_str();
                            source_memo::call_digest(code, model, clock.read(now_ms))
                        });
                        Source {
                            module: name.clone(),
                            memo_call,
                        }
                    })
                    .collect();
                (model.clone(), sources)
            })
            .collect();
        Ok(Self {
            tenant,
            store,
            modules,
            setup,
            now_ms,
            sources,
            commit: Commit::default(),
            staged_keys: HashSet::new(),
            staged_record_ids: HashSet::new(),
            staged_records: 0,
            max_commit_bytes,
            commit_records,
            committed_records: 0,
            retry_wait_ms: MAX_RETRY_WAIT_MS,
            dry_run: None,
            discarded: None,
            report: RunReport::default(),
        })
    }

    /// Waits at most `ms` for a retry to come due at the end of the run, instead of
    /// [`MAX_RETRY_WAIT_MS`]; 0 retries only those due already.
    pub(crate) fn with_retry_wait(mut self, ms: i64) -> Self {
        self.retry_wait_ms = ms;
        self
    }

    /// Makes this run a dry run of generators: see [`DryRun`].
    pub(crate) fn dry(mut self) -> Self {
        self.dry_run = Some(DryRun::default());
        self
    }

    /// Makes this run an ingest's dry run: see [`IngestDryRun`].
    pub(crate) fn dry_ingest(mut self) -> Self {
        self.discarded = Some(IngestDryRun::default());
        self
    }

    /// What the dry run found.
    pub(crate) fn dry_run_result(self) -> DryRun {
        DryRun {
            records: self.report.records,
            ..self.dry_run.unwrap_or_default()
        }
    }

    /// Counts and reports an input line that is not a record.
    pub(crate) fn invalid(&mut self, line: u64, why: String) {
        self.report.invalid += 1;
        self.report
            .problems
            .push(Problem::InvalidRecord { line, why });
    }

    /// Stores a record and runs it through its model's sources.
    pub(crate) fn ingest_record(
        &mut self,
        model: &str,
        record: ParsedRecord,
        line: u64,
    ) -> Result<(), Error> {
        // A record staged earlier in this group may differ from the stored one, so it
        // is neither compared nor are its memos trusted: it is written again.
        let staged_before = !self
            .staged_record_ids
            .insert((model.to_owned(), record.id.clone()));
        let stored = if staged_before {
            None
        } else {
            self.store.record(model, &record.id)?
        };
        let known = match stored {
            Some(stored) if stored.json == record.json => Some(stored.memos),
            _ => None,
        };
        let memos = self.run_sources(
            model,
            &record.json,
            RecordOrigin::Line(line),
            known.as_deref().unwrap_or_default(),
        )?;
        // Staged with its events, in the same group; a record ingested again unchanged
        // is not written again (re-ingesting is common, and reading is cheaper) unless
        // what its sources made of it changed.
        if known.as_ref() != Some(&memos) {
            self.stage_record(model, record.id, record.json, memos);
        }
        self.end_record()
    }

    fn stage_record(&mut self, model: &str, id: String, json: String, memos: Vec<SourceMemo>) {
        let record = StoredRecord { json, memos };
        self.commit.records.push((model.to_owned(), id, record));
    }

    /// Runs every stored record of `model` through its sources again.
    pub(crate) fn reprocess_model(
        &mut self,
        model: &str,
        progress: &mut dyn FnMut(&RunReport),
    ) -> Result<(), Error> {
        self.for_each_stored(model, progress, |pipeline, id, record, origin| {
            let memos = pipeline.run_sources(model, &record.json, origin, &record.memos)?;
            if memos != record.memos {
                pipeline.stage_record(model, id, record.json, memos);
            }
            Ok(())
        })
    }

    /// Calls `each` with every stored record of `model` (id, record, origin), page by
    /// page, so that a model of any size is read in bounded memory; commits and reports
    /// progress as for ingested records.
    fn for_each_stored(
        &mut self,
        model: &str,
        progress: &mut dyn FnMut(&RunReport),
        mut each: impl FnMut(&mut Self, String, StoredRecord, RecordOrigin) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut after: Option<String> = None;
        loop {
            let page = self.store.records(model, after.as_deref(), RECORD_PAGE)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (id, record) in page {
                let origin = RecordOrigin::Stored {
                    model: model.to_owned(),
                    id: id.clone(),
                };
                each(self, id, record, origin)?;
                self.end_record()?;
                progress(&self.report);
            }
        }
    }

    /// Runs a record through its model's sources, but for those whose call on it is
    /// `known` (see [`source_memo`]). Returns the memos to keep with the record.
    fn run_sources(
        &mut self,
        model: &str,
        json: &str,
        origin: RecordOrigin,
        known: &[SourceMemo],
    ) -> Result<Vec<SourceMemo>, Error> {
        self.report.records += 1;
        let mut memos = Vec::new();
        let Some(sources) = self.sources.get(model).cloned() else {
            return Ok(memos);
        };
        for source in sources.iter() {
            if let Some(memo) = source.memo(known) {
                self.report.sources_skipped += 1;
                self.report.events += u64::from(memo.events);
                self.report.duplicates += u64::from(memo.events);
                memos.push(memo);
                continue;
            }
            let inv = self.invocation(&source.module, 1);
            match self.call(&source.module, |runner| runner.events(model, json, &inv)) {
                Ok(events) => {
                    let count = u32::try_from(events.len()).unwrap_or(u32::MAX);
                    let origin = Origin::Source {
                        module: source.module.clone(),
                    };
                    self.process(events.into_iter().map(|e| (e, origin.clone())), 0)?;
                    if let Some(call) = source.memo_call {
                        memos.push(SourceMemo {
                            call,
                            events: count,
                        });
                    }
                }
                Err(error) => {
                    self.report.source_errors += 1;
                    self.report.problems.push(Problem::SourceFailed {
                        record: origin.clone(),
                        module: source.module.clone(),
                        error,
                    });
                }
            }
        }
        Ok(memos)
    }

    /// Events through the ledger and to their handlers; emitted events follow, deeper.
    /// Each new event is staged with its trace.
    fn process(
        &mut self,
        events: impl IntoIterator<Item = (Event, Origin)>,
        depth: u32,
    ) -> Result<(), Error> {
        let mut queue: VecDeque<(Event, Origin, u32)> = events
            .into_iter()
            .map(|(event, origin)| (event, origin, depth))
            .collect();
        while let Some((event, origin, depth)) = queue.pop_front() {
            self.report.events += 1;
            if self.staged_keys.contains(&event.key) || self.store.is_seen(&event.key)? {
                self.report.duplicates += 1;
                continue;
            }
            self.report.new += 1;
            self.staged_keys.insert(event.key.clone());
            let handlers = self.handlers_for(&event.group);
            if handlers.is_empty() {
                self.report.unrouted += 1;
            }
            let mut trace = Trace::new(origin, handlers.to_vec());
            for handler in handlers.iter() {
                let delivery = self.deliver(handler, &event, depth, 1);
                let emitted = self.settle(delivery, &mut trace, handler, &event.key, depth, false);
                queue.extend(emitted.map(|(e, origin)| (e, origin, depth + 1)));
            }
            // Staged after its handlers, which borrow it; it is in the same commit.
            self.commit.ledger.push(LedgerEntry {
                key: event.key,
                group: event.group,
                created_at_ms: self.now_ms,
                context: event.context,
                trace: Some(trace),
            });
        }
        Ok(())
    }

    /// The handlers of a group, memoised: a run sees few groups and many events.
    fn handlers_for(&mut self, group: &str) -> Arc<[String]> {
        let setup = &mut *self.setup;
        if let Some(handlers) = setup.handlers_by_group.get(group) {
            return handlers.clone();
        }
        // Hostile sources could make every group new; the memo stays bounded.
        if setup.handlers_by_group.len() >= MAX_MEMOISED_GROUPS {
            setup.handlers_by_group.clear();
        }
        let handlers: Arc<[String]> = setup.routes.matching(group).map(str::to_owned).collect();
        setup
            .handlers_by_group
            .insert(group.to_owned(), handlers.clone());
        handlers
    }

    /// Calls one handler with one event and stages its effects. Returns the events it
    /// emitted, and the call as a step of the event's trace (its outcome `Done`, for
    /// the caller to change on failure); on failure nothing of the call is staged.
    fn deliver(
        &mut self,
        handler: &str,
        event: &Event,
        depth: u32,
        attempt: u32,
    ) -> (Result<Vec<Event>, CallError>, Step) {
        let inv = self.invocation(handler, attempt);
        let (effects, facts) = self.call_traced(handler, |runner| runner.handle(event, &inv));
        let mut step = facts.step(handler, attempt);
        let staged = effects.and_then(|effects| self.stage_effects(handler, event, depth, effects));
        if let Ok((_, outbox)) = &staged {
            step.effects = *outbox;
        }
        (staged.map(|(emitted, _)| emitted), step)
    }

    /// Stages a handler's effects on `event`; returns the events it emitted and how
    /// many outbox items it made. Nothing is staged if an emitted event is too deep.
    fn stage_effects(
        &mut self,
        handler: &str,
        event: &Event,
        depth: u32,
        effects: Vec<Effect>,
    ) -> Result<(Vec<Event>, u32), CallError> {
        let mut emitted = Vec::new();
        let mut outbox = Vec::new();
        for effect in effects {
            let payload = match effect {
                Effect::Emit(event) => {
                    if depth + 1 > MAX_EMIT_DEPTH {
                        return Err(CallError::EmitDepth {
                            key: event.key,
                            depth: depth + 1,
                            max: MAX_EMIT_DEPTH,
                        });
                    }
                    emitted.push(event);
                    continue;
                }
                Effect::Mail(mail) => {
                    mail::compose_later(mail, &event.context, self.setup.templates.clone())
                }
                Effect::Output { channel, payload } => {
                    NewPayload::Ready(Box::new(OutboxPayload::from_output(&channel, &payload)))
                }
            };
            outbox.push(NewOutboxItem {
                event: event.key.clone(),
                handler: handler.to_owned(),
                payload,
                created_at_ms: self.now_ms,
            });
        }
        let made = u32::try_from(outbox.len()).unwrap_or(u32::MAX);
        self.commit.outbox.extend(outbox);
        self.report.deliveries += 1;
        Ok((emitted, made))
    }

    /// Adds a delivery of event `key` to its `trace`, and stages it as failed (pending,
    /// or dead when `last_attempt` or out of attempts) if it failed. Returns the
    /// events it emitted, with their origin.
    fn settle(
        &mut self,
        (result, step): (Result<Vec<Event>, CallError>, Step),
        trace: &mut Trace,
        handler: &str,
        key: &str,
        depth: u32,
        last_attempt: bool,
    ) -> impl Iterator<Item = (Event, Origin)> + use<> {
        let emitted = match result {
            Ok(emitted) => {
                trace.push(step.with_emitted(emitted.iter().map(|e| e.key.as_str())));
                emitted
            }
            Err(error) => {
                let attempt = step.attempt;
                let dead = last_attempt || self.out_of_attempts(attempt);
                trace.push(step.failed(&error, dead));
                self.failed(handler, key, depth, attempt, error, dead);
                Vec::new()
            }
        };
        let origin = Origin::Emitted {
            parent: key.to_owned(),
            handler: handler.to_owned(),
        };
        emitted.into_iter().map(move |e| (e, origin.clone()))
    }

    /// Stages a failed delivery: dead when `dead`, else pending for another attempt.
    fn failed(
        &mut self,
        handler: &str,
        event: &str,
        depth: u32,
        attempts: u32,
        error: CallError,
        dead: bool,
    ) {
        self.report.problems.push(Problem::DeliveryFailed {
            event: event.to_owned(),
            handler: handler.to_owned(),
            attempts,
            dead,
            error: error.clone(),
        });
        if dead {
            self.report.failed += 1;
            self.commit.dead.push(DeadLetter {
                event: event.to_owned(),
                handler: handler.to_owned(),
                attempts,
                error,
                dead_at_ms: wall_clock_ms(),
                depth,
            });
        } else {
            let wait = self.setup.settings.retry.backoff_after(attempts);
            self.commit.pending.push(PendingDelivery {
                event: event.to_owned(),
                handler: handler.to_owned(),
                attempts,
                error,
                next_at_ms: wall_clock_ms().saturating_add(i64::try_from(wait).unwrap_or(i64::MAX)),
                depth,
            });
        }
    }

    /// Calls a module on its runner, creating it first if needed, and drops the runner
    /// when the call spent it (a failure, or its calls-per-instance).
    fn call<T>(
        &mut self,
        module: &str,
        f: impl FnOnce(&mut Runner) -> Result<CallOutput<T>, CallError>,
    ) -> Result<T, CallError> {
        self.call_traced(module, f).0
    }

    /// [`call`](Self::call), with what the call used and logged, for a trace.
    fn call_traced<T>(
        &mut self,
        module: &str,
        f: impl FnOnce(&mut Runner) -> Result<CallOutput<T>, CallError>,
    ) -> (Result<T, CallError>, CallFacts) {
        let at_ms = wall_clock_ms();
        if !self.setup.runners.contains_key(module) {
            match self.runner(module) {
                Ok(runner) => self.setup.runners.insert(module.to_owned(), runner),
                Err(error) => return (Err(error), CallFacts::never_ran(at_ms)),
            };
        }
        let runner = self
            .setup
            .runners
            .get_mut(module)
            .expect("the runner was inserted above");
        let started = Instant::now();
        let result = f(runner);
        let time = started.elapsed();
        let last = runner.take_last_call();
        self.report.note_call(module, time, result.as_ref().err());
        if runner.is_spent() {
            self.setup.runners.remove(module);
        }
        let facts = CallFacts {
            at_ms,
            micros: u64::try_from(time.as_micros()).unwrap_or(u64::MAX),
            fuel: last.fuel,
            log: trace::log_tail(&last.log),
        };
        let output = match result {
            Ok(output) => output,
            Err(error) => return (Err(error), facts),
        };
        if !output.log.is_empty() {
            let log = printable(output.log.trim_end());
            tracing::info!(target: "spark::guest", tenant = %self.tenant, module, "{log}");
        }
        (Ok(output.value), facts)
    }

    /// A fresh runner of `module`: its native implementation, or a new instance.
    fn runner(&mut self, module: &str) -> Result<Runner, CallError> {
        let registration =
            self.setup
                .registrations
                .get(module)
                .ok_or_else(|| CallError::NoSuchHandler {
                    module: module.to_owned(),
                })?;
        let limits = Limits::layered(&self.setup.settings.limits, &registration.limits);
        self.modules.runner(registration, &limits)
    }

    /// What a call of `module` is told: the time as its clock reads it.
    fn invocation(&self, module: &str, attempt: u32) -> Invocation {
        let clock = self
            .setup
            .registrations
            .get(module)
            .map(|registration| registration.clock)
            .unwrap_or_default();
        Invocation {
            tenant: self.tenant.to_owned(),
            now_ms: clock.read(self.now_ms),
            attempt,
        }
    }

    /// Ends a record's work: the group is committed once it holds enough records.
    fn end_record(&mut self) -> Result<(), Error> {
        self.staged_records += 1;
        let full = self
            .max_commit_bytes
            .is_some_and(|max| self.commit.size_estimate() >= max);
        if self.staged_records >= self.commit_records || full {
            self.commit_staged()?;
        }
        Ok(())
    }

    fn commit_staged(&mut self) -> Result<(), Error> {
        let commit = std::mem::take(&mut self.commit);
        if let Some(discarded) = &mut self.discarded {
            // Nothing is stored, so the keys and records staged so far stay staged:
            // later lines see them as a real run would see them stored.
            self.report.pending += commit.pending.len() as u64;
            discarded.keep(commit);
            self.staged_records = 0;
            return Ok(());
        }
        self.store.commit(commit)?;
        self.staged_keys.clear();
        self.staged_record_ids.clear();
        self.staged_records = 0;
        self.committed_records = self.report.records;
        Ok(())
    }

    /// The error that stopped this run part-way: [`Error::Interrupted`] when records
    /// were committed before it and they are durable now, else `error` as it is (nothing
    /// can be said to be kept).
    pub(crate) fn interrupted(self, error: Error) -> Error {
        if self.committed_records == 0 || self.store.flush().is_err() {
            return error;
        }
        Error::Interrupted {
            records: self.committed_records,
            cause: Box::new(error),
        }
    }

    /// Runs `generators` (all on `model`) over the model's stored records: each record
    /// is read, and its context computed, once for all of them.
    pub(crate) fn generate_model(
        &mut self,
        model: &str,
        generators: &[Generator],
        context_module: Option<&str>,
        progress: &mut dyn FnMut(&RunReport),
    ) -> Result<(), Error> {
        self.for_each_stored(model, progress, |pipeline, id, record, origin| {
            pipeline.report.records += 1;
            pipeline.generate_record(model, &id, record.json, &origin, generators, context_module)
        })
    }

    fn generate_record(
        &mut self,
        model: &str,
        id: &str,
        record: String,
        origin: &RecordOrigin,
        generators: &[Generator],
        context_module: Option<&str>,
    ) -> Result<(), Error> {
        let context = match context_module {
            None => record,
            Some(module) => {
                let inv = self.invocation(module, 1);
                match self.call(module, |runner| runner.context(model, &record, &inv)) {
                    Ok(context) => context,
                    Err(error) => {
                        for generator in generators {
                            self.report.source_errors += 1;
                            self.report.problems.push(Problem::GeneratorFailed {
                                generator: generator.name.clone(),
                                record: origin.clone(),
                                error: error.clone(),
                            });
                        }
                        return Ok(());
                    }
                }
            }
        };
        // Both kinds of context were checked to be JSON objects on the way in.
        let value: serde_json::Value = serde_json::from_str(&context)
            .map_err(|error| Error::Storage(format!("a stored record is not JSON: {error}")))?;
        let mut events = Vec::new();
        for generator in generators {
            match generator.test(&value) {
                Verdict::Pass => {}
                Verdict::Fail | Verdict::Missing => continue,
                Verdict::Mismatch(why) => {
                    self.report.mismatches += 1;
                    self.report.problems.push(Problem::ConditionMismatch {
                        generator: generator.name.clone(),
                        record: origin.clone(),
                        why,
                    });
                    continue;
                }
            }
            let event = Event {
                group: generator.group.clone(),
                key: format!("{}_{id}", generator.group),
                context: context.clone(),
            };
            let made_by = Origin::Generator {
                generator: generator.name.clone(),
            };
            match event.validate() {
                Ok(()) => events.push((event, made_by)),
                Err(error) => {
                    self.report.source_errors += 1;
                    self.report.problems.push(Problem::GeneratorFailed {
                        generator: generator.name.clone(),
                        record: origin.clone(),
                        error,
                    });
                }
            }
        }
        if let Some(dry_run) = &mut self.dry_run {
            dry_run.matching += events.len() as u64;
            for (event, _) in events {
                if !self.store.is_seen(&event.key)? {
                    dry_run.new += 1;
                    if dry_run.sample.len() < DRY_RUN_SAMPLE {
                        dry_run.sample.push(event.key);
                    }
                }
            }
            return Ok(());
        }
        self.process(events, 0)
    }

    /// Delivers dead letters again (all, or those of one event and/or handler).
    pub(crate) fn retry_dead(
        &mut self,
        event: Option<&str>,
        handler: Option<&str>,
    ) -> Result<usize, Error> {
        let letters: Vec<DeadLetter> = self
            .store
            .dead()
            .filter(|letter| match letter {
                Ok(letter) => {
                    event.is_none_or(|event| letter.event == event)
                        && handler.is_none_or(|handler| letter.handler == handler)
                }
                Err(_) => true,
            })
            .collect::<Result<_, _>>()?;
        for letter in &letters {
            self.report.retried += 1;
            self.commit
                .dead_done
                .push((letter.event.clone(), letter.handler.clone()));
            self.redeliver(
                &letter.event,
                &letter.handler,
                letter.depth,
                letter.attempts + 1,
                true,
            )?;
        }
        Ok(letters.len())
    }

    /// Whether a delivery that failed `attempts` times is out of attempts.
    fn out_of_attempts(&self, attempts: u32) -> bool {
        attempts >= self.setup.settings.retry.attempts
    }

    /// Delivers an event from the ledger again, and adds the call to its trace. A
    /// failure goes to pending, or to dead when `last_attempt` or out of attempts.
    fn redeliver(
        &mut self,
        key: &str,
        handler: &str,
        depth: u32,
        attempt: u32,
        last_attempt: bool,
    ) -> Result<(), Error> {
        let Some(mut entry) = self.retraceable(key)? else {
            // The ledger entry and the delivery are committed together, so this is
            // damage from outside; there is nothing to deliver.
            tracing::warn!(tenant = %self.tenant, key, handler, "a delivery names an event missing from the ledger; dropped");
            return Ok(());
        };
        let event = Event {
            group: entry.group.clone(),
            key: entry.key.clone(),
            context: std::mem::take(&mut entry.context),
        };
        // The handler may have been removed, or registered again as a source only,
        // since the delivery failed.
        let (result, step) = if self.setup.routes.has_handler(handler) {
            self.deliver(handler, &event, depth, attempt)
        } else {
            let error = CallError::NoSuchHandler {
                module: handler.to_owned(),
            };
            let facts = CallFacts::never_ran(wall_clock_ms());
            (Err(error), facts.step(handler, attempt))
        };
        entry.context = event.context;
        // An event seen before traces were kept gets one now.
        let mut trace = entry
            .trace
            .take()
            .unwrap_or_else(|| Trace::new(Origin::Unknown, Vec::new()));
        let emitted = self.settle(
            (result, step),
            &mut trace,
            handler,
            key,
            depth,
            last_attempt,
        );
        let emitted: Vec<(Event, Origin)> = emitted.collect();
        entry.trace = Some(trace);
        self.commit.retraced.push(entry);
        self.process(emitted, depth + 1)
    }

    /// The ledger entry of `key` to add a step to its trace: the one staged already by
    /// an earlier retry in this group, else the stored one.
    fn retraceable(&mut self, key: &str) -> Result<Option<LedgerEntry>, Error> {
        match self
            .commit
            .retraced
            .iter()
            .position(|entry| entry.key == key)
        {
            Some(staged) => Ok(Some(self.commit.retraced.swap_remove(staged))),
            None => self.store.ledger_entry(key),
        }
    }

    /// Commits what is staged, retries pending deliveries as they come due (waiting
    /// up to [`MAX_RETRY_WAIT_MS`] for each), and makes everything durable.
    pub(crate) fn finish(mut self) -> Result<RunReport, Error> {
        match self.settle_all() {
            Ok(()) => Ok(self.report),
            Err(error) => Err(self.interrupted(error)),
        }
    }

    /// Runs `work` on this pipeline, then [`finish`](Self::finish)es it; an error
    /// part-way says what was kept (see [`interrupted`](Self::interrupted)).
    pub(crate) fn run(
        mut self,
        work: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<RunReport, Error> {
        match work(&mut self) {
            Ok(()) => self.finish(),
            Err(error) => Err(self.interrupted(error)),
        }
    }

    fn settle_all(&mut self) -> Result<(), Error> {
        loop {
            self.commit_staged()?;
            let pending: Vec<PendingDelivery> = self.store.pending().collect::<Result<_, _>>()?;
            let Some(next_at) = pending.iter().map(|p| p.next_at_ms).min() else {
                break;
            };
            let wait = next_at - wall_clock_ms();
            if wait > self.retry_wait_ms {
                self.report.pending = pending.len() as u64;
                break;
            }
            if wait > 0 {
                std::thread::sleep(Duration::from_millis(wait as u64));
            }
            self.retry_due(pending, wall_clock_ms())?;
        }
        self.store.flush()
    }

    /// Delivers again those of `pending` that are due at wall-clock `now`.
    fn retry_due(&mut self, pending: Vec<PendingDelivery>, now: i64) -> Result<(), Error> {
        for delivery in pending.into_iter().filter(|p| p.next_at_ms <= now) {
            self.report.retried += 1;
            self.commit
                .pending_done
                .push((delivery.event.clone(), delivery.handler.clone()));
            self.redeliver(
                &delivery.event,
                &delivery.handler,
                delivery.depth,
                delivery.attempts + 1,
                false,
            )?;
        }
        Ok(())
    }

    /// Ends an ingest's dry run: what it would have stored.
    pub(crate) fn finish_dry(mut self) -> IngestDryRun {
        // Discarding cannot fail.
        let _ = self.commit_staged();
        let mut dry_run = self.discarded.take().unwrap_or_default();
        dry_run.report = self.report;
        dry_run
    }

    /// Commits what is staged and makes everything durable, without waiting for any
    /// retry: for a server, whose background work retries deliveries as they come due.
    /// The report counts the deliveries left pending.
    pub(crate) fn finish_now(mut self) -> Result<RunReport, Error> {
        let settled = self.commit_staged().and_then(|()| {
            self.report.pending = self.store.pending().count() as u64;
            self.store.flush()
        });
        match settled {
            Ok(()) => Ok(self.report),
            Err(error) => Err(self.interrupted(error)),
        }
    }

    /// Ends a run whose caller makes it durable: everything is committed and written
    /// out, and what makes it durable is returned (see [`Store::flusher`]).
    pub(crate) fn finish_unflushed(mut self) -> Result<Flush, Error> {
        match self.commit_staged().and_then(|()| self.store.flusher()) {
            Ok(flush) => Ok(flush),
            Err(error) => Err(self.interrupted(error)),
        }
    }

    /// Delivers once more, without waiting, each pending delivery that is due at
    /// wall-clock `now`, and makes it durable.
    pub(crate) fn retry_due_now(mut self, now: i64) -> Result<RunReport, Error> {
        let retried = self
            .store
            .pending()
            .collect::<Result<Vec<_>, _>>()
            .and_then(|pending| self.retry_due(pending, now));
        match retried {
            Ok(()) => self.finish_now(),
            Err(error) => Err(self.interrupted(error)),
        }
    }

    /// The request remembered under idempotency key `key`, if any.
    pub(crate) fn remembered_request(&self, key: &str) -> Result<Option<RememberedRequest>, Error> {
        self.store.remembered_request(key)
    }

    /// Stages `request` to be committed with the records staged so far.
    pub(crate) fn remember(&mut self, request: RememberedRequest) {
        self.commit.requests.push(request);
    }
}

/// Runs JSON Lines records of `model` from `input` through `pipeline`, committing as
/// it goes. `progress` is called after each line.
pub(crate) fn ingest(
    pipeline: Pipeline<'_>,
    model: &str,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(&RunReport),
) -> Result<RunReport, Error> {
    pipeline.run(|pipeline| ingest_lines(pipeline, model, input, progress))
}

/// What ingesting JSON Lines records of `model` from `input` would do, storing nothing.
pub(crate) fn ingest_dry(
    pipeline: Pipeline<'_>,
    model: &str,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(&RunReport),
) -> Result<IngestDryRun, Error> {
    let mut pipeline = pipeline.dry_ingest();
    ingest_lines(&mut pipeline, model, input, progress)?;
    Ok(pipeline.finish_dry())
}

/// Runs the records of `input` through `pipeline`; the caller commits.
pub(crate) fn ingest_lines(
    pipeline: &mut Pipeline<'_>,
    model: &str,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(&RunReport),
) -> Result<(), Error> {
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = std::io::Read::take(&mut *input, MAX_RECORD_BYTES as u64 + 1)
            .read_until(b'\n', &mut line);
        let read = match read {
            Ok(read) => read,
            Err(source) => {
                // What was read so far is processed and kept.
                pipeline.commit_staged()?;
                return Err(Error::Io {
                    what: "cannot read the input",
                    path: "-".into(),
                    error: source,
                });
            }
        };
        if read == 0 {
            return Ok(());
        }
        number += 1;
        if line.len() > MAX_RECORD_BYTES && !line.ends_with(b"\n") {
            skip_line(input);
            pipeline.invalid(
                number,
                format!("it is larger than {MAX_RECORD_BYTES} bytes"),
            );
            continue;
        }
        match parse_record(&line) {
            Ok(None) => {}
            Ok(Some(record)) => pipeline.ingest_record(model, record, number)?,
            Err(why) => pipeline.invalid(number, why),
        }
        progress(&pipeline.report);
    }
}

impl IngestDryRun {
    /// Counts a group a dry run would commit, and keeps the first of its events and
    /// outbox items.
    fn keep(&mut self, commit: Commit) {
        let room = DRY_RUN_SHOWN.saturating_sub(self.events.len());
        self.events.extend(commit.ledger.into_iter().take(room));
        for item in commit.outbox {
            match &item.payload {
                NewPayload::LaterMail(_) => self.mails += 1,
                NewPayload::Ready(payload) => match payload.kind() {
                    OutboxKind::Mail => self.mails += 1,
                    OutboxKind::Output => self.outputs += 1,
                },
            }
            if self.outbox.len() < DRY_RUN_SHOWN {
                let payload = item.payload.into_payload();
                self.outbox.push(OutboxItem::new(
                    0,
                    item.event,
                    item.handler,
                    payload,
                    item.created_at_ms,
                ));
            }
        }
    }
}
