//! The HTTP server: one axum router for the model API, the Prometheus API,
//! the dashboard, `/metrics`, `/health` and `/ready` (also as Prometheus'
//! `/-/healthy` and `/-/ready`), and `POST /-/reload`.
//!
//! Handlers stay thin: they extract ([`Params`], [`ApiJson`]), call one
//! part, and map its errors through [`ApiError`]. The routes are handed in
//! (the API's, the pages', the model server's); this module adds the layers
//! every request passes (JSON errors, metrics, auth, body limit).

pub mod api;
pub mod auth;
pub mod browser;
pub mod charts;
mod error;
mod extract;
mod health;
pub mod login_limit;
pub mod pages;
pub mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

pub use auth::{Authenticator, Principal, Via};
pub use browser::BrowserGuard;
pub use error::{ApiError, PromApiError};
pub use extract::{ApiJson, ParamError, Params};
pub use health::{Readiness, ReloadFailure, ReloadFn, ReloadReport, ReloadStatus};

use crate::telemetry::{Telemetry, track_http};

/// Everything the router is built from.
pub struct WebParts {
    /// Registry and HTTP metrics.
    pub telemetry: Telemetry,
    /// Component readiness for `/ready`.
    pub readiness: Readiness,
    /// Credentials check, when `server.auth` is set.
    pub auth: Option<Arc<Authenticator>>,
    /// Origin/Host checks and cookie flags (`server.allowed_*`).
    pub browser: BrowserGuard,
    /// Largest accepted request body (a reload may change it).
    pub body_limit: BodyLimit,
    /// Routes contributed by the other parts (inference, API, pages).
    pub routes: Vec<Router>,
    /// Routes that bound their request bodies themselves (`/api/v1/write`
    /// with `remote_write_receiver.max_request_bytes`):
    /// `server.limits.max_body_bytes` does not apply to them.
    pub own_body_limit_routes: Vec<Router>,
    /// What `POST /-/reload` runs; without it the route is absent.
    pub reload: Option<ReloadFn>,
}

/// Builds the application router.
pub fn router(parts: WebParts) -> Router {
    let mut app = Router::new()
        .route("/health", get(health::health))
        .route("/-/healthy", get(health::health))
        .route(
            "/ready",
            get(health::ready).with_state(parts.readiness.clone()),
        )
        .route("/-/ready", get(health::ready).with_state(parts.readiness))
        .route("/metrics", get(metrics).with_state(parts.telemetry.clone()))
        // Metadata comes from the registry /metrics is rendered from.
        .route(
            "/api/v1/metadata",
            get(api::metadata).with_state(parts.telemetry.clone()),
        );
    if let Some(reload) = parts.reload {
        // Prometheus takes PUT as well as POST.
        app = app.route(
            "/-/reload",
            axum::routing::post(health::reload)
                .put(health::reload)
                .with_state(reload),
        );
    }
    for routes in parts.routes {
        app = app.merge(routes);
    }
    // The dashboard's login and logout, when there are users to log in.
    if let Some(auth) = parts.auth.as_ref().filter(|a| a.has_users()) {
        app = app.merge(pages::login_routes(auth.clone()));
    }
    // Layers run outside-in in the reverse order they are added here:
    // json_errors → http metrics → browser guard → auth → body limit → handler.
    // The limit is read per request, so a reload changes it at once; the
    // body is wrapped so extractors stop reading at it.
    let mut app =
        app.layer(DefaultBodyLimit::disable())
            .layer(axum::middleware::from_fn_with_state(
                parts.body_limit,
                limit_body,
            ));
    // Merged after the body limit, so it does not wrap them; the layers
    // below (auth, metrics, JSON errors) still do.
    for routes in parts.own_body_limit_routes {
        app = app.merge(routes);
    }
    let app = match parts.auth {
        Some(auth) => app.layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_auth,
        )),
        None => app,
    };
    let app = app.layer(axum::middleware::from_fn_with_state(
        Arc::new(parts.browser),
        browser::guard,
    ));
    app.layer(axum::middleware::from_fn_with_state(
        parts.telemetry.http.clone(),
        track_http,
    ))
    .layer(axum::middleware::from_fn(error::json_errors))
}

/// `server.limits.max_body_bytes` as the server applies it now.
#[derive(Clone, Debug)]
pub struct BodyLimit(Arc<AtomicUsize>);

impl BodyLimit {
    /// A limit of `bytes`.
    pub fn new(bytes: usize) -> Self {
        BodyLimit(Arc::new(AtomicUsize::new(bytes)))
    }

    /// Applies `bytes` to requests from now on.
    pub fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }
}

/// Refuses bodies over the limit: at once when `Content-Length` says so,
/// else when reading passes it (JSON 413 either way, through `json_errors`).
async fn limit_body(
    State(limit): State<BodyLimit>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let max = limit.0.load(Ordering::Relaxed);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, max)));
    next.run(req).await
}

async fn metrics(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry.render(),
    )
}
