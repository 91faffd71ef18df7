//! [`Store`] checked against a model: seeded random sequences of operations run on a
//! [`SledStore`] in a real directory, reopened now and then, and on plain BTreeMaps;
//! every answer of the store must be the model's.
//!
//! A failure prints its seed and every step up to it. `SPARK_STORE_MODEL_SEED=N` runs
//! that seed alone, to reproduce one.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::{
    Commit, DeadLetter, LedgerEntry, NewOutboxItem, NewPayload, PendingDelivery, Pruned, SledStore,
    SourceMemo, Store, StoredRecord,
};
use crate::error::CallError;
use crate::generators::{Condition, Generator};
use crate::limits::LimitOverrides;
use crate::outbox::{ComposedMail, OutboxItem, OutboxPayload, OutboxStatus, OutputPayload};
use crate::registration::Registration;
use crate::settings::{MailSettings, RetryPolicy, TenantSettings};
use crate::time::Clock;

const SEEDS: [u64; 8] = [1, 2, 3, 4, 0x5eed, 2024, 0xdead_beef, u64::MAX];
const STEPS: usize = 400;

// Small pools of names, sharing prefixes ("m" and "mx", "1" and "10", "a_1" and
// "ab_1"), so that keys repeat across commits and scans must stop at the right key.
const MODELS: &[&str] = &["m", "mx", "n"];
const IDS: &[&str] = &["1", "10", "2", "a", "ab", "é"];
/// Record ids are also numbers below this, ledger keys `{group}_{n}` for n below
/// [`KEY_NUMBERS`]: enough that some are still new late in a run, few enough that
/// most are written more than once.
const ID_NUMBERS: usize = 20;
const KEY_NUMBERS: usize = 30;
const GROUPS: &[&str] = &["a", "ab", "b"];
const HANDLERS: &[&str] = &["h", "h2"];
const MODULES: &[&str] = &["alpha", "beta", "gamma", "delta"];
const GENERATORS: &[&str] = &["g1", "g10", "g2"];
const CONDITIONS: &[&str] = &["score > 3", "name == 'x'", "a.b <= 2.5", "flag != true"];
/// Contexts are kept as the very text committed, spacing and escapes included.
const CONTEXTS: &[&str] = &[
    "{}",
    r#"{"n": 1}"#,
    r#"{ "s" : "a\"b\\c" , "u": "\u00e9" }"#,
    r#"{"nested":{"a":[1,2,{}],"b":null}}"#,
];

/// SplitMix64: a few lines, seedable, and plenty for picking operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, chance: u64) -> bool {
        self.next() % 100 < chance
    }

    fn pick(&mut self, names: &[&str]) -> String {
        names[self.below(names.len())].to_owned()
    }

    fn ledger_key(&mut self) -> String {
        let group = self.pick(GROUPS);
        format!("{group}_{}", self.below(KEY_NUMBERS))
    }

    fn record_id(&mut self) -> String {
        if self.percent(50) {
            self.pick(IDS)
        } else {
            self.below(ID_NUMBERS).to_string()
        }
    }

    fn delivery(&mut self) -> (String, String) {
        (self.ledger_key(), self.pick(HANDLERS))
    }
}

/// An outbox item as a commit adds it; kept as data, since [`NewOutboxItem`] is not
/// `Clone` and the model needs it too.
#[derive(Debug, Clone)]
struct NewItem {
    event: String,
    handler: String,
    payload: OutboxPayload,
    created_at_ms: i64,
}

/// What one commit holds, as data: made into a [`Commit`] for the store and applied
/// to the model.
#[derive(Debug, Clone, Default)]
struct Plan {
    records: Vec<(String, String, StoredRecord)>,
    ledger: Vec<LedgerEntry>,
    outbox: Vec<NewItem>,
    pending: Vec<PendingDelivery>,
    pending_done: Vec<(String, String)>,
    dead: Vec<DeadLetter>,
    dead_done: Vec<(String, String)>,
}

