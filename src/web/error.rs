//! The one place that turns errors into HTTP answers: a status code and a
//! JSON body `{"error": "...", "error_type": "..."}` a person can act on, or
//! for the Prometheus API its own shape (`{"status": "error", "errorType":
//! ..., "error": ...}`, plus `error_type`). Each part's error enum maps to a
//! status here, once, through `From`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use tokio::task::JoinError;

use super::extract::ParamError;
use super::pages::UploadError;
use crate::alerting::AlertingError;
use crate::promql::PromqlError;
use crate::snapshot::SnapshotError;
use crate::storage::StorageError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short machine-readable kind (`bad_request`, `unauthorized`, …).
    pub error_type: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_type: &'a str,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error_type,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 (with a Basic challenge so browsers ask for a password).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 422.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", message)
    }

    /// 429.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500, logged: these are bugs or broken environments, never bad input.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(%message, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.error_type, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                error: &self.message,
                error_type: self.error_type,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"infermon\""),
            );
        }
        response
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

/// Silences and the outbox: a bad silence is the caller's to fix.
impl From<AlertingError> for ApiError {
    fn from(e: AlertingError) -> Self {
        match e {
            AlertingError::BadSilence(m) => ApiError::bad_request(m),
            e @ AlertingError::NoSilence(_) => ApiError::not_found(e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Snapshots, exports, backups and imports: a bad import file is the
/// caller's to fix; the rest are the box's problems.
impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Import(m) | SnapshotError::Day(m) => ApiError::bad_request(m),
            e @ SnapshotError::Background(crate::background::PoolError::Busy { .. }) => {
                ApiError::unavailable(format!(
                    "{e}; another snapshot, backup or import is running, try again later"
                ))
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Uploaded dashboards: a bad file is the caller's to fix.
impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            e @ UploadError::Io { .. } => ApiError::internal(e.to_string()),
            other => ApiError::unprocessable(other.to_string()),
        }
    }
}

/// A page template that cannot render: a bug, logged.
impl From<askama::Error> for ApiError {
    fn from(e: askama::Error) -> Self {
        ApiError::internal(format!("cannot render page: {e}"))
    }
}

/// An error of the Prometheus API (`/api/v1/query`, `/series`, …), written
/// in Prometheus' shape so its clients (Grafana, promtool) read it.
#[derive(Debug)]
pub struct PromApiError(ApiError);

impl PromApiError {
    /// 400 `bad_data`: the request itself is wrong.
    pub fn bad_data(message: impl Into<String>) -> Self {
        PromApiError(ApiError::new(StatusCode::BAD_REQUEST, "bad_data", message))
    }
}

impl From<ParamError> for PromApiError {
    fn from(e: ParamError) -> Self {
        PromApiError::bad_data(e.to_string())
    }
}

/// PromQL errors by Prometheus' `errorType`: add a kind in
/// [`PromqlError::error_type`] and its status here.
impl From<PromqlError> for PromApiError {
    fn from(e: PromqlError) -> Self {
        let error_type = e.error_type();
        let status = match error_type {
            "bad_data" => StatusCode::BAD_REQUEST,
            "execution" => StatusCode::UNPROCESSABLE_ENTITY,
            "timeout" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            // Prometheus' "client closed connection"; nobody reads it.
            "canceled" => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "query failed");
        }
        PromApiError(ApiError::new(status, error_type, e.to_string()))
    }
}

impl From<StorageError> for PromApiError {
    fn from(e: StorageError) -> Self {
        PromqlError::from(e).into()
    }
}

/// A blocking task that panicked or was cancelled: a bug, logged.
impl From<JoinError> for PromApiError {
    fn from(e: JoinError) -> Self {
        PromApiError(ApiError::from(e))
    }
}

impl From<JoinError> for ApiError {
    fn from(e: JoinError) -> Self {
        ApiError::internal(format!("background task failed: {e}"))
    }
}

impl IntoResponse for PromApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = json!({
            "status": "error",
            "errorType": e.error_type,
            "error_type": e.error_type,
            "error": e.message,
        });
        (e.status, Json(body)).into_response()
    }
}

/// Middleware: answers that layers produced as plain text (body limit 413,
/// timeouts, axum's own 405) are rewritten as JSON errors; HTML pages meant
/// for a person (login, 403 for read-only users) pass as they are.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (error_type, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "request body is larger than server.limits.max_body_bytes; send less or raise the limit".to_string(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed on this path".to_string()),
        StatusCode::NOT_FOUND => ("not_found", "no such path; see the README for the routes".to_string()),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "request took too long".to_string()),
        s => ("error", s.canonical_reason().unwrap_or("error").to_lowercase()),
    };
    ApiError::new(status, error_type, message).into_response()
}
