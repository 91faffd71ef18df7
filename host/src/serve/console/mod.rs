//! The web console under `/console`: an operator's view of one tenant, signed in with
//! one of its tokens. Server-rendered HTML (minijinja, escaping everything a page
//! shows), a stylesheet and no script: every action is a plain form, and each that
//! changes something carries the session's CSRF token. A read token sees; an admin
//! token acts. The pages read through the same owners as the API.

// A page's early return is the response itself, as axum handlers go: boxing it would
// only add noise to every handler.
#![allow(clippy::result_large_err)]

mod chart;
mod multipart;
mod session;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde_json::{Value, json};
use spark_host::{
    Clock, Error, Limit, ModuleCode, ModuleSpec, OutboxStatus, format_time, wall_clock_ms,
};

use super::api::{App, read_body, register_module};
use super::errors::ApiError;
use super::listing::{EventFilter, events_page};
use super::tokens::Scope;
use crate::views;
use chart::Chart;
pub use session::{CARRIED as CARRIED_SESSION, Sessions};
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
        .route(
            "/console/t/{tenant}/modules",
            get(modules).post(upload_module),
        )
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

/// A console request a node of a cluster could not pass on to the tenant's owner (the
/// tenant is moving between nodes, or its owner did not answer), as a page rather than
/// the API's JSON: it says so, and a page to look at (`reload`) reloads itself once
/// the moment it names has passed. A form posted is not sent again by itself.
pub fn unavailable(error: ApiError, reload: bool) -> Response {
    let mut context = serde_json::Map::new();
    context.insert("heading".to_owned(), json!("Try again in a moment"));
    context.insert("message".to_owned(), json!(error.message));
    context.insert("elsewhere".to_owned(), json!(true));
    if reload {
        context.insert("reload".to_owned(), json!(error.retry_after.unwrap_or(2)));
    }
    let mut page = render(error.status, "problem.html", Value::Object(context));
    if let Some(seconds) = error.retry_after {
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    page
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
    // Passed on by another node of a cluster, with the session it signed in.
    if let Some(carried) = headers
        .get(session::CARRIED)
        .and_then(|value| value.to_str().ok())
    {
        app.sessions.adopt(carried, &app.tokens);
    }
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
    if !csrf_holds(session, form) {
        return Err(form_expired(session));
    }
    if !session.access.allows(&session.tenant, Scope::Admin) {
        return Err(read_only(session));
    }
    Ok(())
}

/// Whether a form carries the session's CSRF token.
fn csrf_holds(session: &Session, form: &BTreeMap<String, String>) -> bool {
    form.get("csrf")
        .is_some_and(|sent| session.csrf_holds(sent))
}

/// The answer to a form without the session's CSRF token.
fn form_expired(session: &Session) -> Response {
    problem(
        StatusCode::FORBIDDEN,
        Some(session),
        "Form expired",
        "This form is not from this session; reload the page and try again.",
    )
}

/// The answer to a read token's attempt to change something.
fn read_only(session: &Session) -> Response {
    problem(
        StatusCode::FORBIDDEN,
        Some(session),
        "Read only",
        "Your token may read this tenant, not change it: sign in with an admin token.",
    )
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
                    HeaderValue::from_str(&format!("/console/t/{tenant}"))
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
        && csrf_holds(&session, &fields)
    {
        app.sessions.end(&session.id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, clear_cookie()),
            (header::LOCATION, HeaderValue::from_static("/console")),
        ],
    )
        .into_response()
}

/// Days the overview's charts show, today the last.
const DAYS: usize = 14;
const DAY_MS: i64 = 86_400_000;

