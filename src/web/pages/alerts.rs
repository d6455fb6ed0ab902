//! `/alerts`: what is pending and firing, the rules, silences (created and
//! expired here by admins) and the notification log.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ctx::{PageCtx, PageFrame, csrf_rejected, when};
use super::{AlertsView, Pages};
use crate::web::Params;

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    page: PageFrame,
    view: AlertsView,
    csrf: String,
    admin: bool,
    prefill: String,
    message: Option<String>,
    alerts_label: &'static str,
    state_label: &'static str,
    labels_label: &'static str,
    since_label: &'static str,
    value_label: &'static str,
    silence_label: &'static str,
    silences_label: &'static str,
    create_label: &'static str,
    expire_label: &'static str,
    rules_label: &'static str,
    notifications_label: &'static str,
    error_label: &'static str,
}

impl AlertsPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
}

/// `GET /alerts[?message=...&silence=...]`: alerts, rules, silences and the
/// notification log, with the silence form for admins.
pub(super) async fn alerts(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    let page = ctx.frame("Alerts", "Alerts", false);
    let l = page.lang;
    let view = pages.ops.alerts().await;
    ctx.html(
        AlertsPage {
            page,
            view,
            csrf: ctx.csrf.clone(),
            admin: ctx.is_admin(),
            prefill: ctx.params.get("silence").unwrap_or("").to_string(),
            message: ctx.params.get("message").map(str::to_string),
            alerts_label: l.t("Alerts"),
            state_label: l.t("State"),
            labels_label: l.t("Labels"),
            since_label: l.t("Since"),
            value_label: l.t("Value"),
            silence_label: l.t("Silence"),
            silences_label: l.t("Silences"),
            create_label: l.t("Create silence"),
            expire_label: l.t("Expire"),
            rules_label: l.t("Rules"),
            notifications_label: l.t("Notifications"),
            error_label: l.t("Error"),
        }
        .render(),
    )
}

fn back_to_alerts(message: Option<&str>) -> Response {
    let location = match message {
        Some(m) => format!(
            "/alerts?message={}",
            form_urlencoded::byte_serialize(m.as_bytes()).collect::<String>()
        ),
        None => "/alerts".to_string(),
    };
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// `POST /alerts/silences` (admins): a silence from the page's form.
pub(super) async fn create_silence(
    State(pages): State<Arc<Pages>>,
    ctx: PageCtx,
    form: Params,
) -> Response {
    if !ctx.csrf_ok(form.get("csrf")) {
        return csrf_rejected();
    }
    let matchers: Vec<String> = form.get("matchers").map(split_matchers).unwrap_or_default();
    let hours = form
        .get("hours")
        .and_then(|h| h.trim().parse::<f64>().ok())
        .filter(|h| *h > 0.0 && h.is_finite())
        .unwrap_or(2.0);
    let user = ctx
        .viewer
        .0
        .as_ref()
        .map(|p| p.user.clone())
        .unwrap_or_else(|| "dashboard".to_string());
    match pages.ops.create_silence(
        matchers,
        hours,
        user,
        form.get("comment").unwrap_or_default().to_string(),
    ) {
        Ok(_) => back_to_alerts(None),
        Err(e) => back_to_alerts(Some(&e.to_string())),
    }
}

/// Splits `a="x", b=~"y,z"` at commas outside quotes.
fn split_matchers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
    {
        match c {
            '\\' if quoted => {
                escaped = !escaped;
                current.push(c);
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        escaped = false;
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// `POST /alerts/silences/{id}/expire` (admins).
pub(super) async fn expire_silence(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    ctx: PageCtx,
    form: Params,
) -> Response {
    if !ctx.csrf_ok(form.get("csrf")) {
        return csrf_rejected();
    }
    match pages.ops.expire_silence(&id) {
        Ok(()) => back_to_alerts(None),
        Err(e) => back_to_alerts(Some(&e.to_string())),
    }
}
