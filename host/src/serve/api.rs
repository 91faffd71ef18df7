//! The HTTP API, version 1: routes, who may call them, and the shapes of their answers
//! (the same field names as the CLI's `--json`, from `views.rs`).
//!
//! Every tenant route checks the token before anything else, so that a token of one
//! tenant learns nothing of another, not even whether it exists (403 either way).
//! Lists answer `{"items": [...], "next": CURSOR or null}`; `next` is given back as
//! `after` for the following page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use spark_host::{
    Clock, Destinations, IngestAnswer, IngestRequest, ModuleCode, ModuleSpec, Spark,
    TenantSettings, parse_time,
};
use tokio::sync::Semaphore;

use super::errors::ApiError;
use super::listing::{EventFilter, events_page};
use super::metrics::{Metrics, RequestLabels, RouteLabels};
use super::owners::Owners;
use super::tokens::{Access, Scope, Tokens};
use crate::views;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub spark: Arc<Spark>,
    pub owners: Arc<Owners>,
    pub tokens: Arc<Tokens>,
    pub metrics: Arc<Metrics>,
    /// Components compiled at once at most: compiling is the expensive part of an
    /// upload, and the one an attacker with an admin token could aim at.
    pub compiling: Arc<Semaphore>,
    /// False once the server is stopping: `/readyz` says so.
    pub ready: Arc<AtomicBool>,
    pub limits: BodyLimits,
    /// The console's signed-in operators.
    pub sessions: Arc<super::console::Sessions>,
}

/// The largest bodies taken, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub records: usize,
    pub module: usize,
    pub other: usize,
}

/// Items per page when the request does not say, and at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;

pub fn router(app: App) -> Router {
    let tenant = Router::new()
        .route("/records/{model}", post(ingest))
        .route("/events", get(events))
        .route("/events/{key}", get(event))
        .route("/outbox", get(outbox))
        .route("/outbox/send", post(send_outbox))
        .route("/outbox/retry", post(retry_outbox))
        .route("/pending", get(pending))
        .route("/dead", get(dead))
        .route("/dead/retry", post(retry_dead))
        .route("/modules", get(modules))
        .route("/modules/{name}", put(put_module).delete(delete_module))
        .route("/templates", get(templates))
        .route(
            "/templates/{group}",
            get(template).put(put_template).delete(delete_template),
        )
        .route("/templates/{group}/preview", post(preview_template))
        .route("/settings", get(settings).put(put_settings))
        .route("/generators", get(generators))
        .route(
            "/generators/{name}",
            get(generator).put(put_generator).delete(delete_generator),
        )
        .route("/generators/{name}/activate", post(activate_generator))
        .route("/generators/{name}/deactivate", post(deactivate_generator))
        .route("/models/{model}", get(describe_model))
        .route("/generate", post(generate))
        .route("/process-sources", post(process_sources));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/tenants", get(tenants))
        .nest("/v1/tenants/{tenant}", tenant)
        .merge(super::console::router())
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(middleware::from_fn_with_state(app.clone(), count_request))
        .with_state(app)
}

/// Counts each request by route template and status, and times it.
async fn count_request(State(app): State<App>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    app.metrics
        .request_seconds
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

impl App {
    /// The access a request's bearer token gives: 401 without a good one.
    fn access(&self, headers: &HeaderMap) -> Result<Access, ApiError> {
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("no token: send `Authorization: Bearer TOKEN`")
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header is not `Bearer TOKEN`")
            })?;
        self.tokens
            .verify(token.trim())
            .ok_or_else(|| ApiError::unauthorized("the token is not known (or was revoked)"))
    }

    /// Checks that the request may do what `scope` allows on `tenant`.
    fn authorize(&self, headers: &HeaderMap, tenant: &str, scope: Scope) -> Result<(), ApiError> {
        if self.access(headers)?.allows(tenant, scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the token may not {} tenant `{tenant}`",
                match scope {
                    Scope::Ingest => "post records to",
                    Scope::Read => "read",
                    Scope::Admin => "change",
                }
            )))
        }
    }
}

