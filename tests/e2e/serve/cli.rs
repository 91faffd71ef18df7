//! The command line against a server (`spark --server URL --token T <command>`): each
//! command prints through the API what it prints on a data dir, with the same exit
//! status. Two data dirs are set up alike, one used by the CLI directly and one held
//! by a server; the same commands run on both must print the same.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Server, token};
use crate::support::{Run, Spark, count, guests, jsonl};

/// Two tenants `acme` set up alike: `local` on a data dir, `served` held by `server`,
/// reached with an admin `token`. Failed deliveries are parked at once (one attempt),
/// so that the server retries nothing by itself; no transport is set, so that it
/// sends nothing by itself.
struct Twins {
    local: Spark,
    served: Spark,
    server: Server,
    token: String,
}

impl Twins {
    fn new() -> Self {
        let local = Spark::new();
        let served = Spark::new();
        for spark in [&local, &served] {
            let manifest = spark.write("spark.toml", "[retry]\nattempts = 1\n");
            spark
                .run(&["--tenant", "acme", "apply", manifest.to_str().unwrap()])
                .ok();
        }
        let token = token(&served, &["--tenant", "acme", "--scope", "admin"]);
        let server = Server::start(&served, &[]);
        Self {
            local,
            served,
            server,
            token,
        }
    }

    /// `spark --tenant acme ARGS` on the local data dir.
    fn local(&self, args: &[&str], input: &str) -> Run {
        let mut all = vec!["--tenant", "acme"];
        all.extend_from_slice(args);
        self.local.run_with_input(&all, input)
    }

    /// `spark --server URL --token T --tenant acme ARGS`.
    fn remote(&self, args: &[&str], input: &str) -> Run {
        remote(&self.served, &self.server, &self.token, args, input)
    }

    /// Runs ARGS on both, asserts `code` for each, and that they print the same once
    /// `normalize`d; returns the remote run.
    #[track_caller]
    fn same(&self, args: &[&str], code: i32, normalize: fn(&str) -> String) -> Run {
        self.same_with_input(args, "", code, normalize)
    }

    #[track_caller]
    fn same_with_input(
        &self,
        args: &[&str],
        input: &str,
        code: i32,
        normalize: fn(&str) -> String,
    ) -> Run {
        let local = self.local(args, input).code(code);
        let remote = self.remote(args, input).code(code);
        assert_eq!(
            normalize(&remote.stdout),
            normalize(&local.stdout),
            "`{}` prints otherwise through the server\n--- remote stderr\n{}--- local \
             stderr\n{}",
            args.join(" "),
            remote.stderr,
            local.stderr
        );
        remote
    }
}

/// `spark --server URL --token TOKEN --tenant acme ARGS` with `input` on stdin.
fn remote(spark: &Spark, server: &Server, token: &str, args: &[&str], input: &str) -> Run {
    let mut all = vec![
        "--server",
        &server.url,
        "--token",
        token,
        "--tenant",
        "acme",
    ];
    all.extend_from_slice(args);
    spark.run_with_input(&all, input)
}

fn as_is(text: &str) -> String {
    text.to_owned()
}

/// Times replaced and runs of spaces made one: for what shows the wall clock (when a
/// letter died, since when a module runs), which two data dirs never share.
fn without_times(text: &str) -> String {
    let time =
        regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)").unwrap();
    let spaces = regex::Regex::new(r" +").unwrap();
    spaces
        .replace_all(&time.replace_all(text, "TIME"), " ")
        .into_owned()
}

