//! Extractors whose rejections are JSON errors with a clear message.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::ApiError;

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
        JsonRejection::JsonDataError(_) => ApiError::unprocessable(format!("invalid request: {detail}")),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(format!("request body is not valid JSON: {detail}")),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) if rejection_is_too_large(&detail) => ApiError::payload_too_large(
            "request body is larger than server.limits.max_body_bytes; send less or raise the limit",
        ),
        _ => ApiError::bad_request(format!("cannot read request body: {detail}")),
    }
}

fn rejection_is_too_large(detail: &str) -> bool {
    detail.contains("length limit") || detail.contains("too large")
}
