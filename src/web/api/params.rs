//! Request parameters from the query string and a form-encoded body (Prometheus
//! accepts both), and its time and duration formats.

use axum::extract::{FromRequest, Request};
use axum::http::header;

use super::PromApiError;

/// All `name=value` pairs of a request, query string first.
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = PromApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let body = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| PromApiError::bad_data(format!("cannot read request body: {e}")))?;
            pairs.extend(form_urlencoded::parse(&body).into_owned());
        }
        Ok(Params(pairs))
    }
}

/// Prometheus' default bounds when `start`/`end` are not given.
pub const MIN_TIME_MS: i64 = i64::MIN / 4;
/// See [`MIN_TIME_MS`].
pub const MAX_TIME_MS: i64 = i64::MAX / 4;

impl Params {
    /// The first value of `name` (empty values count as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (for `match[]`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A timestamp parameter in ms, or `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, PromApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_time(v).ok_or_else(|| {
                PromApiError::bad_data(format!(
                    "invalid parameter \"{name}\": cannot parse \"{v}\" to a valid timestamp"
                ))
            }),
        }
    }

    /// A duration parameter in ms (`15s`, `1m`, or float seconds).
    pub fn duration(&self, name: &str) -> Result<Option<i64>, PromApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse_duration_ms(v).map(Some).ok_or_else(|| {
                PromApiError::bad_data(format!(
                    "invalid parameter \"{name}\": cannot parse \"{v}\" to a valid duration"
                ))
            }),
        }
    }
}

/// Unix seconds (float) or RFC 3339, as Prometheus' `parseTime`.
pub fn parse_time(v: &str) -> Option<i64> {
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() {
            return None;
        }
        let ms = (secs * 1000.0).round();
        return Some(ms.clamp(MIN_TIME_MS as f64, MAX_TIME_MS as f64) as i64);
    }
    // Clients send Prometheus' own min/max time strings for "unbounded".
    if v.starts_with("-292273086-") {
        return Some(MIN_TIME_MS);
    }
    if v.starts_with("292277025-") {
        return Some(MAX_TIME_MS);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Float seconds or a Prometheus duration, in ms.
pub fn parse_duration_ms(v: &str) -> Option<i64> {
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > (i64::MAX / 1000) as f64 {
            return None;
        }
        return Some((secs * 1000.0).round() as i64);
    }
    crate::config::parse_duration(v).ok().map(|d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("1.5"), Some(1500));
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z"), Some(1435781451781));
        assert_eq!(parse_time("2015-07-01T22:10:51+02:00"), Some(1435781451000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("-292273086-05-16T16:47:06Z"), Some(MIN_TIME_MS));
        assert_eq!(parse_duration_ms("15s"), Some(15_000));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("0.5"), Some(500));
        assert_eq!(parse_duration_ms("x"), None);
    }
}
