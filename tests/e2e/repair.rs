//! Repairs an operator makes with the command line alone (issue 18): the settings set
//! without a manifest, outbox items cancelled or rendered again, dead letters
//! discarded, events forgotten so that they come again. Each that loses something asks
//! for `--yes`; bad input changes nothing; through a server each does what it does on a
//! data dir.

use serde_json::{Value, json};

use crate::serve::{Server, token};
use crate::support::{Run, Spark, count, guests, jsonl, shell_words};

/// The recorder as the source of `thing` (with a `day` clock, so that an unchanged
/// record skips its source) and as the handler of `^job`, and the built-in mail
/// handler for `^user`; deliveries are tried once.
fn tenant(spark: &Spark, tenant: &str) {
    let manifest = spark.write("spark.toml", "[retry]\nattempts = 1\n");
    spark
        .run(&["--tenant", tenant, "apply", manifest.to_str().unwrap()])
        .ok();
    for module in [
        &[
            guests::RECORDER,
            "--name",
            "source",
            "--source",
            "thing",
            "--clock",
            "day",
        ][..],
        &[guests::RECORDER, "--name", "worker", "--handler", "^job"],
        &["builtin:mails", "--name", "mails", "--handler", "^user"],
    ] {
        let mut args = vec!["--tenant", tenant, "module", "add"];
        args.extend_from_slice(module);
        spark.run(&args).ok();
    }
}

/// A record whose event `user_welcome_ID` asks for a mail to `to`, without a sender.
fn welcome(id: u64, to: &str) -> Value {
    json!({ "id": id, "events": [{ "group": "user_welcome", "id": id, "context": {
        "name": format!("User {id}"),
        "spark_mail": { "to": [to], "subject": "Welcome", "body": "Hello" },
    }}]})
}

/// A record whose event `job_ID` carries `context` for the worker.
fn job(id: u64, context: Value) -> Value {
    json!({ "id": id, "events": [{ "group": "job", "id": id, "context": context }] })
}

fn ingest(spark: &Spark, records: &[Value]) -> Value {
    let args = [
        "ingest",
        "--model",
        "thing",
        "--now",
        "2024-05-10",
        "--json",
    ];
    spark.run_with_input(&args, &jsonl(records)).json()
}

/// What a repair must leave as it was when it is refused: the ledger, the outbox,
/// the dead letters and the settings.
fn state(spark: &Spark) -> Value {
    json!({
        "events": spark.events(),
        "outbox": spark.outbox(),
        "dead": spark.dead(),
        "settings": spark.run(&["settings", "show", "--json"]).ok().json(),
    })
}

