//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`, `/api/v1/metadata`.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::response::Response;

use super::{ApiState, Params, PromApiError, success};
use crate::model::{MAX_TIME_MS, MIN_TIME_MS, Matcher};
use crate::telemetry::Telemetry;
use prometheus::proto::MetricType;

/// Every `match[]` as matcher sets (one selector may hold several `or` sets).
fn matchers(p: &Params) -> Result<Vec<Vec<Matcher>>, PromApiError> {
    let mut out = Vec::new();
    for m in p.all("match[]") {
        let sets = crate::promql::selector_matchers(m)
            .map_err(|e| PromApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
        out.extend(sets);
    }
    Ok(out)
}

fn limit(p: &Params) -> Result<Option<usize>, PromApiError> {
    match p.get("limit") {
        None => Ok(None),
        Some(v) => match v.parse::<usize>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(PromApiError::bad_data(format!(
                "invalid parameter \"limit\": cannot parse \"{v}\""
            ))),
        },
    }
}

/// Series matching `match[]` with samples in `[start, end]`.
pub async fn series(State(st): State<ApiState>, p: Params) -> Result<Response, PromApiError> {
    let sets = matchers(&p)?;
    if sets.is_empty() {
        return Err(PromApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = (p.time("start", MIN_TIME_MS)?, p.time("end", MAX_TIME_MS)?);
    let limit = limit(&p)?;
    let mut list = st.engine.series(sets, start, end).await?;
    if let Some(n) = limit {
        list.truncate(n);
    }
    Ok(success(list))
}

/// Label names.
pub async fn labels(State(st): State<ApiState>, p: Params) -> Result<Response, PromApiError> {
    let mut sets = matchers(&p)?;
    if sets.is_empty() {
        sets.push(Vec::new());
    }
    let (start, end) = (p.time("start", MIN_TIME_MS)?, p.time("end", MAX_TIME_MS)?);
    let limit = limit(&p)?;
    let q = st.engine.querier().clone();
    let names = tokio::task::spawn_blocking(move || -> Result<BTreeSet<String>, PromApiError> {
        let mut all = BTreeSet::new();
        for m in &sets {
            all.extend(q.label_names(m, start, end)?);
        }
        Ok(all)
    })
    .await??;
    let mut list: Vec<String> = names.into_iter().collect();
    if let Some(n) = limit {
        list.truncate(n);
    }
    Ok(success(list))
}

/// Values of one label.
pub async fn label_values(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, PromApiError> {
    // Prometheus 3 accepts UTF-8 names escaped as `U__...`; plain names are used as given.
    if name.is_empty() {
        return Err(PromApiError::bad_data(format!(
            "invalid label name: \"{name}\""
        )));
    }
    let mut sets = matchers(&p)?;
    if sets.is_empty() {
        sets.push(Vec::new());
    }
    let (start, end) = (p.time("start", MIN_TIME_MS)?, p.time("end", MAX_TIME_MS)?);
    let limit = limit(&p)?;
    let q = st.engine.querier().clone();
    let values = tokio::task::spawn_blocking(move || -> Result<BTreeSet<String>, PromApiError> {
        let mut all = BTreeSet::new();
        for m in &sets {
            all.extend(q.label_values(&name, m, start, end)?);
        }
        Ok(all)
    })
    .await??;
    let mut list: Vec<String> = values.into_iter().collect();
    if let Some(n) = limit {
        list.truncate(n);
    }
    Ok(success(list))
}

/// Exemplars: the store keeps none, so the list is empty (Grafana asks for them).
pub async fn exemplars(_p: Params) -> Result<Response, PromApiError> {
    Ok(success(Vec::<()>::new()))
}

/// One metric's metadata, as Prometheus answers it.
#[derive(serde::Serialize)]
struct MetricMetadata {
    #[serde(rename = "type")]
    kind: &'static str,
    help: String,
    unit: String,
}

/// Metric metadata (TYPE and HELP) of infermon's own metrics — what its
/// `/metrics` exposes, the self-scraped families, host and GPU collectors
/// included. The store keeps no metadata of other targets, so they are
/// absent. `metric` picks one name; `limit` caps the number of metrics.
pub async fn metadata(
    State(telemetry): State<Telemetry>,
    p: Params,
) -> Result<Response, PromApiError> {
    let limit = limit(&p)?;
    let only = p
        .get("metric")
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    // Gathering runs the collectors (a /proc read, NVML): off the async threads.
    let families = tokio::task::spawn_blocking(move || telemetry.registry.gather()).await?;
    let mut out: BTreeMap<String, Vec<MetricMetadata>> = BTreeMap::new();
    for f in families {
        if only.as_deref().is_some_and(|m| m != f.name()) {
            continue;
        }
        let kind = match f.get_field_type() {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::SUMMARY => "summary",
            MetricType::HISTOGRAM => "histogram",
            MetricType::UNTYPED => "unknown",
        };
        out.insert(
            f.name().to_string(),
            vec![MetricMetadata {
                kind,
                help: f.help().to_string(),
                unit: String::new(),
            }],
        );
    }
    if let Some(n) = limit {
        out = out.into_iter().take(n).collect();
    }
    Ok(success(out))
}
