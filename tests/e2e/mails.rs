//! Transactional mails: templates per group, the built-in `spark_mail` handler, preview,
//! and delivery that never loses or silently drops a mail, down to a real SMTP server.

use serde_json::{Value, json};

use crate::servers::SmtpServer;
use crate::support::{Spark, count, guests, jsonl};

const DJANGO_TEMPLATE: &str =
    "Dear {{ user }}\n\nThis is the key: {{ key }} ({{ key|length }})\n\nBest regards\n";

/// The recorder as source of `thing` and the built-in mail handler for `^user`, with
/// `template` as the template of the group `user_welcome` (if any).
fn mailer(template: Option<&str>) -> Spark {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add("builtin:mails", "mails", &["--handler", "^user"]);
    if let Some(template) = template {
        let file = spark.write("welcome.txt", template);
        spark
            .run(&["mails", "set", "user_welcome", file.to_str().unwrap()])
            .ok();
    }
    spark
}

/// A record whose event `user_welcome_ID` carries `context`.
fn welcome(id: u64, context: Value) -> Value {
    json!({ "id": id, "events": [{ "group": "user_welcome", "id": id, "context": context }] })
}

fn spark_mail_context() -> Value {
    json!({
        "user": "test",
        "key": "asdf",
        "spark_mail": {
            "to": ["test@example.com"],
            "from_email": "Team <team@example.com>",
            "subject": "Subject from spark_mail",
            "body": "Body from spark_mail",
        },
    })
}

fn ingest(spark: &Spark, records: &[Value]) -> Value {
    spark
        .run_with_input(&["ingest", "--model", "thing", "--json"], &jsonl(records))
        .ok()
        .json()
}

fn mails(spark: &Spark) -> Vec<Value> {
    spark
        .outbox()
        .into_iter()
        .filter(|item| item["kind"] == "mail")
        .collect()
}

#[test]
fn the_django_spark_template_case() {
    let spark = mailer(Some(DJANGO_TEMPLATE));
    ingest(&spark, &[welcome(1, spark_mail_context())]);
    let mails = mails(&spark);
    assert_eq!(mails.len(), 1);
    let data = &mails[0]["data"];
    assert_eq!(data["subject"], "Dear test");
    assert_eq!(data["body"], "This is the key: asdf (4)\n\nBest regards");
    assert_eq!(data["to"], json!(["test@example.com"]));
    assert_eq!(data["from"], "Team <team@example.com>");
    assert_eq!(data["template"], "user_welcome");
}

#[test]
fn the_same_events_twice_give_one_mail() {
    let spark = mailer(Some(DJANGO_TEMPLATE));
    ingest(&spark, &[welcome(1, spark_mail_context())]);
    let again = ingest(
        &spark,
        &[
            welcome(1, spark_mail_context()),
            welcome(1, spark_mail_context()),
        ],
    );
    assert_eq!(count(&again, "new"), 0);
    assert_eq!(mails(&spark).len(), 1);
}

#[test]
fn without_a_template_the_spark_mail_values_are_used() {
    let spark = mailer(None);
    ingest(&spark, &[welcome(1, spark_mail_context())]);
    let data = &mails(&spark)[0]["data"];
    assert_eq!(data["subject"], "Subject from spark_mail");
    assert_eq!(data["body"], "Body from spark_mail");
}

#[test]
fn an_empty_template_keeps_the_spark_mail_subject_and_body() {
    let spark = mailer(Some(""));
    ingest(&spark, &[welcome(1, spark_mail_context())]);
    let data = &mails(&spark)[0]["data"];
    assert_eq!(data["subject"], "Subject from spark_mail");
    assert_eq!(data["body"], "Body from spark_mail");
}

