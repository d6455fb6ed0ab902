//! Adapters between parts, kept in the composition root so the parts never
//! name each other: the rules' query function and the pages' query API over
//! the PromQL engine, and the pages' operations over scrape, rules and
//! alerting. They only map types; each part builds its own status.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::model::Labels;
use crate::web::pages::{
    AlertRow, AlertsView, NotificationRow, Operations, QueryApi, QueryError, RangeResult, RuleRow,
    SilenceFormError, SilenceRow, TargetRow,
};

/// The rules' query function over the PromQL engine: instant vectors as
/// they are, a scalar as one sample without labels.
pub(super) fn rules_query_fn(engine: crate::promql::Engine) -> crate::rules::QueryFn {
    Arc::new(move |expr: String, t: i64| {
        let engine = engine.clone();
        Box::pin(async move {
            match engine.instant_query(expr, t).await? {
                crate::promql::Value::Vector(v) => Ok(v
                    .into_iter()
                    .map(|s| crate::rules::InstantSample {
                        labels: s.metric,
                        value: s.f,
                    })
                    .collect()),
                crate::promql::Value::Scalar { f, .. } => Ok(vec![crate::rules::InstantSample {
                    labels: crate::model::Labels::default(),
                    value: f,
                }]),
                other => Err(crate::rules::QueryError::NotAVector(other.type_name())),
            }
        })
    })
}

/// The pages' query API over the engine.
pub(super) struct EngineQueries(pub crate::promql::Engine);

impl QueryApi for EngineQueries {
    fn range(
        &self,
        expr: String,
        start: i64,
        end: i64,
        step: i64,
    ) -> BoxFuture<'static, Result<RangeResult, QueryError>> {
        let engine = self.0.clone();
        async move {
            match engine.range_query(expr, start, end, step).await? {
                crate::promql::Value::Matrix(m) => Ok(m
                    .into_iter()
                    .map(|s| (s.metric, s.points.into_iter().map(|p| (p.t, p.f)).collect()))
                    .collect()),
                crate::promql::Value::Vector(v) => Ok(v
                    .into_iter()
                    .map(|s| (s.metric, vec![(s.t, s.f)]))
                    .collect()),
                crate::promql::Value::Scalar { t, f } => {
                    Ok(vec![(Labels::default(), vec![(t, f)])])
                }
                crate::promql::Value::String { .. } => Err(QueryError::NotDrawable),
            }
        }
        .boxed()
    }

    fn instant(
        &self,
        expr: String,
        t: i64,
    ) -> BoxFuture<'static, Result<Vec<(Labels, f64)>, QueryError>> {
        let engine = self.0.clone();
        async move {
            match engine.instant_query(expr, t).await? {
                crate::promql::Value::Vector(v) => {
                    Ok(v.into_iter().map(|s| (s.metric, s.f)).collect())
                }
                crate::promql::Value::Scalar { f, .. } => Ok(vec![(Labels::default(), f)]),
                crate::promql::Value::Matrix(m) => Ok(m
                    .into_iter()
                    .filter_map(|s| s.points.last().map(|p| (s.metric.clone(), p.f)))
                    .collect()),
                crate::promql::Value::String { s, .. } => Err(QueryError::StringResult(s)),
            }
        }
        .boxed()
    }
}

/// The Targets and Alerts pages' data and actions.
pub(super) struct PageOperations {
    pub targets: crate::scrape::TargetsView,
    pub rules: Arc<crate::rules::RuleManager>,
    pub alerts: Arc<crate::alerting::AlertManager>,
}

fn label_list(l: &Labels) -> Vec<String> {
    l.iter()
        .map(|x| {
            format!(
                "{}=\"{}\"",
                x.name,
                crate::model::escape_label_value(&x.value)
            )
        })
        .collect()
}

impl Operations for PageOperations {
    fn targets(&self) -> Vec<TargetRow> {
        let mut out = Vec::new();
        for (job, pool) in self.targets.snapshot() {
            for t in &pool.active {
                let h = t.state.read().unwrap_or_else(|p| p.into_inner()).clone();
                out.push(TargetRow {
                    job: job.clone(),
                    url: t.target.url.clone(),
                    labels: label_list(&t.target.labels).join(", "),
                    health: format!("{:?}", h.health).to_lowercase(),
                    last_scrape_ms: h.last_scrape_ms.unwrap_or(0),
                    duration_seconds: h.last_duration.as_secs_f64(),
                    error: h.last_error.clone(),
                });
            }
        }
        out
    }

