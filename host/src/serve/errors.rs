//! What the API answers when a request fails: `{"error": KIND, "message": TEXT}` with
//! the status that says whose fault it is.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use spark_host::Error;

/// A failed request's answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, snake_case name for scripts.
    pub kind: &'static str,
    pub message: String,
    /// Seconds a client should wait before trying again (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// The tenant's queue is full: the client should slow down and come back.
    pub fn busy(tenant: &str) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                format!("tenant `{tenant}` has too many requests waiting; try again shortly"),
            )
        }
    }

    /// The server is stopping and takes no new work.
    pub fn shutting_down() -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            )
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let (status, kind) = classify(&error);
        if status.is_server_error() {
            tracing::error!("{error}");
        }
        let error = Self::new(status, kind, spark_host::printable(&error.to_string()));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // The tenant is moving between nodes of a cluster: a moment.
            return Self {
                retry_after: Some(1),
                ..error
            };
        }
        error
    }
}

/// The status and kind of a library error: 4xx for what the request got wrong, 5xx for
/// what the server could not do.
fn classify(error: &Error) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match error {
        Error::UnknownTenant { .. } => (S::NOT_FOUND, "unknown_tenant"),
        Error::UnknownModel { .. } => (S::NOT_FOUND, "unknown_model"),
        Error::UnknownEvent(_) => (S::NOT_FOUND, "unknown_event"),
        Error::InvalidInput(_) => (S::BAD_REQUEST, "invalid_input"),
        Error::UnknownModule(_) => (S::NOT_FOUND, "unknown_module"),
        Error::UnknownGenerator(_) => (S::NOT_FOUND, "unknown_generator"),
        Error::UnknownTemplate(_) => (S::NOT_FOUND, "unknown_template"),
        Error::NotFailed(_) => (S::NOT_FOUND, "not_failed"),
        Error::UnknownOutboxItem(_) => (S::NOT_FOUND, "unknown_outbox_item"),
        Error::NoDeadLetters { .. } => (S::NOT_FOUND, "no_dead_letters"),
        Error::AlreadySent(_) => (S::CONFLICT, "already_sent"),
        Error::NotAMail(_) => (S::BAD_REQUEST, "not_a_mail"),
        Error::InvalidAddress { .. } => (S::BAD_REQUEST, "invalid_address"),
        Error::InvalidSettings(_) => (S::BAD_REQUEST, "invalid_settings"),
        Error::InvalidModule { .. } | Error::ModuleCannotStart { .. } => {
            (S::UNPROCESSABLE_ENTITY, "invalid_module")
        }
        Error::Registration { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_registration"),
        Error::InvalidTemplate { .. } | Error::TemplateDoesNotRender { .. } => {
            (S::UNPROCESSABLE_ENTITY, "invalid_template")
        }
        Error::InvalidGenerator { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_generator"),
        Error::InvalidTenant { .. } => (S::BAD_REQUEST, "invalid_tenant"),
        Error::InvalidModuleName { .. } => (S::BAD_REQUEST, "invalid_module_name"),
        Error::InvalidRegex { .. } => (S::BAD_REQUEST, "invalid_regex"),
        Error::InvalidTime(_) => (S::BAD_REQUEST, "invalid_time"),
        Error::InvalidClock(_) => (S::BAD_REQUEST, "invalid_clock"),
        Error::InvalidSchedule(_) => (S::BAD_REQUEST, "invalid_schedule"),
        Error::InvalidLimits(_) => (S::BAD_REQUEST, "invalid_limits"),
        Error::InvalidTransport { .. } => (S::BAD_REQUEST, "invalid_transport"),
        Error::InvalidIdempotencyKey(_) => (S::BAD_REQUEST, "invalid_idempotency_key"),
        Error::Manifest { .. } => (S::BAD_REQUEST, "invalid_manifest"),
        Error::ModuleExists(_) | Error::GeneratorExists(_) => (S::CONFLICT, "exists"),
        Error::IdempotencyKeyReused(_) => (S::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        Error::TenantInUse { .. } => (S::CONFLICT, "tenant_in_use"),
        Error::DiskFull { .. } => (S::INSUFFICIENT_STORAGE, "disk_full"),
        // The disk filled while the store wrote (past the reserve, or without one).
        Error::Io { error, .. } if error.kind() == std::io::ErrorKind::StorageFull => {
            (S::INSUFFICIENT_STORAGE, "disk_full")
        }
        // The cluster's log did not take the change (another node owns the tenant now,
        // the log is out of reach): not applied here; another node, or a retry, may.
        Error::Journal(_) => (S::SERVICE_UNAVAILABLE, "unavailable"),
        // Larger than the cluster's log takes: sent again it is refused again.
        Error::ChangeTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "too_large"),
        Error::Interrupted { cause, .. } => match **cause {
            Error::DiskFull { .. } => (S::INSUFFICIENT_STORAGE, "disk_full"),
            Error::Io { ref error, .. } if error.kind() == std::io::ErrorKind::StorageFull => {
                (S::INSUFFICIENT_STORAGE, "disk_full")
            }
            Error::Journal(_) => (S::SERVICE_UNAVAILABLE, "unavailable"),
            Error::ChangeTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "too_large"),
            _ => (S::INTERNAL_SERVER_ERROR, "interrupted"),
        },
        _ => (S::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.kind, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_faults_are_4xx_and_storage_faults_5xx() {
        let unknown = ApiError::from(Error::UnknownModel {
            model: "m".to_owned(),
            known: vec![],
        });
        assert_eq!(
            (unknown.status, unknown.kind),
            (StatusCode::NOT_FOUND, "unknown_model")
        );
        let storage = ApiError::from(Error::Storage("x".to_owned()));
        assert_eq!(storage.status, StatusCode::INTERNAL_SERVER_ERROR);
        let reused = ApiError::from(Error::IdempotencyKeyReused("k".to_owned()));
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
        let refused = ApiError::from(Error::Journal("another node owns it".to_owned()));
        assert_eq!(
            (refused.status, refused.kind),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
    }
}