/// The decoded pairs of a query string, in order; a key may repeat.
fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The one value of `key` in a query, if given; given twice is a 400.
fn query_one(pairs: &[(String, String)], key: &str) -> Result<Option<String>, ApiError> {
    let mut values = pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone());
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::bad_request(format!(
            "`{key}` is given more than once"
        )));
    }
    Ok(first)
}

/// Refuses query keys the route does not know: a mistyped filter must not silently
/// list everything.
fn known_keys(pairs: &[(String, String)], known: &[&str]) -> Result<(), ApiError> {
    match pairs.iter().find(|(key, _)| !known.contains(&key.as_str())) {
        Some((key, _)) => Err(ApiError::bad_request(format!(
            "unknown query parameter `{key}` (known: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

fn page_limit(pairs: &[(String, String)]) -> Result<usize, ApiError> {
    match query_one(pairs, "limit")? {
        None => Ok(DEFAULT_PAGE),
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
            _ => Err(ApiError::bad_request(format!(
                "`limit` must be a number from 1 to {MAX_PAGE}"
            ))),
        },
    }
}

fn page(items: Vec<Value>, next: Option<String>) -> Json<Value> {
    Json(json!({ "items": items, "next": next }))
}

/// Reads a request's body, up to `limit` bytes. Called once the token is checked, so
/// that nobody sends the server megabytes it will refuse; a body announced larger than
/// the limit is refused before any of it is read.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than this route takes ({limit} bytes)"),
        )
    };
    if http_body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(too_large());
    }
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::bad_request(format!(
            "the body could not be read: {error}"
        ))),
    }
}

/// A records body as JSON Lines: taken as it is, or made from a JSON array of records.
fn records_body(body: Bytes) -> Result<Vec<u8>, ApiError> {
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'[') {
        return Ok(body.to_vec());
    }
    let records: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("the body is not a JSON array: {error}")))?;
    let mut lines = Vec::with_capacity(body.len());
    for record in records {
        // A record's JSON on one line: pretty-printed input has newlines inside.
        let value: Value = serde_json::from_str(record.get())
            .map_err(|error| ApiError::bad_request(error.to_string()))?;
        serde_json::to_writer(&mut lines, &value)
            .map_err(|error| ApiError::internal(error.to_string()))?;
        lines.push(b'\n');
    }
    Ok(lines)
}

async fn ingest(
    State(app): State<App>,
    Path((tenant, model)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Ingest)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["now"])?;
    let now = query_one(&pairs, "now")?
        .map(|time| parse_time(&time))
        .transpose()?;
    let idempotency_key = match headers.get("idempotency-key") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("the Idempotency-Key is not ASCII"))?
                .to_owned(),
        ),
        None => None,
    };
    if let Some(key) = &idempotency_key {
        spark_host::validate_idempotency_key(key)?;
    }
    let body = records_body(read_body(body, app.limits.records).await?)?;
    let request = IngestRequest {
        model,
        body,
        idempotency_key,
    };
    let answer = app.owners.ingest(&tenant, request, now).await?;
    if let IngestAnswer::Ran(report) = &answer {
        for problem in &report.problems {
            tracing::warn!("tenant `{tenant}`: {problem}");
        }
    }
    let report = serde_json::to_value(answer.report())
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(Json(report))
}

async fn events(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["group", "prefix", "from", "to", "after", "limit"])?;
    let filter = EventFilter::parse(
        query_one(&pairs, "group")?.as_deref(),
        query_one(&pairs, "prefix")?.as_deref(),
        query_one(&pairs, "from")?.as_deref(),
        query_one(&pairs, "to")?.as_deref(),
    )?;
    let after = query_one(&pairs, "after")?;
    let limit = page_limit(&pairs)?;
    let (entries, next) = app
        .owners
        .call(&tenant, false, move |tenant| {
            events_page(tenant, &filter, after, limit)
        })
        .await?;
    Ok(page(entries.iter().map(views::event).collect(), next))
}

