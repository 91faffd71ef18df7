//! Crash safety: `spark ingest`, and every command that writes (`process-sources` on a
//! `day` clock, `generate`, `dead retry`, `outbox send`), killed with SIGKILL at random
//! moments, again and again, then run to completion: every key in the ledger once,
//! every handler's effects for every event in the outbox once (mails rendered, failed
//! deliveries retried or parked), and the data dir opening cleanly after each kill.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::rng::Rng;
use crate::support::{Spark, count, guests, jsonl};

const RECORDS: u64 = 20_000;
const KILLS: usize = 12;

/// Each record: an event `e_N` whose handler emits `emitted_N`, and an event `x_N`.
fn records() -> String {
    let records: Vec<serde_json::Value> = (1..=RECORDS)
        .map(|n| {
            json!({ "id": n, "events": [
                { "group": "e", "id": n, "context": { "emit": [{ "group": "emitted", "id": n }] } },
                { "group": "x", "id": n },
            ]})
        })
        .collect();
    jsonl(&records)
}

/// (event, handler) for every delivery the run must have made exactly once.
fn expected_deliveries() -> BTreeSet<(String, String)> {
    let mut expected = BTreeSet::new();
    for n in 1..=RECORDS {
        for (event, handlers) in [
            (format!("e_{n}"), ["first", "every"]),
            (format!("emitted_{n}"), ["first", "every"]),
            (format!("x_{n}"), ["every", "x"]),
        ] {
            for handler in handlers {
                expected.insert((event.clone(), handler.to_owned()));
            }
        }
    }
    expected
}

/// A data dir with the recorder as source and three handlers, and the records' file.
fn set_up() -> (Spark, String) {
    let spark = Spark::new();
    spark.add(guests::RECORDER, "source", &["--source", "thing"]);
    spark.add(guests::RECORDER, "first", &["--handler", "^e"]);
    spark.add(guests::RECORDER, "every", &["--handler", "."]);
    spark.add(guests::RECORDER, "x", &["--handler", "^x$"]);
    let input = spark.write("records.jsonl", records());
    let input = input.to_str().unwrap().to_owned();
    (spark, input)
}

