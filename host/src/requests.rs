//! Requests to ingest that a server groups into one commit (group commit), each with
//! an optional idempotency key.
//!
//! A server takes records from many clients at once. Committing (and syncing) each
//! request alone would cap it at the disk's sync rate, so requests for one tenant that
//! arrive together run through one pipeline and are made durable by one flush; each
//! still gets its own report. A request with an idempotency key is remembered with its
//! answer in the same commit as its last records (see [`RememberedRequest`]), so a
//! client that retries after a timeout or a lost connection gets the first answer and
//! changes nothing.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::pipeline::{Pipeline, ingest_lines};
use crate::report::{Problem, RunReport};
use crate::store::{Flush, RememberedRequest};
use crate::time::wall_clock_ms;

/// One request of a group: JSON Lines records of a model.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub model: String,
    /// The records, one JSON object per line.
    pub body: Vec<u8>,
    /// The client's idempotency key, if it sent one.
    pub idempotency_key: Option<String>,
}

/// How a request of a group was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestAnswer {
    /// It ran now.
    Ran(RunReport),
    /// It ran before under the same idempotency key: that run's report, and nothing
    /// was done now.
    Repeated(RunReport),
}

impl IngestAnswer {
    /// The run's report, now or before.
    pub fn report(&self) -> &RunReport {
        match self {
            IngestAnswer::Ran(report) | IngestAnswer::Repeated(report) => report,
        }
    }
}

/// The longest idempotency key taken: a client's UUID or hash fits many times over.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

impl IngestRequest {
    /// What the request asks, as a digest: the same key may only come back with the
    /// same model, logical time (`now_ms` as the client gave it) and body.
    pub(crate) fn fingerprint(&self, now_ms: Option<i64>) -> String {
        let mut digest = Sha256::new();
        digest.update(self.model.as_bytes());
        digest.update([0]);
        digest.update(
            now_ms
                .map_or(String::new(), |now| now.to_string())
                .as_bytes(),
        );
        digest.update([0]);
        digest.update(&self.body);
        digest
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// A remembered request that this one repeats: its report, or an error when the
    /// key came with another request.
    pub(crate) fn repeats(
        &self,
        remembered: &RememberedRequest,
        fingerprint: &str,
    ) -> Result<RunReport, Error> {
        if remembered.fingerprint != fingerprint {
            return Err(Error::IdempotencyKeyReused(remembered.key.clone()));
        }
        serde_json::from_str(&remembered.answer)
            .map_err(|error| Error::Storage(format!("a remembered answer: {error}")))
    }
}

/// Checks an idempotency key: printable ASCII, not empty, not too long.
pub fn validate_idempotency_key(key: &str) -> Result<(), Error> {
    let fine = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && key.bytes().all(|byte| byte.is_ascii_graphic());
    if fine {
        Ok(())
    } else {
        Err(Error::InvalidIdempotencyKey(key.to_owned()))
    }
}

/// Runs `requests` through one `pipeline` (at logical time `now`, or the wall clock's
/// now when the requests gave none), committed at the end and made durable by the
/// [`Flush`] returned. Each gets its own answer; a request for a model not in
/// `known_models`, or with a bad or reused idempotency key, gets its error and nothing
/// of it is stored. An error of the store fails the whole group.
pub(crate) fn ingest_group(
    mut pipeline: Pipeline<'_>,
    requests: &[IngestRequest],
    now: Option<i64>,
    known_models: &[String],
) -> Result<(Vec<Result<IngestAnswer, Error>>, Flush), Error> {
    let mut answers = Vec::with_capacity(requests.len());
    // Keys answered in this group, not yet committed: (fingerprint, report).
    let mut answered: HashMap<&str, (String, RunReport)> = HashMap::new();
    for request in requests {
        if !known_models.contains(&request.model) {
            answers.push(Err(Error::UnknownModel {
                model: request.model.clone(),
                known: known_models.to_vec(),
            }));
            continue;
        }
        let fingerprint = request.fingerprint(now);
        if let Some(key) = request.idempotency_key.as_deref() {
            if let Err(error) = validate_idempotency_key(key) {
                answers.push(Err(error));
                continue;
            }
            if let Some((first, report)) = answered.get(key) {
                answers.push(if *first == fingerprint {
                    Ok(IngestAnswer::Repeated(report.clone()))
                } else {
                    Err(Error::IdempotencyKeyReused(key.to_owned()))
                });
                continue;
            }
            let remembered = match pipeline.remembered_request(key) {
                Ok(remembered) => remembered,
                Err(error) => return Err(pipeline.interrupted(error)),
            };
            if let Some(remembered) = remembered {
                answers.push(
                    request
                        .repeats(&remembered, &fingerprint)
                        .map(IngestAnswer::Repeated),
                );
                continue;
            }
        }
        let mut body = request.body.as_slice();
        if let Err(error) = ingest_lines(&mut pipeline, &request.model, &mut body, &mut |_| {}) {
            return Err(pipeline.interrupted(error));
        }
        let mut report = std::mem::take(&mut pipeline.report);
        // This request's deliveries left for a later retry (the server's background
        // work makes it).
        report.pending = report
            .problems
            .iter()
            .filter(|problem| matches!(problem, Problem::DeliveryFailed { dead: false, .. }))
            .count() as u64;
        if let Some(key) = request.idempotency_key.as_deref() {
            let answer = serde_json::to_string(&report)
                .map_err(|error| Error::Storage(format!("encoding an answer: {error}")))?;
            pipeline.remember(RememberedRequest {
                key: key.to_owned(),
                fingerprint: fingerprint.clone(),
                answer,
                at_ms: wall_clock_ms(),
            });
            // A repeat gets what a remembered answer holds: the counters.
            let counters = RunReport {
                problems: Vec::new(),
                calls: Default::default(),
                ..report.clone()
            };
            answered.insert(key, (fingerprint, counters));
        }
        answers.push(Ok(IngestAnswer::Ran(report)));
    }
    let flush = pipeline.finish_unflushed()?;
    Ok((answers, flush))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::CallError;
    use crate::event::{Effect, Event, Invocation};
    use crate::modules::{ModuleCode, ModuleSpec};
    use crate::native::NativeModule;
    use crate::spark::Spark;

    /// A source making the event `e_ID` of each record, and a handler making an output
    /// of each event.
    struct Echo;

    impl NativeModule for Echo {
        fn exports(&self) -> Vec<&'static str> {
            vec!["source", "handler"]
        }

        fn events(&self, _: &str, record: &str, _: &Invocation) -> Result<Vec<Event>, CallError> {
            let record: serde_json::Value = serde_json::from_str(record).unwrap();
            Ok(vec![Event {
                group: "e".to_owned(),
                key: format!("e_{}", record["id"]),
                context: "{}".to_owned(),
            }])
        }

        fn handle(&self, event: &Event, _: &Invocation) -> Result<Vec<Effect>, CallError> {
            Ok(vec![Effect::Output {
                channel: "seen".to_owned(),
                payload: format!("{:?}", event.key),
            }])
        }
    }

