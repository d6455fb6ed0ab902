//! `/status`: what is running and how it is configured.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::Pages;
use super::ctx::{PageCtx, PageFrame};

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    page: PageFrame,
    facts: Vec<(String, String)>,
    config_label: &'static str,
    config: String,
}

/// `GET /status`: version, uptime, the parts' facts and the config (redacted).
pub(super) async fn status(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    let page = ctx.frame("Status", "Status", false);
    let lang = page.lang;
    let uptime_s = (crate::util::now_ms() - pages.started_ms) / 1000;
    let mut facts = vec![
        (
            lang.t("Version").to_string(),
            format!("{} ({})", env!("CARGO_PKG_VERSION"), crate::REVISION),
        ),
        (
            lang.t("Uptime").to_string(),
            format!(
                "{}h {}m {}s",
                uptime_s / 3600,
                uptime_s / 60 % 60,
                uptime_s % 60
            ),
        ),
        ("Config file".to_string(), pages.config.load().source.name()),
    ];
    facts.extend((pages.facts)());
    ctx.html(
        StatusPage {
            page,
            facts,
            config_label: lang.t("Configuration"),
            config: pages.config.load().redacted_yaml(),
        }
        .render(),
    )
}
