//! Every main page of the console on a phone's screen, and for someone using a keyboard
//! or a screen reader: no page wider than the screen (a wide table scrolls in its own
//! box), every field labelled, one `h1` a page, and the nav's links and the buttons
//! reached with Tab, each showing it has the focus. The phone's pages are saved as
//! screenshots (`phone-PAGE.png`).

use serde_json::{Value, json};

use super::{Browser, Console, record};

/// A tenant with something on every page, among it a key and a context with nowhere
/// to break a line; and its main pages, as `(name, path)`.
fn populated() -> (Console, Vec<(&'static str, String)>) {
    let console = Console::new("acme");
    console.settings(|settings| {
        settings["retry"] = json!({ "attempts": 1, "backoff-ms": 1 });
    });
    let long = "k".repeat(200);
    console.ingest(&[
        record(
            "welcome",
            "1",
            json!({ "name": "Ada", "mail": { "to": "ada@example.com", "subject": "Hi Ada", "body": "Hello Ada" } }),
        ),
        record("e", "2", json!({ "fail": "boom" })),
        json!({ "id": "long", "events": [{ "group": "e", "key": format!("e_{long}"), "context": { "note": "x".repeat(300) } }] }),
        json!({ "id": 1, "stars": 3 }),
    ]);
    console.put("/templates/welcome", "Hi {{ name }}\n\nHello {{ name }}");
    console.put(
        "/generators/popular",
        &json!({ "group": "g", "model": "thing", "conditions": ["stars >= 2"] }).to_string(),
    );
    let mail = console
        .api
        .all("/v1/tenants/acme/outbox")
        .into_iter()
        .find(|item| item["kind"] == "mail")
        .expect("a mail in the outbox");
    let pages = vec![
        ("overview", String::new()),
        ("events", "/events".to_owned()),
        ("event", "/events/welcome_1".to_owned()),
        ("event-long-key", format!("/events/e_{long}")),
        ("dead", "/dead".to_owned()),
        ("retry", "/dead/retry?event=e_2&handler=every".to_owned()),
        ("outbox", "/outbox".to_owned()),
        ("outbox-item", format!("/outbox/{}", mail["id"])),
        ("templates", "/templates".to_owned()),
        ("template", "/templates/welcome?event=welcome_1".to_owned()),
        ("generators", "/generators".to_owned()),
        ("generator", "/generators/popular".to_owned()),
        ("modules", "/modules".to_owned()),
        ("modules-new-version", "/modules?module=every".to_owned()),
    ];
    (console, pages)
}

/// Fails unless the page is no wider than the window (less its scroll bar, which a
/// phone draws over the page), with what sticks out.
fn fits(browser: &Browser, page: &str) {
    // What is folded away is opened: it has to fit too.
    let measured = browser.script(
        "document.querySelectorAll('details').forEach(details => details.open = true);\
         const width = document.documentElement.clientWidth;\
         const scrolls = element => {\
           for (let up = element.parentElement; up; up = up.parentElement) {\
             if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(up).overflowX)) return true;\
           }\
           return false;\
         };\
         const out = [...document.body.querySelectorAll('*')]\
           .filter(element => element.getBoundingClientRect().right > width + 0.5 && !scrolls(element))\
           .slice(0, 5)\
           .map(element => element.outerHTML.slice(0, 120));\
         return [document.documentElement.scrollWidth, width, out];",
    );
    let (scroll_width, width) = (measured[0].as_u64(), measured[1].as_u64());
    browser.check(
        scroll_width.is_some() && scroll_width <= width,
        &format!(
            "{page} is wider ({scroll_width:?}) than the window ({width:?}): {}",
            measured[2]
        ),
    );
}

#[test]
fn every_page_fits_a_phones_screen() {
    let (console, pages) = populated();
    let browser = Browser::new();
    browser.resize(390, 844);
    browser.goto(&console.url("/console"));
    let width = browser.script("return window.innerWidth").as_u64();
    browser.check(
        width.is_some_and(|width| width <= 400),
        &format!("the window is a phone's: {width:?} wide"),
    );
    fits(&browser, "the sign-in page");
    browser.screenshot("phone-sign-in");
    browser.sign_in(&console.server.url, "acme", &console.admin);
    for (name, path) in &pages {
        browser.goto(&console.page(path));
        browser.check(browser.status() == 200, &format!("{name} is shown"));
        fits(&browser, name);
        browser.screenshot(&format!("phone-{name}"));
    }
}

/// Fails unless every field shown has a label, there is one `h1`, and Tab reaches every
/// link of the nav and every button, each with a visible focus ring.
fn usable(browser: &Browser, page: &str) {
    let found = browser.script(
        "const shown = element => element.getClientRects().length > 0\
           && getComputedStyle(element).visibility !== 'hidden';\
         const unlabelled = [...document.querySelectorAll('input, select, textarea')]\
           .filter(field => field.type !== 'hidden' && shown(field))\
           .filter(field => !(field.id && document.querySelector(`label[for=\"${CSS.escape(field.id)}\"]`))\
             && !field.getAttribute('aria-label') && !field.getAttribute('aria-labelledby'))\
           .map(field => field.outerHTML);\
         return [document.querySelectorAll('h1').length, unlabelled];",
    );
    browser.check(
        found[0] == json!(1),
        &format!("{page} has one h1, not {}", found[0]),
    );
    browser.check(
        found[1] == json!([]),
        &format!("every field of {page} has a label: {}", found[1]),
    );

    // Tab from the top of the page, once per thing that may take the focus (and a few
    // more), noting each target reached and whether it shows the focus.
    let targets = browser.script(
        "const targets = [...document.querySelectorAll('nav a, button, a.button')]\
           .filter(target => target.getClientRects().length > 0);\
         targets.forEach((target, index) => target.dataset.sparkTarget = index);\
         document.activeElement.blur();\
         const focusable = document.querySelectorAll(\
           'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]').length;\
         return [targets.map(target => target.outerHTML.slice(0, 100)), focusable];",
    );
    let names: Vec<String> = targets[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap_or_default().to_owned())
        .collect();
    browser.check(!names.is_empty(), &format!("{page} has a nav or a button"));
    let presses = targets[1].as_u64().unwrap_or(0) + 5;
    let mut reached = vec![false; names.len()];
    let mut unmarked = Vec::new();
    for _ in 0..presses {
        browser.press_tab();
        let focused = browser.script(
            "const focused = document.activeElement;\
             const style = getComputedStyle(focused);\
             return [focused.dataset ? focused.dataset.sparkTarget ?? null : null,\
                     style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0];",
        );
        if let Some(index) = focused[0]
            .as_str()
            .and_then(|index| index.parse::<usize>().ok())
            && !reached[index]
        {
            reached[index] = true;
            if focused[1] != Value::Bool(true) {
                unmarked.push(names[index].clone());
            }
        }
    }
    let missed: Vec<&String> = names
        .iter()
        .zip(&reached)
        .filter(|(_, reached)| !**reached)
        .map(|(name, _)| name)
        .collect();
    browser.check(
        missed.is_empty(),
        &format!("Tab reaches every nav link and button of {page}; not {missed:?}"),
    );
    browser.check(
        unmarked.is_empty(),
        &format!("each shows the focus on {page}; not {unmarked:?}"),
    );
}

#[test]
fn every_page_labels_its_fields_has_one_heading_and_works_with_the_keyboard() {
    let (console, pages) = populated();
    let browser = Browser::new();
    browser.goto(&console.url("/console"));
    usable(&browser, "the sign-in page");
    browser.sign_in(&console.server.url, "acme", &console.admin);
    for (name, path) in &pages {
        browser.goto(&console.page(path));
        usable(&browser, name);
    }
    // A read token's pages, which have fewer forms.
    let read = console.signed_in(&console.token("read"));
    for (name, path) in &pages {
        read.goto(&console.page(path));
        usable(&read, &format!("{name} (read token)"));
    }
}