/// The events chart's series: the groups with the most new events in the window, in
/// name order, and the others summed as `other groups` (a chart has room for
/// [`chart::MAX_SERIES`]); one series `new events` when there are none.
fn events_by_group(by_group: BTreeMap<String, [u64; DAYS]>) -> Vec<(String, Vec<u64>)> {
    if by_group.is_empty() {
        return vec![("new events".to_owned(), vec![0; DAYS])];
    }
    let mut groups: Vec<(String, [u64; DAYS])> = by_group.into_iter().collect();
    if groups.len() > chart::MAX_SERIES {
        groups.sort_by_key(|(_, days)| std::cmp::Reverse(days.iter().sum::<u64>()));
        let rest = groups.split_off(chart::MAX_SERIES - 1);
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        let mut other = [0; DAYS];
        for (_, days) in rest {
            for (sum, count) in other.iter_mut().zip(days) {
                *sum += count;
            }
        }
        groups.push(("other groups".to_owned(), other));
    }
    groups
        .into_iter()
        .map(|(group, days)| (group, days.to_vec()))
        .collect()
}

/// What the overview shows, read in one visit to the owner. The scans of the ledger,
/// the outbox and the dead letters each stop after [`OVERVIEW_SCAN`] items, and the
/// page says so: the tenant's owner does nothing else meanwhile.
#[derive(Default)]
struct Overview {
    today: BTreeMap<String, u64>,
    /// Per day of the last [`DAYS`], oldest first: new events by group; outbox items
    /// made and sent; deliveries that became dead letters.
    new_events: BTreeMap<String, [u64; DAYS]>,
    made: [u64; DAYS],
    sent: [u64; DAYS],
    parked: [u64; DAYS],
    scanned: usize,
    truncated: bool,
    latest: Option<Value>,
    outbox: BTreeMap<&'static str, u64>,
    outbox_scanned: usize,
    outbox_truncated: bool,
    pending: u64,
    dead: u64,
    dead_truncated: bool,
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
    let today = wall_clock_ms().div_euclid(DAY_MS) * DAY_MS;
    let first_day = today - (DAYS as i64 - 1) * DAY_MS;
    // The day of the window a time falls on; a time after today counts as today.
    let day_of = move |ms: i64| {
        (ms >= first_day).then(|| (((ms - first_day) / DAY_MS) as usize).min(DAYS - 1))
    };
    let read = app
        .owners
        .call(&tenant, false, move |tenant| {
            let mut overview = Overview::default();
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
                if let Some(day) = day_of(entry.created_at_ms) {
                    match overview.new_events.get_mut(&entry.group) {
                        Some(days) => days[day] += 1,
                        None => {
                            let mut days = [0; DAYS];
                            days[day] = 1;
                            overview.new_events.insert(entry.group.clone(), days);
                        }
                    }
                }
                if latest
                    .as_ref()
                    .is_none_or(|latest| entry.created_at_ms > latest.created_at_ms)
                {
                    latest = Some(entry);
                }
            }
            overview.latest = latest.as_ref().map(views::event);
            for item in tenant.outbox() {
                if overview.outbox_scanned == OVERVIEW_SCAN {
                    overview.outbox_truncated = true;
                    break;
                }
                let item = item?;
                overview.outbox_scanned += 1;
                let status = match item.status {
                    OutboxStatus::Pending => "pending",
                    OutboxStatus::Sent => "sent",
                    OutboxStatus::Failed => "failed",
                };
                *overview.outbox.entry(status).or_default() += 1;
                if let Some(day) = day_of(item.created_at_ms) {
                    overview.made[day] += 1;
                }
                if let Some(day) = item.sent_at_ms.and_then(day_of) {
                    overview.sent[day] += 1;
                }
            }
            overview.pending = tenant.pending().count() as u64;
            for letter in tenant.dead() {
                if overview.dead == OVERVIEW_SCAN as u64 {
                    overview.dead_truncated = true;
                    break;
                }
                let letter = letter?;
                overview.dead += 1;
                if let Some(day) = day_of(letter.dead_at_ms) {
                    overview.parked[day] += 1;
                }
            }
            Ok(overview)
        })
        .await;
    let overview = match read {
        Ok(overview) => overview,
        Err(error) => return failed(&session, error),
    };
    let today_by_group: Vec<Value> = overview
        .today
        .iter()
        .map(|(group, count)| json!({ "group": group, "count": count }))
        .collect();
    let days: Vec<String> = (0..DAYS)
        .map(|day| format_time(first_day + day as i64 * DAY_MS)[..10].to_owned())
        .collect();
    let charts = [
        (
            "events",
            Chart {
                title: "New events per group and day".to_owned(),
                days: days.clone(),
                series: events_by_group(overview.new_events),
            },
        ),
        (
            "outbox",
            Chart {
                title: "Outbox items per day".to_owned(),
                days: days.clone(),
                series: vec![
                    ("made".to_owned(), overview.made.to_vec()),
                    ("sent".to_owned(), overview.sent.to_vec()),
                ],
            },
        ),
        (
            "dead",
            Chart {
                title: "Dead letters per day".to_owned(),
                days,
                series: vec![("parked".to_owned(), overview.parked.to_vec())],
            },
        ),
    ];
    let mut context = base(&session, "overview");
    context.insert("today".to_owned(), json!(today_by_group));
    context.insert("truncated".to_owned(), json!(overview.truncated));
    context.insert("scanned".to_owned(), json!(overview.scanned));
    context.insert("last_event".to_owned(), json!(overview.latest));
    context.insert(
        "outbox".to_owned(),
        json!({
            "pending": overview.outbox.get("pending").copied().unwrap_or(0),
            "sent": overview.outbox.get("sent").copied().unwrap_or(0),
            "failed": overview.outbox.get("failed").copied().unwrap_or(0),
            "truncated": overview.outbox_truncated,
            "scanned": overview.outbox_scanned,
        }),
    );
    context.insert("pending".to_owned(), json!(overview.pending));
    context.insert("dead".to_owned(), json!(overview.dead));
    context.insert("dead_truncated".to_owned(), json!(overview.dead_truncated));
    let context = with_charts(context, &charts);
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

