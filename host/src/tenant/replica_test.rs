//! A journaled tenant doing real work (ingests making outputs and mails, deliveries
//! failing, generators, set-up, sending, pruning and repairs), then its journal
//! replayed into a tenant of another data dir, or a snapshot restored there: every
//! part of the store must come out equal. And a journal that refuses changes none.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::Tenant;
use crate::Spark;
use crate::error::{CallError, Error};
use crate::event::{Effect, Event, Invocation};
use crate::generators::{Condition, Generator};
use crate::modules::{ModuleCode, ModuleSpec, hex_sha256};
use crate::native::NativeModule;
use crate::outbox::OutboxStatus;
use crate::registration::Registration;
use crate::requests::IngestRequest;
use crate::schedule::Schedule;
use crate::send::Destinations;
use crate::settings::TenantSettings;
use crate::store::{
    DeadLetter, Journal, JournalEntry, LedgerEntry, PendingDelivery, RememberedRequest,
    StoredRecord,
};
use crate::time::{Clock, wall_clock_ms};
use crate::transport::Transport;

/// A source making the events its record lists (`{"id": 1, "events": [{"group",
/// "key", "context"}]}`), and a handler making an output of each event, or failing
/// when the event's context says `"fail": true`.
struct Script;

impl NativeModule for Script {
    fn exports(&self) -> Vec<&'static str> {
        vec!["source", "handler"]
    }

    fn events(&self, _: &str, record: &str, _: &Invocation) -> Result<Vec<Event>, CallError> {
        let record: serde_json::Value = serde_json::from_str(record).unwrap();
        let events = record["events"].as_array().cloned().unwrap_or_default();
        Ok(events
            .iter()
            .map(|event| Event {
                group: event["group"].as_str().unwrap().to_owned(),
                key: event["key"].as_str().unwrap().to_owned(),
                context: event["context"].to_string(),
            })
            .collect())
    }

    fn handle(&self, event: &Event, _: &Invocation) -> Result<Vec<Effect>, CallError> {
        if event.context.contains("\"fail\":true") {
            return Err(CallError::Guest {
                message: format!("{} fails", event.key),
            });
        }
        Ok(vec![Effect::Output {
            channel: "seen".to_owned(),
            payload: format!("{{\"key\": {:?}}}", event.key),
        }])
    }
}

/// A journal that keeps its log in memory, each entry as its bytes, applying each
/// entry under the log's lock; it refuses everything while `refuse` is set, and
/// entries larger than `max_entry` bytes.
#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<(String, Vec<u8>)>>,
    components: Mutex<BTreeMap<String, Vec<u8>>>,
    refuse: AtomicBool,
    max_entry: Option<u64>,
}

const REFUSAL: &str = "the cluster's log refused the commit: another node owns the tenant now";

impl Journal for Recorder {
    fn append(
        &self,
        tenant: &str,
        entry: &JournalEntry,
        apply: &mut dyn FnMut() -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut log = self.log.lock().unwrap();
        if self.refuse.load(Ordering::SeqCst) {
            return Err(Error::Journal(REFUSAL.to_owned()));
        }
        let bytes = entry.encode();
        if self.max_entry.is_some_and(|max| bytes.len() as u64 > max) {
            return Err(Error::ChangeTooLarge(format!("{} bytes", bytes.len())));
        }
        log.push((tenant.to_owned(), bytes));
        apply()
    }

    fn max_entry_bytes(&self) -> Option<u64> {
        self.max_entry
    }

    fn save_component(&self, sha256: &str, wasm: &[u8]) -> Result<(), Error> {
        assert_eq!(hex_sha256(wasm), sha256);
        self.components
            .lock()
            .unwrap()
            .insert(sha256.to_owned(), wasm.to_vec());
        Ok(())
    }
}

impl Recorder {
    fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The entries from the `from`th on, decoded from their bytes.
    fn entries(&self, from: usize) -> Vec<JournalEntry> {
        self.log.lock().unwrap()[from..]
            .iter()
            .map(|(tenant, bytes)| {
                assert_eq!(tenant, "t");
                JournalEntry::decode(bytes).unwrap()
            })
            .collect()
    }

