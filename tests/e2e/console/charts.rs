//! The overview's charts against a known workload: new events by group, outbox items made and
//! sent, and dead letters, per day over two weeks; each an image with a name and a
//! summary, its numbers day by day in a table.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Browser, Console, record};
use crate::support::jsonl;

/// The rows of the day-by-day table of chart `figure`, opened: `(day, counts)`.
fn rows(browser: &Browser, figure: &str) -> Vec<(String, Vec<u64>)> {
    browser.toggle(&format!("#{figure} details summary"));
    browser
        .texts(&format!("#{figure} details tbody tr"))
        .iter()
        .map(|row| {
            let mut cells = row.split_whitespace();
            let day = cells.next().unwrap_or_default().to_owned();
            let counts = cells
                .map(|count| {
                    count
                        .parse()
                        .unwrap_or_else(|_| browser.fail(&format!("a count: {row:?}")))
                })
                .collect();
            (day, counts)
        })
        .collect()
}

/// The sum of column `column` of `rows`.
fn total(rows: &[(String, Vec<u64>)], column: usize) -> u64 {
    rows.iter().map(|(_, counts)| counts[column]).sum()
}

#[test]
fn the_overview_charts_outbox_items_and_dead_letters_per_day() {
    let console = Console::new("acme");
    console.settings(|settings| {
        // Deliveries die at their first failure; outputs go to the server's stdout
        // (nowhere), mails have no transport and wait.
        settings["retry"] = json!({ "attempts": 1, "backoff-ms": 1 });
        settings["outputs"] = json!({ "seen": "stdout" });
    });
    // Three days ago: three events, each an output.
    const DAY_MS: i64 = 86_400_000;
    let earlier =
        spark_host::format_time(spark_host::wall_clock_ms() - 3 * DAY_MS)[..10].to_owned();
    let records: Vec<Value> = (1..=3)
        .map(|n| record("old", &n.to_string(), json!({})))
        .collect();
    let answer = console.api.send(
        "POST",
        &format!("/v1/tenants/acme/records/thing?now={earlier}"),
        jsonl(&records).as_bytes(),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    // Today: two events, each an output and a mail; one whose delivery dies.
    let mail = json!({ "mail": { "to": "ada@example.com", "subject": "Hi", "body": "Hello" } });
    console.ingest(&[
        record("new", "1", mail.clone()),
        record("new", "2", mail),
        record("new", "3", json!({ "fail": "boom" })),
    ]);
    // The outputs are sent (the server sends by itself, too); the mails wait.
    let sent = console
        .api
        .send("POST", "/v1/tenants/acme/outbox/send", b"");
    assert_eq!(sent.status, 200, "{sent:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while console.api.all("/v1/tenants/acme/outbox?status=sent").len() < 5 {
        assert!(Instant::now() < deadline, "the five outputs are never sent");
        std::thread::sleep(Duration::from_millis(50));
    }
    let outbox = console.api.all("/v1/tenants/acme/outbox");
    assert_eq!(outbox.len(), 7, "{outbox:?}");

    let browser = console.signed_in(&console.admin);
    browser.check(
        browser.text("#outbox-pending") == "2" && browser.text("#outbox-sent") == "5",
        "two mails pending, five outputs sent",
    );
    browser.check(browser.text("#dead-count") == "1", "one dead letter");

    // Each chart is an image named by its title and totals, with a caption saying them.
    for (figure, title, totals) in [
        // A series per group: `new` today, `old` three days ago.
        (
            "events-per-day",
            "New events per group and day",
            "3 new, 3 old",
        ),
        ("outbox-per-day", "Outbox items per day", "7 made, 5 sent"),
        ("dead-per-day", "Dead letters per day", "1 in all"),
    ] {
        let svg = format!("figure#{figure} svg[role=img]");
        let label = browser.attr(&svg, "aria-label").unwrap_or_default();
        browser.check(
            label == format!("{title}: {totals}"),
            &format!("{figure}'s image is named: {label:?}"),
        );
        let named = browser.script(&format!(
            "const svg = document.querySelector({});\
             return [svg.querySelector(':scope > title').textContent,\
                     svg.querySelector(':scope > desc').textContent];",
            json!(svg)
        ));
        browser.check(
            named == json!([title, totals]),
            &format!("{figure}'s image has a title and a description: {named}"),
        );
        let caption = browser.text(&format!("figure#{figure} figcaption"));
        browser.check(
            caption.contains(totals),
            &format!("{figure}'s caption says {totals:?}: {caption:?}"),
        );
    }

    browser.screenshot("overview-charts");

    // Day by day: fourteen days, today the last.
    let events = rows(&browser, "events-per-day");
    let outbox = rows(&browser, "outbox-per-day");
    let dead = rows(&browser, "dead-per-day");
    for (name, rows) in [("events", &events), ("outbox", &outbox), ("dead", &dead)] {
        browser.check(
            rows.len() == 14 && rows.windows(2).all(|pair| pair[0].0 < pair[1].0),
            &format!("{name}: fourteen days in order: {rows:?}"),
        );
    }
    let on = |rows: &[(String, Vec<u64>)], day: &str| -> Vec<u64> {
        rows.iter()
            .find(|(shown, _)| shown == day)
            .map(|(_, counts)| counts.clone())
            .unwrap_or_else(|| browser.fail(&format!("no row for {day}: {rows:?}")))
    };
    browser.check(
        on(&events, &earlier) == [0, 3] && total(&events, 0) == 3 && total(&events, 1) == 3,
        &format!("three `old` events three days ago, three `new` ones: {events:?}"),
    );
    browser.check(
        on(&outbox, &earlier) == [3, 0],
        &format!("three items made three days ago, none sent then: {outbox:?}"),
    );
    browser.check(
        total(&outbox, 0) == 7 && total(&outbox, 1) == 5,
        &format!("seven items made, five sent: {outbox:?}"),
    );
    browser.check(
        total(&dead, 0) == 1 && on(&dead, &earlier) == [0],
        &format!("one dead letter, parked today: {dead:?}"),
    );
}