async fn event(
    State(app): State<App>,
    Path((tenant, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let entry = app
        .owners
        .call(&tenant, false, move |tenant| tenant.event(&key))
        .await?;
    Ok(Json(views::event(&entry)))
}

async fn outbox(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["status", "after", "limit"])?;
    let status = query_one(&pairs, "status")?;
    if let Some(status) = &status
        && !["pending", "sent", "failed"].contains(&status.as_str())
    {
        return Err(ApiError::bad_request(
            "`status` is one of pending, sent, failed",
        ));
    }
    let after = match query_one(&pairs, "after")? {
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_request("`after` is an outbox id"))?,
        ),
        None => None,
    };
    let limit = page_limit(&pairs)?;
    let (items, next) = app
        .owners
        .call(&tenant, false, move |tenant| {
            let defaults = tenant.settings()?.mail;
            let mut items = Vec::new();
            let mut last = None;
            let mut more = false;
            for item in tenant.outbox() {
                let item = item?;
                if after.is_some_and(|after| item.id <= after) {
                    continue;
                }
                let shown = views::outbox_item(&item, &defaults);
                if status
                    .as_deref()
                    .is_some_and(|status| shown["status"] != status)
                {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                last = Some(item.id.to_string());
                items.push(shown);
            }
            Ok((items, if more { last } else { None }))
        })
        .await?;
    Ok(page(items, next))
}

async fn send_outbox(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let report = app.owners.send_outbox(&tenant).await?;
    Ok(Json(to_json(&report)?))
}

async fn retry_outbox(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["id"])?;
    let ids = pairs
        .iter()
        .map(|(_, id)| {
            id.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("`{id}` is not an outbox id")))
        })
        .collect::<Result<Vec<u64>, _>>()?;
    let retried = app
        .owners
        .retry_outbox(&tenant, (!ids.is_empty()).then_some(ids))
        .await?;
    Ok(Json(json!({ "retried": retried })))
}

async fn pending(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let pairs = query_pairs(&query);
    // One page holds them all (a tenant has few), so a cursor is taken and unused.
    known_keys(&pairs, &["event", "after", "limit"])?;
    let event = query_one(&pairs, "event")?;
    let items = app
        .owners
        .call(&tenant, false, move |tenant| {
            let mut items = Vec::new();
            for delivery in tenant.pending() {
                let delivery = delivery?;
                if event.as_ref().is_none_or(|event| delivery.event == *event) {
                    items.push(views::pending_delivery(&delivery));
                }
            }
            Ok(items)
        })
        .await?;
    Ok(page(items, None))
}

async fn dead(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["after", "limit"])?;
    // The cursor is the last letter's event and handler, a newline between (neither
    // holds one).
    let after = query_one(&pairs, "after")?;
    let limit = page_limit(&pairs)?;
    let (items, next) = app
        .owners
        .call(&tenant, false, move |tenant| {
            let mut items = Vec::new();
            let mut last = None;
            let mut more = false;
            for letter in tenant.dead() {
                let letter = letter?;
                let cursor = format!("{}\n{}", letter.event, letter.handler);
                if after.as_ref().is_some_and(|after| cursor <= *after) {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(views::dead_letter(&letter));
                last = Some(cursor);
            }
            Ok((items, if more { last } else { None }))
        })
        .await?;
    Ok(page(items, next))
}

async fn retry_dead(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["event", "handler"])?;
    let event = query_one(&pairs, "event")?;
    let handler = query_one(&pairs, "handler")?;
    let metrics = Arc::clone(&app.metrics);
    let report = app
        .owners
        .call_setup(&tenant, false, move |tenant| {
            let report = tenant.retry_dead(
                event.as_deref(),
                handler.as_deref(),
                spark_host::wall_clock_ms(),
            )?;
            metrics.count_run(tenant.name(), &report);
            Ok(report)
        })
        .await?;
    Ok(Json(to_json(&report)?))
}

async fn modules(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let modules = app
        .owners
        .call(&tenant, false, |tenant| tenant.modules())
        .await?;
    Ok(page(modules.iter().map(views::module).collect(), None))
}

