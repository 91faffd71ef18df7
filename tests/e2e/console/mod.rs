//! The web console (`/console` of `spark serve`) in a real browser: Debian's headless
//! Chromium driven through Debian's chromedriver (WebDriver), against the real binary
//! serving a real data dir. Nothing here downloads a browser: `scripts/test` installs
//! both packages, and a machine without them fails these tests, saying so.
//!
//! Each test has its own chromedriver and browser (so its own cookies), started by
//! `Browser::new` and ended when the `Browser` is dropped; the harness runs the async
//! WebDriver client on a runtime of its own and offers a blocking API.
//!
//! `pages.rs` goes through the pages as an operator does; `upload.rs` uploads modules;
//! `charts.rs` checks the overview's charts against a known workload;
//! `accessibility.rs` checks every main page on a phone's screen and with a keyboard.

mod accessibility;
mod charts;
mod pages;
mod upload;

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client as WebDriver, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};

use crate::serve::{Client, Server, token};
use crate::support::{Spark, guests, jsonl};

/// Where Debian's `chromium` package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver` package puts `chromedriver` on the PATH.
const CHROMEDRIVER: &str = "chromedriver";
const INSTALL: &str = "scripts/test installs them (apt-get install chromium chromium-driver)";
/// How long an element may take to appear, or a driver to answer.
const PATIENCE: Duration = Duration::from_secs(30);

/// A chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
    /// Its log, read into a failure's message.
    log: tempfile::NamedTempFile,
}

impl Driver {
    fn start() -> Self {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "Chromium is missing ({CHROMIUM}): the console tests need Debian's chromium and \
             chromium-driver; {INSTALL}"
        );
        // A port picked by binding port 0 may be taken by another test in between: a
        // driver that cannot listen exits, and another port is tried.
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.local_addr().unwrap().port()
            };
            let log = tempfile::NamedTempFile::new().unwrap();
            let output = log.reopen().unwrap();
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(output.try_clone().unwrap())
                .stderr(output)
                .spawn();
            let child = match child {
                Ok(child) => child,
                Err(error) if error.kind() == ErrorKind::NotFound => panic!(
                    "chromedriver is missing from the PATH: the console tests need Debian's \
                     chromium and chromium-driver; {INSTALL}"
                ),
                Err(error) => panic!("chromedriver does not start: {error}"),
            };
            let mut driver = Self {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
            };
            match driver.wait_ready() {
                Ok(()) => return driver,
                Err(why) => failures.push(format!("port {port}: {why}; log: {}", driver.log())),
            }
        }
        panic!("chromedriver never answered: {failures:#?}")
    }

    /// Waits until the driver says it listens and `GET /status` says it is ready, or
    /// it exits. (Its own word first: a driver of another test that took the port in
    /// between would answer `/status` too.)
    fn wait_ready(&mut self) -> Result<(), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("it exited ({status})"));
            }
            if self.log().contains("started successfully")
                && let Ok(mut answer) = agent.get(format!("{}/status", self.url)).call()
                && let Ok(text) = answer.body_mut().read_to_string()
                && let Ok(status) = serde_json::from_str::<Value>(&text)
                && status["value"]["ready"] == true
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no answer within {PATIENCE:?}"))
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        log[log.floor_char_boundary(start)..].to_owned()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium, its own session and cookies, with a blocking API. Every
/// method panics with the page's address and text when the page is not as expected.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<WebDriver>,
    driver: Driver,
}

