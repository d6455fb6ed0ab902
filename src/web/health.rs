//! `/health` (the process answers) and `/ready` (every component is up).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which components are ready; `/ready` is 200 only when all are.
#[derive(Clone, Default)]
pub struct Readiness(Arc<Mutex<BTreeMap<&'static str, bool>>>);

impl Readiness {
    /// Registers a component that is not ready yet.
    pub fn register(&self, component: &'static str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(component, false);
    }

    /// Marks a component ready (or not).
    pub fn set(&self, component: &'static str, ready: bool) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(component, ready);
    }

    /// Components not ready yet.
    pub fn waiting_for(&self) -> Vec<&'static str> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().filter(|(_, ready)| !**ready).map(|(c, _)| *c).collect()
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
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not ready", "waiting_for": waiting}))).into_response()
    }
}
