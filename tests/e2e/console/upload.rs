//! A module uploaded from the console's modules page, as an operator does it: a new
//! version of a module (its registration filled in), a new module, an upload that is
//! not a component or takes a name in use; and what a read token and a forged form may
//! not do.

use serde_json::Value;

use super::{Browser, Console};
use crate::support::{Spark, guests};

/// The tenant's modules through the API, in order: `(name, hash, since)`.
fn registered(console: &Console) -> Vec<(String, String, String)> {
    console
        .api
        .get_ok(&format!("/v1/tenants/{}/modules", console.tenant))["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|module| {
            let text = |field: &str| module[field].as_str().unwrap_or_default().to_owned();
            (text("name"), text("hash"), text("since"))
        })
        .collect()
}

/// The row of module `name` in the modules table: its full hash (the code cell's
/// title) and its `since`.
fn row(browser: &Browser, name: &str) -> (String, String) {
    let found = browser.script(&format!(
        "const row = [...document.querySelectorAll('#modules tbody tr')]\
           .find(row => row.cells[0].textContent.trim() === {});\
         return row ? [row.querySelector('code.hash').title, row.querySelector('.since').textContent.trim()] : null;",
        serde_json::json!(name)
    ));
    match found {
        Value::Array(cells) => (
            cells[0].as_str().unwrap_or_default().to_owned(),
            cells[1].as_str().unwrap_or_default().to_owned(),
        ),
        _ => browser.fail(&format!("no row for module {name} in #modules")),
    }
}