impl Browser {
    pub fn new() -> Self {
        // A failure's screenshot from an earlier run would tell of a failure that is
        // not this run's.
        let _ = std::fs::remove_file(failure_screenshot());
        let driver = Driver::start();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                // No sandbox: CI runs as root, where Chromium's sandbox cannot start.
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--window-size=1280,900",
                ],
            }),
        );
        // An alert stays open for the test to see (`alert_open`), rather than being
        // dismissed by the next command.
        capabilities.insert("unhandledPromptBehavior".to_owned(), json!("ignore"));
        // A page that never loads, or a script that never ends, fails the test instead
        // of holding it for WebDriver's default five minutes.
        capabilities.insert(
            "timeouts".to_owned(),
            json!({ "pageLoad": 60_000, "script": 30_000, "implicit": 0 }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                ClientBuilder::new(connector)
                    .capabilities(capabilities)
                    .connect(&driver.url),
            )
            .await
        });
        let client = match client {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => panic!(
                "chromedriver could not start Chromium: {error}; chromedriver's log: {}",
                driver.log()
            ),
            Err(_) => panic!(
                "Chromium did not start within a minute; chromedriver's log: {}",
                driver.log()
            ),
        };
        Self {
            runtime,
            client: Some(client),
            driver,
        }
    }

    fn client(&self) -> &WebDriver {
        self.client.as_ref().unwrap()
    }

    /// Runs a WebDriver command to its end.
    fn run<T>(&self, command: impl Future<Output = Result<T, fantoccini::error::CmdError>>) -> T {
        match self.runtime.block_on(command) {
            Ok(value) => value,
            Err(error) => self.fail(&format!(
                "WebDriver: {error}\n  chromedriver's log ends with: {}",
                self.driver.log()
            )),
        }
    }

    /// Panics with `why`, the page's address and text, after saving a screenshot as
    /// `failed-TEST`.
    pub fn fail(&self, why: &str) -> ! {
        let client = self.client();
        let url = self
            .runtime
            .block_on(client.current_url())
            .map(|url| url.to_string())
            .unwrap_or_else(|error| format!("(unknown: {error})"));
        let text = self
            .runtime
            .block_on(client.execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            ))
            .map(|text| text.as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|error| format!("(unknown: {error})"));
        if let Ok(png) = self.runtime.block_on(client.screenshot()) {
            let _ = std::fs::write(failure_screenshot(), png);
        }
        panic!("{why}\n  at {url}\n  the page says:\n{text}")
    }

    /// Navigates to `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.run(self.client().goto(url));
    }

    /// The page's address.
    pub fn current_url(&self) -> String {
        self.run(self.client().current_url()).to_string()
    }

    /// The path (and query) of the page's address.
    pub fn path(&self) -> String {
        let url = self.run(self.client().current_url());
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The HTTP status of the page's document (Navigation Timing's `responseStatus`).
    pub fn status(&self) -> u16 {
        let status = self.run(self.client().execute(
            "const nav = performance.getEntriesByType('navigation')[0];\
             return nav ? nav.responseStatus : null;",
            vec![],
        ));
        match status.as_u64() {
            Some(status) => u16::try_from(status).unwrap(),
            None => self.fail(&format!("no HTTP status for the page: {status}")),
        }
    }

    /// The first element matching `css`, waited for.
    fn find(&self, css: &str) -> Element {
        let found = self.runtime.block_on(
            self.client()
                .wait()
                .at_most(PATIENCE)
                .for_element(Locator::Css(css)),
        );
        match found {
            Ok(element) => element,
            Err(error) => self.fail(&format!("no element `{css}`: {error}")),
        }
    }

    /// Every element matching `css` now (none is waited for).
    fn find_all(&self, css: &str) -> Vec<Element> {
        self.run(self.client().find_all(Locator::Css(css)))
    }

    /// Whether an element matches `css` now.
    pub fn exists(&self, css: &str) -> bool {
        !self.find_all(css).is_empty()
    }

    /// Types `text` into the field `css`, replacing what it held.
    pub fn fill(&self, css: &str, text: &str) {
        let field = self.find(css);
        self.run(field.clear());
        self.run(field.send_keys(text));
    }

    /// Clicks `css`, a link or a submit button, and waits for the page it leads to
    /// (the console has no script: every click we make loads a page).
    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.navigating(&format!("clicking `{css}`"), || {
            self.run(element.click());
        });
    }

    /// Follows the nav's link named `name` to its page.
    pub fn follow_nav(&self, name: &str) {
        let xpath = format!("//nav//a[normalize-space()='{name}']");
        let found = self.runtime.block_on(
            self.client()
                .wait()
                .at_most(PATIENCE)
                .for_element(Locator::XPath(&xpath)),
        );
        match found {
            Ok(link) => self.navigating(&format!("the nav link {name:?}"), || {
                self.run(link.click());
            }),
            Err(error) => self.fail(&format!("no nav link {name:?}: {error}")),
        }
    }

    /// Clicks the submit button whose text is `text` (the sign-out form in the header
    /// is a form too, so buttons are told apart by what they say), and waits for the
    /// page it leads to.
    pub fn click_button(&self, text: &str) {
        let xpath = format!("//form//button[@type='submit' and normalize-space()='{text}']");
        let found = self.runtime.block_on(
            self.client()
                .wait()
                .at_most(PATIENCE)
                .for_element(Locator::XPath(&xpath)),
        );
        match found {
            Ok(button) => self.navigating(&format!("the button {text:?}"), || {
                self.run(button.click());
            }),
            Err(error) => self.fail(&format!("no button {text:?}: {error}")),
        }
    }

    /// Whether a submit button says `text`.
    pub fn has_button(&self, text: &str) -> bool {
        let xpath = format!("//form//button[@type='submit' and normalize-space()='{text}']");
        !self
            .run(self.client().find_all(Locator::XPath(&xpath)))
            .is_empty()
    }

    /// Posts a form to `action` from the page, as a page's own form would (with the
    /// page's CSRF field, if it has one, and nothing else), and waits for the page it
    /// leads to.
    pub fn post(&self, action: &str) {
        self.navigating(&format!("posting to {action}"), || {
            self.script(&format!(
                "const form = document.createElement('form');\
                 form.method = 'post';\
                 form.action = {};\
                 const csrf = document.querySelector('input[name=csrf]');\
                 if (csrf) form.appendChild(csrf.cloneNode());\
                 document.body.appendChild(form);\
                 form.submit();\
                 return null;",
                json!(action)
            ));
        });
    }

    /// Posts a form of `fields` to `action` as `multipart/form-data` (the encoding of a
    /// form with a file), as a page's script could, and waits for the page it leads to.
    pub fn post_multipart(&self, action: &str, fields: &[(&str, &str)]) {
        self.navigating(&format!("posting to {action}"), || {
            self.script(&format!(
                "const form = document.createElement('form');\
                 form.method = 'post';\
                 form.enctype = 'multipart/form-data';\
                 form.action = {};\
                 for (const [name, value] of {}) {{\
                   const input = document.createElement('input');\
                   input.type = 'hidden';\
                   input.name = name;\
                   input.value = value;\
                   form.appendChild(input);\
                 }}\
                 document.body.appendChild(form);\
                 form.submit();\
                 return null;",
                json!(action),
                json!(fields)
            ));
        });
    }

    /// The page's CSRF token (of the sign-out form every signed-in page has).
    pub fn csrf(&self) -> String {
        self.attr("input[name=csrf]", "value")
            .unwrap_or_else(|| self.fail("no CSRF field on the page"))
    }

    /// Chooses the file at `path` in the file field `css`.
    pub fn choose_file(&self, css: &str, path: &std::path::Path) {
        let field = self.find(css);
        self.run(field.send_keys(&path.display().to_string()));
    }

    /// Clicks `css`, which changes the page without leading to another (a `<summary>`
    /// opening its `<details>`, say).
    pub fn toggle(&self, css: &str) {
        let element = self.find(css);
        self.run(element.click());
    }

    /// Resizes the window to `width` by `height` (headless, the page's viewport).
    pub fn resize(&self, width: u32, height: u32) {
        self.run(self.client().set_window_size(width, height));
    }

    /// Presses Tab, as someone using the keyboard moves to the next thing on the page.
    pub fn press_tab(&self) {
        let tab = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Tab.into(),
            });
        self.run(self.client().perform_actions(tab));
    }

    /// Does `action`, which must load another page, and waits until that page is
    /// loaded: a form's submission starts after the click that makes it is answered,
    /// so WebDriver's click alone may return while the old page is still shown.
    fn navigating(&self, what: &str, action: impl FnOnce()) {
        self.script("window.sparkOldPage = true; return null;");
        action();
        let deadline = Instant::now() + PATIENCE;
        loop {
            // While the page changes, a script may fail: it is tried again.
            let new_page = self.runtime.block_on(self.client().execute(
                "return window.sparkOldPage === undefined && document.readyState === 'complete'",
                vec![],
            ));
            if matches!(new_page, Ok(Value::Bool(true))) {
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!("{what} led to no new page within {PATIENCE:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Chooses the option of value `value` in the `<select>` `css`.
    pub fn select(&self, css: &str, value: &str) {
        let element = self.find(css);
        self.run(element.select_by_value(value));
    }

    /// The rendered text of `css`.
    pub fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.run(element.text())
    }

    /// The rendered text of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.find_all(css)
            .iter()
            .map(|element| self.run(element.text()))
            .collect()
    }

    /// The attribute `name` of `css`, as written in the page.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css);
        self.run(element.attr(name))
    }

    /// The property `name` of `css` (a field's `value` as it is now, say).
    pub fn prop(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css);
        self.run(element.prop(name))
    }

    /// The text of the whole page.
    pub fn page_text(&self) -> String {
        self.text("body")
    }

    /// Runs `script` in the page and returns what it returns.
    pub fn script(&self, script: &str) -> Value {
        self.run(self.client().execute(script, vec![]))
    }

    /// Whether an alert, confirm or prompt dialog is open.
    pub fn alert_open(&self) -> bool {
        match self.runtime.block_on(self.client().get_alert_text()) {
            Ok(_) => true,
            Err(error) if error.is_no_such_alert() => false,
            Err(error) => self.fail(&format!("WebDriver: {error}")),
        }
    }

    /// Saves a screenshot of the page as `target/console-screenshots/NAME.png`.
    pub fn screenshot(&self, name: &str) {
        let png = self.run(self.client().screenshot());
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let path = screenshots().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    }

    /// Signs in on the sign-in page at `base` (`http://HOST:PORT`).
    pub fn sign_in(&self, base: &str, tenant: &str, token: &str) {
        self.goto(&format!("{base}/console"));
        self.fill("#tenant", tenant);
        self.fill("#token", token);
        self.click("form[action='/console/sign-in'] button[type=submit]");
    }

    /// Fails the test with the page when `holds` is false.
    pub fn check(&self, holds: bool, what: &str) {
        if !holds {
            self.fail(what);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed outside the harness (an assertion on the API, say) still
        // leaves its last page to look at.
        if std::thread::panicking() && !failure_screenshot().exists() {
            let shot = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), self.client().screenshot()).await
            });
            if let Ok(Ok(png)) = shot {
                let _ = std::fs::write(failure_screenshot(), png);
            }
        }
        // Ends the session, which quits Chromium; the driver is killed after it.
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        // Then `driver` is dropped, which kills chromedriver.
    }
}

