//! Extractors whose rejections are JSON errors with a clear message: request
//! parameters (query string and form body, read alike by the pages, the
//! snapshot routes and the Prometheus API) and JSON bodies.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::{ApiError, PromApiError};

/// Every `name=value` pair of a request, read as Go's `Request.Form` reads
/// them (what Prometheus' API does): a form-encoded body's pairs first, then
/// the query string's. [`Params::get`] is `Request.FormValue`: the first
/// value wins, and an empty first value counts as absent.
#[derive(Clone, Debug, Default)]
pub struct Params(Vec<(String, String)>);

/// A parameter that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    /// The form body could not be read (too large, broken connection).
    #[error("cannot read request body: {0}")]
    Body(String),
    /// A time that is neither unix seconds nor RFC 3339.
    #[error("invalid parameter \"{name}\": cannot parse \"{value}\" to a valid timestamp")]
    Time {
        /// Parameter.
        name: String,
        /// What was sent.
        value: String,
    },
    /// A duration that is neither float seconds nor like `15s`.
    #[error("invalid parameter \"{name}\": cannot parse \"{value}\" to a valid duration")]
    Duration {
        /// Parameter.
        name: String,
        /// What was sent.
        value: String,
    },
}

/// Rejections are written in Prometheus' error shape, which carries the
/// project-wide `error` and `error_type` keys as well.
impl IntoResponse for ParamError {
    fn into_response(self) -> Response {
        PromApiError::from(self).into_response()
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ParamError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().map(str::to_string);
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = if is_form {
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| ParamError::Body(e.body_text()))?;
            Some(bytes)
        } else {
            None
        };
        Ok(Params::new(query.as_deref(), body.as_deref()))
    }
}

impl Params {
    /// The pairs of a form body (first) and a query string.
    pub fn new(query: Option<&str>, form_body: Option<&[u8]>) -> Self {
        let mut pairs: Vec<(String, String)> = form_body
            .map(|b| form_urlencoded::parse(b).into_owned().collect())
            .unwrap_or_default();
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params(pairs)
    }

    /// The pairs of a query string alone.
    pub fn from_query(query: Option<&str>) -> Self {
        Self::new(query, None)
    }

    /// The first value of `name`; `None` when absent or when that first value is empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`, in order (for `match[]`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// A timestamp parameter in ms (unix seconds or RFC 3339), or `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, ParamError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => crate::model::parse_time(v).ok_or_else(|| ParamError::Time {
                name: name.to_string(),
                value: v.to_string(),
            }),
        }
    }

    /// A duration parameter in ms (`15s`, `1m`, or float seconds).
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ParamError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => crate::model::parse_float_seconds_ms(v)
                .or_else(|| crate::config::parse_duration(v).ok().map(|d| d.as_millis()))
                .map(Some)
                .ok_or_else(|| ParamError::Duration {
                    name: name.to_string(),
                    value: v.to_string(),
                }),
        }
    }
}

/// Like `axum::Json`, but a bad body is an [`ApiError`]: invalid JSON or
/// non-UTF-8 → 400, wrong field types → 422, too large → 413, wrong
/// content type → 415.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            ApiError::unprocessable(format!("invalid request: {detail}"))
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request(format!("request body is not valid JSON: {detail}"))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) if rejection_is_too_large(&detail) => {
            ApiError::payload_too_large(
                "request body is larger than server.limits.max_body_bytes; send less or raise the limit",
            )
        }
        _ => ApiError::bad_request(format!("cannot read request body: {detail}")),
    }
}

fn rejection_is_too_large(detail: &str) -> bool {
    detail.contains("length limit") || detail.contains("too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `Request.FormValue`, which Prometheus' API uses: body before
    /// query string, first value wins, an empty first value is absent.
    #[test]
    fn params_read_like_go_form_value() {
        let p = Params::new(Some("a=q1&a=q2&b=&b=later&c=3"), Some(b"a=body&d=4"));
        assert_eq!(p.get("a"), Some("body"));
        assert_eq!(p.get("b"), None, "an empty first value is not skipped over");
        assert_eq!(p.get("c"), Some("3"));
        assert_eq!(p.get("d"), Some("4"));
        assert_eq!(p.get("missing"), None);
        assert_eq!(p.all("a"), vec!["body", "q1", "q2"]);

        let q = Params::from_query(Some("range=1h&range=6h&x=%7Bup%7D"));
        assert_eq!(q.get("range"), Some("1h"), "first wins, not last");
        assert_eq!(q.get("x"), Some("{up}"));
    }

    #[test]
    fn times_and_durations_name_the_parameter() {
        let p = Params::from_query(Some("t=1.5&bad=yesterday&step=1m30s&f=0.5&s=x"));
        assert_eq!(p.time("t", 0).unwrap(), 1500);
        assert_eq!(p.time("absent", 7).unwrap(), 7);
        assert_eq!(
            p.time("bad", 0).unwrap_err().to_string(),
            "invalid parameter \"bad\": cannot parse \"yesterday\" to a valid timestamp"
        );
        assert_eq!(p.duration("step").unwrap(), Some(90_000));
        assert_eq!(p.duration("f").unwrap(), Some(500));
        assert_eq!(p.duration("none").unwrap(), None);
        assert!(matches!(p.duration("s"), Err(ParamError::Duration { .. })));
    }
}