    fn request(body: &str, key: Option<&str>) -> IngestRequest {
        IngestRequest {
            model: "thing".to_owned(),
            body: body.as_bytes().to_vec(),
            idempotency_key: key.map(str::to_owned),
        }
    }

    #[test]
    fn a_group_answers_each_request_apart_and_remembers_keys_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut spark = Spark::open(dir.path()).unwrap();
        spark
            .register_native("builtin:echo", Arc::new(Echo))
            .unwrap();
        let mut tenant = spark.tenant("t").unwrap();
        let spec = ModuleSpec {
            name: "echo".to_owned(),
            code: ModuleCode::Native("builtin:echo".to_owned()),
            sources: vec!["thing".to_owned()],
            handlers: vec![".".to_owned()],
            limits: Default::default(),
            clock: Default::default(),
        };
        tenant.add_module(spec, false).unwrap();
        let mut other_model = request("{\"id\": 9}\n", None);
        other_model.model = "nothing".to_owned();
        let answers = tenant
            .ingest_group(
                &[
                    request("{\"id\": 1}\n{\"id\": 2}\n", Some("k")),
                    other_model,
                    request("{\"id\": 2}\nnot json\n", None),
                    // The same key and body in the same group: the first answer.
                    request("{\"id\": 1}\n{\"id\": 2}\n", Some("k")),
                    request("{\"id\": 3}\n", Some("k")),
                ],
                None,
            )
            .unwrap();
        let first = match &answers[0] {
            Ok(IngestAnswer::Ran(report)) => report.clone(),
            other => panic!("{other:?}"),
        };
        // What a repeat answers: the counters, as they are sent.
        let counters = RunReport {
            problems: Vec::new(),
            calls: Default::default(),
            ..first.clone()
        };
        assert_eq!((first.records, first.new, first.deliveries), (2, 2, 2));
        assert!(matches!(answers[1], Err(Error::UnknownModel { .. })));
        let third = answers[2].as_ref().unwrap().report();
        assert_eq!((third.records, third.invalid, third.duplicates), (1, 1, 1));
        assert_eq!(
            answers[3].as_ref().unwrap(),
            &IngestAnswer::Repeated(counters.clone())
        );
        assert!(matches!(answers[4], Err(Error::IdempotencyKeyReused(_))));
        let keys: Vec<String> = tenant.events().map(|entry| entry.unwrap().key).collect();
        assert_eq!(keys, ["e_1", "e_2"]);
        assert_eq!(tenant.outbox().count(), 2);

        // Remembered after the tenant is closed and opened again, until forgotten.
        drop(tenant);
        let mut tenant = spark.tenant("t").unwrap();
        let again = tenant
            .ingest_group(&[request("{\"id\": 1}\n{\"id\": 2}\n", Some("k"))], None)
            .unwrap();
        assert_eq!(
            again[0].as_ref().unwrap(),
            &IngestAnswer::Repeated(counters)
        );
        assert_eq!(tenant.forget_requests(i64::MAX).unwrap(), 1);
        let after = tenant
            .ingest_group(&[request("{\"id\": 1}\n{\"id\": 2}\n", Some("k"))], None)
            .unwrap();
        let report = match &after[0] {
            Ok(IngestAnswer::Ran(report)) => report,
            other => panic!("{other:?}"),
        };
        assert_eq!((report.new, report.duplicates), (0, 2));
    }
}
