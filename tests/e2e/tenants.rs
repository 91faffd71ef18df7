//! Tenants are walls: the same module names, models and keys in two tenants of one data
//! dir, and neither sees anything of the other.

use serde_json::json;

use crate::support::{Spark, count, guests, jsonl};

fn manifest(spark: &Spark, name: &str, handler: &str, extra: &str) -> String {
    let path = spark.write(
        name,
        format!(
            "{extra}\n[[modules]]\nname = \"source\"\npath = {:?}\nsources = [\"thing\"]\n\n\
             [[modules]]\nname = \"handler\"\npath = {handler:?}\nhandlers = [\"^job\"]\n",
            guests::RECORDER
        ),
    );
    path.to_str().unwrap().to_owned()
}

#[test]
fn two_tenants_with_the_same_names_and_keys_do_not_interfere() {
    let spark = Spark::new();
    // Tenant a: the recorder handles jobs, with an extra model b does not have.
    let a = manifest(
        &spark,
        "a.toml",
        guests::RECORDER,
        "[limits]\nfuel = 50000000\n",
    );
    spark.run(&["--tenant", "a", "apply", &a]).ok();
    spark
        .run(&[
            "--tenant",
            "a",
            "module",
            "add",
            guests::RECORDER,
            "--name",
            "secret",
            "--source",
            "secret_model",
        ])
        .ok();
    // Tenant b: the same names, but the hostile module handles jobs, and it fails them.
    let b = manifest(
        &spark,
        "b.toml",
        guests::HOSTILE,
        "[limits]\nfuel = 40000000\n[retry]\nattempts = 1\n",
    );
    spark.run(&["--tenant", "b", "apply", &b]).ok();

    // The same ids and keys in both; the contexts differ, and a's carry a secret.
    let records = |owner: &str| {
        jsonl(&[
            json!({ "id": 1, "events": [{ "group": "job", "id": 1, "context": { "do": "fail", "owner": owner } }] }),
            json!({ "id": 2, "events": [{ "group": "job", "id": 2, "context": { "owner": owner } }] }),
        ])
    };
    let in_a = spark
        .run_with_input(
            &[
                "--tenant",
                "a",
                "ingest",
                "--model",
                "thing",
                "--now",
                "2024-01-01",
                "--json",
            ],
            &records("a-secret"),
        )
        .ok()
        .json();
    assert_eq!(count(&in_a, "new"), 2);
    let in_b = spark
        .run_with_input(
            &[
                "--tenant",
                "b",
                "ingest",
                "--model",
                "thing",
                "--now",
                "2024-02-02",
                "--json",
            ],
            &records("b"),
        )
        .code(1)
        .json();
    assert_eq!(count(&in_b, "new"), 2, "keys seen in a are new in b");

    let listing = |tenant: &str, what: &[&str]| {
        let mut args = vec!["--tenant", tenant];
        args.extend_from_slice(what);
        args.push("--json");
        spark.run(&args).ok().json_lines()
    };
    // Ledgers: same keys, each tenant's own times.
    for (tenant, day) in [("a", "2024-01-01"), ("b", "2024-02-02")] {
        let events = listing(tenant, &["events", "list"]);
        assert_eq!(events.len(), 2);
        assert!(
            events
                .iter()
                .all(|e| e["created_at"].as_str().unwrap().starts_with(day))
        );
    }
    // Outboxes: a's recorder saw both jobs; b's hostile module only job 2.
    let outbox_a = listing("a", &["outbox", "list"]);
    let outbox_b = listing("b", &["outbox", "list"]);
    assert_eq!(outbox_a.len(), 2);
    assert!(
        outbox_a
            .iter()
            .all(|item| item["data"]["channel"] == "seen")
    );
    assert_eq!(outbox_b.len(), 1);
    assert_eq!(outbox_b[0]["data"]["channel"], "ok");
    assert_eq!(outbox_a[0]["id"], 1);
    assert_eq!(outbox_b[0]["id"], 1, "ids are per tenant");
    // Dead letters: only b's.
    assert!(listing("a", &["dead", "list"]).is_empty());
    assert_eq!(listing("b", &["dead", "list"]).len(), 1);
    // Modules and limits.
    let modules_a = listing("a", &["module", "list"]);
    let modules_b = listing("b", &["module", "list"]);
    assert_eq!(modules_a.len(), 3);
    assert_eq!(modules_b.len(), 2);
    assert_eq!(modules_a[0]["limits"]["fuel"], 50_000_000);
    assert_eq!(modules_b[0]["limits"]["fuel"], 40_000_000);
    assert_ne!(modules_a[1]["hash"], modules_b[1]["hash"]);
    // Records: process-sources in b sees b's two records only.
    let reprocessed = spark
        .run(&["--tenant", "b", "process-sources", "--json"])
        .ok()
        .json();
    assert_eq!(count(&reprocessed, "records"), 2);

    // Nothing of a shows through b's commands or errors.
    let b_sees = [
        spark
            .run(&["--tenant", "b", "ingest", "--model", "secret_model"])
            .code(2),
        spark
            .run(&["--tenant", "b", "events", "show", "job_1"])
            .ok(),
        spark
            .run(&["--tenant", "b", "module", "remove", "secret"])
            .code(2),
        spark
            .run(&["--tenant", "b", "dead", "retry", "--handler", "secret"])
            .code(2),
    ];
    for run in &b_sees {
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(!all.contains("a-secret"), "{all}");
        assert!(!all.contains("2024-01-01"), "{all}");
    }
    assert!(
        b_sees[0].stderr.ends_with("known models: thing\n"),
        "{}",
        b_sees[0].stderr
    );
    assert!(
        b_sees[1].stdout.contains("\"owner\": \"b\""),
        "{}",
        b_sees[1].stdout
    );
    // a's data is untouched by all of b's runs.
    assert_eq!(listing("a", &["outbox", "list"]), outbox_a);
}