impl Plan {
    fn commit(&self) -> Commit {
        Commit {
            records: self.records.clone(),
            ledger: self.ledger.clone(),
            outbox: self
                .outbox
                .iter()
                .map(|item| NewOutboxItem {
                    event: item.event.clone(),
                    handler: item.handler.clone(),
                    payload: NewPayload::Ready(Box::new(item.payload.clone())),
                    created_at_ms: item.created_at_ms,
                })
                .collect(),
            pending: self.pending.clone(),
            pending_done: self.pending_done.clone(),
            dead: self.dead.clone(),
            dead_done: self.dead_done.clone(),
            // Remembered requests are a keyspace of their own, and retraced entries
            // rewrite ledger entries in place: both are tested in `ledger.rs`.
            requests: Vec::new(),
            retraced: Vec::new(),
        }
    }
}

/// Which outbox items a prune removes.
#[derive(Debug, Clone, Copy)]
enum PruneRule {
    Sent,
    TriedTwice,
    EveryThirdId,
    All,
    Nothing,
}

impl PruneRule {
    fn picks(self, item: &OutboxItem) -> bool {
        match self {
            PruneRule::Sent => item.status == OutboxStatus::Sent,
            PruneRule::TriedTwice => item.attempts >= 2,
            PruneRule::EveryThirdId => item.id.is_multiple_of(3),
            PruneRule::All => true,
            PruneRule::Nothing => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Commit(Plan),
    Flush,
    /// Flush, drop, open again.
    Reopen,
    IsSeen(String),
    LedgerEntry(String),
    Ledger,
    Record(String, String),
    Records {
        model: String,
        after: Option<String>,
        limit: usize,
    },
    /// Every record of a model, a page of `limit` at a time, committing `writes` one
    /// after each page (callers page so that they can write while they read).
    RecordPages {
        model: String,
        limit: usize,
        writes: Vec<Plan>,
    },
    Outbox,
    Pending,
    Dead,
    /// The item's new sending state.
    UpdateOutbox(OutboxItem),
    Prune(PruneRule),
    /// Registers (or replaces, keeping its order) a module.
    PutModule(Registration),
    RemoveModule(String),
    NextModuleOrder,
    PutGenerator(Generator),
    RemoveGenerator(String),
    PutTemplate(String, String),
    RemoveTemplate(String),
    PutSettings(TenantSettings),
}

/// What the store should hold.
#[derive(Debug, Default)]
struct Model {
    records: BTreeMap<(String, String), StoredRecord>,
    ledger: BTreeMap<String, LedgerEntry>,
    outbox: BTreeMap<u64, OutboxItem>,
    /// The last outbox id given, 0 before any.
    last_outbox_id: u64,
    pending: BTreeMap<(String, String), PendingDelivery>,
    dead: BTreeMap<(String, String), DeadLetter>,
    modules: BTreeMap<String, Registration>,
    /// The last module order given, 0 before any.
    module_order: u64,
    generators: BTreeMap<String, Generator>,
    templates: BTreeMap<String, String>,
    settings: TenantSettings,
}

impl Model {
    /// The store's rules for one commit: each keyspace in turn, the last write to a key
    /// winning; settled deliveries are removed before new ones are put, so a delivery
    /// both settled and failing again in one commit stays.
    fn commit(&mut self, plan: &Plan) {
        for (model, id, record) in &plan.records {
            self.records
                .insert((model.clone(), id.clone()), record.clone());
        }
        for entry in &plan.ledger {
            self.ledger.insert(entry.key.clone(), entry.clone());
        }
        // Ids are given one after another: the trait promises only that they increase
        // and are never given twice, but a gap would be a change worth noticing.
        for item in &plan.outbox {
            self.last_outbox_id += 1;
            let id = self.last_outbox_id;
            let item = OutboxItem::new(
                id,
                item.event.clone(),
                item.handler.clone(),
                item.payload.clone(),
                item.created_at_ms,
            );
            self.outbox.insert(id, item);
        }
        for done in &plan.pending_done {
            self.pending.remove(done);
        }
        for pending in &plan.pending {
            let key = (pending.event.clone(), pending.handler.clone());
            self.pending.insert(key, pending.clone());
        }
        for done in &plan.dead_done {
            self.dead.remove(done);
        }
        for dead in &plan.dead {
            self.dead
                .insert((dead.event.clone(), dead.handler.clone()), dead.clone());
        }
    }

    fn records(
        &self,
        model: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, StoredRecord)> {
        self.records
            .iter()
            .filter(|((m, id), _)| m == model && after.is_none_or(|after| id.as_str() > after))
            .take(limit)
            .map(|((_, id), record)| (id.clone(), record.clone()))
            .collect()
    }

    fn modules(&self) -> Vec<Registration> {
        let mut modules: Vec<Registration> = self.modules.values().cloned().collect();
        modules.sort_by_key(|module| module.order);
        modules
    }
}

fn plan(rng: &mut Rng, model: &Model) -> Plan {
    let mut plan = Plan::default();
    for _ in 0..rng.below(4) {
        let id = rng.record_id();
        let memos = (0..rng.below(3))
            .map(|_| {
                let byte = rng.next() as u8;
                SourceMemo {
                    call: [byte; 32],
                    events: rng.next() as u32,
                }
            })
            .collect();
        let json = format!(r#"{{"id":"{id}","v":{}}}"#, rng.below(1000));
        plan.records
            .push((rng.pick(MODELS), id, StoredRecord { json, memos }));
    }
    for _ in 0..rng.below(4) {
        let key = rng.ledger_key();
        let group = key.split('_').next().unwrap_or_default().to_owned();
        plan.ledger.push(LedgerEntry {
            key,
            group,
            created_at_ms: rng.next() as i64 >> 20,
            context: rng.pick(CONTEXTS),
            trace: None,
        });
    }
    for _ in 0..rng.below(4) {
        let (event, handler) = rng.delivery();
        let n = rng.below(1_000_000);
        let payload = if rng.percent(50) {
            OutboxPayload::Mail(ComposedMail {
                to: vec!["a@example.com".to_owned()],
                subject: format!("n° {n}"),
                body: "\"hi\"\n".to_owned(),
                ..ComposedMail::default()
            })
        } else {
            OutboxPayload::Output(OutputPayload {
                channel: "c".to_owned(),
                payload: json!({"n": n}),
            })
        };
        plan.outbox.push(NewItem {
            event,
            handler,
            payload,
            created_at_ms: rng.below(1 << 40) as i64,
        });
    }
    let settled = |rng: &mut Rng, present: Vec<&(String, String)>| {
        if !present.is_empty() && rng.percent(70) {
            present[rng.below(present.len())].clone()
        } else {
            rng.delivery()
        }
    };
    for _ in 0..rng.below(3) {
        let done = settled(rng, model.pending.keys().collect());
        plan.pending_done.push(done);
    }
    for _ in 0..rng.below(3) {
        let (event, handler) = rng.delivery();
        plan.pending.push(PendingDelivery {
            event,
            handler,
            attempts: 1 + rng.below(4) as u32,
            error: call_error(rng),
            next_at_ms: rng.below(1 << 40) as i64,
            depth: rng.below(3) as u32,
        });
    }
    for _ in 0..rng.below(2) {
        let done = settled(rng, model.dead.keys().collect());
        plan.dead_done.push(done);
    }
    for _ in 0..rng.below(2) {
        let (event, handler) = rng.delivery();
        plan.dead.push(DeadLetter {
            event,
            handler,
            attempts: 3,
            error: call_error(rng),
            dead_at_ms: rng.below(1 << 40) as i64,
            depth: rng.below(3) as u32,
        });
    }
    plan
}

fn call_error(rng: &mut Rng) -> CallError {
    if rng.percent(50) {
        CallError::Guest {
            message: format!("no {}", rng.below(10)),
        }
    } else {
        CallError::Trap {
            message: "unreachable".to_owned(),
            log: "panicked at 'é'\n".to_owned(),
        }
    }
}

fn op(rng: &mut Rng, model: &Model) -> Op {
    // Weights, in the order of the arms below.
    const WEIGHTS: [usize; 22] = [
        28, 4, 3, 8, 4, 2, 8, 5, 2, 3, 2, 2, 8, 4, 3, 2, 1, 3, 1, 3, 1, 2,
    ];
    let mut roll = rng.below(WEIGHTS.iter().sum());
    let mut arm = 0;
    while roll >= WEIGHTS[arm] {
        roll -= WEIGHTS[arm];
        arm += 1;
    }
    match arm {
        0 => Op::Commit(plan(rng, model)),
        1 => Op::Flush,
        2 => Op::Reopen,
        3 => Op::IsSeen(rng.ledger_key()),
        4 => Op::LedgerEntry(rng.ledger_key()),
        5 => Op::Ledger,
        6 => Op::Record(rng.pick(MODELS), rng.record_id()),
        7 => Op::Records {
            model: rng.pick(MODELS),
            // An id, stored or not, or a text just past some ("1~" sorts after "1" and
            // "10" to "19", before "2").
            after: match rng.below(3) {
                0 => None,
                1 => Some(rng.record_id()),
                _ => Some(format!("{}~", rng.record_id())),
            },
            limit: rng.below(5),
        },
        8 => Op::RecordPages {
            model: rng.pick(MODELS),
            limit: 1 + rng.below(3),
            writes: (0..rng.below(3)).map(|_| plan(rng, model)).collect(),
        },
        9 => Op::Outbox,
        10 => Op::Pending,
        11 => Op::Dead,
        12 => {
            let items: Vec<&OutboxItem> = model.outbox.values().collect();
            if items.is_empty() {
                return Op::Outbox;
            }
            let mut item = items[rng.below(items.len())].clone();
            item.attempts += 1;
            match rng.below(3) {
                0 => {
                    item.status = OutboxStatus::Sent;
                    item.error = None;
                    item.sent_at_ms = Some(rng.below(1 << 40) as i64);
                }
                1 => item.error = Some(format!("refused \"{}\"", rng.below(10))),
                _ => item.error = None,
            }
            Op::UpdateOutbox(item)
        }
        13 => Op::Prune(match rng.below(5) {
            0 => PruneRule::Sent,
            1 => PruneRule::TriedTwice,
            2 => PruneRule::EveryThirdId,
            3 => PruneRule::All,
            _ => PruneRule::Nothing,
        }),
        14 => {
            let name = rng.pick(MODULES);
            Op::PutModule(Registration {
                code: format!("{:016x}", rng.next()).into(),
                // Set when applied: kept if the module is there, else the next one.
                order: 0,
                sources: (0..rng.below(2)).map(|_| rng.pick(MODELS)).collect(),
                handlers: vec![format!("^{}_", rng.pick(GROUPS))],
                exports: vec!["handler".to_owned()],
                limits: LimitOverrides {
                    fuel: rng.percent(50).then(|| rng.next() >> 20),
                    ..LimitOverrides::default()
                },
                clock: [Clock::Exact, Clock::Minute, Clock::Hour, Clock::Day][rng.below(4)],
                since_ms: None,
                name,
            })
        }
        15 => Op::RemoveModule(rng.pick(MODULES)),
        16 => Op::NextModuleOrder,
        17 => Op::PutGenerator(Generator {
            name: rng.pick(GENERATORS),
            group: rng.pick(GROUPS),
            model: rng.pick(MODELS),
            conditions: (0..rng.below(3))
                .map(|_| Condition::parse(&rng.pick(CONDITIONS)).expect("a valid condition"))
                .collect(),
            active: rng.percent(50),
        }),
        18 => Op::RemoveGenerator(rng.pick(GENERATORS)),
        19 => Op::PutTemplate(
            rng.pick(GROUPS),
            format!("Hello {{{{ name }}}} n° {}\n", rng.below(100)),
        ),
        20 => Op::RemoveTemplate(rng.pick(GROUPS)),
        _ => {
            let outputs = (0..rng.below(3))
                .map(|n| (format!("c{n}"), format!("file:/tmp/{}", rng.below(10))))
                .collect();
            Op::PutSettings(TenantSettings {
                limits: LimitOverrides {
                    deadline_ms: rng.percent(50).then(|| 1 + rng.next() % 5_000),
                    ..LimitOverrides::default()
                },
                retry: RetryPolicy {
                    attempts: 1 + rng.below(5) as u32,
                    backoff_ms: rng.next() % 10_000,
                },
                mail: MailSettings {
                    from: rng.percent(50).then(|| "Spark <s@example.com>".to_owned()),
                    reply_to: None,
                    transport: rng.percent(50).then(|| "stdout".to_owned()),
                },
                outputs,
                schedule: crate::schedule::Schedules {
                    process_sources: rng
                        .percent(50)
                        .then_some(crate::schedule::Schedule::Every { ms: 3_600_000 }),
                    generate: None,
                },
            })
        }
    }
}

/// Applies `op` to the store and the model, and checks what the store answers.
fn apply(op: Op, store: &mut SledStore, model: &mut Model) {
    match op {
        Op::Commit(plan) => {
            store.commit(plan.commit()).unwrap();
            model.commit(&plan);
        }
        Op::Flush => store.flush().unwrap(),
        Op::Reopen => unreachable!("the runner reopens the store"),
        Op::IsSeen(key) => {
            assert_eq!(
                store.is_seen(&key).unwrap(),
                model.ledger.contains_key(&key)
            );
        }
        Op::LedgerEntry(key) => {
            assert_eq!(
                store.ledger_entry(&key).unwrap().as_ref(),
                model.ledger.get(&key)
            );
        }
        Op::Ledger => check_ledger(store, model),
        Op::Record(m, id) => {
            assert_eq!(
                store.record(&m, &id).unwrap().as_ref(),
                model.records.get(&(m, id))
            );
        }
        Op::Records {
            model: m,
            after,
            limit,
        } => {
            let page = store.records(&m, after.as_deref(), limit).unwrap();
            assert_eq!(page, model.records(&m, after.as_deref(), limit));
        }
        Op::RecordPages {
            model: m,
            limit,
            writes,
        } => {
            let unchanged = writes
                .is_empty()
                .then(|| model.records(&m, None, usize::MAX));
            let mut writes = writes.into_iter();
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store.records(&m, after.as_deref(), limit).unwrap();
                assert_eq!(page, model.records(&m, after.as_deref(), limit));
                let Some((last, _)) = page.last() else {
                    break;
                };
                after = Some(last.clone());
                all.extend(page);
                assert!(
                    all.len() <= IDS.len() + ID_NUMBERS,
                    "paging goes on forever"
                );
                if let Some(plan) = writes.next() {
                    store.commit(plan.commit()).unwrap();
                    model.commit(&plan);
                }
            }
            for plan in writes {
                store.commit(plan.commit()).unwrap();
                model.commit(&plan);
            }
            if let Some(unchanged) = unchanged {
                assert_eq!(all, unchanged);
            }
        }
        Op::Outbox => check_outbox(store, model),
        Op::Pending => check_pending(store, model),
        Op::Dead => check_dead(store, model),
        Op::UpdateOutbox(item) => {
            store
                .outbox_store()
                .unwrap()
                .update_outbox(std::slice::from_ref(&item))
                .unwrap();
            model.outbox.insert(item.id, item);
        }
        Op::Prune(rule) => {
            let pruned = store.prune_outbox(&|item| rule.picks(item)).unwrap();
            let before = model.outbox.len() as u64;
            model.outbox.retain(|_, item| !rule.picks(item));
            let kept = model.outbox.len() as u64;
            let expected = Pruned {
                removed: before - kept,
                kept,
            };
            assert_eq!(pruned, expected);
        }
        Op::PutModule(mut module) => {
            module.order = match model.modules.get(&module.name) {
                Some(registered) => registered.order,
                None => next_module_order(store, model),
            };
            store.put_module(&module).unwrap();
            model.modules.insert(module.name.clone(), module);
            assert_eq!(store.modules().unwrap(), model.modules());
        }
        Op::RemoveModule(name) => {
            let was_there = model.modules.remove(&name).is_some();
            assert_eq!(store.remove_module(&name).unwrap(), was_there);
            assert_eq!(store.modules().unwrap(), model.modules());
        }
        Op::NextModuleOrder => {
            next_module_order(store, model);
        }
        Op::PutGenerator(generator) => {
            store.put_generator(&generator).unwrap();
            model.generators.insert(generator.name.clone(), generator);
            check_generators(store, model);
        }
        Op::RemoveGenerator(name) => {
            let was_there = model.generators.remove(&name).is_some();
            assert_eq!(store.remove_generator(&name).unwrap(), was_there);
            check_generators(store, model);
        }
        Op::PutTemplate(group, source) => {
            store.put_template(&group, &source).unwrap();
            model.templates.insert(group, source);
            check_templates(store, model);
        }
        Op::RemoveTemplate(group) => {
            let was_there = model.templates.remove(&group).is_some();
            assert_eq!(store.remove_template(&group).unwrap(), was_there);
            check_templates(store, model);
        }
        Op::PutSettings(settings) => {
            store.put_settings(&settings).unwrap();
            model.settings = settings;
            assert_eq!(store.settings().unwrap(), model.settings);
        }
    }
}

fn next_module_order(store: &mut SledStore, model: &mut Model) -> u64 {
    let order = store.next_module_order().unwrap();
    model.module_order += 1;
    assert_eq!(order, model.module_order, "module orders count up from 1");
    order
}

fn check_ledger(store: &SledStore, model: &Model) {
    let ledger: Vec<LedgerEntry> = store.ledger().collect::<Result<_, _>>().unwrap();
    assert_eq!(ledger, model.ledger.values().cloned().collect::<Vec<_>>());
}

fn check_outbox(store: &SledStore, model: &Model) {
    let outbox: Vec<OutboxItem> = store.outbox().collect::<Result<_, _>>().unwrap();
    assert!(
        outbox.windows(2).all(|pair| pair[0].id < pair[1].id),
        "outbox ids strictly increase: {:?}",
        outbox.iter().map(|item| item.id).collect::<Vec<_>>()
    );
    assert_eq!(outbox, model.outbox.values().cloned().collect::<Vec<_>>());
}

fn check_pending(store: &SledStore, model: &Model) {
    let pending: Vec<PendingDelivery> = store.pending().collect::<Result<_, _>>().unwrap();
    assert_eq!(pending, model.pending.values().cloned().collect::<Vec<_>>());
}

fn check_dead(store: &SledStore, model: &Model) {
    let dead: Vec<DeadLetter> = store.dead().collect::<Result<_, _>>().unwrap();
    assert_eq!(dead, model.dead.values().cloned().collect::<Vec<_>>());
}

fn check_generators(store: &SledStore, model: &Model) {
    let generators = store.generators().unwrap();
    assert_eq!(
        generators,
        model.generators.values().cloned().collect::<Vec<_>>()
    );
}

fn check_templates(store: &SledStore, model: &Model) {
    let templates = store.templates().unwrap();
    let expected: Vec<(String, String)> = model
        .templates
        .iter()
        .map(|(group, source)| (group.clone(), source.clone()))
        .collect();
    assert_eq!(templates, expected);
}

/// Every answer the store gives, against the model.
fn check_everything(store: &SledStore, model: &Model) {
    for group in GROUPS {
        for n in 0..KEY_NUMBERS {
            let key = format!("{group}_{n}");
            assert_eq!(
                store.is_seen(&key).unwrap(),
                model.ledger.contains_key(&key),
                "{key}"
            );
            assert_eq!(
                store.ledger_entry(&key).unwrap().as_ref(),
                model.ledger.get(&key)
            );
        }
    }
    check_ledger(store, model);
    for m in MODELS {
        let numbers = (0..ID_NUMBERS).map(|n| n.to_string());
        for id in IDS.iter().map(|id| (*id).to_owned()).chain(numbers) {
            let stored = store.record(m, &id).unwrap();
            let key = ((*m).to_owned(), id.clone());
            assert_eq!(stored.as_ref(), model.records.get(&key), "record {m}/{id}");
        }
        let all = store.records(m, None, usize::MAX).unwrap();
        assert_eq!(all, model.records(m, None, usize::MAX));
    }
    check_outbox(store, model);
    check_pending(store, model);
    check_dead(store, model);
    assert_eq!(store.modules().unwrap(), model.modules());
    check_generators(store, model);
    check_templates(store, model);
    assert_eq!(store.settings().unwrap(), model.settings);
}

/// Everything flushed is there after the store is dropped and opened again.
fn reopen(store: SledStore, path: &Path) -> SledStore {
    store.flush().unwrap();
    drop(store);
    SledStore::open(path, None).unwrap()
}

/// The steps of a run, printed if it fails: with the seed, what it takes to replay and
/// shorten the failing sequence.
struct Trace {
    seed: u64,
    steps: Vec<String>,
}

impl Drop for Trace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "seed {} failed at step {}:",
                self.seed,
                self.steps.len().saturating_sub(1)
            );
            for (n, step) in self.steps.iter().enumerate() {
                eprintln!("{n:4} {step}");
            }
        }
    }
}

