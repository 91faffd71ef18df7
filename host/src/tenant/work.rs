//! A tenant's runs: records through the pipeline (ingest, process-sources, generate,
//! dead retry), and the outbox out through its transports.

use std::collections::BTreeMap;
use std::io::BufRead;

use super::Tenant;
use crate::error::Error;
use crate::event::Invocation;
use crate::generators::Generator;
use crate::limits::Limits;
use crate::pipeline::{self, DryRun, IngestDryRun, Pipeline, Setup};
use crate::registration::context_source;
use crate::report::RunReport;
use crate::requests::{self, IngestAnswer, IngestRequest};
use crate::schedule::ScheduledJob;
use crate::send::{self, Destinations, OutboxSender, SendReport};
use crate::store::{Flush, Pruned};
use crate::time::wall_clock_ms;
use crate::trial::{self, Trial, TrialInput};

/// A scheduled job that ran, and what it did or why it failed.
pub type ScheduledRun = (ScheduledJob, Result<RunReport, Error>);

impl Tenant {
    /// The pipeline over this tenant's parts, for one run at logical time `now_ms`:
    /// with the set-up the last run made, if it is still the store's.
    fn pipeline(&mut self, now_ms: i64) -> Result<Pipeline<'_>, Error> {
        if !self
            .setup
            .as_ref()
            .is_some_and(|setup| setup.is_current(&*self.store))
        {
            // The old instances go before new ones are made.
            self.setup = None;
            self.setup = Some(Setup::load(&*self.store, &self.modules)?);
        }
        let setup = self.setup.as_mut().expect("made above");
        Ok(Pipeline::new(
            &self.name,
            &mut *self.store,
            &mut self.modules,
            setup,
            now_ms,
        )?
        .with_retry_wait(self.retry_wait_ms))
    }

    /// Lets go of what runs keep between them (the modules' instances, the templates
    /// parsed, the routes compiled): the next run makes them again. A server does when
    /// a tenant goes quiet, so that only busy tenants hold instances, of which a
    /// process has a bounded number.
    pub fn rest(&mut self) {
        self.setup = None;
    }

    /// Ingests JSON Lines records of `model` from `input` at logical time `now_ms`.
    /// `progress` is called after each line. Refuses an unknown model before reading.
    pub fn ingest(
        &mut self,
        model: &str,
        input: &mut dyn BufRead,
        now_ms: i64,
        progress: &mut dyn FnMut(&RunReport),
    ) -> Result<RunReport, Error> {
        self.require_model(model)?;
        pipeline::ingest(self.pipeline(now_ms)?, model, input, progress)
    }

    /// What [`ingest`](Self::ingest) would do, found by running the records through
    /// the sources and handlers and storing nothing: no record, ledger key, outbox
    /// item or delivery (see [`IngestDryRun`]). Modules are called as in a real run;
    /// sandboxed, all they can do is return events and effects, which are shown and
    /// not kept. Failed deliveries are not retried.
    pub fn ingest_dry_run(
        &mut self,
        model: &str,
        input: &mut dyn BufRead,
        now_ms: i64,
        progress: &mut dyn FnMut(&RunReport),
    ) -> Result<IngestDryRun, Error> {
        self.require_model(model)?;
        pipeline::ingest_dry(self.pipeline(now_ms)?, model, input, progress)
    }

    /// Calls registered module `name` once with `input`, under its limits and clock,
    /// at logical time `now_ms`, as a run would call it: an author trying a module on
    /// a sample. Nothing is stored and nothing it returns goes further.
    pub fn try_module(
        &mut self,
        name: &str,
        input: &TrialInput,
        now_ms: i64,
    ) -> Result<Trial, Error> {
        let registration = self
            .store
            .modules()?
            .into_iter()
            .find(|module| module.name == name)
            .ok_or_else(|| Error::UnknownModule(name.to_owned()))?;
        let exports: Vec<&str> = registration.exports.iter().map(String::as_str).collect();
        trial::check_exports(&format!("module `{name}`"), &exports, input)?;
        let limits = Limits::layered(&self.store.settings()?.limits, &registration.limits);
        let inv = Invocation {
            tenant: self.name.clone(),
            now_ms: registration.clock.read(now_ms),
            attempt: 1,
        };
        let runner = self.modules.runner(&registration, &limits);
        Ok(trial::run(runner, input, &inv, limits))
    }

    /// Ingests a group of requests that arrived together (a server's group commit): one
    /// run, made durable by one flush, each request answered apart; see
    /// [`IngestRequest`]. `now` is the logical time the requests gave, if any (the
    /// wall clock's now otherwise); a group holds requests of one `now`. Pending
    /// deliveries are left for [`retry_due`](Self::retry_due), not waited for. An `Err`
    /// is the store failing, for the whole group.
    pub fn ingest_group(
        &mut self,
        requests: &[IngestRequest],
        now: Option<i64>,
    ) -> Result<Vec<Result<IngestAnswer, Error>>, Error> {
        let (answers, flush) = self.ingest_group_unflushed(requests, now)?;
        flush.run()?;
        Ok(answers)
    }

    /// [`ingest_group`](Self::ingest_group), leaving the flush to the caller: the
    /// answers hold once the [`Flush`] returned has run, and must not be given before
    /// (a server runs the next group meanwhile, and flushes both at once if it can).
    /// What the group wrote may be read, and sent from the outbox, before: a send makes
    /// the items it sends durable first.
    pub fn ingest_group_unflushed(
        &mut self,
        requests: &[IngestRequest],
        now: Option<i64>,
    ) -> Result<(Vec<Result<IngestAnswer, Error>>, Flush), Error> {
        let known = self.known_models()?;
        let pipeline = self.pipeline(now.unwrap_or_else(wall_clock_ms))?;
        requests::ingest_group(pipeline, requests, now, &known)
    }

    /// Delivers once more each pending delivery whose retry is due now, without
    /// waiting for later ones (a server's background work).
    pub fn retry_due(&mut self) -> Result<RunReport, Error> {
        let now = wall_clock_ms();
        self.pipeline(now)?.retry_due_now(now)
    }

    /// When the earliest pending delivery is due (wall-clock unix ms), if any is.
    pub fn next_retry_at(&self) -> Result<Option<i64>, Error> {
        let mut next = None;
        for pending in self.store.pending() {
            let at = pending?.next_at_ms;
            next = Some(next.map_or(at, |next: i64| next.min(at)));
        }
        Ok(next)
    }

    /// Runs each scheduled job (`process-sources`, `generate`) that is due at
    /// wall-clock `now_ms`, and notes when it ran; returns what each did. A schedule
    /// seen for the first time is not due: its first run is the first time it names
    /// after now. A job that fails is noted as run all the same (its error is
    /// returned): it is tried again at its next time, not in a loop.
    pub fn run_scheduled(&mut self, now_ms: i64) -> Result<Vec<ScheduledRun>, Error> {
        let mut ran = Vec::new();
        for (job, schedule) in self.store.settings()?.schedule.jobs() {
            let Some(last) = self.store.last_scheduled_run(job.name())? else {
                self.store.put_scheduled_run(job.name(), now_ms)?;
                continue;
            };
            if schedule.next_after(last) > now_ms {
                continue;
            }
            let report = match job {
                ScheduledJob::ProcessSources => self.process_sources(None, now_ms, &mut |_| {}),
                ScheduledJob::Generate => self.generate(now_ms, &mut |_| {}),
            };
            self.store.put_scheduled_run(job.name(), now_ms)?;
            ran.push((job, report));
        }
        Ok(ran)
    }

    /// When the next scheduled job is due (wall-clock unix ms), if any is scheduled;
    /// a schedule never seen is due now (to be noted by [`run_scheduled`](Self::run_scheduled)).
    pub fn next_scheduled_at(&self, now_ms: i64) -> Result<Option<i64>, Error> {
        let mut next: Option<i64> = None;
        for (job, schedule) in self.store.settings()?.schedule.jobs() {
            let at = match self.store.last_scheduled_run(job.name())? {
                Some(last) => schedule.next_after(last),
                None => now_ms,
            };
            next = Some(next.map_or(at, |next| next.min(at)));
        }
        Ok(next)
    }

    /// Forgets the requests remembered by idempotency key that were answered before
    /// `before_ms` (wall-clock unix ms); how many.
    pub fn forget_requests(&mut self, before_ms: i64) -> Result<u64, Error> {
        self.store.forget_requests(before_ms)
    }

    /// Runs the stored records of `model` (or of every known model) through their
    /// sources again at logical time `now_ms`, for events that depend on time.
    pub fn process_sources(
        &mut self,
        model: Option<&str>,
        now_ms: i64,
        progress: &mut dyn FnMut(&RunReport),
    ) -> Result<RunReport, Error> {
        let models = match model {
            Some(model) => {
                self.require_model(model)?;
                vec![model.to_owned()]
            }
            None => self.known_models()?,
        };
        self.pipeline(now_ms)?.run(|pipeline| {
            for model in &models {
                pipeline.reprocess_model(model, progress)?;
            }
            Ok(())
        })
    }

    /// Runs every active generator over its model's stored records at logical time
    /// `now_ms`. Each model is read once, however many generators use it.
    pub fn generate(
        &mut self,
        now_ms: i64,
        progress: &mut dyn FnMut(&RunReport),
    ) -> Result<RunReport, Error> {
        let mut by_model: BTreeMap<String, Vec<Generator>> = BTreeMap::new();
        for generator in self.store.generators()? {
            if generator.active {
                by_model
                    .entry(generator.model.clone())
                    .or_default()
                    .push(generator);
            }
        }
        let registrations = self.store.modules()?;
        let context_modules: BTreeMap<&str, String> = by_model
            .keys()
            .filter_map(|model| {
                context_source(registrations.iter().cloned(), model)
                    .map(|module| (model.as_str(), module.name))
            })
            .collect();
        self.pipeline(now_ms)?.run(|pipeline| {
            for (model, generators) in &by_model {
                let context_module = context_modules.get(model.as_str()).map(String::as_str);
                pipeline.generate_model(model, generators, context_module, progress)?;
            }
            Ok(())
        })
    }

    /// What generator `name` would make now (active or not), without storing anything:
    /// how many of its model's records match its conditions at logical time `now_ms`,
    /// and how many of their events would be new, with a sample of their keys.
    pub fn dry_run_generator(&mut self, name: &str, now_ms: i64) -> Result<DryRun, Error> {
        let generator = self.generator(name)?;
        let context_module =
            context_source(self.store.modules()?, &generator.model).map(|module| module.name);
        let model = generator.model.clone();
        let mut pipeline = self.pipeline(now_ms)?.dry();
        pipeline.generate_model(&model, &[generator], context_module.as_deref(), &mut |_| {})?;
        Ok(pipeline.dry_run_result())
    }

    /// Delivers dead letters again: all of them, or those of one event and/or handler.
    /// Each gets one more attempt, with the handler registered under its name now.
    pub fn retry_dead(
        &mut self,
        event: Option<&str>,
        handler: Option<&str>,
        now_ms: i64,
    ) -> Result<RunReport, Error> {
        self.pipeline(now_ms)?
            .run(|pipeline| pipeline.retry_dead(event, handler).map(drop))
    }

    /// Sends every pending outbox item whose route has a transport in `destinations`,
    /// up to `concurrency` at once (one at a time, in id order, when anything goes to
    /// stdout), marking each sent as soon as it went out, or recording its error (it
    /// stays pending). `progress` is told of each item sent or failed, with the number
    /// of items to send.
    pub fn send_outbox(
        &mut self,
        destinations: &Destinations,
        concurrency: usize,
        progress: &mut dyn FnMut(&SendReport, usize),
    ) -> Result<SendReport, Error> {
        self.outbox_sender()?
            .send(destinations, concurrency, progress)
    }

    /// Makes failed outbox items (set aside by [`send_outbox`](Self::send_outbox)) pending
    /// again: those of `ids`, or every one. Returns how many. An id that is not a failed
    /// item is refused, naming it, and nothing changes.
    pub fn retry_outbox(&mut self, ids: Option<&[u64]>) -> Result<u64, Error> {
        self.outbox_sender()?.retry(ids)
    }

    /// The tenant's outbox, to send from another thread while this tenant goes on: its
    /// runs add items, the sender sends and marks them. A tenant has one sender at a
    /// time (the caller sees to it), and is not pruned while one sends.
    pub fn outbox_sender(&self) -> Result<OutboxSender, Error> {
        Ok(OutboxSender::new(&self.name, self.store.outbox_store()?))
    }

    /// Removes the sent items of the outbox that were sent before `sent_before_ms`
    /// (wall-clock unix ms); pending ones always stay. Their ids are not given again.
    /// `outbox list` and `outbox send` read the whole outbox, so a tenant that sends a
    /// lot keeps them quick by pruning.
    pub fn prune_outbox(&mut self, sent_before_ms: i64) -> Result<Pruned, Error> {
        send::prune_outbox(&mut *self.store, sent_before_ms)
    }
}
