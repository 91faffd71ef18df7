//! The web console under `/console`: an operator's view of one tenant, signed in with
//! one of its tokens. Server-rendered HTML (minijinja, escaping everything a page
//! shows), a stylesheet and no script: every action is a plain form, and each that
//! changes something carries the session's CSRF token. A read token sees; an admin
//! token acts. The pages read through the same owners as the API.

// A page's early return is the response itself, as axum handlers go: boxing it would
// only add noise to every handler.
#![allow(clippy::result_large_err)]

mod chart;
mod session;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde_json::{Value, json};
use spark_host::{Error, OutboxStatus, format_time, wall_clock_ms};

use super::api::{App, read_body};
use super::errors::ApiError;
use super::listing::{EventFilter, events_page};
use super::tokens::Scope;
use crate::views;
pub use session::Sessions;
use session::{Session, clear_cookie, is_https, set_cookie};

/// Events on a page of the event log, and outbox items on a page of the outbox.
const PAGE: usize = 50;
/// Ledger entries the overview reads at most (it has no index by time).
const OVERVIEW_SCAN: usize = 100_000;

static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut pages = Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("templates/layout.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("problem.html", include_str!("templates/problem.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("events.html", include_str!("templates/events.html")),
        ("event.html", include_str!("templates/event.html")),
        ("dead.html", include_str!("templates/dead.html")),
        ("retry.html", include_str!("templates/retry.html")),
        ("outbox.html", include_str!("templates/outbox.html")),
        (
            "outbox_item.html",
            include_str!("templates/outbox_item.html"),
        ),
        ("templates.html", include_str!("templates/templates.html")),
        ("template.html", include_str!("templates/template.html")),
        ("generators.html", include_str!("templates/generators.html")),
        ("generator.html", include_str!("templates/generator.html")),
        ("modules.html", include_str!("templates/modules.html")),
    ] {
        pages
            .add_template(name, source)
            .expect("the console's templates parse (a unit test renders each)");
    }
    pages
});

