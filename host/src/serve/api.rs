//! The HTTP API, version 1: routes, who may call them, and the shapes of their answers
//! (the same field names as the CLI's `--json`, from `views.rs`).
//!
//! Every tenant route checks the token before anything else, so that a token of one
//! tenant learns nothing of another, not even whether it exists (403 either way).
//! Lists answer `{"items": [...], "next": CURSOR or null}`; `next` is given back as
//! `after` for the following page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use spark_host::{
    Clock, Destinations, IngestAnswer, IngestRequest, ModuleCode, ModuleSpec, ModuleSummary, Spark,
    TenantSettings, parse_time, wall_clock_ms,
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
    /// The cluster this server is a node of, if any.
    pub cluster: Option<Arc<super::cluster::Cluster>>,
    /// How long a request may take.
    pub request_timeout: Duration,
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
        .route("/outbox/cancel", post(cancel_outbox))
        .route("/outbox/rerender", post(rerender_outbox))
        .route("/pending", get(pending))
        .route("/dead", get(dead))
        .route("/dead/retry", post(retry_dead))
        .route("/dead/discard", post(discard_dead))
        // Not under `/events/`, where a key may be anything, `forget` too.
        .route("/ledger/forget", post(forget_events))
        .route("/modules", get(modules))
        .route("/modules/{name}", put(put_module).delete(delete_module))
        .route("/modules/{name}/call", post(call_module))
        .route("/templates", get(templates))
        .route(
            "/templates/{group}",
            get(template).put(put_template).delete(delete_template),
        )
        .route("/templates/{group}/preview", post(preview_template))
        .route(
            "/settings",
            get(settings).put(put_settings).patch(patch_settings),
        )
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
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/tenants", get(tenants))
        .route("/v1/cluster", get(cluster_status))
        .nest("/v1/tenants/{tenant}", tenant)
        .merge(super::console::router())
        .fallback(|| async { ApiError::not_found("no such route") });
    let router = match &app.cluster {
        Some(cluster) => router.layer(middleware::from_fn_with_state(
            super::cluster::Forwarding {
                cluster: Arc::clone(cluster),
                sessions: Arc::clone(&app.sessions),
            },
            super::cluster::forward,
        )),
        None => router,
    };
    router
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
) -> Result<Response, ApiError> {
    app.authorize(&headers, &tenant, Scope::Ingest)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["now", "dry_run"])?;
    let now = query_one(&pairs, "now")?
        .map(|time| parse_time(&time))
        .transpose()?;
    if query_flag(&pairs, "dry_run")? {
        // Stores nothing, so it is no part of a commit group: the owner runs it alone.
        let body = records_body(read_body(body, app.limits.records).await?)?;
        let now = now.unwrap_or_else(wall_clock_ms);
        let shown = app
            .owners
            .call(&tenant, false, move |tenant| {
                let dry_run = tenant.ingest_dry_run(&model, &mut &body[..], now, &mut |_| {})?;
                Ok(views::ingest_dry_run(&dry_run, &tenant.settings()?.mail))
            })
            .await?;
        return Ok(Json(shown).into_response());
    }
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
    if let Some(cluster) = &app.cluster {
        return post_to_cluster(cluster, &app, tenant, model, now, idempotency_key, body).await;
    }
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
    Ok(Json(report).into_response())
}

/// Records posted to a node of a cluster: appended to the tenant's shard's input and
/// answered by its owner (`cluster/input.rs`).
async fn post_to_cluster(
    cluster: &Arc<super::cluster::Cluster>,
    app: &App,
    tenant: String,
    model: String,
    now: Option<i64>,
    idempotency_key: Option<String>,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    spark_host::validate_tenant_name(&tenant)?;
    let key = super::cluster::request_key(&tenant, &model, now, &body, idempotency_key);
    // The log carries the body as text: a body that is not UTF-8 is refused whole
    // (a single server counts its lines as invalid records instead).
    let body =
        String::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    let input = super::cluster::Input {
        tenant,
        model,
        now,
        key,
        body,
    };
    // Answered before the server's own timeout cuts the request.
    let deadline = Instant::now() + app.request_timeout.saturating_sub(Duration::from_secs(2));
    let answer = super::cluster::post(cluster, input, deadline).await;
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(answer.body),
    )
        .into_response();
    if let Some(after) = answer.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
    Ok(response)
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
            for item in tenant.outbox_from(after.map_or(0, |after| after + 1)) {
                let item = item?;
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

/// The values of `key` in a query, in order (a key that may repeat).
fn query_all(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A `true` or `false` of a query; false when not given.
fn query_flag(pairs: &[(String, String)], key: &str) -> Result<bool, ApiError> {
    match query_one(pairs, key)?.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request(format!("`{key}` is true or false"))),
    }
}