#[test]
fn ingest_survives_sigkill_at_random_moments() {
    let mut rng = Rng::from_env("ingest_survives_sigkill_at_random_moments");
    let (mut spark, mut input) = set_up();

    let mut killed = 0;
    let mut finished_early = 0;
    let mut ledger_sizes: Vec<u64> = Vec::new();
    // How long a run may go before it is killed. It widens while kills land before the
    // first commit (a loaded machine starts slowly), so that some land mid-work, and
    // narrows when a run finishes first (an idle machine is quick).
    let mut window_ms = 1_500;
    // Kills in a row that found no new work; the window widens after two, not one: a
    // single early kill is chance, and widening too soon makes the next run finish.
    let mut stalled = 0;
    // How each restart came about, for the message if they never stop.
    let mut finishes: Vec<String> = Vec::new();
    let partial = |sizes: &[u64]| sizes.iter().any(|&size| size > 0 && size < 3 * RECORDS);
    while killed < KILLS || !partial(&ledger_sizes) {
        assert!(killed < 60, "no kill landed mid-work: {ledger_sizes:?}");
        let mut child = spark
            .command(&["ingest", "--model", "thing", &input, "--now", "2024-05-01"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let wait = Duration::from_millis(rng.between(20..window_ms));
        let started = Instant::now();
        let mut done = false;
        while started.elapsed() < wait {
            if child.try_wait().unwrap().is_some() {
                done = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if done {
            // It finished before the kill, so every later run would find nothing new:
            // start over on a fresh data dir, with a window so much shorter than that
            // run that the kills (half a window each, on average) leave work to do.
            finished_early += 1;
            finishes.push(format!(
                "finished in {} ms after kills at ledger sizes {ledger_sizes:?}",
                started.elapsed().as_millis()
            ));
            assert!(
                finished_early < 20,
                "ingest keeps finishing before it can be killed: {finishes:#?}"
            );
            window_ms = (started.elapsed().as_millis() as u64 / 8).max(40);
            (spark, input) = set_up();
            killed = 0;
            stalled = 0;
            ledger_sizes.clear();
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        killed += 1;
        // The data dir opens cleanly, and nothing is dead.
        assert!(spark.dead().is_empty());
        let listed = spark.run(&["events", "list", "--json"]).ok();
        let size = listed.stdout.lines().count() as u64;
        // No progress since the last kill: the runs are killed before they commit.
        if ledger_sizes.last().copied().unwrap_or(0) == size && size < 3 * RECORDS {
            stalled += 1;
            if stalled >= 2 {
                window_ms = (window_ms * 2).min(5_000);
                stalled = 0;
            }
        } else {
            stalled = 0;
        }
        ledger_sizes.push(size);
    }
    // Committed work is never lost: the ledger only grows.
    assert!(
        ledger_sizes.windows(2).all(|pair| pair[0] <= pair[1]),
        "{ledger_sizes:?}"
    );

    let summary = spark
        .run(&[
            "ingest",
            "--model",
            "thing",
            &input,
            "--now",
            "2024-05-01",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(count(&summary, "records"), RECORDS);
    assert_eq!(count(&summary, "failed"), 0);

    let keys = spark.event_keys();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), unique.len());
    assert_eq!(keys.len() as u64, 3 * RECORDS, "every key once");

    let mut deliveries: BTreeMap<(String, String), u32> = BTreeMap::new();
    for item in spark.outbox() {
        let event = item["data"]["payload"]["key"].as_str().unwrap().to_owned();
        assert_eq!(item["event"], event.as_str());
        let handler = item["handler"].as_str().unwrap().to_owned();
        *deliveries.entry((event, handler)).or_default() += 1;
    }
    let doubled: Vec<_> = deliveries.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "effects committed twice: {doubled:?}");
    let delivered: BTreeSet<(String, String)> = deliveries.into_keys().collect();
    let expected = expected_deliveries();
    let missing: Vec<_> = expected.difference(&delivered).take(5).collect();
    assert!(missing.is_empty(), "deliveries lost: {missing:?}");
    assert_eq!(delivered, expected);

    let reprocessed = spark.run(&["process-sources", "--json"]).ok().json();
    assert_eq!(count(&reprocessed, "records"), RECORDS);
    assert_eq!(count(&reprocessed, "new"), 0);
}

/// Records for the test of every command: `e_N` becomes a mail (the built-in handler,
/// a template rendered) and an output; `f_N` fails once and is retried within the run,
/// or, for every tenth, fails for good and is parked; the generator makes `gen_N`.
fn mixed_records(count: u64) -> String {
    let records: Vec<serde_json::Value> = (1..=count)
        .map(|n| {
            let flaky = if n % 10 == 0 {
                json!({ "fail": "always" })
            } else {
                json!({ "fail_before_attempt": 2 })
            };
            json!({ "id": n, "events": [
                { "group": "e", "id": n, "context": { "n": n, "spark_mail": {
                    "to": [format!("user{n}@example.com")], "subject": "s", "body": "b" } } },
                { "group": "f", "id": n, "context": flaky },
            ]})
        })
        .collect();
    jsonl(&records)
}

#[test]
fn every_command_survives_sigkill_at_random_moments() {
    const COUNT: u64 = 8_000;
    const RUNS: usize = 20;
    let mut rng = Rng::from_env("every_command_survives_sigkill_at_random_moments");
    let spark = Spark::new();
    std::fs::create_dir_all(spark.data_dir().with_file_name("templates")).unwrap();
    spark.write(
        "templates/e.txt",
        "Hello {{ n }}\n\nYour number is {{ n }}.\n",
    );
    let manifest = spark.write(
        "spark.toml",
        format!(
            "[retry]\nattempts = 2\nbackoff-ms = 0\n\n\
             [mails]\nfrom = \"Team <team@example.com>\"\ntemplates = \"templates\"\n\n\
             [[modules]]\nname = \"source\"\npath = {recorder:?}\nsources = [\"thing\"]\n\
             clock = \"day\"\n\n\
             [[modules]]\nname = \"mailer\"\npath = \"builtin:mails\"\nhandlers = [\"^e$\"]\n\n\
             [[modules]]\nname = \"every\"\npath = {recorder:?}\nhandlers = [\".\"]\n\n\
             [[generators]]\nname = \"all\"\ngroup = \"gen\"\nmodel = \"thing\"\n",
            recorder = guests::RECORDER
        ),
    );
    spark.run(&["apply", manifest.to_str().unwrap()]).ok();
    let input = spark.write("records.jsonl", mixed_records(COUNT));
    let input = input.to_str().unwrap().to_owned();
    let mails = spark.data_dir().with_file_name("mails");
    let transport = format!("file:{}", mails.display());
    let outputs = format!("seen=file:{}", mails.with_file_name("outputs").display());
    let commands: [Vec<&str>; 5] = [
        vec!["ingest", "--model", "thing", &input, "--now", "2024-05-01"],
        vec!["process-sources", "--now", "2024-05-01"],
        vec!["generate", "--now", "2024-05-01"],
        vec!["dead", "retry"],
        vec![
            "outbox",
            "send",
            "--transport",
            &transport,
            "--output",
            &outputs,
        ],
    ];

    let mut kills = Vec::new();
    for _ in 0..RUNS {
        // Ingest two times in five, so that the others find work to be killed in.
        let command = if rng.chance(40) {
            &commands[0]
        } else {
            &commands[rng.between(1..commands.len() as u64) as usize]
        };
        let mut child = spark
            .command(command)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let wait = Duration::from_millis(rng.between(10..300));
        let started = Instant::now();
        while started.elapsed() < wait && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let finished = child.try_wait().unwrap().is_some();
        child.kill().ok(); // SIGKILL, unless it finished
        child.wait().unwrap();
        kills.push(format!(
            "{} ({})",
            command[..2].join(" "),
            if finished { "finished" } else { "killed" }
        ));
        // The data dir opens cleanly after every kill.
        spark.run(&["events", "list", "--json"]).ok();
    }
    eprintln!("runs: {kills:?}");
    let killed = kills.iter().filter(|run| run.ends_with("(killed)")).count();
    assert!(
        killed >= 3,
        "too few runs were killed to test anything: {kills:?}"
    );

    // Then each command once more, to the end.
    for command in &commands {
        let code = spark.run(command).code;
        assert!(
            code == 0 || code == 1,
            "`{}` failed: {code}",
            command.join(" ")
        );
    }

    // Every key once: e_N, f_N from the source, gen_N from the generator.
    let keys = spark.event_keys();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), unique.len(), "a key twice");
    assert_eq!(keys.len() as u64, 3 * COUNT, "every key: {kills:?}");

    // Every handler's effects once: a mail for each e_N, an output of `every` for each
    // event (f_N only once its second attempt succeeded: every tenth never does).
    let mut effects: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    for item in spark.outbox() {
        let kind = item["kind"].as_str().unwrap().to_owned();
        let event = item["event"].as_str().unwrap().to_owned();
        let handler = item["handler"].as_str().unwrap().to_owned();
        *effects.entry((event, handler, kind)).or_default() += 1;
        assert_eq!(item["status"], "sent", "every item sent: {item}");
    }
    let doubled: Vec<_> = effects.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        doubled.is_empty(),
        "effects committed twice: {doubled:?} after {kills:?}"
    );
    let mut expected = BTreeSet::new();
    for n in 1..=COUNT {
        expected.insert((format!("e_{n}"), "mailer".to_owned(), "mail".to_owned()));
        for event in [format!("e_{n}"), format!("gen_{n}")] {
            expected.insert((event, "every".to_owned(), "output".to_owned()));
        }
        if n % 10 != 0 {
            expected.insert((format!("f_{n}"), "every".to_owned(), "output".to_owned()));
        }
    }
    let found: BTreeSet<_> = effects.into_keys().collect();
    let missing: Vec<_> = expected.difference(&found).take(5).collect();
    assert!(
        missing.is_empty(),
        "effects lost: {missing:?} after {kills:?}"
    );
    assert_eq!(found, expected);

    // The hopeless deliveries are parked, each once; the mails arrived, rendered.
    let dead = spark.dead();
    assert_eq!(dead.len() as u64, COUNT / 10);
    assert!(dead.iter().all(|letter| letter["handler"] == "every"));
    assert_eq!(std::fs::read_dir(&mails).unwrap().count() as u64, COUNT);
    let mail = std::fs::read_to_string(mails.join("1.eml")).unwrap();
    assert!(mail.contains("Subject: Hello"), "{mail}");
}
