//! The Prometheus HTTP API (`/api/v1/...`) that Grafana, promtool and other
//! Prometheus clients speak: the `{"status": ..., "data": ...}` envelope,
//! GET and form-POST parameters, Prometheus' time and duration formats.
//!
//! `/api/v1/targets`, `/rules` and `/alerts` belong to the scrape and
//! alerting parts and are mounted by them.

mod federate;
mod params;
mod query;
mod series;
mod status;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::json;

use crate::promql::{Engine, PromqlError};

pub use params::{Params, parse_time};

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The query engine (and through it the store).
    pub engine: Engine,
    /// The running config as YAML, secrets redacted (`/status/config`).
    pub config_yaml: Arc<String>,
    /// Command-line-like settings shown by `/status/flags`.
    pub flags: Arc<Vec<(String, String)>>,
    /// When the process started (ms since the epoch).
    pub start_time_ms: i64,
    /// Retention shown by `/status/runtimeinfo`.
    pub storage_retention: String,
    /// `global.external_labels`, added to federated series that lack them.
    pub external_labels: Arc<crate::model::Labels>,
}

/// `/status/flags`: infermon's settings under the Prometheus flag names
/// clients look for.
pub fn flags_from_config(config: &crate::config::Config) -> Vec<(String, String)> {
    let mut flags = vec![
        (
            "query.lookback-delta",
            config.query.lookback_delta.to_string(),
        ),
        ("query.timeout", config.query.timeout.to_string()),
        ("query.max-samples", config.query.max_samples.to_string()),
        (
            "query.max-concurrency",
            config.query.max_concurrency.to_string(),
        ),
        ("storage.tsdb.path", config.storage.path.clone()),
        (
            "storage.tsdb.retention.time",
            config.storage.retention.to_string(),
        ),
        ("web.listen-address", config.server.listen.clone()),
    ];
    if let Some(p) = &config.source.path {
        flags.push(("config.file", p.display().to_string()));
    }
    flags.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The API's routes.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/format_query",
            get(query::format).post(query::format),
        )
        .route("/api/v1/series", get(series::series).post(series::series))
        .route("/api/v1/labels", get(series::labels).post(series::labels))
        .route("/api/v1/label/{name}/values", get(series::label_values))
        .route("/api/v1/metadata", get(series::metadata))
        .route(
            "/api/v1/query_exemplars",
            get(series::exemplars).post(series::exemplars),
        )
        .route("/federate", get(federate::federate))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .with_state(state)
}

/// `{"status":"success","data":...}`, written straight from `data` (a
/// large range query result is not first copied into a JSON tree).
pub fn success<T: Serialize>(data: T) -> Response {
    #[derive(Serialize)]
    struct Success<T> {
        status: &'static str,
        data: T,
    }
    Json(Success {
        status: "success",
        data,
    })
    .into_response()
}

/// An API error in Prometheus' shape (`errorType`, `error`), plus the
/// project-wide `error_type` key.
#[derive(Debug)]
pub struct PromApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl PromApiError {
    /// 400 `bad_data`: the request itself is wrong.
    pub fn bad_data(message: impl Into<String>) -> Self {
        PromApiError {
            status: StatusCode::BAD_REQUEST,
            error_type: "bad_data",
            message: message.into(),
        }
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(%message, "API error");
        PromApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error_type: "internal",
            message,
        }
    }
}

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
        PromApiError {
            status,
            error_type,
            message: e.to_string(),
        }
    }
}

impl From<crate::storage::StorageError> for PromApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        PromqlError::from(e).into()
    }
}

impl IntoResponse for PromApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": "error",
            "errorType": self.error_type,
            "error_type": self.error_type,
            "error": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}