/// The outbox ids of a query's `id=N` pairs.
fn outbox_ids(pairs: &[(String, String)]) -> Result<Vec<u64>, ApiError> {
    query_all(pairs, "id")
        .iter()
        .map(|id| {
            id.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("`{id}` is not an outbox id")))
        })
        .collect()
}

/// Removes unsent outbox items (`id=N`, repeated; at least one) for good, through the
/// tenant's sender; every id must name an unsent item, or nothing is removed.
async fn cancel_outbox(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["id"])?;
    let ids = outbox_ids(&pairs)?;
    if ids.is_empty() {
        return Err(ApiError::bad_request(
            "name the items to cancel: `id=N`, repeated for several",
        ));
    }
    let cancelled = app.owners.cancel_outbox(&tenant, ids, true).await?;
    Ok(Json(json!({ "cancelled": cancelled })))
}

/// Renders queued mails again (`id=N`, repeated, or every unsent mail).
async fn rerender_outbox(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["id"])?;
    let ids = outbox_ids(&pairs)?;
    let report = app
        .owners
        .rerender_outbox(&tenant, (!ids.is_empty()).then_some(ids))
        .await?;
    for (id, why) in &report.problems {
        tracing::warn!(
            "tenant `{tenant}`: outbox item {id} did not render: {}",
            spark_host::printable(why)
        );
    }
    Ok(Json(to_json(&report)?))
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
            let report =
                tenant.retry_dead(event.as_deref(), handler.as_deref(), wall_clock_ms())?;
            metrics.count_run(tenant.name(), &report);
            Ok(report)
        })
        .await?;
    Ok(Json(to_json(&report)?))
}

/// Discards dead letters for good: those of `event=KEY` (repeated), or `all=true`;
/// only those of `handler=N` when given.
async fn discard_dead(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["event", "handler", "all"])?;
    let events = query_all(&pairs, "event");
    let handler = query_one(&pairs, "handler")?;
    // Everything is discarded only when asked in so many words.
    let events = match (events.is_empty(), query_flag(&pairs, "all")?) {
        (false, false) => Some(events),
        (true, true) => None,
        (true, false) => {
            return Err(ApiError::bad_request(
                "name the dead letters to discard: `event=KEY`, repeated for several, or \
                 `all=true`",
            ));
        }
        (false, true) => {
            return Err(ApiError::bad_request(
                "`all=true` discards every dead letter: give it or `event`, not both",
            ));
        }
    };
    let discarded = app
        .owners
        .call_setup(&tenant, false, move |tenant| {
            tenant.discard_dead(events.as_deref(), handler.as_deref())
        })
        .await?;
    Ok(Json(json!({ "discarded": discarded })))
}

/// Forgets events, so that their keys are new again: `key=KEY` (repeated) or
/// `group=REGEX`; with `outbox=true` their unsent outbox items are cancelled too,
/// through the tenant's sender.
async fn forget_events(
    State(app): State<App>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["key", "group", "outbox"])?;
    let keys = query_all(&pairs, "key");
    let group = query_one(&pairs, "group")?;
    let outbox = query_flag(&pairs, "outbox")?;
    if keys.is_empty() == group.is_none() {
        return Err(ApiError::bad_request(
            "name the events to forget: `key=KEY`, repeated for several, or `group=REGEX`",
        ));
    }
    let forgotten = app
        .owners
        .call_setup(&tenant, false, move |tenant| match group {
            Some(group) => tenant.forget_group(&group),
            None => tenant.forget_events(&keys),
        })
        .await?;
    // The ledger on the owner, then the items by the sender, their one writer (which
    // passes by any it sent meanwhile): a crash in between leaves the items, which
    // `outbox cancel` removes.
    let cancelled = if outbox && !forgotten.unsent.is_empty() {
        let unsent = forgotten.unsent.clone();
        app.owners.cancel_outbox(&tenant, unsent, false).await?
    } else {
        0
    };
    Ok(Json(views::forgotten(&forgotten, cancelled)))
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
        None => ModuleCode::Wasm(body.to_vec()),
    };
    let spec = ModuleSpec {
        name,
        code,
        sources: values("source"),
        handlers: values("handler"),
        limits: Default::default(),
        clock,
    };
    let module = register_module(&app, &tenant, spec, replace, false).await?;
    Ok(Json(views::module(&module)))
}

