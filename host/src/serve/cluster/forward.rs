//! Requests for a tenant this node does not own, sent on to the node that does.
//!
//! Only the owner has a tenant's data, so every request about a tenant (the API's
//! routes under `/v1/tenants/T/` and the console's under `/console/t/T/`) is answered
//! there: a node that does not own the tenant passes the request on, as it came, to the
//! owner's API (the URL its lease names), and its answer back. Records are the
//! exception: any node takes them (`input.rs`). A request already passed on once is
//! not passed on again (the leases moved meanwhile): it is answered 503, and clients
//! try again.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Cluster;
use crate::serve::console::{CARRIED_SESSION, Sessions};
use crate::serve::errors::ApiError;

/// Marks a request passed on by a node, so that it is passed on once at most.
const FORWARDED: &str = "spark-forwarded-by";

/// The largest body passed on: a module upload's limit (records take the log's way).
const MAX_FORWARDED_BODY: usize = 256 << 20;

/// Headers of a request worth passing on: who it is, what it carries.
const PASSED_ON: &[&str] = &[
    CARRIED_SESSION,
    "authorization",
    "content-type",
    "cookie",
    "idempotency-key",
    "accept",
    "origin",
    "referer",
];

/// The tenant a request's path is about, if any.
pub fn tenant_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/v1/tenants/")
        .or_else(|| path.strip_prefix("/console/t/"))?;
    let tenant = rest.split('/').next()?;
    (!tenant.is_empty()).then_some(tenant)
}

/// Whether a request posts records (taken by any node).
fn posts_records(method: &Method, path: &str) -> bool {
    method == Method::POST
        && path
            .strip_prefix("/v1/tenants/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, rest)| rest.starts_with("records/"))
}

/// What passing requests on needs: the cluster, and the console's sessions (a page
/// passed on carries its session along).
#[derive(Clone)]
pub struct Forwarding {
    pub cluster: Arc<Cluster>,
    pub sessions: Arc<Sessions>,
}

/// The middleware: answers here when this node owns the tenant, else passes on.
pub async fn forward(
    State(Forwarding { cluster, sessions }): State<Forwarding>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let Some(tenant) = tenant_of(&path).map(str::to_owned) else {
        return next.run(request).await;
    };
    if posts_records(request.method(), &path) || cluster.table.owns(&tenant) {
        return next.run(request).await;
    }
    // The console's pages say what went wrong as pages, the API as JSON.
    let reload = request.method() == Method::GET;
    let console = path.starts_with("/console/");
    let refuse = |error: ApiError| {
        if console {
            crate::serve::console::unavailable(error, reload)
        } else {
            error.into_response()
        }
    };
    if request.headers().contains_key(FORWARDED) {
        return refuse(moving(&tenant));
    }
    let Some(owner) = cluster.owner_url(&tenant).await else {
        return refuse(moving(&tenant));
    };
    if let Some(carried) = sessions
        .carried(request.headers())
        .and_then(|carried| HeaderValue::from_str(&carried).ok())
    {
        request.headers_mut().insert(CARRIED_SESSION, carried);
    }
    match pass_on(&cluster, &owner, request).await {
        Ok(response) => response,
        Err(error) => {
            cluster.forget_owner(&tenant);
            refuse(error)
        }
    }
}

fn moving(tenant: &str) -> ApiError {
    ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("tenant `{tenant}` is moving between nodes; try again shortly"),
        )
    }
}

async fn pass_on(cluster: &Cluster, owner: &str, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_FORWARDED_BODY)
        .await
        .map_err(|error| ApiError::bad_request(format!("cannot read the body: {error}")))?;
    let uri = format!(
        "{owner}{}",
        parts.uri.path_and_query().map_or("/", |path| path.as_str())
    );
    let mut builder = ureq::http::Request::builder()
        .method(parts.method.as_str())
        .uri(&uri)
        .header(FORWARDED, cluster.me.node.as_str());
    for name in PASSED_ON {
        for value in parts.headers.get_all(*name) {
            builder = builder.header(*name, value.as_bytes());
        }
    }
    let http_request = builder
        .body(body.to_vec())
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let agent = cluster.forwarding.clone();
    let answer = tokio::task::spawn_blocking(move || -> Result<_, ureq::Error> {
        let mut response = agent.run(http_request)?;
        let status = response.status().as_u16();
        let headers: Vec<(String, Vec<u8>)> = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_FORWARDED_BODY as u64)
            .read_to_vec()?;
        Ok((status, headers, body))
    })
    .await
    .map_err(|error| ApiError::internal(error.to_string()))?;
    let (status, headers, body) = answer.map_err(|error| {
        tracing::warn!("cannot reach the owner at {owner}: {error}");
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the tenant's node did not answer: {error}"),
            )
        }
    })?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).map_err(|error| ApiError::internal(error.to_string()))?;
    for (name, value) in headers {
        // The body is whole: its length and encoding are the server's to set again.
        if matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_bytes(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

/// The agent that passes requests on: any status is an answer, and a request may take
/// as long as the owner's own timeout allows.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_secs(300)))
        .max_redirects(0)
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_is_read_from_api_and_console_paths() {
        assert_eq!(tenant_of("/v1/tenants/acme/events"), Some("acme"));
        assert_eq!(tenant_of("/v1/tenants/acme"), Some("acme"));
        assert_eq!(tenant_of("/console/t/acme/outbox/3"), Some("acme"));
        assert_eq!(tenant_of("/v1/tenants"), None);
        assert_eq!(tenant_of("/v1/tenants/"), None);
        assert_eq!(tenant_of("/console/sign-in"), None);
        assert_eq!(tenant_of("/metrics"), None);
    }

    #[test]
    fn only_posted_records_are_taken_by_any_node() {
        assert!(posts_records(
            &Method::POST,
            "/v1/tenants/acme/records/user"
        ));
        assert!(!posts_records(
            &Method::GET,
            "/v1/tenants/acme/records/user"
        ));
        assert!(!posts_records(&Method::POST, "/v1/tenants/acme/dead/retry"));
    }
}
