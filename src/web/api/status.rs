//! `/api/v1/status/*`: build, config, flags and runtime information.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::{ApiState, PromApiError, success};

/// Version and revision.
pub async fn buildinfo() -> Result<Response, PromApiError> {
    Ok(success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": crate::REVISION,
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "rust",
    })))
}

/// The running config as YAML, secrets redacted.
pub async fn config(State(st): State<ApiState>) -> Result<Response, PromApiError> {
    Ok(success(json!({ "yaml": st.config_yaml.load().as_str() })))
}

/// Settings in Prometheus' flag naming.
pub async fn flags(State(st): State<ApiState>) -> Result<Response, PromApiError> {
    let map: serde_json::Map<String, serde_json::Value> = st
        .flags
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    Ok(success(map))
}

/// Process facts.
pub async fn runtimeinfo(State(st): State<ApiState>) -> Result<Response, PromApiError> {
    let start = chrono::DateTime::from_timestamp_millis(st.start_time_ms)
        .map(|d| d.to_rfc3339())
        .unwrap_or_default();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (reload_ok, last_config_ms) = st.reload_status.get();
    let last_config = chrono::DateTime::from_timestamp_millis(last_config_ms)
        .map(|d| d.to_rfc3339())
        .unwrap_or_default();
    Ok(success(json!({
        "startTime": start,
        "CWD": cwd,
        "reloadConfigSuccess": reload_ok,
        "lastConfigTime": last_config,
        "corruptionCount": 0,
        "goroutineCount": 0,
        "GOMAXPROCS": threads,
        "GOMEMLIMIT": 0,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": st.storage_retention,
    })))
}