/// [`without_times`], and what a call cost (its time and fuel) replaced: an event's
/// trace says what each delivery cost, which two runs never share.
fn without_costs(text: &str) -> String {
    let costs = regex::Regex::new(r#"\d+(\.\d+)? ms|\d+ fuel|"(micros|fuel)":\d+"#).unwrap();
    costs.replace_all(&without_times(text), "COST").into_owned()
}

/// A record of `thing` (its source is the recorder) making one event per spec.
fn record(id: u64, events: Value) -> Value {
    json!({ "id": id, "n": id, "events": events })
}

#[test]
fn every_command_through_the_server_prints_what_it_prints_on_the_data_dir() {
    let twins = Twins::new();
    let wasm = guests::RECORDER;
    let files = &twins.local;
    let records = files.write(
        "records.jsonl",
        format!(
            "{}not json\n[1, 2]\n{{\"no\": \"id\"}}\n\n{}",
            jsonl(&[
                record(
                    1,
                    json!([{ "group": "e", "id": 1, "context": {
                        "n": 1,
                        "mail": { "to": "ada@example.com", "subject": "Hi", "body": "Hello" },
                    }}])
                ),
                record(
                    2,
                    json!([{ "group": "e", "id": 2, "context": { "n": 2, "fail": "boom" } }])
                ),
            ]),
            jsonl(&[record(
                3,
                json!([{ "group": "f", "id": 3, "context": { "n": 3 } }])
            )]),
        ),
    );
    let records = records.to_str().unwrap();
    let more = jsonl(&[
        record(4, json!([{ "group": "f", "id": 4 }])),
        record(1, json!([{ "group": "e", "id": 1 }])),
    ]);
    let template = files.write("e.txt", "Subject {{ n }}\n\nHello {{ name }}\n");
    let template = template.to_str().unwrap();
    let context = files.write("context.json", r#"{"n": 7, "name": "Ada"}"#);
    let context = context.to_str().unwrap();

    // Modules.
    let source = [
        "module", "add", wasm, "--name", "source", "--source", "thing",
    ];
    let added = twins.same(&[&source[..], &["--clock", "day"]].concat(), 0, as_is);
    assert_eq!(added.stdout, "added module `source` of tenant `acme`\n");
    let every = ["module", "add", wasm, "--name", "every", "--handler", "."];
    twins.same(&every, 0, as_is);
    // A name in use is refused without --replace, in the same words.
    let local = twins.local(&every, "").code(2);
    let remote = twins.remote(&every, "").code(2);
    assert_eq!(remote.stderr, local.stderr);
    let unchanged = twins.same(&[&every[..], &["--replace"]].concat(), 0, as_is);
    assert_eq!(
        unchanged.stdout,
        "unchanged: module `every` of tenant `acme`\n"
    );
    twins.same(
        &[
            "module",
            "add",
            "builtin:mails",
            "--name",
            "mailer",
            "--handler",
            "^never$",
        ],
        0,
        as_is,
    );
    let replaced = twins.same(
        &[
            "module",
            "add",
            "builtin:mails",
            "--name",
            "mailer",
            "--handler",
            "^nor$",
            "--replace",
        ],
        0,
        as_is,
    );
    assert_eq!(
        replaced.stdout,
        "replaced module `mailer` of tenant `acme`\n"
    );
    twins.same(&["module", "list"], 0, as_is);
    twins.same(&["module", "list", "--json"], 0, without_times);

    // A dry run first, which stores nothing on either side.
    let dry = [
        "ingest",
        "--model",
        "thing",
        records,
        "--now",
        "2024-05-10",
        "--dry-run",
    ];
    let dried = twins.same(&dry, 1, without_costs);
    assert!(
        dried
            .stdout
            .contains("dry run, nothing stored: 3 records and 3 invalid lines"),
        "{}",
        dried.stdout
    );
    twins.same(&[&dry[..], &["--json"]].concat(), 1, without_costs);
    let listed = twins.same(&["events", "list", "--json"], 0, as_is);
    assert_eq!(listed.stdout, "", "a dry run stored no event");

    // Ingest: from a file with bad lines and a failing delivery, then from stdin.
    let ingest = ["ingest", "--model", "thing", records, "--now", "2024-05-10"];
    let ingested = twins.same(&ingest, 1, as_is);
    assert_eq!(
        ingested.stdout,
        "3 records and 3 invalid lines, 3 events (3 new, 0 duplicates), 2 deliveries (1 \
         failed)\n"
    );
    ingested
        .stderr_has("error: line 3: it is not a JSON object")
        .stderr_has("error: line 4: it is not a JSON object");
    let piped = [
        "ingest",
        "--model",
        "thing",
        "-",
        "--now",
        "2024-05-10",
        "--json",
    ];
    let piped = twins.same_with_input(&piped, &more, 0, as_is);
    assert_eq!(count(&piped.json(), "new"), 1);

    // The ledger.
    twins.same(&["events", "list"], 0, as_is);
    twins.same(&["events", "list", "--json"], 0, without_costs);
    twins.same(&["events", "list", "--group", "^e$"], 0, as_is);
    twins.same(
        &["events", "list", "--group", "^nothing$", "--json"],
        0,
        as_is,
    );
    twins.same(&["events", "show", "e_1"], 0, without_costs);
    let shown = twins.same(&["events", "show", "e_2"], 0, without_costs);
    assert!(
        shown
            .stdout
            .contains("dead:       `every` after 1 attempts"),
        "{}",
        shown.stdout
    );
    twins.same(&["events", "show", "f_3", "--json"], 0, without_costs);
    let local = twins.local(&["events", "show", "nope"], "").code(2);
    twins
        .remote(&["events", "show", "nope"], "")
        .code(2)
        .stderr_has(local.stderr.trim_end())
        .stderr_has("(HTTP 404 unknown_event)");

    // The outbox: nothing sends it (no transport), so both keep it pending.
    let listed = twins.same(&["outbox", "list"], 0, as_is);
    assert!(
        listed.stdout.contains("to ada@example.com: Hi"),
        "{}",
        listed.stdout
    );
    twins.same(&["outbox", "list", "--json"], 0, as_is);
    twins.same(&["outbox", "list", "--pending", "--json"], 0, as_is);
    twins.same(&["outbox", "retry"], 0, as_is);
    twins.same(&["outbox", "retry", "--json"], 0, as_is);
    twins.same(&["outbox", "retry", "1"], 2, as_is);

    // Dead letters: listed, retried (the event still fails), and a filter that matches
    // none.
    twins.same(&["dead", "list"], 0, without_times);
    twins.same(&["dead", "list", "--json"], 0, without_times);
    let retried = twins.same(
        &["dead", "retry", "e_2", "--handler", "every", "--json"],
        1,
        as_is,
    );
    assert_eq!(count(&retried.json(), "failed"), 1);
    twins.same(&["dead", "retry"], 1, as_is);
    let local = twins.local(&["dead", "retry", "nope"], "").code(2);
    let remote = twins.remote(&["dead", "retry", "nope"], "").code(2);
    assert_eq!(remote.stderr, local.stderr);

    // Mail templates.
    twins.same(&["mails", "set", "e", template], 0, as_is);
    twins.same(&["mails", "list"], 0, as_is);
    twins.same(&["mails", "list", "--json"], 0, as_is);
    twins.same(&["mails", "show", "e"], 0, as_is);
    let preview = twins.same(&["mails", "preview", "e", "--context", context], 0, as_is);
    assert_eq!(preview.stdout, "Subject: Subject 7\n\nHello Ada\n");
    twins.same(&["mails", "preview", "e"], 0, as_is);
    twins.same(&["mails", "remove", "e"], 0, as_is);
    let local = twins.local(&["mails", "show", "e"], "").code(2);
    let remote = twins.remote(&["mails", "show", "e"], "").code(2);
    assert_eq!(remote.stderr, local.stderr);

    // Generators, and runs of them and of the sources.
    twins.same(
        &[
            "generators",
            "add",
            "big",
            "--group",
            "big",
            "--model",
            "thing",
            "--when",
            "n >= 2",
        ],
        0,
        as_is,
    );
    twins.same(
        &[
            "generators",
            "add",
            "all",
            "--group",
            "all",
            "--model",
            "thing",
            "--inactive",
        ],
        0,
        as_is,
    );
    twins.same(&["generators", "list"], 0, as_is);
    twins.same(&["generators", "list", "--json"], 0, as_is);
    twins.same(&["generators", "show", "big"], 0, as_is);
    twins.same(&["generators", "show", "all"], 0, as_is);
    twins.same(&["generators", "deactivate", "big"], 0, as_is);
    twins.same(&["generators", "activate", "big"], 0, as_is);
    let described = twins.same(&["generators", "describe", "--model", "thing"], 0, as_is);
    assert!(
        described.stdout.contains("key_length"),
        "{}",
        described.stdout
    );
    let generated = twins.same(&["generate", "--now", "2024-05-11", "--json"], 0, as_is);
    assert_eq!(count(&generated.json(), "new"), 3, "big_2, big_3, big_4");
    twins.same(&["generate", "--now", "2024-05-11"], 0, as_is);
    twins.same(
        &["process-sources", "--now", "2024-05-12", "--json"],
        0,
        as_is,
    );
    twins.same(
        &["process-sources", "--model", "thing", "--now", "2024-05-13"],
        0,
        as_is,
    );
    twins.same(&["generators", "remove", "all"], 0, as_is);
    twins.same(&["generators", "list"], 0, as_is);

    // What it all left.
    twins.same(&["module", "remove", "mailer"], 0, as_is);
    twins.same(&["module", "list"], 0, as_is);
    twins.same(&["events", "list", "--json"], 0, without_costs);
    twins.same(&["outbox", "list"], 0, as_is);
}

#[test]
fn describe_without_a_context_module_lists_the_record_fields_through_the_server() {
    let twins = Twins::new();
    // No module at all: the model is known through its generator, and conditions test
    // the records' own fields.
    twins.same(
        &[
            "generators",
            "add",
            "g",
            "--group",
            "g",
            "--model",
            "plain",
            "--when",
            "n > 1",
        ],
        0,
        as_is,
    );
    twins.same(&["generators", "describe", "--model", "plain"], 0, as_is);
    let records = jsonl(&[json!({ "id": 1, "n": 2, "owner": { "name": "Ada" } })]);
    twins.same_with_input(
        &["ingest", "--model", "plain", "--now", "2024-05-10"],
        &records,
        0,
        as_is,
    );
    let described = twins.same(&["generators", "describe", "--model", "plain"], 0, as_is);
    assert!(
        described.stdout.contains("owner  an object"),
        "{}",
        described.stdout
    );
    twins.same(&["generate", "--now", "2024-05-10"], 0, as_is);
}

#[test]
fn an_ingest_through_the_server_with_bad_lines_exits_1_with_the_counts() {
    let twins = Twins::new();
    twins
        .remote(
            &[
                "module",
                "add",
                guests::RECORDER,
                "--name",
                "source",
                "--source",
                "thing",
            ],
            "",
        )
        .ok();
    let input = format!(
        "{}\n{{\"no\": \"id\"}}\n\u{1}\n{}",
        json!({ "id": 1 }),
        jsonl(&[json!({ "id": 2 })])
    );
    let run = twins
        .remote(&["ingest", "--model", "thing", "--json"], &input)
        .code(1)
        // Found here, with its line; the server only counts the one it finds.
        .stderr_has("error: line 3: it is not a JSON object")
        .stderr_has("the server counts its failures without naming them");
    let report = run.json();
    assert_eq!(count(&report, "records"), 2);
    assert_eq!(count(&report, "invalid"), 2);
}

#[test]
fn a_large_ingest_goes_in_requests_of_ten_thousand_records_and_sums_their_reports() {
    let twins = Twins::new();
    let source = [
        "module",
        "add",
        guests::RECORDER,
        "--name",
        "source",
        "--source",
        "thing",
    ];
    twins.same(&source, 0, as_is);
    let mut input = String::new();
    for id in 0..25_000 {
        input.push_str(&format!(
            "{{\"id\": {id}, \"events\": [{{\"group\": \"g\", \"id\": {id}}}]}}\n"
        ));
        if id == 12_345 {
            input.push_str("bad\n");
        }
    }
    let run = twins.same_with_input(
        &[
            "ingest",
            "--model",
            "thing",
            "--now",
            "2024-05-10",
            "--json",
        ],
        &input,
        1,
        as_is,
    );
    let report = run.json();
    assert_eq!(count(&report, "records"), 25_000);
    assert_eq!(count(&report, "new"), 25_000);
    assert_eq!(count(&report, "invalid"), 1);
    run.stderr_has("error: line 12347: it is not a JSON object");
    let metrics = twins.server.client(None).get("/metrics").body;
    let metrics = metrics.as_str().unwrap();
    let posts: Vec<&str> = metrics
        .lines()
        .filter(|line| {
            line.contains("route=\"/v1/tenants/{tenant}/records/{model}\"")
                && line.contains("status=\"200\"")
                && line.contains("http_requests_total")
        })
        .collect();
    assert_eq!(posts.len(), 1, "{metrics}");
    assert!(posts[0].ends_with(" 3"), "three requests: {posts:?}");
    // Sent again, it is all duplicates: the keys are new per command.
    let again = twins
        .remote(
            &[
                "ingest",
                "--model",
                "thing",
                "--now",
                "2024-05-10",
                "--json",
            ],
            &input,
        )
        .code(1);
    assert_eq!(count(&again.json(), "duplicates"), 25_000);
}

#[test]
fn a_wrong_token_exits_2_naming_401() {
    let twins = Twins::new();
    let run = remote(
        &twins.served,
        &twins.server,
        "not-a-token",
        &["events", "list"],
        "",
    )
    .code(2)
    .stderr_has("HTTP 401");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // A token of another tenant: 403.
    let other = token(&twins.served, &["--tenant", "other", "--scope", "admin"]);
    remote(
        &twins.served,
        &twins.server,
        &other,
        &["module", "list"],
        "",
    )
    .code(2)
    .stderr_has("HTTP 403 forbidden");
    // A read token may read but not change.
    let read = token(&twins.served, &["--tenant", "acme", "--scope", "read"]);
    remote(&twins.served, &twins.server, &read, &["module", "list"], "").ok();
    remote(
        &twins.served,
        &twins.server,
        &read,
        &["module", "remove", "x"],
        "",
    )
    .code(2)
    .stderr_has("HTTP 403");
}

#[test]
fn an_unknown_model_exits_2_with_the_servers_message() {
    let twins = Twins::new();
    let source = [
        "module",
        "add",
        guests::RECORDER,
        "--name",
        "source",
        "--source",
        "thing",
    ];
    twins.same(&source, 0, as_is);
    let args = ["ingest", "--model", "thingz", "--now", "2024-05-10"];
    let input = jsonl(&[json!({ "id": 1 })]);
    let local = twins.local(&args, &input).code(2);
    let remote = twins
        .remote(&args, &input)
        .code(2)
        .stderr_has("(HTTP 404 unknown_model)");
    // The library's words, then the status.
    assert!(
        remote.stderr.starts_with(local.stderr.trim_end()),
        "{}\n{}",
        remote.stderr,
        local.stderr
    );
    // An empty input asks too.
    twins.remote(&args, "").code(2).stderr_has("unknown_model");
    // An unknown tenant.
    let operator = token(&twins.served, &["--operator"]);
    let mut all = vec!["--server", &twins.server.url, "--token", &operator];
    all.extend_from_slice(&["--tenant", "nobody", "events", "list"]);
    twins
        .served
        .run(&all)
        .code(2)
        .stderr_has("HTTP 404 unknown_tenant");
}

#[test]
fn spark_server_and_spark_token_come_from_the_environment() {
    let twins = Twins::new();
    let vars = [
        ("SPARK_SERVER", twins.server.url.as_str()),
        ("SPARK_TOKEN", twins.token.as_str()),
        ("SPARK_TENANT", "acme"),
    ];
    let source = [
        "module",
        "add",
        guests::RECORDER,
        "--name",
        "source",
        "--source",
        "thing",
    ];
    twins.served.run_with_env(&vars, &source, "").ok();
    let listed = twins
        .served
        .run_with_env(&vars, &["module", "list", "--json"], "")
        .ok();
    assert_eq!(listed.json_lines()[0]["name"], "source");
    // The server holds the data dir, so these went through it.
    let listed = twins.remote(&["module", "list", "--json"], "").ok();
    assert_eq!(listed.json_lines()[0]["name"], "source");
    // Without a token, the command says how to give one.
    twins
        .served
        .run_with_env(&vars[..1], &["events", "list"], "")
        .code(2)
        .stderr_has("--token");
}

#[test]
fn commands_that_need_the_data_dir_are_refused_through_the_server() {
    let twins = Twins::new();
    let manifest = twins.served.write("other.toml", "[retry]\nattempts = 2\n");
    let refused: [&[&str]; 7] = [
        &["apply", manifest.to_str().unwrap()],
        &["outbox", "prune"],
        &["tokens", "list"],
        &["serve", "--listen", "127.0.0.1:0"],
        &["outbox", "send", "--transport", "stdout"],
        &["outbox", "send", "--output", "seen=stdout"],
        &["outbox", "send"],
    ];
    for args in refused {
        let run = twins.remote(args, "").code(2);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(
            run.stderr.contains("--server") || run.stderr.contains("no transport"),
            "`{}`: {}",
            args.join(" "),
            run.stderr
        );
    }
    // The tenant has no transport: said as on a data dir.
    twins
        .remote(&["outbox", "send"], "")
        .code(2)
        .stderr_has("no transport");
    // A check needs no tenant: it runs here.
    twins.remote(&["check", guests::RECORDER], "").ok();
    twins.remote(&["completions", "bash"], "").ok();
}

#[test]
fn outbox_send_through_the_server_sends_with_the_tenants_transports() {
    let spark = Spark::new();
    let out = spark.write("placeholder", "");
    let dir = out.parent().unwrap().join("outputs");
    let manifest = spark.write(
        "spark.toml",
        format!(
            "[outputs]\nseen = \"file:{}\"\n\n[[modules]]\nname = \"source\"\npath = {:?}\n\
             sources = [\"thing\"]\n\n[[modules]]\nname = \"every\"\npath = {:?}\nhandlers = \
             [\".\"]\n",
            dir.display(),
            guests::RECORDER,
            guests::RECORDER
        ),
    );
    spark
        .run(&["--tenant", "acme", "apply", manifest.to_str().unwrap()])
        .ok();
    let admin = token(&spark, &["--tenant", "acme", "--scope", "admin"]);
    let server = Server::start(&spark, &[]);
    let records = jsonl(&[
        record(1, json!([{ "group": "e", "id": 1 }])),
        record(2, json!([{ "group": "e", "id": 2 }])),
    ]);
    remote(
        &spark,
        &server,
        &admin,
        &["ingest", "--model", "thing"],
        &records,
    )
    .ok();
    // The server may send them by itself first: either way, both are sent once.
    let sent = remote(&spark, &server, &admin, &["outbox", "send", "--json"], "").ok();
    let sent = sent.json();
    assert_eq!(count(&sent, "failed") + count(&sent, "parked"), 0, "{sent}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let items = remote(&spark, &server, &admin, &["outbox", "list", "--json"], "")
            .ok()
            .json_lines();
        assert_eq!(items.len(), 2);
        if items.iter().all(|item| item["status"] == "sent") {
            break;
        }
        assert!(Instant::now() < deadline, "{items:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    let pending = remote(
        &spark,
        &server,
        &admin,
        &["outbox", "list", "--pending"],
        "",
    )
    .ok();
    assert_eq!(pending.stdout, "the outbox is empty\n");
}

#[test]
fn a_server_that_is_down_exits_2_after_a_few_tries() {
    let spark = Spark::new();
    // A port nobody listens on: taken, then given back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let run = spark
        .run(&["--server", &url, "--token", "t", "events", "list"])
        .code(2)
        .stderr_has(&format!("cannot reach the server at {url} (tried 5 times)"));
    assert!(run.stdout.is_empty());
    let took = started.elapsed();
    assert!(
        took > Duration::from_secs(3) && took < Duration::from_secs(30),
        "{took:?}"
    );
    // A URL that is not one.
    spark
        .run(&[
            "--server",
            "127.0.0.1:7411",
            "--token",
            "t",
            "events",
            "list",
        ])
        .code(2)
        .stderr_has("--server takes the server's URL");
}

#[test]
fn a_command_on_a_served_data_dir_names_server_and_token() {
    let twins = Twins::new();
    twins
        .served
        .run(&["--tenant", "acme", "module", "list"])
        .code(2)
        .stderr_has(&format!("served by `spark serve` at {}", twins.server.url))
        .stderr_has(&format!("--server {} --token TOKEN", twins.server.url));
    // `tokens` needs no tenant: it works beside the server.
    twins.served.run(&["tokens", "list"]).ok();
}
