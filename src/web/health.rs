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

/// The outcome of the last configuration load, as
/// `/api/v1/status/runtimeinfo` reports it (`reloadConfigSuccess`,
/// `lastConfigTime`): written by the reloader, read by the API.
#[derive(Debug)]
pub struct ReloadStatus {
    successful: std::sync::atomic::AtomicBool,
    last_success_ms: std::sync::atomic::AtomicI64,
}

impl ReloadStatus {
    /// The configuration the process started with loaded at `now_ms`.
    pub fn started(now_ms: i64) -> Self {
        ReloadStatus {
            successful: std::sync::atomic::AtomicBool::new(true),
            last_success_ms: std::sync::atomic::AtomicI64::new(now_ms),
        }
    }

    /// Records a reload attempt.
    pub fn record(&self, successful: bool, now_ms: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.successful.store(successful, Relaxed);
        if successful {
            self.last_success_ms.store(now_ms, Relaxed);
        }
    }

    /// Whether the last attempt succeeded, and when the last success was (ms).
    pub fn get(&self) -> (bool, i64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.successful.load(Relaxed),
            self.last_success_ms.load(Relaxed),
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
