//! Native modules: Rust code in the host, registered like components and checked like
//! them.

use std::sync::Arc;

use serde_json::json;
use spark_host::{
    CallError, Effect, Event, Invocation, ModuleCode, ModuleSpec, NativeModule, Problem, Spark,
};

use crate::support::{guests, jsonl};

/// Echoes each event as an output; refuses events whose group is `refuse`; returns an
/// invalid event for the group `bad`.
struct Echo;

impl NativeModule for Echo {
    fn exports(&self) -> Vec<&'static str> {
        vec!["handler"]
    }

    fn handle(&self, event: &Event, inv: &Invocation) -> Result<Vec<Effect>, CallError> {
        match event.group.as_str() {
            "refuse" => Err(CallError::Guest {
                message: "refused".to_owned(),
            }),
            "bad" => Ok(vec![Effect::Emit(Event {
                group: "x".to_owned(),
                key: String::new(),
                context: "{}".to_owned(),
            })]),
            _ => Ok(vec![Effect::Output {
                channel: "echo".to_owned(),
                payload: json!({ "key": event.key, "tenant": inv.tenant }).to_string(),
            }]),
        }
    }
}

fn spec(name: &str, code: ModuleCode, sources: &[&str], handlers: &[&str]) -> ModuleSpec {
    ModuleSpec {
        name: name.to_owned(),
        code,
        sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        handlers: handlers.iter().map(|h| (*h).to_owned()).collect(),
        limits: Default::default(),
        clock: Default::default(),
    }
}

#[test]
fn a_native_handler_runs_in_the_pipeline_and_its_output_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut spark = Spark::open(dir.path()).unwrap();
    assert!(
        spark.register_native("echo", Arc::new(Echo)).is_err(),
        "names start with builtin:"
    );
    spark
        .register_native("builtin:echo", Arc::new(Echo))
        .unwrap();
    let mut tenant = spark.tenant("t").unwrap();
    let recorder = ModuleCode::Wasm(std::fs::read(guests::RECORDER).unwrap());
    tenant
        .add_module(spec("source", recorder, &["thing"], &[]), false)
        .unwrap();
    let echo = ModuleCode::Native("builtin:echo".to_owned());
    let refused = tenant
        .add_module(spec("echo", echo.clone(), &["thing"], &[]), false)
        .unwrap_err();
    assert!(refused.to_string().contains("not a source"), "{refused}");
    let missing = ModuleCode::Native("builtin:nope".to_owned());
    let refused = tenant
        .add_module(spec("nope", missing, &[], &["."]), false)
        .unwrap_err();
    assert!(
        refused.to_string().contains("builtin:echo, builtin:mails"),
        "{refused}"
    );
    tenant
        .add_module(spec("echo", echo, &[], &["."]), false)
        .unwrap();

    let records = jsonl(&[json!({ "id": 1, "events": [
        { "group": "hello", "id": 1 },
        { "group": "refuse", "id": 2 },
        { "group": "bad", "id": 3 },
    ]})]);
    let report = tenant
        .ingest("thing", &mut records.as_bytes(), 0, &mut |_| {})
        .unwrap();
    assert_eq!(report.deliveries, 1);
    let errors: Vec<&CallError> = report
        .problems
        .iter()
        .filter_map(|problem| match problem {
            Problem::DeliveryFailed {
                error, dead: true, ..
            } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, CallError::Guest { message } if message == "refused"))
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, CallError::InvalidOutput { .. }))
    );
    let outbox: Vec<_> = tenant.outbox().map(Result::unwrap).collect();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        outbox[0].payload.as_output().unwrap().payload,
        json!({ "key": "hello_1", "tenant": "t" })
    );
}
