//! The ledger, outbox and dead letters against an in-memory model, over random
//! sequences of ingests (with failing handlers), module swaps, dead retries and
//! restarts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use spark_host::LimitOverrides;

use crate::host::Host;
use crate::rng::Rng;
use crate::support::guests;

/// What the tenant should hold.
#[derive(Debug, Default, PartialEq)]
struct Model {
    /// key -> group of the first event with that key.
    ledger: BTreeMap<String, String>,
    /// (event, handler) -> how many times its effects were committed.
    outbox: BTreeMap<(String, String), u32>,
    dead: BTreeSet<(String, String)>,
}

/// The model's knowledge of the world: which events ask the hostile module to fail, and
/// which module `flaky` is now.
struct World {
    fails: BTreeMap<String, bool>,
    flaky_is_hostile: bool,
}

impl World {
    /// Whether a delivery of `key` to `handler` succeeds now.
    fn succeeds(&self, key: &str, handler: &str) -> bool {
        handler == "steady" || !(self.flaky_is_hostile && self.fails[key])
    }
}

fn handlers_for(group: &str) -> Vec<&'static str> {
    // Registration order: steady (`.`), then flaky (`^a`).
    let mut handlers = vec!["steady"];
    if group.starts_with('a') {
        handlers.push("flaky");
    }
    handlers
}

fn observed(host: &mut Host) -> Model {
    let tenant = host.tenant();
    let ledger = tenant
        .events()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.key, entry.group)
        })
        .collect();
    let mut outbox = BTreeMap::new();
    for item in tenant.outbox() {
        let item = item.unwrap();
        *outbox.entry((item.event, item.handler)).or_default() += 1;
    }
    let dead = tenant
        .dead()
        .map(|letter| {
            let letter = letter.unwrap();
            (letter.event, letter.handler)
        })
        .collect();
    assert_eq!(tenant.pending().count(), 0, "nothing is left pending");
    Model {
        ledger,
        outbox,
        dead,
    }
}

fn set_flaky(host: &mut Host, hostile: bool) {
    let wasm = if hostile {
        guests::HOSTILE
    } else {
        guests::RECORDER
    };
    host.add(wasm, "flaky", &[], &["^a"], LimitOverrides::default());
}

#[test]
fn the_store_matches_a_model_over_random_operations() {
    let mut rng = Rng::from_env("the_store_matches_a_model_over_random_operations");
    let mut host = Host::new();
    host.set_attempts(2);
    host.add(
        guests::RECORDER,
        "source",
        &["thing"],
        &[],
        LimitOverrides::default(),
    );
    host.add(
        guests::RECORDER,
        "steady",
        &[],
        &["."],
        LimitOverrides::default(),
    );
    set_flaky(&mut host, true);
    let mut model = Model::default();
    let mut world = World {
        fails: BTreeMap::new(),
        flaky_is_hostile: true,
    };
    let mut next_record = 0;

    for step in 0..80 {
        match rng.between(0..10) {
            0..=5 => {
                let mut records = Vec::new();
                for _ in 0..rng.between(1..5) {
                    next_record += 1;
                    let mut events = Vec::new();
                    for _ in 0..rng.between(1..4) {
                        let key = format!("k{}", rng.between(0..40));
                        let group = ["a1", "a2", "b"][rng.between(0..3) as usize];
                        let fail = rng.chance(30);
                        let context = if fail {
                            json!({ "do": "fail" })
                        } else {
                            json!({})
                        };
                        events.push(json!({ "group": group, "key": key, "context": context }));
                        // The model: first key wins; its context decides the failures.
                        if !model.ledger.contains_key(&key) {
                            model.ledger.insert(key.clone(), group.to_owned());
                            world.fails.insert(key.clone(), fail);
                            for handler in handlers_for(group) {
                                if world.succeeds(&key, handler) {
                                    *model
                                        .outbox
                                        .entry((key.clone(), handler.to_owned()))
                                        .or_default() += 1;
                                } else {
                                    model.dead.insert((key.clone(), handler.to_owned()));
                                }
                            }
                        }
                    }
                    records.push(json!({ "id": next_record, "events": events }));
                }
                host.ingest(&records);
            }
            6 => {
                world.flaky_is_hostile = !world.flaky_is_hostile;
                set_flaky(&mut host, world.flaky_is_hostile);
            }
            7 | 8 => {
                let now = spark_host::parse_time("2024-05-02").unwrap();
                host.tenant().retry_dead(None, None, now).unwrap();
                for letter in std::mem::take(&mut model.dead) {
                    if world.succeeds(&letter.0, &letter.1) {
                        *model.outbox.entry(letter).or_default() += 1;
                    } else {
                        model.dead.insert(letter);
                    }
                }
            }
            _ => host.reopen(),
        }
        assert_eq!(observed(&mut host), model, "after step {step}");
    }
    assert!(!model.ledger.is_empty());
}