async fn put_module(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    spark_host::validate_tenant_name(&tenant)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["source", "handler", "clock", "native", "replace"])?;
    // A PUT replaces, unless told not to: then a name in use is a 409.
    let replace = match query_one(&pairs, "replace")?.as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(ApiError::bad_request("`replace` is true or false")),
    };
    let values = |key: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let clock = match query_one(&pairs, "clock")? {
        Some(clock) => clock.parse::<Clock>()?,
        None => Clock::default(),
    };
    let body = read_body(body, app.limits.module).await?;
    let code = match query_one(&pairs, "native")? {
        Some(native) if body.is_empty() => ModuleCode::Native(native),
        Some(_) => {
            return Err(ApiError::bad_request(
                "a native module (`native=NAME`) is registered without a body",
            ));
        }
        None => {
            // Checked and compiled here, a few at a time, into the shared cache: the
            // tenant's owner then finds it compiled, and ingest waits only for the
            // swap. An invalid component is refused before it reaches the tenant.
            let _permit = app
                .compiling
                .acquire()
                .await
                .map_err(|_| ApiError::shutting_down())?;
            let spark = Arc::clone(&app.spark);
            let module = name.clone();
            let (wasm, checked) = tokio::task::spawn_blocking(move || {
                let checked = spark.precompile(&module, &body);
                (body, checked)
            })
            .await
            .map_err(|error| ApiError::internal(error.to_string()))?;
            checked?;
            ModuleCode::Wasm(wasm.to_vec())
        }
    };
    let spec = ModuleSpec {
        name: name.clone(),
        code,
        sources: values("source"),
        handlers: values("handler"),
        limits: Default::default(),
        clock,
    };
    let module = app
        .owners
        .call_setup(&tenant, true, move |tenant| {
            tenant.add_module(spec, replace)?;
            tenant
                .modules()?
                .into_iter()
                .find(|module| module.registration.name == name)
                .ok_or_else(|| spark_host::Error::UnknownModule(name.clone()))
        })
        .await?;
    Ok(Json(views::module(&module)))
}