#[test]
fn a_template_that_fails_at_render_time_falls_back() {
    let spark = mailer(Some("Dear {{ user }}\n\n{{ 1 // 0 }}"));
    let summary = ingest(&spark, &[welcome(1, spark_mail_context())]);
    assert_eq!(
        count(&summary, "failed"),
        0,
        "the mail goes out all the same"
    );
    let data = &mails(&spark)[0]["data"];
    assert_eq!(data["subject"], "Subject from spark_mail");
    assert!(
        data["render_error"].as_str().unwrap().contains("1 // 0"),
        "{data}"
    );
    // The warning it logs, in a pipe, has no colour codes.
    let again = spark
        .run_with_input(
            &["-v", "ingest", "--model", "thing"],
            &jsonl(&[welcome(2, spark_mail_context())]),
        )
        .ok()
        .stderr_has("failed to render");
    assert!(!again.stderr.contains('\u{1b}'), "{:?}", again.stderr);
}

#[test]
fn an_invalid_template_is_refused_when_saved() {
    let spark = mailer(Some(DJANGO_TEMPLATE));
    let broken = spark.write("broken.txt", "Subject\n\n{% if user %}\nno end");
    spark
        .run(&["mails", "set", "user_welcome", broken.to_str().unwrap()])
        .code(2)
        .stderr_has("invalid template for `user_welcome`")
        .stderr_has("line");
    assert_eq!(
        spark.run(&["mails", "show", "user_welcome"]).ok().stdout,
        DJANGO_TEMPLATE
    );
    let listed = spark.run(&["mails", "list", "--json"]).ok().json_lines();
    assert_eq!(
        listed,
        [json!({ "group": "user_welcome", "template": DJANGO_TEMPLATE })]
    );
}

#[test]
fn events_without_spark_mail_produce_no_mail_and_bad_ones_fail() {
    let spark = mailer(Some(DJANGO_TEMPLATE));
    let summary = spark
        .run_with_input(
            &["ingest", "--model", "thing", "--json"],
            &jsonl(&[
                welcome(1, json!({ "user": "no mail wanted" })),
                welcome(2, json!({ "spark_mail": { "subject": "no recipient" } })),
            ]),
        )
        .code(1)
        .stderr_has("it has no `to`")
        .json();
    assert_eq!(count(&summary, "failed"), 1);
    assert!(mails(&spark).is_empty());
}

