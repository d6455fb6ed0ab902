//! Prometheus' `GET /api/v1/rules` and `GET /api/v1/alerts`, in Prometheus'
//! JSON shape, so Grafana and existing tools read them unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::model::Labels;
use crate::rules::{ActiveAlert, AlertState, Rule, RuleManager};

/// The routes, over a running manager.
pub fn routes(manager: Arc<RuleManager>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .with_state(manager)
}

#[derive(Serialize)]
struct Envelope<T> {
    status: &'static str,
    data: T,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertJson {
    labels: Labels,
    annotations: BTreeMap<String, String>,
    state: &'static str,
    active_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_since: Option<String>,
    value: String,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, the form Prometheus' API uses for alert values.
fn format_e_shortest(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

fn alert_json(a: &ActiveAlert) -> AlertJson {
    AlertJson {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: a.state.as_str(),
        active_at: rfc3339(a.active_at_ms),
        keep_firing_since: a.keep_firing_since_ms.map(rfc3339),
        value: format_e_shortest(a.value),
    }
}

#[derive(Deserialize)]
struct RulesQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Serialize)]
struct GroupsJson {
    groups: Vec<serde_json::Value>,
}

async fn rules(
    State(m): State<Arc<RuleManager>>,
    Query(q): Query<RulesQuery>,
) -> Json<Envelope<GroupsJson>> {
    let want_alerts = q.kind.as_deref() != Some("record");
    let want_records = q.kind.as_deref() != Some("alert");
    let mut groups = Vec::new();
    for g in m.groups().iter() {
        let st = g.state.lock().await;
        let mut rules = Vec::new();
        for (rule, status) in st.rules.iter().zip(&st.status) {
            let (last_error, kind_ok) = match rule {
                Rule::Alerting(r) => (&r.last_error, want_alerts),
                Rule::Recording(r) => (&r.last_error, want_records),
            };
            if !kind_ok {
                continue;
            }
            let health = match (status.last_eval_ms, last_error) {
                (0, _) => "unknown",
                (_, Some(_)) => "err",
                _ => "ok",
            };
            let common = serde_json::json!({
                "health": health,
                "lastError": last_error.clone().unwrap_or_default(),
                "evaluationTime": status.eval_seconds,
                "lastEvaluation": if status.last_eval_ms == 0 { "0001-01-01T00:00:00Z".to_string() } else { rfc3339(status.last_eval_ms) },
            });
            let mut v = match rule {
                Rule::Alerting(r) => serde_json::json!({
                    "state": r.state().as_str(),
                    "name": r.name,
                    "query": r.expr,
                    "duration": r.hold_ms as f64 / 1000.0,
                    "keepFiringFor": r.keep_firing_for_ms as f64 / 1000.0,
                    "labels": r.labels,
                    "annotations": r.annotations,
                    "alerts": r.alerts().iter().filter(|a| a.state != AlertState::Inactive).map(alert_json).collect::<Vec<_>>(),
                    "type": "alerting",
                }),
                Rule::Recording(r) => serde_json::json!({
                    "name": r.name,
                    "query": r.expr,
                    "labels": r.labels,
                    "type": "recording",
                }),
            };
            if let (Some(obj), Some(extra)) = (v.as_object_mut(), common.as_object()) {
                obj.extend(extra.clone());
            }
            rules.push(v);
        }
        groups.push(serde_json::json!({
            "name": g.name,
            "file": g.file,
            "rules": rules,
            "interval": g.interval.as_secs_f64(),
            "limit": g.limit,
            "evaluationTime": st.eval_seconds,
            "lastEvaluation": if st.last_eval_ms == 0 { "0001-01-01T00:00:00Z".to_string() } else { rfc3339(st.last_eval_ms) },
        }));
    }
    Json(Envelope {
        status: "success",
        data: GroupsJson { groups },
    })
}

#[derive(Serialize)]
struct AlertsJson {
    alerts: Vec<AlertJson>,
}

async fn alerts(State(m): State<Arc<RuleManager>>) -> Json<Envelope<AlertsJson>> {
    let alerts = m
        .status()
        .await
        .iter()
        .flat_map(|r| r.alerts.iter().map(alert_json))
        .collect();
    Json(Envelope {
        status: "success",
        data: AlertsJson { alerts },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_go_e_form() {
        assert_eq!(format_e_shortest(1.0), "1e+00");
        assert_eq!(format_e_shortest(2.5), "2.5e+00");
        assert_eq!(format_e_shortest(0.031), "3.1e-02");
        assert_eq!(format_e_shortest(123456.0), "1.23456e+05");
    }
}
