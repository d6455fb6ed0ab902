//! `/health` (the process answers) and `/ready` (every component is up),
//! with Prometheus' spellings `/-/healthy` and `/-/ready`; and Prometheus'
//! lifecycle endpoint `POST /-/reload` (admins only when auth is on).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::json;

/// Which components are ready; `/ready` is 200 only when all are.
#[derive(Clone, Default)]
pub struct Readiness(Arc<Mutex<BTreeMap<&'static str, bool>>>);

impl Readiness {
    /// Registers a component that is not ready yet.
    pub fn register(&self, component: &'static str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(component, false);
    }

    /// Marks a component ready (or not).
    pub fn set(&self, component: &'static str, ready: bool) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(component, ready);
    }

    /// Components not ready yet.
    pub fn waiting_for(&self) -> Vec<&'static str> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, ready)| !**ready)
            .map(|(c, _)| *c)
            .collect()
    }
}

/// Liveness: the process is serving HTTP.
pub async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: models loaded, storage open.
pub async fn ready(State(readiness): State<Readiness>) -> Response {
    let waiting = readiness.waiting_for();
    if waiting.is_empty() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "waiting_for": waiting})),
        )
            .into_response()
    }
}

/// Reloads the configuration and answers once it is applied (or refused):
/// plugged in by the composition root, so the web layer names no part.
pub type ReloadFn =
    Arc<dyn Fn() -> BoxFuture<'static, Result<ReloadReport, ReloadFailure>> + Send + Sync>;

/// The outcome of the last configuration load, kept in the gauges
/// Prometheus names its own (`infermon_config_last_reload_successful`,
/// `infermon_config_last_reload_success_timestamp_seconds`): the reloader
/// writes them, `/metrics`, `/api/v1/status/runtimeinfo`
/// (`reloadConfigSuccess`, `lastConfigTime`) and the Status page read them.
#[derive(Clone, Debug)]
pub struct ReloadStatus {
    successful: prometheus::IntGauge,
    success_time: prometheus::Gauge,
}

impl ReloadStatus {
    /// Registers the gauges in `registry`, recording that the configuration
    /// the process started with loaded now.
    pub fn new(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let successful = prometheus::IntGauge::with_opts(prometheus::Opts::new(
            "infermon_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful (1) or not (0).",
        ))?;
        let success_time = prometheus::Gauge::with_opts(prometheus::Opts::new(
            "infermon_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration load (start-up or reload).",
        ))?;
        registry.register(Box::new(successful.clone()))?;
        registry.register(Box::new(success_time.clone()))?;
        let status = ReloadStatus {
            successful,
            success_time,
        };
        status.record(true, crate::util::now_ms());
        Ok(status)
    }

    /// Records a reload attempt at `now_ms`.
    pub fn record(&self, successful: bool, now_ms: i64) {
        self.successful.set(i64::from(successful));
        if successful {
            self.success_time.set(now_ms as f64 / 1000.0);
        }
    }

    /// Whether the last attempt succeeded, and when the last success was (ms).
    pub fn get(&self) -> (bool, i64) {
        (
            self.successful.get() == 1,
            (self.success_time.get() * 1000.0) as i64,
        )
    }
}

/// What a reload applied.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReloadReport {
    /// One line per change applied (`scrape jobs: +new ~changed -gone`).
    pub changes: Vec<String>,
    /// Changed settings that take effect only after a restart.
    pub restart_required: Vec<String>,
}

/// Why a reload changed nothing.
#[derive(Clone, Debug)]
pub struct ReloadFailure {
    /// The whole reason, one problem per line.
    pub message: String,
    /// Problems with their `file:line:col`, when the files had them.
    pub diagnostics: Vec<crate::diag::Diagnostic>,
}

/// Who asked for the reload (set by the auth layer), for the log.
type Caller = Option<Extension<super::Principal>>;

/// `POST /-/reload`: 200 with what changed, or 500 with every problem and
/// its `file:line:col` (the running config stays as it was).
pub async fn reload(State(reload): State<ReloadFn>, caller: Caller) -> Response {
    let user = caller.map(|Extension(p)| p.user);
    tracing::info!(
        user = user.as_deref().unwrap_or("-"),
        "reload requested over HTTP"
    );
    match reload().await {
        Ok(report) => Json(json!({"status": "success", "data": report})).into_response(),
        Err(failure) => {
            let diagnostics: Vec<_> = failure
                .diagnostics
                .iter()
                .map(|d| {
                    json!({"file": d.file, "line": d.line, "column": d.column, "message": d.message})
                })
                .collect();
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({
                    "status": "error",
                    "error_type": "reload_failed",
                    "error": format!(
                        "the configuration was not reloaded; the running one stays in effect: {}",
                        failure.message
                    ),
                    "diagnostics": diagnostics,
                })),
            )
                .into_response()
        }
    }
}