/// Where a failed test's last page is saved: `failed-TEST.png`.
fn failure_screenshot() -> PathBuf {
    let test = std::thread::current()
        .name()
        .unwrap_or("test")
        .replace("::", "-");
    screenshots().join(format!("failed-{test}.png"))
}

/// `target/console-screenshots`, made if missing.
pub fn screenshots() -> PathBuf {
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_owned();
    let dir = target.join("console-screenshots");
    // A failure to make it is told by the write that needs it.
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A server on a fresh data dir with tenant `tenant` set up through the API as
/// `serve/api.rs` does: the recorder as the source of `thing` and as the handler
/// `every` of every group; its admin token and an admin API client.
pub struct Console {
    pub spark: Spark,
    pub server: Server,
    pub tenant: String,
    pub admin: String,
    pub api: Client,
}

impl Console {
    pub fn new(tenant: &str) -> Self {
        let console = Self::serving(Spark::new(), tenant);
        console.set_up(&console.api, tenant);
        console
    }

    /// A server on `spark`'s data dir as it is, with an admin token of `tenant`.
    pub fn serving(spark: Spark, tenant: &str) -> Self {
        let admin = token(&spark, &["--tenant", tenant, "--scope", "admin"]);
        let server = Server::start(&spark, &[]);
        let api = server.client(Some(&admin));
        Self {
            spark,
            server,
            tenant: tenant.to_owned(),
            admin,
            api,
        }
    }

    /// Registers the recorder as the source of `thing` and the handler `every`.
    pub fn set_up(&self, api: &Client, tenant: &str) {
        let source = api.put_module(tenant, "source", guests::RECORDER, "source=thing");
        assert_eq!(source.status, 200, "{source:?}");
        let every = api.put_module(tenant, "every", guests::RECORDER, "handler=.");
        assert_eq!(every.status, 200, "{every:?}");
    }

    /// A new token of this tenant with `scope`.
    pub fn token(&self, scope: &str) -> String {
        token(&self.spark, &["--tenant", &self.tenant, "--scope", scope])
    }

    /// The address of `path` on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// The address of the tenant's console page `page` (`""` for the overview).
    pub fn page(&self, page: &str) -> String {
        self.url(&format!("/console/t/{}{page}", self.tenant))
    }

    /// Posts `records` of `thing` through the API; its report.
    pub fn ingest(&self, records: &[Value]) -> Value {
        let path = format!("/v1/tenants/{}/records/thing", self.tenant);
        let answer = self.api.send("POST", &path, jsonl(records).as_bytes());
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body
    }

    /// Changes the tenant's settings with `change`.
    pub fn settings(&self, change: impl FnOnce(&mut Value)) {
        let path = format!("/v1/tenants/{}/settings", self.tenant);
        let mut settings = self.api.get_ok(&path);
        change(&mut settings);
        let answer = self.api.send("PUT", &path, settings.to_string().as_bytes());
        assert_eq!(answer.status, 200, "{answer:?}");
    }

    /// `PUT` of `body` to the tenant's API path `path`, which must succeed.
    pub fn put(&self, path: &str, body: &str) -> Value {
        let path = format!("/v1/tenants/{}{path}", self.tenant);
        let answer = self.api.send("PUT", &path, body.as_bytes());
        assert!(answer.status < 300, "PUT {path}: {answer:?}");
        answer.body
    }

    /// A browser signed in to this tenant with `token`, on the overview.
    pub fn signed_in(&self, token: &str) -> Browser {
        let browser = Browser::new();
        browser.sign_in(&self.server.url, &self.tenant, token);
        let overview = format!("/console/t/{}", self.tenant);
        browser.check(
            browser.path() == overview,
            &format!("signing in leads to {overview}"),
        );
        browser
    }
}

/// A record of `thing` making one event `GROUP_ID` with `context`.
pub fn record(group: &str, id: &str, context: Value) -> Value {
    json!({ "id": format!("{group}-{id}"), "events": [{ "group": group, "id": id, "context": context }] })
}