    fn component(&self, sha256: &str) -> Result<Vec<u8>, Error> {
        self.components
            .lock()
            .unwrap()
            .get(sha256)
            .cloned()
            .ok_or_else(|| Error::Journal(format!("no component {sha256}")))
    }
}

/// A host over `dir` with the script registered, journaling to `journal` if given.
fn spark(dir: &Path, journal: Option<Arc<Recorder>>) -> Spark {
    let mut spark = Spark::open(dir).unwrap();
    spark
        .register_native("builtin:script", Arc::new(Script))
        .unwrap();
    if let Some(journal) = journal {
        spark.set_journal(journal);
    }
    spark
}

/// Everything a tenant's store holds, read through the store, and its components.
#[derive(Debug, PartialEq)]
struct Contents {
    ledger: Vec<LedgerEntry>,
    groups: Vec<String>,
    records: Vec<(String, StoredRecord)>,
    outbox: Vec<crate::outbox::OutboxItem>,
    pending: Vec<PendingDelivery>,
    dead: Vec<DeadLetter>,
    modules: Vec<Registration>,
    generators: Vec<Generator>,
    templates: Vec<(String, String)>,
    settings: TenantSettings,
    scheduled: Vec<Option<i64>>,
    requests: Vec<Option<RememberedRequest>>,
    components: Vec<String>,
}