#[test]
fn a_new_version_and_a_new_module_are_uploaded_and_a_bad_upload_is_said() {
    let console = Console::new("acme");
    let browser = console.signed_in(&console.admin);
    browser.follow_nav("Modules");
    let (old_hash, old_since) = row(&browser, "every");
    browser.check(
        !old_hash.is_empty() && !old_since.is_empty(),
        "the row of `every` shows its code and since when it runs",
    );

    // A new version of `every`: its link fills the form in with its registration.
    browser.click("#modules a.new-version[href*='module=every']");
    browser.check(
        browser.text("#upload-heading") == "New version of every",
        "the form is for a new version of `every`",
    );
    browser.check(
        browser.prop("#module-handlers", "value").as_deref() == Some(".")
            && browser.prop("#module-sources", "value").as_deref() == Some("")
            && browser.prop("#module-clock", "value").as_deref() == Some("exact"),
        "the form holds `every`'s registration",
    );
    browser.check(
        !browser.exists("#module-name"),
        "a new version keeps its name",
    );
    browser.screenshot("modules-upload");
    browser.choose_file("#module-file", std::path::Path::new(guests::RAW));
    browser.click_button("Upload");
    browser.check(browser.status() == 200, "the upload is taken");
    browser.check(
        browser
            .text("#result")
            .contains("Module every is registered"),
        "the page says the module is registered",
    );
    let (new_hash, new_since) = row(&browser, "every");
    let api = registered(&console);
    let every = api.iter().find(|(name, _, _)| name == "every").unwrap();
    browser.check(
        new_hash != old_hash && new_hash == every.1,
        &format!("the row shows the new code, as the API does: {new_hash} (was {old_hash})"),
    );
    browser.check(
        new_since != old_since && new_since == every.2,
        &format!("the row says since when the new version runs: {new_since} (was {old_since})"),
    );
    browser.check(
        browser.text("#result").contains(&new_hash[..12]),
        "the result names the new code",
    );
    // It runs: an event is handled by the new version.
    let report = console.ingest(&[super::record("e", "1", serde_json::json!({}))]);
    assert_eq!(report["new"], 1, "{report}");

    // Not a component: the error is said by the file field, and nothing changes.
    let junk = console.spark.write("junk.wasm", "not a component");
    browser.goto(&console.page("/modules"));
    browser.check(
        browser.text("#upload-heading") == "Add a module",
        "without a module chosen, the form adds one",
    );
    browser.fill("#module-name", "junk");
    browser.fill("#module-handlers", "^e$");
    browser.choose_file("#module-file", &junk);
    browser.click_button("Upload");
    browser.check(browser.status() == 422, "an invalid component is a 422");
    browser.check(
        browser.attr("#module-file", "aria-invalid").as_deref() == Some("true")
            && browser.attr("#module-file", "aria-describedby").as_deref() == Some("upload-error"),
        "the file field is marked invalid and described by the error",
    );
    browser.check(
        browser.exists("p#upload-error[role=alert]") && !browser.text("#upload-error").is_empty(),
        "the error is said",
    );
    browser.check(
        browser.prop("#module-name", "value").as_deref() == Some("junk")
            && browser.prop("#module-handlers", "value").as_deref() == Some("^e$"),
        "what was typed is kept",
    );
    browser.screenshot("modules-upload-error");
    let names: Vec<String> = registered(&console)
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(names, ["source", "every"], "nothing registered");

    // A new module under a name in use is refused by its name, not replaced.
    browser.fill("#module-name", "source");
    browser.choose_file("#module-file", std::path::Path::new(guests::RAW));
    browser.click_button("Upload");
    browser.check(browser.status() == 409, "a name in use is a 409");
    browser.check(
        browser.attr("#module-name", "aria-invalid").as_deref() == Some("true"),
        "the name field is marked invalid",
    );
    let source = registered(&console)
        .into_iter()
        .find(|(name, _, _)| name == "source")
        .unwrap();
    assert_ne!(source.1, every.1, "`source` is not replaced");

    // A new module, under a new name.
    browser.goto(&console.page("/modules"));
    browser.fill("#module-name", "raw");
    browser.fill("#module-handlers", "^raw$\n^other$");
    browser.choose_file("#module-file", std::path::Path::new(guests::RAW));
    browser.select("#module-clock", "day");
    browser.click_button("Upload");
    browser.check(
        browser.text("#result").contains("Module raw is registered"),
        "the new module is registered",
    );
    let modules = console.api.get_ok("/v1/tenants/acme/modules");
    let raw = modules["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|module| module["name"] == "raw")
        .unwrap_or_else(|| panic!("`raw` registered: {modules}"))
        .clone();
    assert_eq!(raw["handlers"], serde_json::json!(["^raw$", "^other$"]));
    assert_eq!(raw["clock"], "day");
    browser.check(
        browser.text("table#modules").contains("^raw$, ^other$"),
        "the new module's row",
    );
}

#[test]
fn limits_are_shown_and_a_new_version_keeps_the_modules_own() {
    // The tenant's fuel and `every`'s own memory, as a manifest gives them (the API
    // sets no limits).
    let spark = Spark::new();
    let manifest = spark.write(
        "spark.toml",
        format!(
            "[limits]\nfuel = 5_000_000\n\n[[modules]]\nname = \"every\"\npath = {:?}\n\
             handlers = [\".\"]\nlimits = {{ memory-bytes = 33_554_432 }}\n",
            guests::RECORDER
        ),
    );
    spark
        .run(&["--tenant", "acme", "apply", manifest.to_str().unwrap()])
        .ok();
    let console = Console::serving(spark, "acme");
    let browser = console.signed_in(&console.admin);
    browser.follow_nav("Modules");
    // A cell's first line: a limit set for the module says so after it, to screen
    // readers (WebDriver reads that too).
    let limits = |browser: &Browser| -> Vec<String> {
        browser
            .texts("table#limits tbody tr:first-child td")
            .iter()
            .map(|cell| cell.lines().next().unwrap_or_default().to_owned())
            .collect()
    };
    let headings = browser.texts("table#limits thead th");
    let fuel = headings.iter().position(|name| name == "fuel").unwrap() - 1;
    let memory = headings
        .iter()
        .position(|name| name == "memory-bytes")
        .unwrap()
        - 1;
    let shown = limits(&browser);
    browser.check(
        shown[fuel] == "5,000,000" && shown[memory] == "32 MiB",
        &format!("the tenant's fuel and the module's memory: {shown:?}"),
    );
    let own = |browser: &Browser| -> Vec<String> {
        browser.texts("table#limits tbody tr:first-child td strong")
    };
    browser.check(
        own(&browser) == ["32 MiB"],
        "the module's own limit is marked",
    );

    browser.click("#modules a.new-version[href*='module=every']");
    browser.choose_file("#module-file", std::path::Path::new(guests::RAW));
    browser.click_button("Upload");
    browser.check(
        browser
            .text("#result")
            .contains("Module every is registered"),
        "the new version is registered",
    );
    browser.check(
        own(&browser) == ["32 MiB"] && limits(&browser)[memory] == "32 MiB",
        "the new version keeps the module's own limit",
    );
    let modules = console.api.get_ok("/v1/tenants/acme/modules");
    assert_eq!(
        modules["items"][0]["limits"]["memory-bytes"], 33_554_432,
        "{modules}"
    );
}

#[test]
fn a_read_token_gets_no_upload_form_and_a_forged_upload_is_refused() {
    let console = Console::new("acme");
    let before = registered(&console);
    let action = "/console/t/acme/modules";

    let read = console.signed_in(&console.token("read"));
    read.follow_nav("Modules");
    read.check(
        read.exists("table#modules") && read.exists("table#limits"),
        "a read token sees the modules",
    );
    read.check(
        !read.exists("form[enctype='multipart/form-data']")
            && !read.exists("#module-file")
            && !read.exists("a.new-version"),
        "but no upload form, nor a link to one",
    );
    // A read token's POST, even with its session's CSRF token, is refused.
    let csrf = read.csrf();
    read.post_multipart(
        action,
        &[("csrf", &csrf), ("module", "every"), ("replace", "true")],
    );
    read.check(read.status() == 403, "a read token's upload is a 403");
    read.check(
        read.page_text().contains("sign in with an admin token"),
        "the page says an admin token is needed",
    );

    // An admin's session, but a form not from it: refused too.
    let admin = console.signed_in(&console.admin);
    admin.goto(&console.page("/modules"));
    admin.post_multipart(
        action,
        &[("csrf", "forged"), ("module", "every"), ("replace", "true")],
    );
    admin.check(admin.status() == 403, "a forged form is a 403");
    admin.check(
        admin.page_text().contains("not from this session"),
        "the page says the form is not from this session",
    );
    // Without a CSRF field at all.
    admin.goto(&console.page("/modules"));
    admin.post_multipart(action, &[("module", "every"), ("replace", "true")]);
    admin.check(
        admin.status() == 403,
        "a form without a CSRF token is a 403",
    );
    assert_eq!(registered(&console), before, "nothing changed");
}
