//! HTTP API of the alert manager, in Alertmanager's v2 shape where
//! Alertmanager has the concept (`/api/v2/silences`, `/api/v2/silence/{id}`,
//! `/api/v2/alerts`, so amtool and Grafana work), plus the delivery history
//! at `/api/v1/notifications`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{delete, get};
use serde::Deserialize;

use crate::alerting::{Alert, AlertManager, Notification, PostableSilence, parse_rfc3339, rfc3339};
use crate::model::Labels;
use crate::web::{ApiError, ApiJson};

/// The routes, over a running alert manager.
pub fn routes(manager: Arc<AlertManager>) -> Router {
    Router::new()
        .route("/api/v2/silences", get(list_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            delete(expire_silence).get(get_silence),
        )
        .route("/api/v2/alerts", get(list_alerts).post(post_alerts))
        .route("/api/v1/notifications", get(notifications))
        .with_state(manager)
}

async fn list_silences(State(m): State<Arc<AlertManager>>) -> Json<Vec<serde_json::Value>> {
    let now = m.now_ms();
    let mut list = m.silences().list();
    list.sort_by_key(|s| std::cmp::Reverse(s.updated_at_ms));
    Json(list.iter().map(|s| s.to_api(now)).collect())
}

async fn get_silence(
    State(m): State<Arc<AlertManager>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let s = m
        .silences()
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("silence {id} not found")))?;
    Ok(Json(s.to_api(m.now_ms())))
}

async fn post_silence(
    State(m): State<Arc<AlertManager>>,
    ApiJson(body): ApiJson<PostableSilence>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = m.silences().upsert(body)?;
    Ok(Json(serde_json::json!({ "silenceID": id })))
}

async fn expire_silence(
    State(m): State<Arc<AlertManager>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    m.silences().expire(&id)?;
    Ok(Json(serde_json::json!({})))
}

async fn list_alerts(State(m): State<Arc<AlertManager>>) -> Json<Vec<serde_json::Value>> {
    let now = m.now_ms();
    let alerts = m.alerts();
    Json(
        alerts
            .into_iter()
            .filter(|(a, ..)| !a.resolved(now))
            .map(|(a, silenced_by, inhibited, receivers)| {
                let suppressed = !silenced_by.is_empty() || inhibited;
                serde_json::json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339(a.starts_at_ms),
                    "endsAt": rfc3339(a.ends_at_ms),
                    "updatedAt": rfc3339(now),
                    "generatorURL": a.generator_url,
                    "fingerprint": a.fingerprint(),
                    "receivers": receivers.iter().map(|r| serde_json::json!({"name": r})).collect::<Vec<_>>(),
                    "status": {
                        "state": if suppressed { "suppressed" } else { "active" },
                        "silencedBy": silenced_by,
                        "inhibitedBy": if inhibited { vec!["inhibit_rules"] } else { Vec::new() },
                    },
                })
            })
            .collect(),
    )
}

/// Alertmanager's `PostableAlert`: Prometheus servers can send to infermon.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

/// Alertmanager's `resolve_timeout`: alerts without `endsAt` are valid this long.
const RESOLVE_TIMEOUT_MS: i64 = 5 * 60 * 1000;

async fn post_alerts(
    State(m): State<Arc<AlertManager>>,
    ApiJson(body): ApiJson<Vec<PostableAlert>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = m.now_ms();
    let mut alerts = Vec::with_capacity(body.len());
    for (i, p) in body.into_iter().enumerate() {
        if p.labels.is_empty() {
            return Err(ApiError::bad_request(format!(
                "alert {i}: at least one label is required"
            )));
        }
        let time = |t: &Option<String>, what: &str| -> Result<Option<i64>, ApiError> {
            match t
                .as_deref()
                .filter(|s| !s.is_empty() && !s.starts_with("0001-01-01"))
            {
                None => Ok(None),
                Some(s) => parse_rfc3339(s).map(Some).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "alert {i}: {what} {s:?} is not an RFC 3339 time"
                    ))
                }),
            }
        };
        let starts = time(&p.starts_at, "startsAt")?.unwrap_or(now);
        let ends = time(&p.ends_at, "endsAt")?.unwrap_or(now + RESOLVE_TIMEOUT_MS);
        if ends < starts {
            return Err(ApiError::bad_request(format!(
                "alert {i}: endsAt is before startsAt"
            )));
        }
        alerts.push(Alert {
            labels: Labels::new(p.labels),
            annotations: p.annotations,
            starts_at_ms: starts,
            ends_at_ms: ends,
            generator_url: p.generator_url,
        });
    }
    m.put_alerts(alerts);
    Ok(Json(serde_json::json!({})))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn notifications(
    State(m): State<Arc<AlertManager>>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let queued = m.outbox().queued()?;
    let history = m.outbox().history(q.limit.unwrap_or(100).min(10_000))?;
    let queued: Vec<serde_json::Value> = queued
        .iter()
        .map(|r| {
            let summary = serde_json::from_str::<Notification>(&r.payload_json)
                .map(|n| n.summary())
                .unwrap_or_default();
            serde_json::json!({
                "id": r.id,
                "integration": r.integration,
                "summary": summary,
                "queuedAt": rfc3339(r.created_ms),
                "attempts": r.attempts,
                "nextAttemptAt": rfc3339(r.next_attempt_ms),
                "lastError": r.last_error,
            })
        })
        .collect();
    let history: Vec<serde_json::Value> = history
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "integration": r.integration,
                "status": r.status,
                "summary": r.summary,
                "queuedAt": rfc3339(r.created_ms),
                "finishedAt": rfc3339(r.finished_ms),
                "attempts": r.attempts,
                "error": r.error,
            })
        })
        .collect();
    Ok(Json(
        serde_json::json!({"status": "success", "data": {"queued": queued, "history": history}}),
    ))
}