fn contents(tenant: &Tenant, data_dir: &Path) -> Contents {
    let store = &*tenant.store;
    let mut components: Vec<String> =
        std::fs::read_dir(data_dir.join("tenants").join("t").join("modules"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
    components.sort();
    Contents {
        ledger: store.ledger().map(Result::unwrap).collect(),
        groups: store.groups().unwrap(),
        records: store.records("thing", None, usize::MAX).unwrap(),
        outbox: store.outbox().map(Result::unwrap).collect(),
        pending: store.pending().map(Result::unwrap).collect(),
        dead: store.dead().map(Result::unwrap).collect(),
        modules: store.modules().unwrap(),
        generators: store.generators().unwrap(),
        templates: store.templates().unwrap(),
        settings: store.settings().unwrap(),
        scheduled: ["process-sources", "generate"]
            .iter()
            .map(|job| store.last_scheduled_run(job).unwrap())
            .collect(),
        requests: ["k1", "k2", "k3"]
            .iter()
            .map(|key| store.remembered_request(key).unwrap())
            .collect(),
        components,
    }
}

fn native(name: &str, code: &str, sources: &[&str], handlers: &[&str]) -> ModuleSpec {
    ModuleSpec {
        name: name.to_owned(),
        code: ModuleCode::Native(code.to_owned()),
        sources: sources.iter().map(|model| (*model).to_owned()).collect(),
        handlers: handlers.iter().map(|regex| (*regex).to_owned()).collect(),
        limits: Default::default(),
        clock: Clock::Day,
    }
}

/// A record of `thing` with events of `(group, key, context)`.
fn record(id: u32, events: &[(&str, &str, serde_json::Value)]) -> String {
    let events: Vec<serde_json::Value> = events
        .iter()
        .map(|(group, key, context)| {
            serde_json::json!({ "group": group, "key": key, "context": context })
        })
        .collect();
    format!("{}\n", serde_json::json!({ "id": id, "events": events }))
}

fn ingest(tenant: &mut Tenant, lines: &str) {
    let mut input = lines.as_bytes();
    tenant
        .ingest("thing", &mut input, wall_clock_ms(), &mut |_| {})
        .unwrap();
}

fn request(lines: &str, key: &str) -> IngestRequest {
    IngestRequest {
        model: "thing".to_owned(),
        body: lines.as_bytes().to_vec(),
        idempotency_key: Some(key.to_owned()),
    }
}

fn send(tenant: &Tenant, out: &Path) {
    let destinations = Destinations {
        mails: Some(Transport::File(out.to_owned())),
        outputs: [("seen".to_owned(), Transport::File(out.to_owned()))].into(),
        ..Destinations::default()
    };
    // From a thread of its own, as a server sends.
    let mut sender = tenant.outbox_sender().unwrap();
    std::thread::spawn(move || sender.send(&destinations, 2, &mut |_, _| {}).unwrap())
        .join()
        .unwrap();
}

/// The set-up and the first part of the work.
fn first_work(tenant: &mut Tenant, out: &Path) {
    let mut settings = tenant.settings().unwrap();
    settings.retry.attempts = 2;
    settings.retry.backoff_ms = 0;
    settings.schedule.generate = Some("every 1h".parse::<Schedule>().unwrap());
    tenant.set_settings(&settings).unwrap();
    tenant
        .add_module(
            native("script", "builtin:script", &["thing"], &["^(e|bad|gen)"]),
            false,
        )
        .unwrap();
    tenant
        .add_module(native("mails", "builtin:mails", &[], &["^mail"]), false)
        .unwrap();
    tenant
        .add_module(native("extra", "builtin:script", &[], &["^never"]), false)
        .unwrap();
    let recorder = ModuleCode::load(Path::new(spark_test_guests::RECORDER)).unwrap();
    let spec = ModuleSpec {
        code: recorder,
        ..native("recorder", "", &[], &["^never$"])
    };
    tenant.add_module(spec, false).unwrap();
    tenant.remove_module("extra").unwrap();
    tenant
        .set_template("mail", "Hello {{ name }}\n\nYou have mail.")
        .unwrap();
    tenant.set_template("gone", "x").unwrap();
    tenant.remove_template("gone").unwrap();
    let mail = |name: &str, to: &str| serde_json::json!({ "name": name, "spark_mail": { "to": to, "subject": "s", "body": "b" } });
    let lines = [
        record(1, &[("e", "e_1", serde_json::json!({}))]),
        record(2, &[("e", "e_2", serde_json::json!({"n": 2}))]),
        record(3, &[("mail", "mail_3", mail("Ada", "ada@example.com"))]),
        // A delivery that fails twice: pending, then dead.
        record(4, &[("bad", "bad_4", serde_json::json!({"fail": true}))]),
        record(5, &[("bad", "bad_5", serde_json::json!({"fail": true}))]),
    ]
    .concat();
    ingest(tenant, &lines);
    let answers = tenant
        .ingest_group(
            &[
                request(&record(6, &[("e", "e_6", serde_json::json!({}))]), "k1"),
                request(
                    &record(7, &[("mail", "mail_7", mail("Bo", "bo@example.com"))]),
                    "k2",
                ),
            ],
            None,
        )
        .unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    tenant
        .add_generator(
            Generator {
                name: "gen".to_owned(),
                group: "gen".to_owned(),
                model: "thing".to_owned(),
                conditions: vec![Condition::parse("id > 5").unwrap()],
                active: true,
            },
            false,
        )
        .unwrap();
    tenant.generate(wall_clock_ms(), &mut |_| {}).unwrap();
    tenant.set_generator_active("gen", false).unwrap();
    assert!(tenant.run_scheduled(wall_clock_ms()).unwrap().is_empty());
    send(tenant, out);
}

/// More work, on the outbox and repairs above all.
fn later_work(tenant: &mut Tenant, out: &Path) {
    // A pending delivery that stays: its retry is an hour away.
    let mut settings = tenant.settings().unwrap();
    settings.retry.backoff_ms = 3_600_000;
    tenant.set_settings(&settings).unwrap();
    tenant.set_retry_wait(std::time::Duration::ZERO);
    let lines = [
        record(8, &[("e", "e_8", serde_json::json!({}))]),
        record(9, &[("bad", "bad_9", serde_json::json!({"fail": true}))]),
        record(
            10,
            &[(
                "mail",
                "mail_10",
                serde_json::json!({"name": "Cy", "spark_mail": {"to": "cy@example.com"}}),
            )],
        ),
        // Record 2 again, changed: its memo and record are written over.
        record(
            2,
            &[
                ("e", "e_2", serde_json::json!({"n": 2})),
                ("e", "e_2b", serde_json::json!({})),
            ],
        ),
    ]
    .concat();
    ingest(tenant, &lines);
    let answers = tenant
        .ingest_group(
            &[request(
                &record(11, &[("e", "e_11", serde_json::json!({}))]),
                "k3",
            )],
            None,
        )
        .unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    tenant.prune_outbox(i64::MAX).unwrap();
    let unsent: Vec<u64> = tenant
        .outbox()
        .map(Result::unwrap)
        .filter(|item| item.status == OutboxStatus::Pending)
        .map(|item| item.id)
        .collect();
    assert!(unsent.len() >= 3, "{unsent:?}");
    tenant.cancel_outbox(&unsent[..1]).unwrap();
    send(tenant, out);
    tenant
        .discard_dead(Some(&["bad_4".to_owned()]), None)
        .unwrap();
    let forgotten = tenant.forget_events(&["e_1".to_owned()]).unwrap();
    assert_eq!(forgotten.forgotten, 1);
    assert_eq!(tenant.forget_requests(0).unwrap(), 0);
    tenant
        .add_module(native("extra", "builtin:script", &[], &["^never"]), false)
        .unwrap();
    let generator = Generator {
        name: "gen2".to_owned(),
        ..tenant.generator("gen").unwrap()
    };
    tenant.add_generator(generator, false).unwrap();
    tenant.remove_generator("gen2").unwrap();
}

/// Replays `entries` into tenant `t` of a host over `dir` (restored from `snapshot`
/// first, if given), fetching components from `recorder`.
fn replica(
    dir: &Path,
    recorder: &Recorder,
    snapshot: Option<&[u8]>,
    entries: &[JournalEntry],
) -> Tenant {
    let spark = spark(dir, None);
    let fetch = |sha256: &str| recorder.component(sha256);
    if let Some(snapshot) = snapshot {
        spark.restore_tenant("t", snapshot, &fetch).unwrap();
    }
    let mut tenant = spark.tenant("t").unwrap();
    for entry in entries {
        tenant.replay(entry, &fetch).unwrap();
    }
    tenant
}

#[test]
fn a_replayed_journal_and_a_restored_snapshot_make_the_same_store() {
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let out = dirs[4].path();
    let recorder = Arc::new(Recorder::default());
    let original = spark(dirs[0].path(), Some(recorder.clone()));
    let mut tenant = original.tenant("t").unwrap();
    first_work(&mut tenant, out);

    let first = contents(&tenant, dirs[0].path());
    // What the work was meant to leave, so that equal is not equally empty.
    assert!(
        first
            .outbox
            .iter()
            .any(|item| item.status == OutboxStatus::Sent)
    );
    let mail = first
        .outbox
        .iter()
        .find_map(|item| item.payload.as_mail())
        .unwrap();
    assert_eq!(mail.subject, "Hello Ada");
    assert!(
        first
            .records
            .iter()
            .any(|(_, record)| !record.memos.is_empty())
    );
    assert_eq!(first.dead.len(), 2, "{:?}", first.dead);
    assert!(first.ledger.iter().any(|entry| entry.key == "gen_7"));
    assert!(first.requests[..2].iter().all(Option::is_some));
    assert!(first.scheduled[1].is_some());
    assert_eq!(first.modules.len(), 3);
    assert_eq!(first.components.len(), 1);
    assert_eq!(recorder.components.lock().unwrap().len(), 1);

    // The whole journal, replayed.
    let replayed = replica(dirs[1].path(), &recorder, None, &recorder.entries(0));
    assert_eq!(contents(&replayed, dirs[1].path()), first);

    // A snapshot, restored; then more work, and only its entries replayed on it.
    let snapshot = tenant.snapshot().unwrap();
    let restored = replica(dirs[2].path(), &recorder, Some(&snapshot), &[]);
    assert_eq!(contents(&restored, dirs[2].path()), first);
    drop(restored);
    let mark = recorder.len();
    later_work(&mut tenant, out);
    let later = contents(&tenant, dirs[0].path());
    assert!(!later.pending.is_empty());
    assert_eq!(later.dead.len(), 1);
    assert_ne!(later, first);
    let caught_up = replica(dirs[2].path(), &recorder, None, &recorder.entries(mark));
    assert_eq!(contents(&caught_up, dirs[2].path()), later);
    let rebuilt = replica(
        dirs[3].path(),
        &recorder,
        Some(&snapshot),
        &recorder.entries(mark),
    );
    assert_eq!(contents(&rebuilt, dirs[3].path()), later);
    // Every kind of entry was made (and replayed) above.
    let kinds: std::collections::BTreeSet<&str> = recorder
        .entries(0)
        .iter()
        .map(JournalEntry::describe)
        .collect();
    assert_eq!(kinds.len(), 16, "{kinds:?}");
    // And the whole journal, into the first replica, which had the first part.
    drop(replayed);
    let replayed = replica(dirs[1].path(), &recorder, None, &recorder.entries(mark));
    assert_eq!(contents(&replayed, dirs[1].path()), later);
}

/// Tenant `t` of `spark` with the script as the source of `thing` and the handler of
/// `^e`.
fn scripted(spark: &Spark) -> Tenant {
    let mut tenant = spark.tenant("t").unwrap();
    tenant
        .add_module(
            native("script", "builtin:script", &["thing"], &["^e"]),
            false,
        )
        .unwrap();
    tenant
}

#[test]
fn a_journal_that_refuses_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let spark = spark(dir.path(), Some(recorder.clone()));
    let mut tenant = scripted(&spark);
    ingest(
        &mut tenant,
        &record(1, &[("e", "e_1", serde_json::json!({}))]),
    );
    let before = contents(&tenant, dir.path());
    let logged = recorder.len();

    recorder.refuse.store(true, Ordering::SeqCst);
    let refused = |result: Result<(), Error>| match result {
        Err(Error::Journal(message)) => assert_eq!(message, REFUSAL),
        other => panic!("{other:?}"),
    };
    let mut input = record(2, &[("e", "e_2", serde_json::json!({}))]).into_bytes();
    refused(
        tenant
            .ingest("thing", &mut &input[..], wall_clock_ms(), &mut |_| {})
            .map(drop),
    );
    input.clear();
    refused(tenant.set_settings(&TenantSettings::default()));
    refused(tenant.set_template("g", "x"));
    refused(
        tenant
            .add_module(native("more", "builtin:script", &[], &["^x"]), false)
            .map(drop),
    );
    refused(tenant.remove_module("script"));
    refused(tenant.forget_events(&["e_1".to_owned()]).map(drop));
    refused(tenant.prune_outbox(i64::MAX).map(drop));
    let destinations = Destinations {
        outputs: [("seen".to_owned(), Transport::File(out.path().to_owned()))].into(),
        ..Destinations::default()
    };
    let sent = tenant.send_outbox(&destinations, 1, &mut |_, _| {});
    assert!(
        matches!(sent, Err(Error::Journal(_))),
        "marking what was sent goes through the journal: {sent:?}"
    );
    refused(tenant.cancel_outbox(&[1]).map(drop));

    assert_eq!(recorder.len(), logged);
    assert_eq!(contents(&tenant, dir.path()), before);
    // Nothing half done stays behind: the journal taking changes again, they go on.
    recorder.refuse.store(false, Ordering::SeqCst);
    ingest(
        &mut tenant,
        &record(2, &[("e", "e_2", serde_json::json!({}))]),
    );
    assert_eq!(tenant.events().count(), 2);
}

#[test]
fn a_journal_with_a_largest_entry_gets_commits_that_fit_and_refuses_a_record_too_large() {
    const MAX_ENTRY: u64 = 256 << 10;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder {
        max_entry: Some(MAX_ENTRY),
        ..Recorder::default()
    });
    let spark = spark(dir.path(), Some(recorder.clone()));
    let mut tenant = scripted(&spark);
    let logged = recorder.len();

    // 200 records of 10 KB each (the record, and its event's context as much again):
    // some 4 MB, far more than one entry takes, and far fewer records than a commit
    // holds when nothing limits its size.
    let padding = "x".repeat(5_000);
    let lines: String = (0..200)
        .map(|n| {
            let context = serde_json::json!({ "padding": padding });
            record(n, &[("e", &format!("e_{n}"), context)])
        })
        .collect();
    ingest(&mut tenant, &lines);
    let entries = recorder.entries(logged);
    assert!(entries.len() >= 8, "{} commits", entries.len());
    assert_eq!(tenant.store.ledger().count(), 200);

    // One record whose own work is larger than an entry: refused as too large (sent
    // again it would be refused again), not as "try again"; nothing of it is stored.
    let big = serde_json::json!({ "padding": "x".repeat(MAX_ENTRY as usize) });
    let lines = record(1000, &[("e", "e_small", serde_json::json!({}))])
        + &record(1001, &[("e", "e_big", big)]);
    let mut input = lines.as_bytes();
    match tenant.ingest("thing", &mut input, wall_clock_ms(), &mut |_| {}) {
        Err(Error::ChangeTooLarge(_)) => {}
        Err(Error::Interrupted { cause, .. }) if matches!(*cause, Error::ChangeTooLarge(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(!tenant.store.is_seen("e_big").unwrap());
}

#[test]
fn each_run_sees_the_set_up_as_it_is_now() {
    // A tenant keeps what its runs make of its set-up (templates parsed, routes,
    // instances) from one run to the next: every change to the set-up is seen by the
    // next run all the same.
    let dir = tempfile::tempdir().unwrap();
    let spark = spark(dir.path(), None);
    let mut tenant = spark.tenant("t").unwrap();
    tenant
        .add_module(native("script", "builtin:script", &["thing"], &[]), false)
        .unwrap();
    tenant
        .add_module(native("mails", "builtin:mails", &[], &["^mail"]), false)
        .unwrap();
    tenant.set_template("mail", "First\n\nBody").unwrap();
    let mail = serde_json::json!({ "spark_mail": { "to": "ada@example.com" } });
    let mut n = 0;
    let mut run = |tenant: &mut Tenant| {
        n += 1;
        let key = format!("mail_{n}");
        ingest(tenant, &record(n, &[("mail", &key, mail.clone())]));
        let subjects: Vec<String> = tenant
            .outbox()
            .map(|item| item.unwrap())
            .filter(|item| item.event == key)
            .map(|item| item.payload.as_mail().unwrap().subject.clone())
            .collect();
        subjects
    };
    assert_eq!(run(&mut tenant), ["First"]);
    assert_eq!(run(&mut tenant), ["First"]);
    tenant.set_template("mail", "Second\n\nBody").unwrap();
    assert_eq!(run(&mut tenant), ["Second"]);
    tenant.remove_module("mails").unwrap();
    assert_eq!(run(&mut tenant), Vec::<String>::new());
    tenant
        .add_module(native("mails", "builtin:mails", &[], &["^mail"]), false)
        .unwrap();
    tenant.remove_template("mail").unwrap();
    tenant.set_template("mail", "Third\n\nBody").unwrap();
    assert_eq!(run(&mut tenant), ["Third"]);
    // Resting lets go of it all; the next run makes it again.
    tenant.rest();
    assert_eq!(run(&mut tenant), ["Third"]);
}

#[test]
fn a_replayed_component_must_have_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let spark_a = spark(dir.path(), Some(recorder.clone()));
    let mut tenant = spark_a.tenant("t").unwrap();
    let spec = ModuleSpec {
        code: ModuleCode::load(Path::new(spark_test_guests::RECORDER)).unwrap(),
        ..native("recorder", "", &[], &["^x"])
    };
    tenant.add_module(spec, false).unwrap();
    let spark_b = spark(replica_dir.path(), None);
    let mut replica = spark_b.tenant("t").unwrap();
    let wrong = |_: &str| Ok(b"not the component".to_vec());
    let mut refused = 0;
    for entry in recorder.entries(0) {
        match replica.replay(&entry, &wrong) {
            Ok(()) => {}
            Err(Error::Journal(message)) => {
                assert!(message.contains("is not it"), "{message}");
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(refused, 1);
    assert!(replica.modules().unwrap().is_empty());
}

#[test]
fn tenant_data_is_removed_under_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let spark = spark(dir.path(), None);
    let tenant = spark.tenant("t").unwrap();
    assert!(matches!(
        spark.remove_tenant_data("t"),
        Err(Error::TenantInUse { .. })
    ));
    assert!(matches!(
        spark.restore_tenant("t", b"\x01", &|_| unreachable!()),
        Err(Error::TenantInUse { .. })
    ));
    drop(tenant);
    spark.remove_tenant_data("t").unwrap();
    assert!(spark.tenant_names().unwrap().is_empty());
    spark.remove_tenant_data("t").unwrap();
    assert!(matches!(
        spark.restore_tenant("t", b"not a snapshot", &|_| unreachable!()),
        Err(Error::Storage(_))
    ));
}
