//! The console's pages as an operator uses them, in headless Chromium: signing in and
//! out, the event log, an event, dead letters and their retry, the outbox, templates,
//! generators, modules; what a read token and another tenant's token may not do; and
//! records shown as text, never as markup. Each main page is saved as a screenshot in
//! `target/console-screenshots/`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Browser, Console, record};

/// The nav's links, in order.
const NAV: [&str; 7] = [
    "Overview",
    "Events",
    "Dead letters",
    "Outbox",
    "Templates",
    "Generators",
    "Modules",
];

/// The keys in the first cells of the event log's rows, checking that each links to its
/// event's page.
fn event_rows(browser: &Browser, tenant: &str) -> Vec<String> {
    let keys = browser.texts("#events tr td:first-child a");
    let hrefs: Vec<String> = browser
        .script(
            "return [...document.querySelectorAll('#events tr td:first-child a')]\
             .map(a => a.getAttribute('href'))",
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|href| href.as_str().unwrap_or_default().to_owned())
        .collect();
    let expected: Vec<String> = keys
        .iter()
        .map(|key| format!("/console/t/{tenant}/events/{key}"))
        .collect();
    browser.check(
        hrefs == expected,
        &format!("each key links to its event: {hrefs:?}"),
    );
    keys
}

/// Dead letters make the tenant retry once, 1 ms apart.
fn retry_once(console: &Console) {
    console.settings(|settings| {
        settings["retry"] = json!({ "attempts": 1, "backoff-ms": 1 });
    });
}