/// Registers `spec` on `tenant` (which it makes if need be), replacing a module of its
/// name if `replace`, else refusing it (409): the API's `PUT .../modules/NAME` and the
/// console's upload both come here. A component is checked and compiled first, a few at
/// a time and off the async workers, into the shared cache: the tenant's owner then
/// finds it compiled, and ingest waits only for the swap. An invalid component is
/// refused before it reaches the tenant. With `keep_limits`, a module replaced keeps
/// its own limits. The module as now registered.
pub(super) async fn register_module(
    app: &App,
    tenant: &str,
    spec: ModuleSpec,
    replace: bool,
    keep_limits: bool,
) -> Result<ModuleSummary, ApiError> {
    let spec = match spec.code {
        ModuleCode::Wasm(wasm) => {
            let _permit = app
                .compiling
                .acquire()
                .await
                .map_err(|_| ApiError::shutting_down())?;
            let spark = Arc::clone(&app.spark);
            let module = spec.name.clone();
            let (wasm, checked) = tokio::task::spawn_blocking(move || {
                let checked = spark.precompile(&module, &wasm);
                (wasm, checked)
            })
            .await
            .map_err(|error| ApiError::internal(error.to_string()))?;
            checked?;
            ModuleSpec {
                code: ModuleCode::Wasm(wasm),
                ..spec
            }
        }
        ModuleCode::Native(_) => spec,
    };
    app.owners
        .call_setup(tenant, true, move |tenant| {
            let mut spec = spec;
            let name = spec.name.clone();
            let registered = |tenant: &spark_host::Tenant| {
                tenant.modules().map(|modules| {
                    modules
                        .into_iter()
                        .find(|module| module.registration.name == name)
                })
            };
            if keep_limits && let Some(current) = registered(tenant)? {
                spec.limits = current.registration.limits;
            }
            tenant.add_module(spec, replace)?;
            registered(tenant)?.ok_or_else(|| spark_host::Error::UnknownModule(name.clone()))
        })
        .await
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

/// One call of a registered module on the body: a record of `model` for its source,
/// or, without `model`, an event for its handler (`spark call`). Nothing is stored; a
/// call that fails is still a 200, with `ok: false` and its error.
async fn call_module(
    State(app): State<App>,
    Path((tenant, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["model", "now"])?;
    let now = match query_one(&pairs, "now")? {
        Some(time) => parse_time(&time)?,
        None => wall_clock_ms(),
    };
    let body = read_body(body, app.limits.records).await?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let input = match query_one(&pairs, "model")? {
        Some(model) => spark_host::TrialInput::record(&model, text)?,
        None => spark_host::TrialInput::event(text)?,
    };
    // Calling a module is work for the tenant's owner, like a run, off the async workers.
    let trial = app
        .owners
        .call(&tenant, false, move |tenant| {
            tenant.try_module(&name, &input, now)
        })
        .await?;
    Ok(Json(views::trial(&trial)))
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

/// Changes some settings: the body is a JSON merge patch on the settings' JSON
/// (`{"mail": {"from": "..."}}`; `null` removes a field); answers the settings.
async fn patch_settings(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    app.authorize(&headers, &tenant, Scope::Admin)?;
    let patch: Value = serde_json::from_slice(&read_body(body, app.limits.other).await?)
        .map_err(|error| ApiError::bad_request(format!("the change is not JSON: {error}")))?;
    let settings = app
        .owners
        .call_setup(&tenant, true, move |tenant| tenant.patch_settings(&patch))
        .await?;
    Ok(Json(views::settings(&settings)))
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
            let description = tenant.describe_model(&model, wall_clock_ms())?;
            Ok(views::model_description(&model, &description))
        })
        .await?;
    Ok(Json(shown))
}

/// The logical time a run request gives (`?now=TIME`), or the wall clock's now.
fn run_time(pairs: &[(String, String)]) -> Result<i64, ApiError> {
    match query_one(pairs, "now")? {
        Some(time) => Ok(parse_time(&time)?),
        None => Ok(wall_clock_ms()),
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

/// This node of the cluster, the shards it owns, who owns the others, and with
/// `?tenant=T` which node owns tenant T (operators only; 404 off a cluster).
async fn cluster_status(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    if !app.access(&headers)?.is_operator() {
        return Err(ApiError::forbidden(
            "the cluster's state takes an operator token",
        ));
    }
    let Some(cluster) = &app.cluster else {
        return Err(ApiError::not_found(
            "this server is not a node of a cluster",
        ));
    };
    let pairs = query_pairs(&query);
    known_keys(&pairs, &["tenant"])?;
    let tenant = query_one(&pairs, "tenant")?;
    if let Some(tenant) = &tenant {
        spark_host::validate_tenant_name(tenant)?;
    }
    Ok(Json(cluster.status(tenant.as_deref())))
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
