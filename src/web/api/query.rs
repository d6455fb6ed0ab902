//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`.

use axum::extract::State;
use axum::response::Response;

use super::{ApiState, Params, PromApiError, success};
use crate::promql::PromqlError;
use crate::util::now_ms;

/// Most points a range query may return per series, as Prometheus.
const MAX_POINTS: i64 = 11_000;

fn query_param(p: &Params) -> Result<String, PromApiError> {
    p.get("query")
        .map(str::to_string)
        .ok_or_else(|| PromApiError::bad_data("invalid parameter \"query\": query is empty"))
}

/// Instant query.
pub async fn instant(State(st): State<ApiState>, p: Params) -> Result<Response, PromApiError> {
    let query = query_param(&p)?;
    let t = p.time("time", now_ms())?;
    // The JSON is encoded on the query thread too, off the async runtime.
    st.engine
        .instant_query_map(query, t, success)
        .await
        .map_err(query_error)
}

/// Range query.
pub async fn range(State(st): State<ApiState>, p: Params) -> Result<Response, PromApiError> {
    let query = query_param(&p)?;
    let start = p
        .get("start")
        .ok_or_else(|| PromApiError::bad_data("invalid parameter \"start\": missing"))?;
    let start = p.time("start", 0).map_err(|_| bad_time("start", start))?;
    let end = p
        .get("end")
        .ok_or_else(|| PromApiError::bad_data("invalid parameter \"end\": missing"))?;
    let end = p.time("end", 0).map_err(|_| bad_time("end", end))?;
    if end < start {
        return Err(PromApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = p
        .duration("step")?
        .ok_or_else(|| PromApiError::bad_data("invalid parameter \"step\": missing"))?;
    if step <= 0 {
        return Err(PromApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(PromApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    st.engine
        .range_query_map(query, start, end, step, success)
        .await
        .map_err(query_error)
}

/// Parse errors name the parameter, as Prometheus words them.
fn query_error(e: PromqlError) -> PromApiError {
    match e {
        PromqlError::Parse(msg) => {
            PromApiError::bad_data(format!("invalid parameter \"query\": {msg}"))
        }
        other => other.into(),
    }
}

fn bad_time(name: &str, v: &str) -> PromApiError {
    PromApiError::bad_data(format!(
        "invalid parameter \"{name}\": cannot parse \"{v}\" to a valid timestamp"
    ))
}

/// The expression, pretty-printed.
pub async fn format(p: Params) -> Result<Response, PromApiError> {
    let query = query_param(&p)?;
    let expr = crate::promql::parse(&query)
        .map_err(|e| PromApiError::bad_data(format!("invalid parameter \"query\": {e}")))?;
    Ok(success(expr.prettify()))
}