async fn delete_module(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    app.owners
        .call_setup(&tenant, false, move |tenant| tenant.remove_module(&name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn templates(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let templates = app
        .owners
        .call(&tenant, false, |tenant| tenant.templates())
        .await?;
    let items = templates
        .into_iter()
        .map(|(group, template)| json!({ "group": group, "template": template }))
        .collect();
    Ok(page(items, None))
}

async fn template(
    State(app): State<App>,
    Path((tenant, group)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let shown = app
        .owners
        .call(&tenant, false, move |tenant| {
            let template = tenant.template(&group)?;
            Ok(json!({ "group": group, "template": template }))
        })
        .await?;
    Ok(Json(shown))
}

async fn put_template(
    State(app): State<App>,
    Path((tenant, group)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let source = String::from_utf8(read_body(body, app.limits.other).await?.to_vec())
        .map_err(|_| ApiError::bad_request("a template is UTF-8 text"))?;
    let shown = json!({ "group": group, "template": source });
    app.owners
        .call_setup(&tenant, true, move |tenant| {
            tenant.set_template(&group, &source)
        })
        .await?;
    Ok(Json(shown))
}

async fn delete_template(
    State(app): State<App>,
    Path((tenant, group)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    app.owners
        .call_setup(&tenant, false, move |tenant| tenant.remove_template(&group))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn preview_template(
    State(app): State<App>,
    Path((tenant, group)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let body = read_body(body, app.limits.other).await?;
    let context: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::bad_request(format!("the context is not JSON: {error}")))?
    };
    let rendered = app
        .owners
        .call(&tenant, false, move |tenant| {
            tenant.preview(&group, &context)
        })
        .await?;
    Ok(Json(
        json!({ "subject": rendered.subject, "body": rendered.body }),
    ))
}

async fn settings(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let settings = app
        .owners
        .call(&tenant, false, |tenant| tenant.settings())
        .await?;
    Ok(Json(to_json(&settings)?))
}

async fn put_settings(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let settings: TenantSettings =
        serde_json::from_slice(&read_body(body, app.limits.other).await?).map_err(|error| {
            ApiError::bad_request(format!("the settings are not valid: {error}"))
        })?;
    // Transports are checked before they are kept: a typo is a 400 now, not a
    // background sender failing later.
    Destinations::new(&settings, None, [])?;
    let shown = to_json(&settings)?;
    app.owners
        .call_setup(&tenant, true, move |tenant| tenant.set_settings(&settings))
        .await?;
    Ok(Json(shown))
}

async fn generators(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let generators = app
        .owners
        .call(&tenant, false, |tenant| tenant.generators())
        .await?;
    Ok(page(
        generators.iter().map(views::generator).collect(),
        None,
    ))
}

async fn generator(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let generator = app
        .owners
        .call(&tenant, false, move |tenant| tenant.generator(&name))
        .await?;
    Ok(Json(views::generator(&generator)))
}

/// A generator as a request defines it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GeneratorBody {
    group: String,
    model: String,
    #[serde(default)]
    conditions: Vec<String>,
    #[serde(default = "active_by_default")]
    active: bool,
}

fn active_by_default() -> bool {
    true
}

async fn put_generator(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["replace"])?;
    let replace = match query_one(&pairs, "replace")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("`replace` is true or false")),
    };
    let body: GeneratorBody = serde_json::from_slice(&read_body(body, app.limits.other).await?)
        .map_err(|error| ApiError::bad_request(format!("not a generator: {error}")))?;
    let generator = spark_host::Generator::new(
        &name,
        &body.group,
        &body.model,
        &body.conditions,
        body.active,
    )?;
    let shown = views::generator(&generator);
    app.owners
        .call_setup(&tenant, true, move |tenant| {
            tenant.add_generator(generator, replace)
        })
        .await?;
    Ok(Json(shown))
}

async fn delete_generator(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    app.owners
        .call_setup(&tenant, false, move |tenant| tenant.remove_generator(&name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn activate_generator(
    state: State<App>,
    path: Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_generator_active(state, path, headers, true).await
}

async fn deactivate_generator(
    state: State<App>,
    path: Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_generator_active(state, path, headers, false).await
}

async fn set_generator_active(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    active: bool,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let generator = app
        .owners
        .call_setup(&tenant, false, move |tenant| {
            tenant.set_generator_active(&name, active)?;
            tenant.generator(&name)
        })
        .await?;
    Ok(Json(views::generator(&generator)))
}

async fn describe_model(
    State(app): State<App>,
    Path((tenant, model)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Read)?;
    let shown = app
        .owners
        .call(&tenant, false, move |tenant| {
            let description = tenant.describe_model(&model, spark_host::wall_clock_ms())?;
            Ok(views::model_description(&model, &description))
        })
        .await?;
    Ok(Json(shown))
}

/// The logical time a run request gives (`?now=TIME`), or the wall clock's now.
fn run_time(pairs: &[(String, String)]) -> Result<i64, ApiError> {
    match query_one(pairs, "now")? {
        Some(time) => Ok(parse_time(&time)?),
        None => Ok(spark_host::wall_clock_ms()),
    }
}

async fn generate(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["now"])?;
    let now = run_time(&pairs)?;
    let metrics = Arc::clone(&app.metrics);
    let report = app
        .owners
        .call_setup(&tenant, false, move |tenant| {
            let report = tenant.generate(now, &mut |_| {})?;
            metrics.count_run(tenant.name(), &report);
            Ok(report)
        })
        .await?;
    Ok(Json(to_json(&report)?))
}

async fn process_sources(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["model", "now"])?;
    let model = query_one(&pairs, "model")?;
    let now = run_time(&pairs)?;
    let metrics = Arc::clone(&app.metrics);
    let report = app
        .owners
        .call_setup(&tenant, false, move |tenant| {
            let report = tenant.process_sources(model.as_deref(), now, &mut |_| {})?;
            metrics.count_run(tenant.name(), &report);
            Ok(report)
        })
        .await?;
    Ok(Json(to_json(&report)?))
}

async fn tenants(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let access = app.access(&headers)?;
    if !access.is_operator() {
        return Err(ApiError::forbidden(
            "listing tenants takes an operator token",
        ));
    }
    let open = app.owners.open_tenants();
    let names = app.spark.tenant_names()?;
    let items = names
        .into_iter()
        .map(|name| json!({ "name": name, "open": open.contains(&name) }))
        .collect();
    Ok(page(items, None))
}

async fn readyz(State(app): State<App>) -> Response {
    if app.ready.load(Ordering::Relaxed) {
        "ready\n".into_response()
    } else {
        ApiError::shutting_down().into_response()
    }
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

fn to_json(value: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|error| ApiError::internal(error.to_string()))
}
