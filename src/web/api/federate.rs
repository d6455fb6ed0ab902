//! `/federate`: the latest sample of every series matching `match[]`, in the
//! text exposition format, so a central Prometheus can scrape infermon.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiState, Params, PromApiError};
use crate::model::{Labels, is_stale_nan};
use crate::promql::format_float;
use crate::util::now_ms;

/// Writes the newest non-stale sample (within the lookback window) of each
/// matching series, with the external labels added where a series lacks them.
pub async fn federate(State(st): State<ApiState>, p: Params) -> Result<Response, PromApiError> {
    let mut sets = Vec::new();
    for m in p.all("match[]") {
        sets.extend(
            crate::promql::selector_matchers(m).map_err(|e| {
                PromApiError::bad_data(format!("invalid parameter \"match[]\": {e}"))
            })?,
        );
    }
    let now = now_ms();
    let lookback = st.engine.options().lookback_delta.as_millis() as i64;
    let q = st.engine.querier().clone();
    let external = st.external_labels.clone();
    let text = tokio::task::spawn_blocking(move || -> Result<String, PromApiError> {
        // Metric name → its series, each once even when several selectors match it.
        let mut by_name: BTreeMap<String, BTreeMap<Labels, (f64, i64)>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for m in &sets {
            for s in q.select(m, now - lookback + 1, now)? {
                let Some(last) = s.samples.last() else {
                    continue;
                };
                if is_stale_nan(last.value) || !seen.insert(s.labels.clone()) {
                    continue;
                }
                let mut labels = s.labels;
                for l in external.iter() {
                    if labels.get(&l.name).is_none() {
                        labels.set(&l.name, &l.value);
                    }
                }
                let name = labels.metric_name().unwrap_or("").to_string();
                by_name
                    .entry(name)
                    .or_default()
                    .insert(labels, (last.value, last.timestamp_ms));
            }
        }
        let mut out = String::new();
        for (name, series) in by_name {
            out.push_str(&format!("# TYPE {name} untyped\n"));
            for (labels, (v, t)) in series {
                let pairs: Vec<String> = labels
                    .iter()
                    .filter(|l| l.name != crate::model::METRIC_NAME)
                    .map(|l| format!("{}=\"{}\"", l.name, escape(&l.value)))
                    .collect();
                out.push_str(&format!(
                    "{name}{{{}}} {} {t}\n",
                    pairs.join(","),
                    format_float(v)
                ));
            }
        }
        Ok(out)
    })
    .await??;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Escapes a label value as the text format wants (`\\`, `\"`, `\n`).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