#[test]
fn preview_renders_or_explains() {
    let spark = mailer(Some(DJANGO_TEMPLATE));
    let context = spark.write("context.json", r#"{"user": "Ada", "key": "xyz"}"#);
    let preview = spark
        .run(&[
            "mails",
            "preview",
            "user_welcome",
            "--context",
            context.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    assert_eq!(
        preview,
        "Subject: Dear Ada\n\nThis is the key: xyz (3)\n\nBest regards\n"
    );
    spark
        .run(&["mails", "preview", "nope"])
        .code(2)
        .stderr_has("no template for group `nope`");
    let failing = spark.write("failing.txt", "{{ 1 // 0 }}");
    spark
        .run(&["mails", "set", "broken", failing.to_str().unwrap()])
        .ok();
    spark
        .run(&["mails", "preview", "broken"])
        .code(2)
        .stderr_has("does not render");
    let not_object = spark.write("list.json", "[1]");
    spark
        .run(&[
            "mails",
            "preview",
            "user_welcome",
            "--context",
            not_object.to_str().unwrap(),
        ])
        .code(2)
        .stderr_has("not a JSON object");
    spark.run(&["mails", "remove", "broken"]).ok();
    spark.run(&["mails", "remove", "broken"]).code(2);
    // Without a context, a variable however deep renders as nothing, as the README
    // says: the template is valid.
    let nested = spark.write("nested.txt", "Hello {{ challenge.owner.name }}\n\nBody");
    spark
        .run(&["mails", "set", "nested", nested.to_str().unwrap()])
        .ok();
    let preview = spark.run(&["mails", "preview", "nested"]).ok().stdout;
    assert_eq!(preview, "Subject: Hello\n\nBody\n");
}

#[test]
fn a_module_mail_is_rendered_with_its_template_and_the_tenant_defaults() {
    // The challenges mailer names the event's group as its template.
    let spark = Spark::new();
    let templates = spark.data_dir().with_file_name("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("challenge_created.txt"),
        "{{ challenge.title }} is live!\n\nGo, {{ challenge.owner.name }}.\n",
    )
    .unwrap();
    std::fs::write(templates.join(".editor-swap"), "ignored").unwrap();
    let manifest = spark.write(
        "spark.toml",
        format!(
            "[mails]\nfrom = \"Challenges <hello@example.com>\"\nreply-to = \"help@example.com\"\n\
             templates = \"templates\"\ntransport = \"stdout\"\n\n\
             [[modules]]\nname = \"challenges\"\npath = {:?}\nsources = [\"challenge\"]\n\n\
             [[modules]]\nname = \"mails\"\npath = {:?}\nhandlers = [\"^challenge\"]\n",
            guests::CHALLENGES_SOURCE,
            guests::CHALLENGES_MAILER
        ),
    );
    let applied = spark
        .run(&["apply", manifest.to_str().unwrap()])
        .ok()
        .stdout;
    assert!(applied.contains("template challenge_created"), "{applied}");
    let challenge = json!({
        "id": 1, "title": "Swim", "owner": { "name": "Grace", "email": "grace@example.com" },
        "is_active": true, "start_date": "2024-05-09", "end_date": "2024-06-01", "donations": 5,
    });
    spark
        .run_with_input(
            &["ingest", "--model", "challenge", "--now", "2024-05-10"],
            &jsonl(&[challenge]),
        )
        .ok();
    let data = &mails(&spark)[0]["data"];
    assert_eq!(data["subject"], "Swim is live!");
    assert_eq!(data["body"], "Go, Grace.");
    assert_eq!(data["from"], "Challenges <hello@example.com>");
    assert_eq!(data["reply_to"], "help@example.com");
    // The manifest's transport is the default of `outbox send`.
    let sent = spark.run(&["outbox", "send"]).ok().stdout;
    assert!(sent.contains("Subject: Swim is live!"), "{sent}");
    assert!(
        sent.contains("Message-ID: <spark.default.1@example.com>"),
        "{sent}"
    );

    let misnamed = spark
        .data_dir()
        .with_file_name("templates")
        .join("notes.md");
    std::fs::write(misnamed, "x").unwrap();
    spark
        .run(&["apply", manifest.to_str().unwrap()])
        .code(2)
        .stderr_has("is not named GROUP.txt");
}

#[test]
fn file_delivery_writes_one_message_per_mail_once() {
    let spark = mailer(Some(DJANGO_TEMPLATE));
    ingest(
        &spark,
        &[
            welcome(1, spark_mail_context()),
            welcome(2, spark_mail_context()),
        ],
    );
    let dir = spark.data_dir().with_file_name("mails");
    let target = format!("file:{}", dir.display());
    let report = spark
        .run(&["outbox", "send", "--transport", &target, "--json"])
        .ok()
        .json();
    assert_eq!(
        report,
        json!({ "sent": 2, "failed": 0, "parked": 0, "waiting": 0, "skipped": 0 })
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["1.eml", "2.eml"]);
    let message = std::fs::read_to_string(dir.join("1.eml")).unwrap();
    assert!(message.contains("Subject: Dear test\r\n"), "{message}");
    assert!(
        message.contains("Message-ID: <spark.default.1@example.com>"),
        "{message}"
    );
    assert!(message.contains("This is the key: asdf (4)"), "{message}");
    let again = spark
        .run(&["outbox", "send", "--transport", &target, "--json"])
        .ok()
        .json();
    assert_eq!(
        again,
        json!({ "sent": 0, "failed": 0, "parked": 0, "waiting": 0, "skipped": 0 })
    );
    let statuses: Vec<Value> = spark
        .outbox()
        .iter()
        .map(|item| item["status"].clone())
        .collect();
    assert_eq!(statuses, ["sent", "sent"]);
    assert!(
        spark
            .run(&["outbox", "list", "--pending", "--json"])
            .ok()
            .stdout
            .is_empty()
    );
}

#[test]
fn sending_never_fails_silently() {
    let spark = mailer(None);
    let mut context = spark_mail_context();
    context["spark_mail"]
        .as_object_mut()
        .unwrap()
        .remove("from_email");
    ingest(&spark, &[welcome(1, context)]);
    let dir = spark.data_dir().with_file_name("mails");
    spark
        .run(&[
            "outbox",
            "send",
            "--transport",
            &format!("file:{}", dir.display()),
        ])
        .code(1)
        .stderr_has("outbox item 1 was not sent (it stays pending): it has no sender");
    let item = &spark.outbox()[0];
    assert_eq!(item["status"], "pending");
    assert_eq!(item["attempts"], 1);
    spark
        .run(&["outbox", "send"])
        .code(2)
        .stderr_has("no transport: pass --transport");
    spark
        .run(&[
            "outbox",
            "send",
            "--transport",
            "smtp://user:secret@localhost:25",
        ])
        .code(2)
        .stderr_has("credentials do not go on the command line");
}

#[test]
fn delivery_to_a_real_smtp_server_and_a_refusal_that_keeps_the_mail() {
    let spark = mailer(Some(DJANGO_TEMPLATE));
    let mut context = spark_mail_context();
    context["spark_mail"]["cc"] = json!("cc@example.com");
    context["spark_mail"]["bcc"] = json!(["audit@example.com"]);
    ingest(&spark, &[welcome(1, context)]);

    let refusing = SmtpServer::start("refuse", &spark.data_dir().with_file_name("refused"));
    let run = spark
        .run(&["outbox", "send", "--transport", &refusing.url(), "--json"])
        .code(1)
        .stderr_has("refuses everyone");
    assert_eq!(
        run.json(),
        json!({ "sent": 0, "failed": 1, "parked": 0, "waiting": 0, "skipped": 0 })
    );
    let item = &spark.outbox()[0];
    assert_eq!(item["status"], "pending");
    assert_eq!(item["attempts"], 1);
    assert!(
        item["error"].as_str().unwrap().contains("refuses everyone"),
        "{item}"
    );
    let listed = spark.run(&["outbox", "list"]).ok().stdout;
    assert!(listed.contains("failed x1"), "{listed}");
    drop(refusing);

    let server = SmtpServer::start("accept", &spark.data_dir().with_file_name("maildir"));
    let report = spark
        .run(&["outbox", "send", "--transport", &server.url(), "--json"])
        .ok()
        .json();
    assert_eq!(
        report,
        json!({ "sent": 1, "failed": 0, "parked": 0, "waiting": 0, "skipped": 0 })
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    let message = &received[0];
    for expected in [
        "X-MailFrom: team@example.com",
        "X-RcptTo: test@example.com, cc@example.com, audit@example.com",
        "To: test@example.com",
        "Cc: cc@example.com",
        "Subject: Dear test",
        "Message-ID: <spark.default.1@example.com>",
        "This is the key: asdf (4)",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
    assert!(!message.contains("Bcc:"), "{message}");
    let item = &spark.outbox()[0];
    assert_eq!(item["status"], "sent");
    assert_eq!(item["attempts"], 2);
    assert_eq!(item["error"], Value::Null);
}

#[test]
fn many_mails_sent_at_once_over_pooled_connections_each_arrive_once() {
    let spark = mailer(None);
    let records: Vec<Value> = (1..=24)
        .map(|id| {
            let mut context = spark_mail_context();
            context["spark_mail"]["to"] = json!([format!("user{id}@example.com")]);
            welcome(id, context)
        })
        .collect();
    ingest(&spark, &records);
    let server = SmtpServer::start("accept", &spark.data_dir().with_file_name("maildir"));
    let report = spark
        .run(&[
            "outbox",
            "send",
            "--transport",
            &server.url(),
            "--concurrency",
            "6",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        report,
        json!({ "sent": 24, "failed": 0, "parked": 0, "waiting": 0, "skipped": 0 })
    );
    let mut ids: Vec<u64> = server
        .received()
        .iter()
        .map(|message| {
            let id = message
                .split("Message-ID: <spark.default.")
                .nth(1)
                .and_then(|rest| rest.split('@').next())
                .unwrap_or_else(|| panic!("no Message-ID in:\n{message}"));
            id.parse().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=24).collect::<Vec<u64>>());
    assert!(mails(&spark).iter().all(|mail| mail["status"] == "sent"));
}