pub fn router() -> Router<App> {
    Router::new()
        .route("/console", get(sign_in_page))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/style.css", get(style))
        .route("/console/sign-in", post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/t/{tenant}", get(overview))
        .route("/console/t/{tenant}/events", get(events))
        .route("/console/t/{tenant}/events/{key}", get(event))
        .route("/console/t/{tenant}/dead", get(dead))
        .route(
            "/console/t/{tenant}/dead/retry",
            get(retry_page).post(retry),
        )
        .route("/console/t/{tenant}/outbox", get(outbox))
        .route("/console/t/{tenant}/outbox/send", post(send_outbox))
        .route("/console/t/{tenant}/outbox/{id}", get(outbox_item))
        .route("/console/t/{tenant}/templates", get(templates))
        .route("/console/t/{tenant}/templates/new", get(new_template))
        .route(
            "/console/t/{tenant}/templates/{group}",
            get(template).post(save_template),
        )
        .route("/console/t/{tenant}/generators", get(generators))
        .route("/console/t/{tenant}/generators/{name}", get(generator))
        .route(
            "/console/t/{tenant}/generators/{name}/dry-run",
            post(dry_run),
        )
        .route(
            "/console/t/{tenant}/generators/{name}/activate",
            post(activate),
        )
        .route(
            "/console/t/{tenant}/generators/{name}/deactivate",
            post(deactivate),
        )
        .route("/console/t/{tenant}/modules", get(modules))
}

/// A page rendered, or why not.
fn render(status: StatusCode, name: &str, context: Value) -> Response {
    let context = minijinja::Value::from(minijinja::value::Serde(&context));
    match PAGES
        .get_template(name)
        .and_then(|page| page.render(context))
    {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!("the console page {name} did not render: {error:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

/// The context every page of a signed-in tenant has: the session, the tenant, the page.
fn base(session: &Session, page: &str) -> serde_json::Map<String, Value> {
    let mut context = serde_json::Map::new();
    context.insert(
        "session".to_owned(),
        json!({
            "tenant": session.tenant,
            "csrf": session.csrf,
            "admin": session.access.allows(&session.tenant, Scope::Admin),
        }),
    );
    context.insert("tenant".to_owned(), json!(session.tenant));
    context.insert("page".to_owned(), json!(page));
    context
}

/// A page of `session`'s tenant.
fn page(session: &Session, page: &str, name: &str, extra: Value) -> Response {
    let mut context = base(session, page);
    if let Value::Object(extra) = extra {
        context.extend(extra);
    }
    render(StatusCode::OK, name, Value::Object(context))
}

/// A page saying what went wrong, with its status.
fn problem(
    status: StatusCode,
    session: Option<&Session>,
    heading: &str,
    message: &str,
) -> Response {
    let mut context = session.map(|session| base(session, "")).unwrap_or_default();
    context.insert("heading".to_owned(), json!(heading));
    context.insert("message".to_owned(), json!(message));
    render(status, "problem.html", Value::Object(context))
}

/// A failed request to the tenant, as a page.
fn failed(session: &Session, error: ApiError) -> Response {
    let heading = if error.status.is_client_error() {
        "That did not work"
    } else {
        "Something went wrong"
    };
    problem(error.status, Some(session), heading, &error.message)
}

/// The session of a request on `tenant`'s pages: its own tenant only (an operator's
/// token included: a session is one tenant). Without one, to the sign-in page.
fn signed_in(app: &App, headers: &HeaderMap, tenant: &str) -> Result<Session, Response> {
    let Some(session) = app.sessions.of(headers, &app.tokens) else {
        return Err(Redirect::to("/console").into_response());
    };
    if session.tenant != tenant {
        return Err(problem(
            StatusCode::FORBIDDEN,
            Some(&session),
            "Not your tenant",
            &format!(
                "You are signed in to tenant `{}`, not `{tenant}`.",
                session.tenant
            ),
        ));
    }
    Ok(session)
}

/// Checks a form's CSRF token, and that the session may act (an admin token).
fn may_act(session: &Session, form: &BTreeMap<String, String>) -> Result<(), Response> {
    if !form
        .get("csrf")
        .is_some_and(|sent| session.csrf_holds(sent))
    {
        return Err(problem(
            StatusCode::FORBIDDEN,
            Some(session),
            "Form expired",
            "This form is not from this session; reload the page and try again.",
        ));
    }
    if !session.access.allows(&session.tenant, Scope::Admin) {
        return Err(problem(
            StatusCode::FORBIDDEN,
            Some(session),
            "Read only",
            "Your token may read this tenant, not change it: sign in with an admin token.",
        ));
    }
    Ok(())
}

/// The session and the form of a request that changes something: signed in to
/// `tenant`, with the session's CSRF token and an admin token.
async fn acting(
    app: &App,
    headers: &HeaderMap,
    tenant: &str,
    body: Body,
) -> Result<(Session, BTreeMap<String, String>), Response> {
    let session = signed_in(app, headers, tenant)?;
    let fields = form(body, app).await?;
    may_act(&session, &fields)?;
    Ok((session, fields))
}

/// A form's fields (the last of a repeated name).
async fn form(body: Body, app: &App) -> Result<BTreeMap<String, String>, Response> {
    let bytes = read_body(body, app.limits.other)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// A query string's fields.
fn query(query: &Option<String>) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A field, blank as absent.
fn field<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

fn path_part(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
        .into_response()
}

async fn sign_in_page(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(session) = app.sessions.of(&headers, &app.tokens) {
        return Redirect::to(&format!("/console/t/{}", session.tenant)).into_response();
    }
    render(
        StatusCode::OK,
        "sign_in.html",
        json!({ "tenant_typed": "" }),
    )
}

async fn sign_in(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let fields = match form(body, &app).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let tenant = field(&fields, "tenant").unwrap_or_default().to_owned();
    let token = field(&fields, "token").unwrap_or_default();
    let refused = |message: &str| {
        render(
            StatusCode::UNAUTHORIZED,
            "sign_in.html",
            json!({ "error": message, "tenant_typed": tenant }),
        )
    };
    if spark_host::validate_tenant_name(&tenant).is_err() {
        return refused("That is not a tenant name.");
    }
    let Some(access) = app.tokens.verify(token) else {
        return refused("That token is not known (or was revoked).");
    };
    if !access.allows(&tenant, Scope::Read) {
        return refused(&format!("That token does not open tenant `{tenant}`."));
    }
    match app.sessions.start(&tenant, token, access) {
        Ok(session) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, set_cookie(&session, is_https(&headers))),
                (
                    header::LOCATION,
                    header::HeaderValue::from_str(&format!("/console/t/{tenant}"))
                        .expect("a tenant name is a URL path"),
                ),
            ],
        )
            .into_response(),
        Err(error) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "Cannot sign in",
            &error.to_string(),
        ),
    }
}

async fn sign_out(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let fields = match form(body, &app).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    if let Some(session) = app.sessions.of(&headers, &app.tokens)
        && fields
            .get("csrf")
            .is_some_and(|sent| session.csrf_holds(sent))
    {
        app.sessions.end(&session.id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, clear_cookie()),
            (
                header::LOCATION,
                header::HeaderValue::from_static("/console"),
            ),
        ],
    )
        .into_response()
}