fn ids(spark: &Spark) -> Vec<u64> {
    spark
        .outbox()
        .iter()
        .map(|item| item["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn mails_queued_without_a_sender_go_out_once_it_is_set_and_they_are_rendered_again() {
    let spark = Spark::new();
    tenant(&spark, "default");
    ingest(
        &spark,
        &[
            welcome(1, "ada@example.com"),
            welcome(2, "grace@example.com"),
        ],
    );
    let mails = spark.data_dir().with_file_name("mails");
    let transport = format!("file:{}", mails.display());
    spark
        .run(&["outbox", "send", "--transport", &transport])
        .code(1)
        .stderr_has("it has no sender");
    assert_eq!(ids(&spark), [1, 2]);

    // The sender, and where mails go, from the command line; a relative directory is
    // kept as the absolute one it names from here.
    let mut set = spark.command(&[
        "settings",
        "set",
        "--mail-from",
        "Shop <shop@example.com>",
        "--reply-to",
        "help@example.com",
        "--mail-transport",
        "file:mails",
        "--json",
    ]);
    let here = spark.data_dir().parent().unwrap().to_owned();
    let output = set.current_dir(&here).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let settings: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(settings["mail"]["from"], "Shop <shop@example.com>");
    assert_eq!(settings["mail"]["reply-to"], "help@example.com");
    assert_eq!(settings["mail"]["transport"], transport);
    assert_eq!(
        spark.run(&["settings", "show", "--json"]).ok().json(),
        settings
    );
    let shown = spark.run(&["settings", "show"]).ok().stdout;
    assert!(
        shown.contains("mail from:       Shop <shop@example.com>"),
        "{shown}"
    );

    // A template saved after the mails were queued renders them now, ids kept.
    let template = spark.write("welcome.txt", "Welcome, {{ name }}\n\nGlad you came.\n");
    spark
        .run(&["mails", "set", "user_welcome", template.to_str().unwrap()])
        .ok();
    let rerendered = spark.run(&["outbox", "rerender", "--json"]).ok().json();
    assert_eq!(
        rerendered,
        json!({ "rerendered": 2, "failed": 0, "unchanged": 0 })
    );
    let outbox = spark.outbox();
    assert_eq!(ids(&spark), [1, 2]);
    assert_eq!(outbox[0]["data"]["subject"], "Welcome, User 1");
    assert_eq!(outbox[1]["data"]["body"], "Glad you came.");
    assert_eq!(outbox[0]["data"]["from"], "Shop <shop@example.com>");

    // `outbox send` needs no --transport now, and each mail keeps its Message-ID.
    let sent = spark.run(&["outbox", "send", "--json"]).ok().json();
    assert_eq!(count(&sent, "sent"), 2);
    let message = std::fs::read_to_string(mails.join("2.eml")).unwrap();
    for line in [
        "From: Shop <shop@example.com>",
        "Reply-To: help@example.com",
        "Subject: Welcome, User 2",
        "Message-ID: <spark.default.2@example.com>",
    ] {
        assert!(message.contains(line), "{line} in:\n{message}");
    }
    // Sent mails are neither rendered again nor cancelled.
    spark
        .run(&["outbox", "rerender", "1"])
        .code(2)
        .stderr_has("outbox item 1 was sent already");
    let nothing = spark.run(&["outbox", "rerender", "--json"]).ok().json();
    assert_eq!(
        nothing,
        json!({ "rerendered": 0, "failed": 0, "unchanged": 0 })
    );
}

#[test]
fn a_template_that_does_not_render_again_is_reported_and_the_mail_keeps_its_text() {
    let spark = Spark::new();
    tenant(&spark, "default");
    ingest(&spark, &[welcome(1, "ada@example.com")]);
    let broken = spark.write("welcome.txt", "Hi {{ 1 // 0 }}\n");
    spark
        .run(&["mails", "set", "user_welcome", broken.to_str().unwrap()])
        .ok();
    let run = spark
        .run(&["outbox", "rerender", "--json"])
        .code(1)
        .stderr_has("outbox item 1 did not render and keeps its text");
    assert_eq!(
        run.json(),
        json!({ "rerendered": 0, "failed": 1, "unchanged": 0 })
    );
    let mail = &spark.outbox()[0]["data"];
    assert_eq!(mail["subject"], "Welcome");
    assert!(mail["render_error"].is_string(), "{mail}");
}

#[test]
fn cancelling_asks_for_yes_refuses_sent_and_unknown_items_and_never_reuses_an_id() {
    let spark = Spark::new();
    tenant(&spark, "default");
    ingest(
        &spark,
        &[
            welcome(1, "ada@example.com"),
            welcome(2, "grace@example.com"),
            welcome(3, "alan@example.com"),
        ],
    );
    spark
        .run(&["settings", "set", "--mail-from", "shop@example.com"])
        .ok();
    let before = state(&spark);
    spark
        .run(&["outbox", "cancel", "1", "3"])
        .code(2)
        .stderr_has("pass --yes to remove 1, 3");
    spark
        .run(&["outbox", "cancel", "1", "9", "--yes"])
        .code(2)
        .stderr_has("there is no outbox item 9");
    assert_eq!(state(&spark), before, "nothing was removed");

    // Item 2 goes out; then it cannot be cancelled.
    let mails = spark.data_dir().with_file_name("mails");
    let transport = format!("file:{}", mails.display());
    spark.run(&["outbox", "cancel", "1", "3", "--yes"]).ok();
    assert_eq!(ids(&spark), [2]);
    spark
        .run(&["outbox", "send", "--transport", &transport])
        .ok();
    spark
        .run(&["outbox", "cancel", "2", "--yes"])
        .code(2)
        .stderr_has("was sent already");
    assert!(!mails.join("1.eml").exists() && !mails.join("3.eml").exists());

    // A new mail gets a new id, even though the last ones were cancelled.
    ingest(&spark, &[welcome(4, "edsger@example.com")]);
    assert_eq!(ids(&spark), [2, 4]);
    let cancelled = spark
        .run(&["outbox", "cancel", "4", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(cancelled, json!({ "cancelled": 1 }));
    ingest(&spark, &[welcome(5, "barbara@example.com")]);
    assert_eq!(ids(&spark), [2, 5]);
}

#[test]
fn dead_letters_are_discarded_with_yes_one_event_or_all() {
    let spark = Spark::new();
    tenant(&spark, "default");
    let failing = json!({ "fail": "boom" });
    ingest(
        &spark,
        &[
            job(1, failing.clone()),
            job(2, failing.clone()),
            job(3, failing),
        ],
    );
    assert_eq!(spark.dead().len(), 3);
    let before = state(&spark);
    spark
        .run(&["dead", "discard", "job_1"])
        .code(2)
        .stderr_has("pass --yes to discard the dead letters of job_1");
    spark
        .run(&["dead", "discard", "job_1", "job_9", "--yes"])
        .code(2)
        .stderr_has("event `job_9` has no dead letters");
    spark
        .run(&["dead", "discard", "job_1", "--handler", "mails", "--yes"])
        .code(2)
        .stderr_has("no dead letters of handler `mails`");
    spark.run(&["dead", "discard", "--yes"]).code(2);
    assert_eq!(state(&spark), before, "nothing was discarded");

    let one = spark
        .run(&["dead", "discard", "job_1", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(one, json!({ "discarded": 1 }));
    let left: Vec<&str> = before["dead"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|letter| letter["event"].as_str().unwrap())
        .collect();
    let dead = spark.dead();
    assert_eq!(
        dead.iter()
            .map(|letter| letter["event"].as_str().unwrap())
            .collect::<Vec<_>>(),
        left
    );
    let all = spark.run(&["dead", "discard", "--all", "--yes"]).ok();
    assert_eq!(all.stdout, "2 dead letters discarded\n");
    assert!(spark.dead().is_empty());
    // The events stay seen: discarding is not forgetting.
    assert_eq!(spark.event_keys(), ["job_1", "job_2", "job_3"]);
}

#[test]
fn a_forgotten_key_is_new_again_in_the_next_process_and_its_items_stay_unless_asked() {
    let spark = Spark::new();
    tenant(&spark, "default");
    let record = welcome(1, "ada@example.com");
    let first = ingest(&spark, std::slice::from_ref(&record));
    assert_eq!(count(&first, "new"), 1);
    // Unchanged, the same day: its source is not even called again.
    let again = ingest(&spark, std::slice::from_ref(&record));
    assert_eq!(
        (count(&again, "new"), count(&again, "sources_skipped")),
        (0, 1)
    );

    spark
        .run(&["events", "forget", "user_welcome_1"])
        .code(2)
        .stderr_has("pass --yes to forget user_welcome_1");
    let forgotten = spark
        .run(&["events", "forget", "user_welcome_1", "--yes", "--json"])
        .ok()
        .stderr_has("1 outbox items of these events were not sent yet and stay")
        .json();
    assert_eq!(
        forgotten,
        json!({ "forgotten": 1, "pending": 0, "dead": 0, "cancelled": 0, "kept": 1 })
    );
    assert!(spark.event_keys().is_empty());

    // Another process ingests the very same record: the key is new again, and the mail
    // handler runs again (the first mail stayed).
    let back = ingest(&spark, std::slice::from_ref(&record));
    assert_eq!(
        (count(&back, "new"), count(&back, "sources_skipped")),
        (1, 0)
    );
    assert_eq!(spark.event_keys(), ["user_welcome_1"]);
    assert_eq!(ids(&spark), [1, 2]);

    // Forgotten by group with --outbox, its unsent mails go too.
    let forgotten = spark
        .run(&[
            "events", "forget", "--group", "^user_", "--outbox", "--yes", "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        forgotten,
        json!({ "forgotten": 1, "pending": 0, "dead": 0, "cancelled": 2, "kept": 0 })
    );
    assert!(spark.outbox().is_empty());
    let third = ingest(&spark, &[record]);
    assert_eq!(count(&third, "new"), 1);
    assert_eq!(ids(&spark), [3]);
}

#[test]
fn forgetting_an_event_drops_its_dead_letters_so_that_it_is_delivered_once_when_it_comes_again() {
    let spark = Spark::new();
    tenant(&spark, "default");
    let failing = job(1, json!({ "fail": "boom" }));
    ingest(&spark, &[failing]);
    assert_eq!(spark.dead().len(), 1);
    let forgotten = spark
        .run(&["events", "forget", "job_1", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(count(&forgotten, "dead"), 1);
    assert!(spark.dead().is_empty());
    // Mended: the same event comes again and is delivered once.
    let summary = ingest(&spark, &[job(1, json!({}))]);
    assert_eq!(count(&summary, "new"), 1);
    assert_eq!(count(&summary, "deliveries"), 1);
    assert_eq!(spark.outbox().len(), 1);
}

#[test]
fn bad_input_is_refused_with_exit_2_and_changes_nothing() {
    let spark = Spark::new();
    tenant(&spark, "default");
    ingest(&spark, &[welcome(1, "ada@example.com"), job(2, json!({}))]);
    spark
        .run(&["settings", "set", "--output", "seen=file:/tmp/seen"])
        .ok();
    let before = state(&spark);
    let output_id = spark
        .outbox()
        .iter()
        .find(|item| item["kind"] == "output")
        .map(|item| item["id"].to_string())
        .unwrap();
    let refused: &[(&[&str], &str)] = &[
        (
            &["events", "forget", "user_welcome_1", "nope_1", "--yes"],
            "no event with key `nope_1` is in the ledger",
        ),
        (
            &["events", "forget", "--group", "(", "--yes"],
            "invalid group regex `(`",
        ),
        (
            &["events", "forget", "--group", "^nothing", "--yes"],
            "no event's group matches `^nothing`",
        ),
        (&["events", "forget", "--yes"], "KEY"),
        (&["outbox", "cancel", "--yes"], "ID"),
        (&["outbox", "cancel", "x1", "--yes"], "invalid value"),
        (&["outbox", "rerender", "99"], "there is no outbox item 99"),
        (
            &["outbox", "rerender", &output_id],
            "is an output, not a mail",
        ),
        (
            &["settings", "set", "--mail-from", "not an address"],
            "invalid sender (`from`) `not an address`",
        ),
        (
            &["settings", "set", "--reply-to", "help@"],
            "invalid reply address (`reply-to`)",
        ),
        (&["settings", "set"], "nothing to set"),
        (
            &["settings", "set", "--mail-transport", "smtp://"],
            "invalid transport",
        ),
        (
            &["settings", "set", "--output", "seen=smtp://localhost:25"],
            "invalid transport",
        ),
        (
            &["settings", "set", "--no-output", "unseen"],
            "no output channel `unseen` has a transport",
        ),
        (
            &[
                "settings",
                "set",
                "--mail-from",
                "a@example.com",
                "--no-mail-from",
            ],
            "cannot be used with",
        ),
        (
            &["dead", "discard", "job_2", "--all", "--yes"],
            "cannot be used with",
        ),
    ];
    for (args, message) in refused {
        spark.run(args).code(2).stderr_has(message);
    }
    assert_eq!(state(&spark), before, "nothing changed");
    // A tenant that does not exist is not made by a repair.
    spark
        .run(&["--tenant", "nobody", "outbox", "cancel", "1", "--yes"])
        .code(2)
        .stderr_has("there is no tenant `nobody`");
    assert!(!spark.data_dir().join("tenants/nobody").exists());
}

#[test]
fn the_readme_repair_snippet_runs_as_written() {
    let readme = include_str!("../../README.md");
    let snippet = readme
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| block.contains("outbox rerender"))
        .expect("the README shows repairs");
    let spark = Spark::new();
    tenant(&spark, "default");
    let mut records: Vec<Value> = (1..=8)
        .chain([42])
        .map(|id| welcome(id, &format!("user{id}@example.com")))
        .collect();
    records.push(job(100, json!({ "fail": "boom" })));
    ingest(&spark, &records);
    spark.write("welcome.txt", "Welcome, {{ name }}\n\nGlad you came.\n");
    let here = spark.data_dir().parent().unwrap().to_owned();
    // Mails go to files here rather than to an SMTP server.
    let mails = format!("file:{}", here.join("mails").display());
    for line in snippet.lines().filter(|line| !line.trim().is_empty()) {
        let words: Vec<String> = shell_words(&line.replace("smtp://localhost:25", &mails));
        assert_eq!(words[0], "spark", "{line}");
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        let output = spark.command(&args).current_dir(&here).output().unwrap();
        assert!(output.status.success(), "`{line}`: {output:?}");
    }
    let sent: Vec<u64> = spark
        .outbox()
        .iter()
        .filter(|item| item["status"] == "sent")
        .map(|item| item["id"].as_u64().unwrap())
        .collect();
    assert_eq!(sent, [1, 2, 3, 4, 5, 6, 9], "7 and 8 were cancelled");
    let message = std::fs::read_to_string(here.join("mails/3.eml")).unwrap();
    assert!(message.contains("Subject: Welcome, User 3"), "{message}");
    assert!(spark.dead().is_empty());
    assert!(!spark.event_keys().contains(&"user_welcome_42".to_owned()));
}

/// `spark ARGS` on `spark`'s tenant `acme`, or through `server` with `token`.
fn acme(spark: &Spark, server: Option<(&Server, &str)>, args: &[&str], input: &str) -> Run {
    let mut all = vec!["--tenant", "acme"];
    if let Some((server, token)) = server {
        all.extend_from_slice(&["--server", &server.url, "--token", token]);
    }
    all.extend_from_slice(args);
    spark.run_with_input(&all, input)
}

#[test]
fn repairs_through_a_server_print_what_they_print_on_a_data_dir() {
    let local = Spark::new();
    let served = Spark::new();
    tenant(&local, "acme");
    tenant(&served, "acme");
    let admin = token(&served, &["--tenant", "acme", "--scope", "admin"]);
    let reader = token(&served, &["--tenant", "acme", "--scope", "read"]);
    let server = Server::start(&served, &[]);
    let remote = Some((&server, admin.as_str()));
    // The same commands on both, the same exit status and output.
    let both = |args: &[&str], input: &str, code: i32| -> Run {
        let here = acme(&local, None, args, input).code(code);
        let there = acme(&served, remote, args, input).code(code);
        assert_eq!(
            there.stdout,
            here.stdout,
            "`{}` prints otherwise through the server\n--- remote stderr\n{}",
            args.join(" "),
            there.stderr
        );
        there
    };
    let records = jsonl(&[
        welcome(1, "ada@example.com"),
        welcome(2, "grace@example.com"),
        job(3, json!({ "fail": "boom" })),
    ]);
    let ingest = [
        "ingest",
        "--model",
        "thing",
        "--now",
        "2024-05-10",
        "--json",
    ];
    both(&ingest, &records, 1);

    let settings = both(
        &[
            "settings",
            "set",
            "--mail-from",
            "Shop <shop@example.com>",
            "--json",
        ],
        "",
        0,
    );
    assert_eq!(settings.json()["mail"]["from"], "Shop <shop@example.com>");
    both(&["settings", "show"], "", 0);
    let template = local.write("welcome.txt", "Welcome, {{ name }}\n\nHello.\n");
    both(
        &["mails", "set", "user_welcome", template.to_str().unwrap()],
        "",
        0,
    );
    let rerendered = both(&["outbox", "rerender", "--json"], "", 0);
    assert_eq!(rerendered.json()["rerendered"], 2);
    both(&["outbox", "list", "--json"], "", 0);
    let cancelled = both(&["outbox", "cancel", "1", "--yes", "--json"], "", 0);
    assert_eq!(cancelled.json(), json!({ "cancelled": 1 }));
    both(&["dead", "discard", "--all", "--yes"], "", 0);
    let forgotten = both(
        &[
            "events",
            "forget",
            "user_welcome_2",
            "--outbox",
            "--yes",
            "--json",
        ],
        "",
        0,
    );
    assert_eq!(count(&forgotten.json(), "cancelled"), 1);
    // The forgotten event comes again, through the server as on the data dir.
    let again = both(&ingest, &records, 0);
    assert_eq!(count(&again.json(), "new"), 1);
    both(&["outbox", "list", "--json"], "", 0);

    // Refusals read the same, the server's naming its status.
    let there = acme(&served, remote, &["outbox", "cancel", "9", "--yes"], "")
        .code(2)
        .stderr_has("there is no outbox item 9")
        .stderr_has("HTTP 404 unknown_outbox_item");
    let here = acme(&local, None, &["outbox", "cancel", "9", "--yes"], "").code(2);
    assert!(
        there.stderr.starts_with(here.stderr.trim_end()),
        "{}",
        there.stderr
    );
    acme(
        &served,
        remote,
        &["settings", "set", "--mail-transport", "file:relative"],
        "",
    )
    .code(2)
    .stderr_has("give an absolute path");
    // A read token may look, not repair.
    acme(
        &served,
        Some((&server, reader.as_str())),
        &["outbox", "cancel", "3", "--yes"],
        "",
    )
    .code(2)
    .stderr_has("HTTP 403");
    let outbox = acme(&served, remote, &["outbox", "list", "--json"], "")
        .ok()
        .json_lines();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["id"], 3);
}
