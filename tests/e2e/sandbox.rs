//! Guests that misbehave are stopped and the engine goes on.

use serde_json::json;

use crate::host::FUEL_ALONE;
use crate::support::{Run, Spark, count, guests, jsonl};

#[test]
fn a_guest_that_loops_or_allocates_forever_is_stopped_and_the_next_event_is_served() {
    let spark = Spark::with_job_handler(
        "hostile",
        guests::HOSTILE,
        &format!("[retry]\nattempts = 1\n\n{FUEL_ALONE}"),
    );
    let job = |id: u64, action: &str| json!({ "id": id, "events": [{ "group": "job", "id": id, "context": { "do": action } }] });
    let summary = spark
        .run_with_input(
            &["ingest", "--model", "thing", "--json"],
            &jsonl(&[job(1, "loop"), job(2, "alloc"), job(3, "behave")]),
        )
        .code(1)
        .json();
    assert_eq!(count(&summary, "failed"), 2);
    assert_eq!(count(&summary, "deliveries"), 1);
    let dead = spark.dead();
    let errors: Vec<(&str, &str)> = dead
        .iter()
        .map(|d| (d["event"].as_str().unwrap(), d["error"].as_str().unwrap()))
        .collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].0, "job_1");
    assert!(
        errors[0].1.starts_with("fuel limit of 100000000 exceeded"),
        "{}",
        errors[0].1
    );
    assert_eq!(errors[1].0, "job_2");
    assert!(
        errors[1]
            .1
            .starts_with("memory-bytes limit of 67108864 exceeded"),
        "{}",
        errors[1].1
    );
    let outbox = spark.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["event"], "job_3");
}

/// Runs `leave`, `snoop` and two `count` jobs through the hostile handler with a fresh
/// instance per call, with `spark` started by `run` (given the data dir, arguments and
/// input); returns its stderr after checking that every call was isolated.
fn fresh_instances(run: impl Fn(&Spark, &[&str], &str) -> Run) -> String {
    // The tenant's limits, so the source too gets a fresh instance per call.
    let spark = Spark::with_job_handler(
        "hostile",
        guests::HOSTILE,
        "[limits]\ncalls-per-instance = 1",
    );
    let job = |id: u64, action: &str| json!({ "id": id, "events": [{ "group": "job", "id": id, "context": { "do": action } }] });
    let input = jsonl(&[
        job(1, "leave"),
        job(2, "snoop"),
        job(3, "count"),
        job(4, "count"),
    ]);
    let run = run(
        &spark,
        &["--verbose", "ingest", "--model", "thing", "--json"],
        &input,
    );
    let stderr = run.stderr.clone();
    assert_eq!(count(&run.ok().json(), "deliveries"), 4);
    let payloads: Vec<_> = spark
        .outbox()
        .iter()
        .map(|item| item["data"]["payload"].clone())
        .collect();
    assert!(payloads[0]["traces"].as_u64().unwrap() > 0, "{payloads:?}");
    assert_eq!(
        payloads[1..],
        [
            json!({ "traces": 0 }),
            json!({ "calls": 1 }),
            json!({ "calls": 1 })
        ]
    );
    stderr
}

#[test]
fn without_room_for_its_instance_pool_spark_maps_each_instance_and_works_the_same() {
    // 16 GiB of address space: room for a few instances' own 4 GiB reservations, not
    // for the pool's 16 TiB.
    let stderr =
        fresh_instances(|spark, args, input| spark.run_with_address_space(16 << 20, args, input));
    assert!(
        stderr.contains("no instance pool: failed to create memory pool mapping"),
        "{stderr}"
    );
}

#[test]
fn the_instance_pool_is_sized_or_turned_off_by_spark_instance_pool() {
    let pool = |size: &'static str| {
        move |spark: &Spark, args: &[&str], input: &str| {
            spark.run_with_env(&[("SPARK_INSTANCE_POOL", size)], args, input)
        }
    };
    assert!(!fresh_instances(pool("8")).contains("no instance pool"));
    let stderr = fresh_instances(pool("0"));
    assert!(
        stderr.contains("no instance pool: each instance maps its own memory"),
        "{stderr}"
    );
    let spark = Spark::new();
    let refused = spark
        .run_with_env(&[("SPARK_INSTANCE_POOL", "lots")], &["module", "list"], "")
        .code(2);
    assert!(
        refused
            .stderr
            .contains("SPARK_INSTANCE_POOL is `lots`; it takes the number of module instances"),
        "{}",
        refused.stderr
    );
}

#[test]
fn an_instance_the_system_cannot_map_is_the_hosts_failure_not_a_trap() {
    // 8 GiB of address space: no pool, and room for one instance's own 4 GiB
    // reservation but not for a second one's.
    let spark = Spark::with_job_handler(
        "hostile",
        guests::HOSTILE,
        &format!("[retry]\nattempts = 1\n\n{FUEL_ALONE}"),
    );
    let job = json!({ "id": 1, "events": [{ "group": "job", "id": 1 }] });
    spark
        .run_with_address_space(8 << 20, &["ingest", "--model", "thing"], &jsonl(&[job]))
        .code(1);
    let dead = spark.dead();
    assert!(!dead.is_empty());
    for letter in &dead {
        let error = letter["error"].as_str().unwrap();
        assert!(
            error.starts_with("the module could not be run: ") && error.contains("os error"),
            "{error}"
        );
    }
}