#[test]
fn tenant_names_cannot_reach_outside_the_data_dir() {
    let spark = Spark::new();
    for name in [
        "..",
        "../x",
        "/etc",
        "a/b",
        ".hidden",
        "UPPER",
        "a b",
        &"t".repeat(65),
    ] {
        spark
            .run(&["--tenant", name, "module", "list"])
            .code(2)
            .stderr_has("invalid tenant name");
    }
    // The longest name is a tenant (made by a command that sets one up).
    let longest = "t".repeat(64);
    let setup = ["--tenant", &longest, "module", "add", "builtin:mails"];
    spark
        .run(&[&setup[..], &["--name", "mails", "--handler", "."]].concat())
        .ok();
    spark.run(&["--tenant", &longest, "module", "list"]).ok();
    let tenants: Vec<String> = std::fs::read_dir(spark.data_dir().join("tenants"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(tenants, ["t".repeat(64)]);
}

/// Two tenants of one process (as a server would hold them) share the engine, the
/// instance pool and the compiled module, and nothing else: not memory an instance of
/// the other left in a pool slot, not limits, not keys.
#[test]
fn two_tenants_in_one_process_share_code_but_no_memory_limits_or_keys() {
    use spark_host::{
        CallError, Limit, LimitOverrides, ModuleCode, ModuleSpec, Problem, RetryPolicy, Tenant,
    };

    let dir = tempfile::tempdir().unwrap();
    let spark = spark_host::Spark::open(dir.path()).unwrap();
    assert!(spark.instance_pool().is_some(), "instances share one pool");
    let now = spark_host::parse_time("2024-05-01").unwrap();
    let open = |name: &str, memory_bytes: Option<u64>| -> Tenant {
        let mut tenant = spark.tenant(name).unwrap();
        let mut settings = tenant.settings().unwrap();
        settings.retry = RetryPolicy {
            attempts: 1,
            backoff_ms: 0,
        };
        tenant.set_settings(&settings).unwrap();
        for (module, wasm, sources, handlers) in [
            ("source", guests::RECORDER, vec!["thing"], vec![]),
            ("hostile", guests::HOSTILE, vec![], vec!["^job"]),
        ] {
            let spec = ModuleSpec {
                name: module.to_owned(),
                code: ModuleCode::Wasm(std::fs::read(wasm).unwrap()),
                sources: sources.into_iter().map(str::to_owned).collect(),
                handlers: handlers.into_iter().map(str::to_owned).collect(),
                limits: LimitOverrides {
                    memory_bytes: memory_bytes.filter(|_| module == "hostile"),
                    ..LimitOverrides::default()
                },
                clock: Default::default(),
            };
            tenant.add_module(spec, false).unwrap();
        }
        tenant
    };
    let mut a = open("a", Some(16 << 20));
    let mut b = open("b", None);
    let ingest = |tenant: &mut Tenant, jobs: &[(u64, &str)]| {
        let jobs: Vec<serde_json::Value> = jobs
            .iter()
            .map(|(id, action)| {
                json!({ "id": id, "events": [
                { "group": "job", "id": id, "context": { "do": action } }] })
            })
            .collect();
        tenant
            .ingest("thing", &mut jsonl(&jobs).as_bytes(), now, &mut |_| {})
            .unwrap()
    };
    let traces = |tenant: &Tenant| -> Vec<u64> {
        tenant
            .outbox()
            .filter_map(|item| {
                let item = item.unwrap();
                item.payload.as_output()?.payload["traces"].as_u64()
            })
            .collect()
    };

    // One instance of a's sees what it left (so `snoop` can see); b's instance, of the
    // same compiled module, in a slot a's instances used, sees none of it. The key
    // job_1 is new in b though a has it: the ledgers are apart.
    ingest(&mut a, &[(1, "leave"), (2, "snoop")]);
    let seen_by_a = traces(&a);
    assert!(
        seen_by_a[1] > 0 && seen_by_a[1] == seen_by_a[0],
        "{seen_by_a:?}"
    );
    let report = ingest(&mut b, &[(1, "snoop")]);
    assert_eq!(report.new, 1);
    assert_eq!(traces(&b), [0]);
    assert!(b.event("job_2").is_err(), "a's key is not in b's ledger");
    assert!(a.event("job_2").is_ok());

    // Each tenant's limits hold for its own calls of the shared code.
    let breach = |report: spark_host::RunReport| -> u64 {
        match &report.problems[..] {
            [
                Problem::DeliveryFailed {
                    error: CallError::Limit { limit, max, .. },
                    ..
                },
            ] if *limit == Limit::MemoryBytes => *max,
            other => panic!("a memory breach, not {other:?}"),
        }
    };
    assert_eq!(breach(ingest(&mut a, &[(3, "alloc")])), 16 << 20);
    assert_eq!(breach(ingest(&mut b, &[(3, "alloc")])), 64 << 20);
}
