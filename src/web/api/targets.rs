//! `GET /api/v1/targets` in Prometheus' JSON shape.

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::PromDuration;
use crate::model::Labels;
use crate::scrape::{Health, TargetsView};

/// The scraper's HTTP routes.
pub fn routes(view: TargetsView) -> Router {
    Router::new().route("/api/v1/targets", get(targets).with_state(view))
}

#[derive(Deserialize)]
struct Params {
    state: Option<String>,
    #[serde(rename = "scrapePool")]
    scrape_pool: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Active {
    discovered_labels: Labels,
    labels: Labels,
    scrape_pool: String,
    scrape_url: String,
    global_url: String,
    last_error: String,
    last_scrape: String,
    last_scrape_duration: f64,
    health: Health,
    scrape_interval: String,
    scrape_timeout: String,
}

async fn targets(State(view): State<TargetsView>, Query(p): Query<Params>) -> axum::Json<Value> {
    let state = p.state.as_deref().unwrap_or("any").to_ascii_lowercase();
    let (want_active, want_dropped) = (
        state == "any" || state == "active",
        state == "any" || state == "dropped",
    );
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    let mut dropped_counts = serde_json::Map::new();
    for (job, pool) in view.snapshot() {
        if p.scrape_pool.as_ref().is_some_and(|want| *want != job) {
            continue;
        }
        dropped_counts.insert(job.clone(), json!(pool.dropped.len()));
        if want_active {
            for t in &pool.active {
                let st = t.state.read().unwrap_or_else(|e| e.into_inner()).clone();
                let last = st
                    .last_scrape_ms
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
                active.push(Active {
                    discovered_labels: t.target.discovered.clone(),
                    labels: t.target.labels.clone(),
                    scrape_pool: job.clone(),
                    scrape_url: t.target.url.clone(),
                    global_url: t.target.url.clone(),
                    last_error: st.last_error,
                    last_scrape: last,
                    last_scrape_duration: st.last_duration.as_secs_f64(),
                    health: st.health,
                    scrape_interval: PromDuration(pool.interval).to_string(),
                    scrape_timeout: PromDuration(pool.timeout).to_string(),
                });
            }
        }
        if want_dropped {
            dropped.extend(
                pool.dropped
                    .iter()
                    .map(|l| json!({ "discoveredLabels": l })),
            );
        }
    }
    axum::Json(json!({
        "status": "success",
        "data": {
            "activeTargets": active,
            "droppedTargets": dropped,
            "droppedTargetCounts": dropped_counts,
        }
    }))
}
