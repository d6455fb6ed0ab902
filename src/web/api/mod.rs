//! The Prometheus HTTP API (`/api/v1/...`) that Grafana, promtool and other
//! Prometheus clients speak: the `{"status": ..., "data": ...}` envelope,
//! GET and form-POST parameters (read by [`Params`]), Prometheus' time and
//! duration formats.
//!
//! The other parts' HTTP routes live here too, one file each, and call the
//! part's methods: `/api/v1/targets` ([`targets`]), `/api/v1/rules` and
//! `/api/v1/alerts` ([`rules`]), Alertmanager's `/api/v2` ([`alertmanager`]),
//! snapshots, exports and backups ([`snapshots`]).

pub mod alertmanager;
mod federate;
mod query;
pub mod rules;
mod series;
pub mod snapshots;
mod status;
pub mod targets;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::promql::Engine;
pub use crate::web::{Params, PromApiError};
pub use series::metadata;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The query engine (and through it the store).
    pub engine: Engine,
    /// The running config as YAML, secrets redacted (`/status/config`);
    /// a reload swaps it.
    pub config_yaml: Arc<arc_swap::ArcSwap<String>>,
    /// Command-line-like settings shown by `/status/flags`.
    pub flags: Arc<Vec<(String, String)>>,
    /// When the process started (ms since the epoch).
    pub start_time_ms: i64,
    /// Retention shown by `/status/runtimeinfo`.
    pub storage_retention: String,
    /// `global.external_labels`, added to federated series that lack them.
    pub external_labels: Arc<crate::model::Labels>,
    /// The last configuration load (`/status/runtimeinfo`).
    pub reload_status: Arc<crate::web::ReloadStatus>,
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