/// What the overview shows, read in one visit to the owner.
#[derive(Default)]
struct Overview {
    today: BTreeMap<String, u64>,
    /// New events per day, the last 14 days, oldest first.
    days: Vec<(String, u64)>,
    scanned: usize,
    truncated: bool,
    latest: Option<Value>,
    outbox: BTreeMap<&'static str, u64>,
    pending: u64,
    dead: u64,
}

async fn overview(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let read = app
        .owners
        .call(&tenant, false, |tenant| {
            const DAY_MS: i64 = 86_400_000;
            let today = wall_clock_ms().div_euclid(DAY_MS) * DAY_MS;
            let first_day = today - 13 * DAY_MS;
            let mut overview = Overview::default();
            let mut per_day = [0u64; 14];
            let mut latest: Option<spark_host::LedgerEntry> = None;
            for entry in tenant.events() {
                if overview.scanned == OVERVIEW_SCAN {
                    overview.truncated = true;
                    break;
                }
                let entry = entry?;
                overview.scanned += 1;
                if entry.created_at_ms >= today {
                    *overview.today.entry(entry.group.clone()).or_default() += 1;
                }
                if entry.created_at_ms >= first_day {
                    let day = ((entry.created_at_ms - first_day) / DAY_MS).min(13);
                    per_day[day as usize] += 1;
                }
                if latest
                    .as_ref()
                    .is_none_or(|latest| entry.created_at_ms > latest.created_at_ms)
                {
                    latest = Some(entry);
                }
            }
            overview.days = per_day
                .iter()
                .enumerate()
                .map(|(day, count)| {
                    let date = format_time(first_day + day as i64 * DAY_MS);
                    (date[..10].to_owned(), *count)
                })
                .collect();
            overview.latest = latest.as_ref().map(views::event);
            for item in tenant.outbox() {
                let status = match item?.status {
                    OutboxStatus::Pending => "pending",
                    OutboxStatus::Sent => "sent",
                    OutboxStatus::Failed => "failed",
                };
                *overview.outbox.entry(status).or_default() += 1;
            }
            overview.pending = tenant.pending().count() as u64;
            overview.dead = tenant.dead().count() as u64;
            Ok(overview)
        })
        .await;
    let overview = match read {
        Ok(overview) => overview,
        Err(error) => return failed(&session, error),
    };
    let today: Vec<Value> = overview
        .today
        .iter()
        .map(|(group, count)| json!({ "group": group, "count": count }))
        .collect();
    let svg = chart::bars("New events per day", &overview.days);
    let mut context = base(&session, "overview");
    context.insert("today".to_owned(), json!(today));
    context.insert("truncated".to_owned(), json!(overview.truncated));
    context.insert("scanned".to_owned(), json!(overview.scanned));
    context.insert("last_event".to_owned(), json!(overview.latest));
    context.insert(
        "outbox".to_owned(),
        json!({
            "pending": overview.outbox.get("pending").copied().unwrap_or(0),
            "sent": overview.outbox.get("sent").copied().unwrap_or(0),
            "failed": overview.outbox.get("failed").copied().unwrap_or(0),
        }),
    );
    context.insert("pending".to_owned(), json!(overview.pending));
    context.insert("dead".to_owned(), json!(overview.dead));
    // The chart is SVG made here from numbers and escaped dates: shown as it is.
    let mut context = minijinja::Value::from(minijinja::value::Serde(&Value::Object(context)));
    context = minijinja::context! { chart => minijinja::Value::from_safe_string(svg), ..context };
    match PAGES
        .get_template("overview.html")
        .and_then(|page| page.render(context))
    {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!("the overview did not render: {error:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

async fn events(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let fields = query(&raw);
    let shown = json!({
        "group": fields.get("group").cloned().unwrap_or_default(),
        "prefix": fields.get("prefix").cloned().unwrap_or_default(),
        "from": fields.get("from").cloned().unwrap_or_default(),
        "to": fields.get("to").cloned().unwrap_or_default(),
    });
    let filtered = ["group", "prefix", "from", "to"]
        .iter()
        .any(|name| field(&fields, name).is_some());
    let filter = match EventFilter::parse(
        field(&fields, "group"),
        field(&fields, "prefix"),
        field(&fields, "from"),
        field(&fields, "to"),
    ) {
        Ok(filter) => filter,
        Err(error) => {
            return page(
                &session,
                "events",
                "events.html",
                json!({ "filter": shown, "error": error.to_string(), "events": [] }),
            );
        }
    };
    let after = field(&fields, "after").map(str::to_owned);
    let read = app
        .owners
        .call(&tenant, false, move |tenant| {
            events_page(tenant, &filter, after, PAGE)
        })
        .await;
    let (entries, next) = match read {
        Ok(found) => found,
        Err(error) => return failed(&session, error),
    };
    let next = next.map(|after| {
        let mut next = fields.clone();
        next.insert("after".to_owned(), after);
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next.iter().filter(|(_, value)| !value.is_empty()))
            .finish();
        format!("/console/t/{tenant}/events?{query}")
    });
    let events: Vec<Value> = entries.iter().map(views::event).collect();
    page(
        &session,
        "events",
        "events.html",
        json!({ "filter": shown, "filtered": filtered, "events": events, "next": next }),
    )
}

async fn event(
    State(app): State<App>,
    Path((tenant, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let read = app
        .owners
        .call(&tenant, false, move |tenant| {
            let entry = tenant.event(&key)?;
            let defaults = tenant.settings()?.mail;
            let mut outbox = Vec::new();
            for item in tenant.outbox() {
                let item = item?;
                if item.event == key {
                    outbox.push(views::outbox_item(&item, &defaults));
                }
            }
            let mut pending = Vec::new();
            for delivery in tenant.pending() {
                let delivery = delivery?;
                if delivery.event == key {
                    pending.push(views::pending_delivery(&delivery));
                }
            }
            let mut dead = Vec::new();
            for letter in tenant.dead() {
                let letter = letter?;
                if letter.event == key {
                    dead.push(views::dead_letter(&letter));
                }
            }
            Ok((views::event(&entry), outbox, pending, dead))
        })
        .await;
    let (event, outbox, pending, dead) = match read {
        Ok(read) => read,
        Err(error) => return failed(&session, error),
    };
    let context = serde_json::to_string_pretty(&event["context"]).unwrap_or_default();
    page(
        &session,
        "events",
        "event.html",
        json!({ "event": event, "context": context, "outbox": outbox, "pending": pending, "dead": dead }),
    )
}

async fn dead(State(app): State<App>, Path(tenant): Path<String>, headers: HeaderMap) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let read = app
        .owners
        .call(&tenant, false, |tenant| {
            tenant
                .dead()
                .map(|letter| letter.map(|letter| views::dead_letter(&letter)))
                .collect::<Result<Vec<_>, Error>>()
        })
        .await;
    match read {
        Ok(letters) => page(&session, "dead", "dead.html", json!({ "letters": letters })),
        Err(error) => failed(&session, error),
    }
}

/// The confirmation before a retry: of one letter (`event` and `handler`), or of all.
async fn retry_page(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let fields = query(&raw);
    let count = app
        .owners
        .call(&tenant, false, |tenant| Ok(tenant.dead().count()))
        .await
        .unwrap_or(0);
    page(
        &session,
        "dead",
        "retry.html",
        json!({
            "event": field(&fields, "event"),
            "handler": field(&fields, "handler"),
            "count": count,
        }),
    )
}

async fn retry(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, fields) = match acting(&app, &headers, &tenant, body).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let event = field(&fields, "event").map(str::to_owned);
    let handler = field(&fields, "handler").map(str::to_owned);
    let metrics = Arc::clone(&app.metrics);
    let ran = app
        .owners
        .call_setup(&tenant, false, move |tenant| {
            let report =
                tenant.retry_dead(event.as_deref(), handler.as_deref(), wall_clock_ms())?;
            metrics.count_run(tenant.name(), &report);
            Ok(report)
        })
        .await;
    match ran {
        Ok(report) => {
            let result = format!(
                "{} delivered again, {} failed again{}.",
                report.deliveries.saturating_sub(report.failed),
                report.failed,
                if report.pending > 0 {
                    format!(", {} waiting for a retry", report.pending)
                } else {
                    String::new()
                }
            );
            page(&session, "dead", "retry.html", json!({ "result": result }))
        }
        Err(error) => failed(&session, error),
    }
}

async fn outbox(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let after: Option<u64> = field(&query(&raw), "after").and_then(|after| after.parse().ok());
    let read = app
        .owners
        .call(&tenant, false, move |tenant| {
            let defaults = tenant.settings()?.mail;
            let mut items = Vec::new();
            let mut more = false;
            for item in tenant.outbox() {
                let item = item?;
                if after.is_some_and(|after| item.id <= after) {
                    continue;
                }
                if items.len() == PAGE {
                    more = true;
                    break;
                }
                items.push(views::outbox_item(&item, &defaults));
            }
            Ok((items, more))
        })
        .await;
    let (items, more) = match read {
        Ok(read) => read,
        Err(error) => return failed(&session, error),
    };
    let next = more
        .then(|| {
            items
                .last()
                .map(|item| format!("/console/t/{tenant}/outbox?after={}", item["id"]))
        })
        .flatten();
    page(
        &session,
        "outbox",
        "outbox.html",
        json!({ "items": items, "next": next }),
    )
}

async fn send_outbox(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, _) = match acting(&app, &headers, &tenant, body).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    match app.owners.send_outbox(&tenant).await {
        Ok(report) => {
            let result = format!(
                "{} sent, {} failed (they stay pending), {} set aside, {} without a transport.",
                report.sent, report.failed, report.parked, report.waiting
            );
            page(
                &session,
                "outbox",
                "outbox.html",
                json!({ "result": result, "items": [] }),
            )
        }
        Err(error) => failed(&session, error),
    }
}

async fn outbox_item(
    State(app): State<App>,
    Path((tenant, id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let read = app
        .owners
        .call(&tenant, false, move |tenant| {
            let defaults = tenant.settings()?.mail;
            for item in tenant.outbox() {
                let item = item?;
                if item.id == id {
                    return Ok(Some(views::outbox_item(&item, &defaults)));
                }
            }
            Ok(None)
        })
        .await;
    match read {
        Ok(Some(item)) => {
            let payload =
                serde_json::to_string_pretty(&item["data"]["payload"]).unwrap_or_default();
            page(
                &session,
                "outbox",
                "outbox_item.html",
                json!({ "item": item, "payload": payload }),
            )
        }
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            Some(&session),
            "No such item",
            &format!("The outbox has no item #{id} (pruned, perhaps)."),
        ),
        Err(error) => failed(&session, error),
    }
}

async fn templates(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    match app
        .owners
        .call(&tenant, false, |tenant| tenant.templates())
        .await
    {
        Ok(templates) => {
            let templates: Vec<Value> = templates
                .iter()
                .map(|(group, source)| {
                    json!({ "group": group, "first_line": source.lines().next().unwrap_or_default() })
                })
                .collect();
            page(
                &session,
                "templates",
                "templates.html",
                json!({ "templates": templates }),
            )
        }
        Err(error) => failed(&session, error),
    }
}

async fn new_template(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = signed_in(&app, &headers, &tenant) {
        return response;
    }
    match field(&query(&raw), "group") {
        Some(group) => Redirect::to(&format!(
            "/console/t/{tenant}/templates/{}",
            path_part(group)
        ))
        .into_response(),
        None => Redirect::to(&format!("/console/t/{tenant}/templates")).into_response(),
    }
}

/// The template page: its source (or what was typed, with its error), and a preview
/// with the context of an event of its group.
async fn template_page(
    app: &App,
    session: &Session,
    group: String,
    typed: Option<(String, String)>,
    event: Option<String>,
) -> Response {
    let tenant = session.tenant.clone();
    let chosen = event.clone();
    let read = app
        .owners
        .call(&tenant, false, move |tenant| {
            let source = match tenant.template(&group) {
                Ok(source) => Some(source),
                Err(Error::UnknownTemplate(_)) => None,
                Err(error) => return Err(error),
            };
            // The latest events of the group, for the preview's choice.
            let mut events: Vec<(i64, String)> = Vec::new();
            for entry in tenant.events().take(OVERVIEW_SCAN) {
                let entry = entry?;
                if entry.group == group {
                    events.push((entry.created_at_ms, entry.key));
                }
            }
            events.sort_by(|a, b| b.cmp(a));
            events.truncate(20);
            let preview = match (&source, &event) {
                (Some(_), Some(key)) => {
                    let context: Value = serde_json::from_str(&tenant.event(key)?.context)
                        .unwrap_or_else(|_| json!({}));
                    Some(tenant.preview(&group, &context))
                }
                (Some(_), None) => Some(tenant.preview(&group, &json!({}))),
                (None, _) => None,
            };
            let preview = match preview {
                Some(Ok(rendered)) => (
                    Some(json!({ "subject": rendered.subject, "body": rendered.body })),
                    None,
                ),
                Some(Err(error)) => (None, Some(error.to_string())),
                None => (None, None),
            };
            let keys: Vec<String> = events.into_iter().map(|(_, key)| key).collect();
            Ok((group, source, keys, preview))
        })
        .await;
    let (group, source, keys, (preview, preview_error)) = match read {
        Ok(read) => read,
        Err(error) => return failed(session, error),
    };
    let (source, error, saved) = match typed {
        Some((typed, error)) if !error.is_empty() => (typed, Some(error), false),
        Some(_) => (source.unwrap_or_default(), None, true),
        None => (source.unwrap_or_default(), None, false),
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut context = base(session, "templates");
    if let Value::Object(extra) = json!({
        "group": group, "source": source, "error": error, "saved": saved,
        "events": keys, "chosen": chosen, "preview": preview, "preview_error": preview_error,
    }) {
        context.extend(extra);
    }
    render(status, "template.html", Value::Object(context))
}

async fn template(
    State(app): State<App>,
    Path((tenant, group)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let event = field(&query(&raw), "event").map(str::to_owned);
    template_page(&app, &session, group, None, event).await
}

async fn save_template(
    State(app): State<App>,
    Path((tenant, group)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, fields) = match acting(&app, &headers, &tenant, body).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    // Browsers send a textarea's line ends as CRLF.
    let source = fields
        .get("template")
        .cloned()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let saved_group = group.clone();
    let typed = source.clone();
    let saved = app
        .owners
        .call_setup(&tenant, true, move |tenant| {
            tenant.set_template(&saved_group, &source)
        })
        .await;
    let error = match saved {
        Ok(()) => String::new(),
        Err(error) if error.status.is_client_error() => error.message,
        Err(error) => return failed(&session, error),
    };
    template_page(&app, &session, group, Some((typed, error)), None).await
}

async fn generators(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    match app
        .owners
        .call(&tenant, false, |tenant| tenant.generators())
        .await
    {
        Ok(generators) => {
            let generators: Vec<Value> = generators.iter().map(views::generator).collect();
            page(
                &session,
                "generators",
                "generators.html",
                json!({ "generators": generators }),
            )
        }
        Err(error) => failed(&session, error),
    }
}

/// A generator's page, with a dry run's result when there is one.
async fn generator_page(app: &App, session: &Session, name: String, dry_run: bool) -> Response {
    let read = app
        .owners
        .call(&session.tenant, false, move |tenant| {
            let generator = tenant.generator(&name)?;
            let now = wall_clock_ms();
            let description = tenant.describe_model(&generator.model, now)?;
            let dry_run = if dry_run {
                Some(tenant.dry_run_generator(&name, now)?)
            } else {
                None
            };
            Ok((
                views::generator(&generator),
                views::model_description(&generator.model, &description),
                dry_run,
            ))
        })
        .await;
    match read {
        Ok((generator, description, dry_run)) => page(
            session,
            "generators",
            "generator.html",
            json!({ "generator": generator, "description": description, "dry_run": dry_run }),
        ),
        Err(error) => failed(session, error),
    }
}

async fn generator(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match signed_in(&app, &headers, &tenant) {
        Ok(session) => generator_page(&app, &session, name, false).await,
        Err(response) => response,
    }
}

/// A dry run changes nothing, so a read token may run one; the form still carries the
/// CSRF token (it is a POST: it may take a while).
async fn dry_run(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let fields = match form(body, &app).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    if !fields
        .get("csrf")
        .is_some_and(|sent| session.csrf_holds(sent))
    {
        return problem(
            StatusCode::FORBIDDEN,
            Some(&session),
            "Form expired",
            "This form is not from this session; reload the page and try again.",
        );
    }
    generator_page(&app, &session, name, true).await
}

async fn activate(
    state: State<App>,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    set_active(state, path, headers, body, true).await
}

async fn deactivate(
    state: State<App>,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    set_active(state, path, headers, body, false).await
}

async fn set_active(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
    active: bool,
) -> Response {
    let (session, _) = match acting(&app, &headers, &tenant, body).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let target = name.clone();
    let changed = app
        .owners
        .call_setup(&tenant, false, move |tenant| {
            tenant.set_generator_active(&target, active)
        })
        .await;
    match changed {
        Ok(()) => generator_page(&app, &session, name, false).await,
        Err(error) => failed(&session, error),
    }
}

async fn modules(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let stats = app.metrics.module_stats(&tenant);
    match app
        .owners
        .call(&tenant, false, |tenant| tenant.modules())
        .await
    {
        Ok(modules) => {
            let modules: Vec<Value> = modules
                .iter()
                .map(|module| {
                    let mut shown = views::module(module);
                    let (calls, failed) = stats
                        .get(&module.registration.name)
                        .copied()
                        .unwrap_or_default();
                    shown["calls"] = json!(calls);
                    shown["failed"] = json!(failed);
                    shown
                })
                .collect();
            page(
                &session,
                "modules",
                "modules.html",
                json!({ "modules": modules }),
            )
        }
        Err(error) => failed(&session, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_parses_and_escapes_what_it_shows() {
        let hostile = "<script>alert(1)</script>";
        let html = PAGES
            .get_template("event.html")
            .unwrap()
            .render(minijinja::value::Serde(&json!({
                "session": { "tenant": "t", "csrf": "c", "admin": true },
                "tenant": "t",
                "event": { "key": hostile, "group": "g", "created_at": "now" },
                "context": hostile,
                "outbox": [], "pending": [], "dead": [],
            })))
            .unwrap();
        assert!(!html.contains(hostile), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        for name in PAGES.templates().map(|(name, _)| name) {
            assert!(PAGES.get_template(name).is_ok(), "{name}");
        }
    }
}