/// `step` with each memo's call (32 equal bytes here) shown as `[byte; 32]`.
fn compact(step: String) -> String {
    const CALL: &str = "call: [";
    let mut out = String::with_capacity(step.len());
    let mut rest = step.as_str();
    while let Some(start) = rest.find(CALL) {
        let (head, tail) = rest.split_at(start + CALL.len());
        let end = tail.find(']').unwrap_or(tail.len());
        let byte = tail[..end].split(", ").next().unwrap_or_default();
        out.push_str(head);
        out.push_str(&format!("{byte}; 32"));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn run(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut trace = Trace {
        seed,
        steps: Vec::new(),
    };
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let mut store = SledStore::open(dir.path(), None).unwrap();
    for step in 0..STEPS {
        let op = op(&mut rng, &model);
        trace.steps.push(compact(format!("{op:?}")));
        if let Op::Reopen = op {
            store = reopen(store, dir.path());
            check_everything(&store, &model);
        } else {
            apply(op, &mut store, &mut model);
        }
        if step % 50 == 49 {
            check_everything(&store, &model);
        }
    }
    check_everything(&store, &model);

    // However many items pruning took, ids already given stay given, after a reopen too.
    trace
        .steps
        .push("prune everything, reopen, commit one item".to_owned());
    apply(Op::Prune(PruneRule::All), &mut store, &mut model);
    store = reopen(store, dir.path());
    let item = NewItem {
        event: "last_1".to_owned(),
        handler: "h".to_owned(),
        payload: OutboxPayload::Output(OutputPayload {
            channel: "c".to_owned(),
            payload: serde_json::Value::Null,
        }),
        created_at_ms: 0,
    };
    let plan = Plan {
        outbox: vec![item],
        ..Plan::default()
    };
    apply(Op::Commit(plan), &mut store, &mut model);
    let ids: Vec<u64> = store.outbox().map(|item| item.unwrap().id).collect();
    assert_eq!(ids, [model.last_outbox_id]);
    check_everything(&store, &model);
}

#[test]
fn sled_store_matches_the_model() {
    let seeds = match std::env::var("SPARK_STORE_MODEL_SEED") {
        Ok(seed) => vec![seed.parse().expect("SPARK_STORE_MODEL_SEED is a number")],
        Err(_) => SEEDS.to_vec(),
    };
    for seed in seeds {
        run(seed);
    }
}