/// The dead letters through the API, as `(event, handler)`.
fn dead_letters(console: &Console) -> Vec<(String, String)> {
    console
        .api
        .all(&format!("/v1/tenants/{}/dead", console.tenant))
        .iter()
        .map(|letter| {
            (
                letter["event"].as_str().unwrap().to_owned(),
                letter["handler"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Whether the page's text says that something was refused.
fn says_refused(text: &str) -> bool {
    let text = text.to_lowercase();
    [
        "403",
        "admin",
        "not your",
        "forbidden",
        "not allowed",
        "permission",
        "may not",
        "cannot",
        "refused",
        "denied",
    ]
    .iter()
    .any(|word| text.contains(word))
}

#[test]
fn signing_in_and_out() {
    let console = Console::new("acme");
    // Some events, for the overview to show.
    let mut records: Vec<Value> = (1..=5)
        .map(|n| record("order_placed", &n.to_string(), json!({})))
        .collect();
    records.extend((1..=2).map(|n| record("user_welcome", &n.to_string(), json!({}))));
    console.ingest(&records);
    let browser = Browser::new();
    let base = &console.server.url;

    // The sign-in page; a wrong token is refused with an alert and the form again.
    browser.goto(&console.url("/console"));
    browser.check(
        browser.exists("form[method=post][action='/console/sign-in'] input#tenant[name=tenant]")
            && browser.exists("input#token[name=token][type=password]"),
        "the sign-in form",
    );
    browser.check(
        browser.text("form[action='/console/sign-in'] button[type=submit]") == "Sign in",
        "the sign-in button",
    );
    let mut wrong = console.admin.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    browser.sign_in(base, "acme", &wrong);
    browser.check(browser.status() == 401, "a wrong token is a 401");
    browser.check(
        browser.exists("p[role=alert].error"),
        "a wrong token shows the alert",
    );
    browser.check(
        browser.exists("input#token"),
        "the form is shown again after a wrong token",
    );
    // A token that is not a token at all, and the right token for another tenant.
    for (tenant, token) in [("acme", "hello"), ("other", console.admin.as_str())] {
        browser.sign_in(base, tenant, token);
        browser.check(
            browser.exists("p[role=alert].error") && browser.exists("input#token"),
            &format!("signing in to {tenant} with {token:?} is refused"),
        );
    }
    // Not signed in, a tenant's page leads to the sign-in page.
    browser.goto(&console.page(""));
    browser.check(
        browser.path() == "/console" && browser.exists("input#token"),
        "a tenant's page needs signing in",
    );

    // The right token: the overview, its nav, its sign-out.
    browser.sign_in(base, "acme", &console.admin);
    browser.check(
        browser.current_url() == console.page(""),
        "signing in leads to the overview",
    );
    browser.check(
        browser.text("h1").contains("acme"),
        "the overview's title names the tenant",
    );
    let nav = browser.texts("nav a");
    for link in NAV {
        browser.check(
            nav.iter().any(|text| text == link),
            &format!("the nav links to {link:?}: {nav:?}"),
        );
    }
    browser.screenshot("overview");
    browser.check(
        browser.text("form[method=post][action='/console/sign-out'] button[type=submit]")
            == "Sign out",
        "the sign-out button",
    );
    browser.click("form[action='/console/sign-out'] button[type=submit]");
    browser.goto(&console.page(""));
    browser.check(
        browser.path() == "/console" && browser.exists("input#token"),
        "after signing out, the overview leads to the sign-in page",
    );
    browser.goto(&console.page("/events"));
    browser.check(
        browser.path() == "/console",
        "after signing out, the event log leads to the sign-in page",
    );
}

#[test]
fn the_event_log_filters_by_group_and_prefix_and_pages() {
    let console = Console::new("acme");
    // Several pages of events.
    let mut records: Vec<Value> = (0..250)
        .map(|n| record("e", &format!("{n:04}"), json!({ "n": n })))
        .collect();
    records.extend((1..=3).map(|n| record("other", &n.to_string(), json!({}))));
    let report = console.ingest(&records);
    assert_eq!(report["new"], 253, "{report}");

    let browser = console.signed_in(&console.admin);
    browser.follow_nav("Events");
    browser.check(
        browser.path().starts_with("/console/t/acme/events"),
        "the nav leads to the event log",
    );
    browser.check(
        browser.exists("form[method=get] #group") && browser.has_button("Filter"),
        "the filter form",
    );
    let labelled = browser.script(
        "return ['group', 'prefix', 'from', 'to'].every(id => {\
           const input = document.getElementById(id);\
           return input !== null && input.labels !== null && input.labels.length > 0;\
         })",
    );
    browser.check(
        labelled == json!(true),
        "#group, #prefix, #from and #to are labelled inputs",
    );
    let first = event_rows(&browser, "acme");
    browser.check(
        first.first().map(String::as_str) == Some("e_0000"),
        &format!("the log starts with the first key: {:?}", first.first()),
    );
    browser.check(
        first.windows(2).all(|pair| pair[0] < pair[1]),
        "the log is in key order",
    );
    browser.screenshot("events");

    // The next page goes on after the last key of this one.
    browser.check(browser.exists("a[rel=next]"), "a next page link");
    browser.click("a[rel=next]");
    let second = event_rows(&browser, "acme");
    browser.check(
        !second.is_empty() && second[0] > *first.last().unwrap(),
        &format!(
            "the next page starts after {:?}: {:?}",
            first.last(),
            second.first()
        ),
    );
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    let mut page = 2;
    while browser.exists("a[rel=next]") {
        page += 1;
        assert!(page < 2000, "the next page link never ends");
        browser.click("a[rel=next]");
        all.extend(event_rows(&browser, "acme"));
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 253, "every event once over the pages");
    assert_eq!(unique.len(), 253);

    // By group.
    browser.goto(&console.page("/events"));
    browser.fill("#group", "other");
    browser.click_button("Filter");
    let others = event_rows(&browser, "acme");
    browser.check(
        others == ["other_1", "other_2", "other_3"],
        &format!("the group filter: {others:?}"),
    );
    browser.check(
        !browser.exists("a[rel=next]"),
        "a page that holds all has no next link",
    );

    // By prefix.
    browser.fill("#group", "");
    browser.fill("#prefix", "e_001");
    browser.click_button("Filter");
    let prefixed = event_rows(&browser, "acme");
    let expected: Vec<String> = (10..20).map(|n| format!("e_{n:04}")).collect();
    browser.check(
        prefixed == expected,
        &format!("the prefix filter: {prefixed:?}"),
    );
    browser.check(
        browser.path().contains("prefix=e_001"),
        "the filter is in the address, to be shared",
    );
}

#[test]
fn an_event_opens_from_the_log_with_its_context_and_deliveries() {
    let console = Console::new("acme");
    retry_once(&console);
    console.ingest(&[
        record(
            "e",
            "1",
            json!({ "colour": "blue", "sizes": [1, 2], "owner": { "name": "Ada" } }),
        ),
        record("e", "2", json!({ "fail": "boom" })),
        record(
            "e",
            "11",
            json!({ "emit": [{ "group": "child", "id": "1" }] }),
        ),
    ]);

    let browser = console.signed_in(&console.admin);
    browser.goto(&console.page("/events"));
    browser.click("#events a[href='/console/t/acme/events/e_1']");
    browser.check(
        browser.path() == "/console/t/acme/events/e_1",
        "the key's link leads to its event",
    );
    browser.check(
        browser.text("h1").contains("e_1"),
        "the title holds the key",
    );
    // Pretty-printed: one field a line, nested objects indented.
    let context = browser.text("pre#context");
    let parsed: Value = serde_json::from_str(&context).unwrap_or(Value::Null);
    browser.check(
        parsed == json!({ "colour": "blue", "sizes": [1, 2], "owner": { "name": "Ada" } }),
        &format!("#context holds the context as JSON: {context:?}"),
    );
    browser.check(
        context.lines().count() > 3 && context.contains("\"colour\": \"blue\""),
        &format!("#context is pretty-printed: {context:?}"),
    );
    // The handler's output is in the outbox; nothing waits or is dead.
    browser.check(
        browser.text("#outbox").contains("every"),
        "the event's outbox item, by handler `every`",
    );
    browser.check(
        !browser.exists("#pending tr td") && !browser.exists("#dead tr td"),
        "nothing pending or dead for e_1",
    );
    browser.screenshot("event");

    // An event whose delivery failed: its dead letter, and no outbox item.
    browser.goto(&console.page("/events/e_2"));
    browser.check(browser.text("h1").contains("e_2"), "e_2's page");
    browser.check(
        browser.text("#dead").contains("boom"),
        "e_2's dead letter with its error",
    );
    browser.check(!browser.exists("#outbox tr td"), "no outbox item for e_2");
    // Its trace: the handler's one attempt, dead, with the error.
    let calls = browser.text("#calls");
    browser.check(
        calls.contains("every") && calls.contains("dead") && calls.contains("boom"),
        &format!("e_2's handler call, dead, with its error: {calls:?}"),
    );

    // Where an event came from and what it led to: the child e_11's handler emitted
    // links to its page, which links back.
    browser.goto(&console.page("/events/e_11"));
    browser.check(
        browser.text("#origin").contains("Made by source source"),
        "e_11 was made by the source",
    );
    browser.check(
        browser.text("#handlers").contains("every"),
        "e_11's group matched `every`",
    );
    browser.click("#calls a[href='/console/t/acme/events/child_1']");
    browser.check(
        browser.path() == "/console/t/acme/events/child_1",
        "the emitted child's link leads to its page",
    );
    browser.check(
        browser
            .text("#origin")
            .contains("Emitted by every while handling e_11"),
        &format!("the child names its parent: {:?}", browser.text("#origin")),
    );
    browser.click("#origin a");
    browser.check(
        browser.path() == "/console/t/acme/events/e_11",
        "the parent's link leads back",
    );
}

#[test]
fn a_dead_letter_is_retried_and_leaves_the_list() {
    let console = Console::new("acme");
    retry_once(&console);
    // e_1 fails its first attempt only: dead after it, delivered by the retry (the
    // second attempt). e_2 fails every attempt.
    console.ingest(&[
        record("e", "1", json!({ "fail_before_attempt": 2 })),
        record("e", "2", json!({ "fail": "boom" })),
    ]);
    let every = |event: &str| (event.to_owned(), "every".to_owned());
    assert_eq!(dead_letters(&console), [every("e_1"), every("e_2")]);

    let browser = console.signed_in(&console.admin);
    browser.follow_nav("Dead letters");
    let rows = browser.texts("#dead tr:has(td)");
    browser.check(rows.len() == 2, &format!("two dead letters: {rows:?}"));
    browser.check(
        rows[0].contains("e_1") && rows[0].contains("every") && rows[0].contains("too early"),
        &format!("e_1's row: event, handler, error: {}", rows[0]),
    );
    browser.check(
        rows[1].contains("e_2") && rows[1].contains("boom"),
        &format!("e_2's row: {}", rows[1]),
    );
    browser.check(
        browser.exists("#dead a[href='/console/t/acme/events/e_1']"),
        "a letter links to its event",
    );
    browser.check(browser.exists("a#retry-all"), "a Retry all link");
    browser.check(
        browser.texts("a.retry").len() == 2,
        "a Retry link on each row",
    );
    browser.screenshot("dead");

    // Retry e_1: a confirmation page first, then the result.
    browser.click("a.retry[href='/console/t/acme/dead/retry?event=e_1&handler=every']");
    browser.check(
        browser.path() == "/console/t/acme/dead/retry?event=e_1&handler=every",
        "the Retry link leads to the confirmation page",
    );
    browser.check(
        dead_letters(&console).len() == 2,
        "the confirmation page retries nothing by itself",
    );
    browser.check(
        browser.exists("main form[method=post]") && browser.has_button("Retry"),
        "the confirmation's form and Retry button",
    );
    browser.click_button("Retry");
    browser.check(browser.exists("p#result"), "the retry's result");

    // e_1 was delivered (its second attempt) and left the list; e_2 is still dead.
    assert_eq!(dead_letters(&console), [every("e_2")]);
    let outbox = console.api.all("/v1/tenants/acme/outbox");
    let delivered: Vec<&Value> = outbox
        .iter()
        .filter(|item| item["event"] == "e_1")
        .collect();
    assert_eq!(delivered.len(), 1, "{outbox:?}");
    assert_eq!(delivered[0]["data"]["payload"]["attempt"], 2);
    browser.goto(&console.page("/dead"));
    let rows = browser.texts("#dead tr:has(td)");
    browser.check(
        rows.len() == 1 && rows[0].contains("e_2"),
        &format!("only e_2 is left: {rows:?}"),
    );

    // Retry all: the same confirmation page without parameters; e_2 fails again.
    browser.click("a#retry-all");
    browser.check(
        browser.path() == "/console/t/acme/dead/retry",
        "Retry all leads to the confirmation page without parameters",
    );
    browser.click_button("Retry");
    browser.check(browser.exists("p#result"), "the retry's result");
    assert_eq!(dead_letters(&console), [every("e_2")]);
}

#[test]
fn a_template_is_edited_checked_and_previewed_with_a_real_event() {
    let console = Console::new("acme");
    console.ingest(&[
        record("welcome", "1", json!({ "name": "Ada", "stars": 3 })),
        record("welcome", "2", json!({ "name": "Grace", "stars": 5 })),
    ]);
    console.put("/templates/welcome", "Hi\n\nfirst version");

    let browser = console.signed_in(&console.admin);
    browser.follow_nav("Templates");
    browser.check(
        browser.exists("a[href$='/templates/welcome']"),
        "the list links to the template",
    );
    browser.screenshot("templates");
    browser.click("a[href$='/templates/welcome']");
    let shown = browser.prop("textarea#template[name=template]", "value");
    browser.check(
        shown
            .as_deref()
            .map(|text| text.replace("\r\n", "\n"))
            .as_deref()
            == Some("Hi\n\nfirst version"),
        &format!("the textarea holds the template: {shown:?}"),
    );

    // A template that does not parse is kept in the textarea, marked, and not saved.
    let broken = "Hello {{ name\n\nbody";
    browser.fill("textarea#template", broken);
    browser.click_button("Save");
    browser.check(
        browser.attr("textarea#template", "aria-invalid").as_deref() == Some("true"),
        "the textarea is marked invalid",
    );
    browser.check(
        browser.exists("p#template-error[role=alert]")
            && !browser.text("p#template-error").is_empty(),
        "the error is said",
    );
    let kept = browser
        .prop("textarea#template", "value")
        .unwrap_or_default();
    browser.check(
        kept.replace("\r\n", "\n") == broken,
        &format!("the textarea keeps the broken template: {kept:?}"),
    );
    browser.screenshot("template-error");
    let saved = console.api.get_ok("/v1/tenants/acme/templates/welcome");
    assert_eq!(saved["template"], "Hi\n\nfirst version", "nothing saved");

    // A good one is saved, without a mark.
    let good = "Welcome {{ name }}\n\nHello {{ name }}, you have {{ stars }} stars.";
    browser.fill("textarea#template", good);
    browser.click_button("Save");
    browser.check(
        !browser.exists("[aria-invalid=true]") && !browser.exists("#template-error"),
        "a good template is not marked",
    );
    let saved = console.api.get_ok("/v1/tenants/acme/templates/welcome");
    let saved = saved["template"].as_str().unwrap().to_owned();
    assert_eq!(saved.replace("\r\n", "\n"), good);
    assert!(
        !saved.contains('\r'),
        "the textarea's CRLF line ends are not stored: {saved:?}"
    );

    // The preview, with the latest events of the group to choose from.
    browser.goto(&console.page("/templates/welcome"));
    let options: BTreeSet<String> = browser
        .script("return [...document.querySelectorAll('select#event option')].map(o => o.value)")
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().unwrap_or_default().to_owned())
        .collect();
    browser.check(
        options.contains("welcome_1") && options.contains("welcome_2"),
        &format!("the group's events to preview with: {options:?}"),
    );
    browser.select("select#event[name=event]", "welcome_2");
    browser.check(
        browser.exists("form[method=get] select#event"),
        "the preview's form",
    );
    browser.click_button("Preview");
    browser.check(
        browser.text("section#preview #preview-subject") == "Welcome Grace",
        "the preview's subject",
    );
    browser.check(
        browser.text("section#preview pre#preview-body") == "Hello Grace, you have 5 stars.",
        "the preview's body",
    );
    browser.screenshot("template-preview");
}

#[test]
fn a_generator_dry_run_says_what_it_would_make() {
    let console = Console::new("acme");
    console.ingest(&[
        json!({ "id": 1, "stars": 1 }),
        json!({ "id": 2, "stars": 3 }),
        json!({ "id": 3, "stars": 5 }),
    ]);
    console.put(
        "/generators/popular",
        &json!({ "group": "g", "model": "thing", "conditions": ["stars >= 2"] }).to_string(),
    );

    let browser = console.signed_in(&console.admin);
    browser.follow_nav("Generators");
    browser.check(
        browser.exists("a[href$='/generators/popular']"),
        "the list links to the generator",
    );
    browser.screenshot("generators");
    browser.click("a[href$='/generators/popular']");
    browser.check(
        browser.page_text().contains("stars >= 2"),
        "the generator's condition",
    );
    browser.check(
        browser.text("table#variables").contains("key_length"),
        "the model's variables, from the recorder's context function",
    );
    browser.screenshot("generator");
    browser.click("form[method=post][action='/console/t/acme/generators/popular/dry-run'] button[type=submit]");
    let said = browser.text("p#dry-run");
    let first_number: String = said
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    browser.check(
        first_number == "2",
        &format!("two records match now: {said:?}"),
    );
    let keys: BTreeSet<String> = browser.texts("ul#dry-run-events li").into_iter().collect();
    browser.check(
        keys == BTreeSet::from(["g_2".to_owned(), "g_3".to_owned()]),
        &format!("the events it would make: {keys:?}"),
    );
    browser.screenshot("generator-dry-run");
    // A dry run makes nothing.
    let events = console.api.all("/v1/tenants/acme/events");
    assert!(
        events.iter().all(|event| event["group"] != "g"),
        "{events:?}"
    );
}

#[test]
fn markup_in_records_is_shown_as_text_and_never_runs() {
    let console = Console::new("acme");
    retry_once(&console);
    let script = "<script>alert(1)</script>";
    let image = "<img src=x onerror=alert(2)>";
    console.ingest(&[
        record("e", "x", json!({ "note": script, "picture": image })),
        record("e", "y", json!({ "fail": "<img src=y onerror=alert(3)>" })),
    ]);

    let browser = console.signed_in(&console.admin);
    for page in ["/events", "/events/e_x", "/dead", "/events/e_y", "/outbox"] {
        browser.goto(&console.page(page));
        browser.check(!browser.alert_open(), &format!("no alert on {page}"));
        let injected = browser.script(
            "return [...document.querySelectorAll('script, img')]\
             .filter(e => /alert/.test(e.outerHTML)).length",
        );
        browser.check(
            injected == json!(0),
            &format!("no element of the records' markup on {page}"),
        );
    }
    browser.goto(&console.page("/events/e_x"));
    let context = browser.text("#context");
    browser.check(
        context.contains(script) && context.contains(image),
        &format!("the markup is shown as text: {context:?}"),
    );
    browser.goto(&console.page("/dead"));
    browser.check(
        browser
            .text("#dead")
            .contains("<img src=y onerror=alert(3)>"),
        "an error message is shown as text",
    );
    browser.check(!browser.alert_open(), "no alert at the end");
}

#[test]
fn a_read_token_cannot_retry() {
    let console = Console::new("acme");
    retry_once(&console);
    console.ingest(&[record("e", "1", json!({ "fail_before_attempt": 2 }))]);
    let read = console.token("read");

    let browser = console.signed_in(&read);
    browser.goto(&console.page("/dead"));
    browser.check(
        browser.texts("#dead tr:has(td)").len() == 1,
        "a read token sees the dead letter",
    );
    browser.check(
        !browser.exists("a.retry") && !browser.exists("a#retry-all"),
        "but no Retry link",
    );

    // Posting the confirmation anyway: a 403 that says so. The page's own form is used
    // if there is one, else one like it is made.
    let confirm = "/console/t/acme/dead/retry?event=e_1&handler=every";
    browser.goto(&console.url(confirm));
    if browser.has_button("Retry") {
        browser.click_button("Retry");
    } else {
        browser.post(confirm);
    }
    browser.check(browser.status() == 403, "the POST is refused with a 403");
    browser.check(
        says_refused(&browser.page_text()),
        "the page says the retry is refused",
    );
    assert_eq!(
        dead_letters(&console),
        [("e_1".to_owned(), "every".to_owned())],
        "nothing was retried"
    );
    let outbox = console.api.all("/v1/tenants/acme/outbox");
    assert!(outbox.is_empty(), "{outbox:?}");
}

#[test]
fn another_tenants_pages_are_refused() {
    let console = Console::new("a");
    let admin_b = crate::serve::token(&console.spark, &["--tenant", "b", "--scope", "admin"]);
    let b = console.server.client(Some(&admin_b));
    console.set_up(&b, "b");
    let secret = "b's secret";
    let answer = b.send(
        "POST",
        "/v1/tenants/b/records/thing",
        crate::support::jsonl(&[record("e", "x", json!({ "secret": secret }))]).as_bytes(),
    );
    assert_eq!(answer.status, 200, "{answer:?}");

    let browser = console.signed_in(&console.admin);
    for page in [
        "/console/t/b/events/e_x",
        "/console/t/b/events",
        "/console/t/b",
        "/console/t/b/dead",
        "/console/t/ghost/events",
    ] {
        browser.goto(&console.url(page));
        browser.check(browser.status() == 403, &format!("{page} is a 403"));
        let text = browser.page_text();
        browser.check(
            says_refused(&text) && !text.contains(secret),
            &format!("{page} says it is refused, and nothing of b"),
        );
    }
    // Still signed in to a.
    browser.goto(&console.page(""));
    browser.check(browser.text("h1").contains('a'), "a's overview");
}

#[test]
fn the_outbox_shows_a_rendered_mail_and_the_modules_are_listed() {
    let console = Console::new("acme");
    console.settings(|settings| {
        settings["mail"]["from"] = json!("Team <team@example.com>");
    });
    console.ingest(&[record(
        "e",
        "1",
        json!({ "mail": { "to": "ada@example.com", "subject": "Hi Ada", "body": "Hello Ada,\nwelcome." } }),
    )]);
    let outbox = console.api.all("/v1/tenants/acme/outbox");
    let mail = outbox
        .iter()
        .find(|item| item["kind"] == "mail")
        .unwrap_or_else(|| panic!("a mail in {outbox:?}"));
    let id = match &mail["id"] {
        Value::String(id) => id.clone(),
        id => id.to_string(),
    };

    let browser = console.signed_in(&console.admin);
    browser.follow_nav("Outbox");
    let rows = browser.texts("#outbox tr:has(td)");
    browser.check(
        rows.len() == outbox.len(),
        &format!("a row per item: {rows:?}"),
    );
    browser.screenshot("outbox");
    browser.click(&format!("#outbox a[href$='/outbox/{id}']"));
    let shown = browser.text("pre#mail");
    let (head, body) = shown
        .split_once("\n\n")
        .unwrap_or_else(|| browser.fail(&format!("headers, a blank line, the body: {shown:?}")));
    for header in [
        "From: Team <team@example.com>",
        "To: ada@example.com",
        "Subject: Hi Ada",
    ] {
        browser.check(
            head.lines().any(|line| line == header),
            &format!("the mail's header {header:?}: {shown:?}"),
        );
    }
    browser.check(
        body.trim_end() == "Hello Ada,\nwelcome.",
        &format!("the mail's body: {shown:?}"),
    );
    browser.screenshot("outbox-mail");

    browser.follow_nav("Modules");
    let modules = browser.text("table#modules");
    browser.check(
        modules.contains("source") && modules.contains("every") && modules.contains("thing"),
        &format!("the modules: {modules}"),
    );
    browser.screenshot("modules");
}
