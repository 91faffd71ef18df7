//! What the cluster's log cannot carry: a body that is not text, a body larger than a
//! node takes, and a record whose work is larger than the log's largest message. Each
//! is refused for good (4xx, never "try again"), nothing of it is stored, and the
//! tenant goes on with the requests around it.

use serde_json::{Value, json};

use super::NatsCluster;
use super::failover::{Node, all, balanced, patiently, records, set_up};
use super::nats::MAX_PAYLOAD;
use crate::serve::{Answer, Client, token};

#[test]
fn what_the_log_cannot_carry_is_refused_and_the_tenant_goes_on() {
    let nats = NatsCluster::start();
    let mut node = Node::new();
    let operator = token(&node.spark, &["--operator"]);
    node.start(&nats);
    let url = node.url();
    balanced(std::slice::from_ref(&url), &operator);
    let client = Client::new(&url, Some(&operator));
    // Mails wait in the outbox: no transport.
    set_up(
        &client,
        "acme",
        json!({ "mail": { "from": "Team <team@example.com>" } }),
    );
    // The mail of `m` is as large as a mail may be (its text up to a MiB).
    let path = "/v1/tenants/acme/templates/m";
    let template = "Big\n\n{% for i in range(1000) %}{% for j in range(100) %}0123456789{% endfor %}{% endfor %}";
    let answer = patiently(path, || {
        client.try_send("PUT", path, template.as_bytes(), &[])
    });
    assert_eq!(answer.status, 200, "{answer:?}");
    let post = |body: &[u8], key: &str| -> Answer {
        let path = "/v1/tenants/acme/records/thing";
        patiently(key, || {
            client.try_send("POST", path, body, &[("Idempotency-Key", key)])
        })
    };

    // Not UTF-8: the log carries text.
    let answer = post(b"{\"id\": 1, \"events\": []}\n\xff\xfe\n", "not-text");
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.body["error"], "bad_request", "{answer:?}");

    // Larger than a node takes: a quarter of the log's largest message.
    let too_long = vec![b' '; MAX_PAYLOAD as usize / 4 + 1];
    let answer = post(&too_long, "too-long");
    assert_eq!(answer.status, 413, "{answer:?}");

    // A small record whose work is not: ten events of `m`, whose mails are a MB each,
    // over the log's largest message together. Posted beside other requests, which may
    // be run in the same group: only it is refused.
    let poison = format!(
        "{}\n",
        json!({ "id": 9_999, "events": (0..10).map(|n| json!({ "group": "m",
            "id": format!("big{n}"), "context": { "spark_mail": { "to": ["big@example.com"] } }
        })).collect::<Vec<_>>() })
    );
    let answers: Vec<(u64, Answer)> = std::thread::scope(|scope| {
        let others: Vec<_> = (0..4)
            .map(|batch| {
                let post = &post;
                scope.spawn(move || {
                    let body = records(batch * 10, batch * 10 + 10);
                    (batch, post(body.as_bytes(), &format!("batch-{batch}")))
                })
            })
            .collect();
        let poisoned = post(poison.as_bytes(), "poison");
        let mut answers: Vec<(u64, Answer)> = others
            .into_iter()
            .map(|other| other.join().unwrap())
            .collect();
        answers.push((u64::MAX, poisoned));
        answers
    });
    for (batch, answer) in &answers {
        if *batch == u64::MAX {
            assert_eq!(answer.status, 413, "{answer:?}");
            assert_eq!(answer.body["error"], "too_large", "{answer:?}");
            let message = answer.body["message"].as_str().unwrap();
            assert!(message.contains("largest message"), "{message}");
        } else {
            assert_eq!(answer.status, 200, "batch {batch}: {answer:?}");
            assert_eq!(answer.body["records"], 10, "batch {batch}: {answer:?}");
        }
    }
    // Sent again, refused again, at once.
    let answer = post(poison.as_bytes(), "poison");
    assert_eq!(answer.status, 413, "{answer:?}");

    // The tenant goes on; nothing of the refused requests is stored.
    let answer = post(records(40, 50).as_bytes(), "batch-4");
    assert_eq!(answer.status, 200, "{answer:?}");
    let keys: Vec<String> = all(&client, "/v1/tenants/acme/events")
        .iter()
        .map(|event: &Value| event["key"].as_str().unwrap().to_owned())
        .collect();
    // e_N and x_N for each of the 50 records, m_N for every tenth.
    assert_eq!(keys.len(), 50 * 2 + 5, "{keys:?}");
    assert!(!keys.iter().any(|key| key.contains("big")), "{keys:?}");
    let outbox = all(&client, "/v1/tenants/acme/outbox");
    assert_eq!(
        outbox.len(),
        50 * 2 + 5 * 2,
        "every delivery, none of the big ones"
    );
}