/// A page's context with `charts` added under `charts.NAME`: their SVG is made here
/// from numbers and escaped text, and shown as it is.
fn with_charts(
    context: serde_json::Map<String, Value>,
    charts: &[(&str, Chart)],
) -> minijinja::Value {
    let charts: BTreeMap<&str, minijinja::Value> = charts
        .iter()
        .map(|(name, chart)| {
            (
                *name,
                minijinja::context! {
                    svg => minijinja::Value::from_safe_string(chart.svg()),
                    title => chart.title.clone(),
                    summary => chart.summary(),
                    columns => chart.columns(),
                    rows => minijinja::Value::from(minijinja::value::Serde(&chart.rows())),
                },
            )
        })
        .collect();
    let context = minijinja::Value::from(minijinja::value::Serde(&Value::Object(context)));
    minijinja::context! { charts => charts, ..context }
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
            for item in tenant.outbox_from(after.map_or(0, |after| after + 1)) {
                let item = item?;
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
            match tenant.outbox_from(id).next().transpose()? {
                Some(item) if item.id == id => Ok(Some(views::outbox_item(&item, &defaults))),
                _ => Ok(None),
            }
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
    if !csrf_holds(&session, &fields) {
        return form_expired(&session);
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

/// The clocks a module may read, for the upload form's choice.
const CLOCKS: [Clock; 4] = [Clock::Exact, Clock::Minute, Clock::Hour, Clock::Day];

async fn modules(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let chosen = field(&query(&raw), "module").map(str::to_owned);
    modules_page(&app, &session, Upload::Of(chosen), StatusCode::OK).await
}

/// What the modules page's upload form holds.
enum Upload {
    /// A new version of this module (its registration filled in), or a new module.
    Of(Option<String>),
    /// After a module was registered: the new version of it, and what to say.
    Done(String, String),
    /// After an upload failed: what was sent, the error and the field it is about.
    Failed(Value),
}

/// The modules, with their limits, calls and failures, and (for an admin) the upload
/// form: for a new version of a module, filled in from its registration.
async fn modules_page(
    app: &App,
    session: &Session,
    upload: Upload,
    status: StatusCode,
) -> Response {
    let stats = app.metrics.module_stats(&session.tenant);
    let read = app
        .owners
        .call(&session.tenant, false, |tenant| tenant.modules())
        .await;
    let modules = match read {
        Ok(modules) => modules,
        Err(error) => return failed(session, error),
    };
    let shown: Vec<Value> = modules
        .iter()
        .map(|module| {
            let mut shown = views::module(module);
            let (calls, failed) = stats
                .get(&module.registration.name)
                .copied()
                .unwrap_or_default();
            shown["calls"] = json!(calls);
            shown["failed"] = json!(failed);
            let own = module.registration.limits.entries();
            shown["limits"] = module
                .limits
                .entries()
                .into_iter()
                .map(|(limit, value)| {
                    json!({
                        "name": limit.name(),
                        "value": limit_text(limit, value),
                        "own": own.iter().any(|(set, _)| *set == limit),
                    })
                })
                .collect();
            shown
        })
        .collect();
    let blank = |name: &str| json!({ "replacing": false, "name": name, "sources": "", "handlers": "", "clock": Clock::default().name() });
    let filled = |name: &str| match modules
        .iter()
        .find(|module| module.registration.name == name)
    {
        Some(module) => json!({
            "replacing": true,
            "name": name,
            "sources": module.registration.sources.join("\n"),
            "handlers": module.registration.handlers.join("\n"),
            "clock": module.registration.clock.name(),
        }),
        None => blank(name),
    };
    let (form, result) = match upload {
        Upload::Of(Some(name)) => (filled(&name), None),
        Upload::Of(None) => (blank(""), None),
        Upload::Done(name, result) => (filled(&name), Some(result)),
        Upload::Failed(form) => (form, None),
    };
    let clocks: Vec<&str> = CLOCKS.iter().map(|clock| clock.name()).collect();
    let mut context = base(session, "modules");
    if let Value::Object(extra) = json!({
        "modules": shown, "upload": form, "result": result, "clocks": clocks,
    }) {
        context.extend(extra);
    }
    render(status, "modules.html", Value::Object(context))
}

/// A limit's value as a person reads it: bytes in KiB, MiB or GiB when they are whole,
/// milliseconds with their unit, counts with thousands separated.
fn limit_text(limit: Limit, value: u64) -> String {
    let name = limit.name();
    if name.ends_with("-bytes") {
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if value >= size && value.is_multiple_of(size) {
                return format!("{} {unit}", thousands(value / size));
            }
        }
        return format!("{} bytes", thousands(value));
    }
    if name.ends_with("-ms") {
        return format!("{} ms", thousands(value));
    }
    thousands(value)
}

/// `1234567` as `1,234,567`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// An upload from the modules page's form (`multipart/form-data`): a new module, or a
/// new version of one, registered as the API's `PUT .../modules/NAME` registers it
/// (checked and compiled first, a few at a time, then swapped in by the tenant's
/// owner). A replaced module keeps its own limits. What was wrong is said on the page,
/// by the field it is about.
async fn upload_module(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let session = match signed_in(&app, &headers, &tenant) {
        Ok(session) => session,
        Err(response) => return response,
    };
    // A read token is refused before its upload is read; the CSRF token is in the
    // body, so it is checked once the body is read, before anything is compiled.
    if !session.access.allows(&session.tenant, Scope::Admin) {
        return read_only(&session);
    }
    let Some(boundary) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(multipart::boundary)
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "Not an upload",
            "A module is uploaded with the modules page's form (multipart/form-data).",
        );
    };
    // The API's limit on a component, and room for the form's other fields.
    let limit = app.limits.module.saturating_add(app.limits.other);
    let body = match read_body(body, limit).await {
        Ok(body) => body,
        Err(error) => return failed(&session, error),
    };
    let mut form = match multipart::parse(&body, &boundary) {
        Ok(form) => form,
        Err(why) => {
            return problem(
                StatusCode::BAD_REQUEST,
                Some(&session),
                "Not an upload",
                &why,
            );
        }
    };
    if let Err(response) = may_act(&session, &form.fields) {
        return response;
    }
    let replace = form
        .fields
        .get("replace")
        .is_some_and(|value| value == "true");
    let name = field(&form.fields, "module").unwrap_or_default().to_owned();
    let lines = |name: &str| -> Vec<String> {
        form.fields
            .get(name)
            .map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (sources, handlers) = (lines("sources"), lines("handlers"));
    let clock = field(&form.fields, "clock")
        .unwrap_or(Clock::default().name())
        .to_owned();
    // What was sent, to be shown again with an error (but the file: no browser lets a
    // page fill in a file field).
    let sent = json!({
        "replacing": replace, "name": name, "sources": sources.join("\n"),
        "handlers": handlers.join("\n"), "clock": clock,
    });
    let refuse = |status: StatusCode, field: &str, message: &str| {
        let mut form = sent.clone();
        form["error"] = json!(message);
        form["invalid"] = json!(field);
        modules_page(&app, &session, Upload::Failed(form), status)
    };
    if name.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "name",
            "A new module needs a name.",
        )
        .await;
    }
    let file = form
        .files
        .remove("file")
        .filter(|file| !file.bytes.is_empty());
    let Some(file) = file else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "file",
            "Choose the component to upload: a .wasm file.",
        )
        .await;
    };
    if file.bytes.len() > app.limits.module {
        let message = format!(
            "{} is larger than this server takes ({} bytes).",
            file.name, app.limits.module
        );
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "file", &message).await;
    }
    let clock = match clock.parse::<Clock>() {
        Ok(clock) => clock,
        Err(error) => {
            return refuse(StatusCode::BAD_REQUEST, "clock", &error.to_string()).await;
        }
    };
    let wasm = file.bytes.to_vec();
    drop(file);
    let spec = ModuleSpec {
        name: name.clone(),
        code: ModuleCode::Wasm(wasm),
        sources,
        handlers,
        limits: Default::default(),
        clock,
    };
    // Only the copy is kept while it compiles.
    drop((form, body));
    match register_module(&app, &tenant, spec, replace, true).await {
        Ok(module) => {
            let shown = views::module(&module);
            let result = format!(
                "Module {name} is registered: code {}, running since {}.",
                shown["hash"]
                    .as_str()
                    .map(|hash| &hash[..hash.len().min(12)])
                    .unwrap_or_default(),
                shown["since"].as_str().unwrap_or("now"),
            );
            modules_page(&app, &session, Upload::Done(name, result), StatusCode::OK).await
        }
        Err(error) if error.status.is_client_error() => {
            // The field an error is about, by its kind (`serve/errors.rs`).
            let field = match error.kind {
                "invalid_module" | "too_large" => "file",
                "exists" | "invalid_module_name" => "name",
                "invalid_regex" => "handlers",
                "invalid_clock" => "clock",
                _ => "",
            };
            refuse(error.status, field, &error.message).await
        }
        Err(error) => failed(&session, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_chart_shows_the_busiest_groups_and_sums_the_others() {
        let day = |n: u64| {
            let mut days = [0; DAYS];
            days[DAYS - 1] = n;
            days
        };
        let groups: BTreeMap<String, [u64; DAYS]> =
            [("a", 1), ("b", 9), ("c", 2), ("d", 8), ("e", 7), ("f", 6)]
                .into_iter()
                .map(|(group, n)| (group.to_owned(), day(n)))
                .collect();
        let series = events_by_group(groups);
        let names: Vec<&str> = series.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["b", "d", "e", "f", "other groups"]);
        assert_eq!(series[4].1[DAYS - 1], 3);
        let few = events_by_group([("x".to_owned(), day(1))].into());
        assert_eq!(few[0].0, "x");
        assert_eq!(events_by_group(BTreeMap::new())[0].0, "new events");
    }

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

    fn session(admin: bool) -> serde_json::Map<String, Value> {
        let Value::Object(context) = json!({
            "session": { "tenant": "t", "csrf": "c", "admin": admin },
            "tenant": "t",
        }) else {
            unreachable!()
        };
        context
    }

    #[test]
    fn the_overview_shows_each_chart_as_svg_with_its_numbers_as_text() {
        let hostile = "<script>alert(1)</script>";
        let mut context = session(false);
        context.insert(
            "today".to_owned(),
            json!([{ "group": hostile, "count": 1 }]),
        );
        context.insert(
            "outbox".to_owned(),
            json!({ "pending": 2, "sent": 3, "failed": 0 }),
        );
        let days = vec!["2024-05-01".to_owned(), "2024-05-02".to_owned()];
        let chart = |title: &str, series| Chart {
            title: title.to_owned(),
            days: days.clone(),
            series,
        };
        let charts = [
            (
                "events",
                chart("New events", vec![("new events".to_owned(), vec![1, 0])]),
            ),
            (
                "outbox",
                chart(
                    "Outbox items",
                    vec![
                        ("made".to_owned(), vec![4, 1]),
                        ("sent".to_owned(), vec![0, 3]),
                    ],
                ),
            ),
            (
                "dead",
                chart("Dead letters", vec![("parked".to_owned(), vec![0, 2])]),
            ),
        ];
        let html = PAGES
            .get_template("overview.html")
            .unwrap()
            .render(with_charts(context, &charts))
            .unwrap();
        assert!(!html.contains(hostile) && html.contains("&lt;script&gt;"));
        assert_eq!(html.matches("<svg class=\"chart\"").count(), 3, "{html}");
        assert!(html.contains("aria-label=\"Outbox items: 5 made, 3 sent\""));
        assert!(html.contains("Outbox items, the last 2 days: 5 made, 3 sent."));
        assert!(html.contains(
            "<tr><th scope=\"row\">2024-05-02</th><td class=\"number\">1</td><td class=\"number\">3</td></tr>"
        ));
        assert!(html.contains("Dead letters, the last 2 days: 2 in all."));
    }

    #[test]
    fn the_modules_page_shows_limits_and_an_upload_form_to_admins_only() {
        let hostile = "<b>x</b>";
        let module = json!({
            "name": hostile, "exports": ["handler"], "sources": [], "handlers": ["."],
            "hash": "ab".repeat(32), "clock": "exact", "since": null, "calls": 1, "failed": 0,
            "limits": [
                { "name": "fuel", "value": "100,000,000", "own": true },
                { "name": "memory-bytes", "value": "64 MiB", "own": false },
            ],
        });
        let upload = json!({
            "replacing": false, "name": hostile, "sources": "", "handlers": ".",
            "clock": "exact", "error": "not a component", "invalid": "file",
        });
        for admin in [true, false] {
            let mut context = session(admin);
            context.insert("modules".to_owned(), json!([module]));
            context.insert("upload".to_owned(), upload.clone());
            context.insert("clocks".to_owned(), json!(["exact", "day"]));
            let html = PAGES
                .get_template("modules.html")
                .unwrap()
                .render(minijinja::value::Serde(&Value::Object(context)))
                .unwrap();
            assert!(!html.contains(hostile), "{html}");
            assert!(html.contains("<strong>100,000,000</strong>"));
            assert!(html.contains("<td class=\"number\">64 MiB</td>"));
            assert_eq!(html.contains("enctype=\"multipart/form-data\""), admin);
            assert_eq!(
                html.contains(
                    "type=\"file\" accept=\".wasm,application/wasm\" required aria-invalid=\"true\""
                ),
                admin
            );
            assert_eq!(html.contains("role=\"alert\""), admin);
        }
    }

    #[test]
    fn limits_read_as_a_person_would() {
        assert_eq!(limit_text(Limit::Fuel, 100_000_000), "100,000,000");
        assert_eq!(limit_text(Limit::MemoryBytes, 64 << 20), "64 MiB");
        assert_eq!(limit_text(Limit::MemoryBytes, 4 << 30), "4 GiB");
        assert_eq!(limit_text(Limit::LogBytes, 1000), "1,000 bytes");
        assert_eq!(limit_text(Limit::DeadlineMs, 1000), "1,000 ms");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }
}