    fn alerts(&self) -> BoxFuture<'static, AlertsView> {
        let (rules, alerts) = (self.rules.clone(), self.alerts.clone());
        async move {
            let mut view = AlertsView::default();
            for r in rules.status().await {
                view.alerts.extend(r.alerts.iter().map(|a| {
                    AlertRow {
                        name: r.name.clone(),
                        state: a.state.as_str().to_string(),
                        labels: label_list(&a.labels),
                        annotations: a.annotations.clone().into_iter().collect(),
                        since_ms: a.active_at_ms,
                        value: a.value,
                        silence_matchers: label_list(&a.labels)
                            .into_iter()
                            .filter(|m| !m.starts_with("__"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                }));
                view.rules.push(RuleRow {
                    group: r.group,
                    name: r.name,
                    kind: r.kind.to_string(),
                    state: r.state.to_string(),
                    expr: r.expr,
                    last_eval_ms: r.last_eval_ms,
                    error: r.last_error.unwrap_or_default(),
                });
            }
            let now = alerts.now_ms();
            view.silences = alerts
                .silences()
                .list()
                .into_iter()
                .map(|s| SilenceRow {
                    matchers: s
                        .matchers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    state: format!("{:?}", s.state(now)).to_lowercase(),
                    ends_ms: s.ends_at_ms,
                    id: s.id,
                    created_by: s.created_by,
                    comment: s.comment,
                })
                .collect();
            if let Ok(history) = alerts.outbox().history(100) {
                view.notifications = history
                    .into_iter()
                    .map(|d| NotificationRow {
                        when_ms: if d.finished_ms > 0 {
                            d.finished_ms
                        } else {
                            d.created_ms
                        },
                        receiver: d.integration,
                        status: d.status,
                        attempts: d.attempts,
                        summary: d.summary,
                        error: d.error.unwrap_or_default(),
                    })
                    .collect();
            }
            view
        }
        .boxed()
    }

    fn create_silence(
        &self,
        matchers: Vec<String>,
        hours: f64,
        created_by: String,
        comment: String,
    ) -> Result<String, SilenceFormError> {
        let mut parsed = Vec::new();
        for m in &matchers {
            let m = crate::model::Matcher::parse(m)?;
            use crate::model::MatchOp::*;
            parsed.push(crate::alerting::SilenceMatcher {
                name: m.name.clone(),
                value: m.value.clone(),
                is_regex: matches!(m.op, Regex | NotRegex),
                is_equal: matches!(m.op, Equal | Regex),
            });
        }
        if parsed.is_empty() {
            return Err(SilenceFormError::NoMatchers);
        }
        let now = self.alerts.now_ms();
        let rfc = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default()
        };
        self.alerts
            .silences()
            .upsert(crate::alerting::PostableSilence {
                id: None,
                matchers: parsed,
                starts_at: rfc(now),
                ends_at: rfc(now + (hours * 3_600_000.0) as i64),
                created_by,
                comment,
            })
            .map_err(SilenceFormError::from)
    }

    fn expire_silence(&self, id: &str) -> Result<(), SilenceFormError> {
        Ok(self.alerts.silences().expire(id)?)
    }
}

/// One Status-page line per model.
pub(super) fn model_facts(inference: &crate::inference::Inference) -> Vec<(String, String)> {
    inference
        .models()
        .iter()
        .map(|m| {
            (
                format!("Model {}", m.name),
                format!(
                    "{} · {} · {} · {}",
                    m.architecture,
                    m.task.as_str(),
                    m.device,
                    m.dtype
                ),
            )
        })
        .collect()
}

/// The store's figures for the Status page.
pub(super) fn storage_facts(
    s: &crate::storage::StorageStats,
    retention: &str,
) -> Vec<(String, String)> {
    let bytes = |b: u64| crate::web::charts::units::format(b as f64, "bytes");
    let per_sample = if s.samples > 0 {
        format!("{:.2}", s.bytes as f64 / s.samples as f64)
    } else {
        "–".to_string()
    };
    vec![
        ("Storage series".to_string(), s.series.to_string()),
        ("Storage samples".to_string(), s.samples.to_string()),
        ("Storage bytes on disk".to_string(), bytes(s.bytes)),
        ("Storage bytes per sample".to_string(), per_sample),
        ("Storage WAL".to_string(), bytes(s.wal_bytes)),
        (
            "Storage 5-minute rollups".to_string(),
            format!(
                "{} series · {} points · {}",
                s.rollup_series,
                s.rollup_points,
                bytes(s.rollup_bytes)
            ),
        ),
        ("Storage retention".to_string(), retention.to_string()),
        (
            "Ingestion".to_string(),
            s.ingestion_blocked
                .clone()
                .unwrap_or_else(|| "ok".to_string()),
        ),
    ]
}
