//! `/targets`: the scrape targets, as the scraper reports them.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::ctx::{PageCtx, PageFrame, when};
use super::{Pages, TargetRow};

#[derive(Template)]
#[template(path = "targets.html")]
struct TargetsPage {
    page: PageFrame,
    targets: Vec<TargetRow>,
    health_label: &'static str,
    labels_label: &'static str,
    last_label: &'static str,
    duration_label: &'static str,
    error_label: &'static str,
}

impl TargetsPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
}

/// `GET /targets`: every scrape target and its last scrape.
pub(super) async fn targets(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    let page = ctx.frame("Targets", "Targets", false);
    let l = page.lang;
    ctx.html(
        TargetsPage {
            page,
            targets: pages.ops.targets(),
            health_label: l.t("Health"),
            labels_label: l.t("Labels"),
            last_label: l.t("Last scrape"),
            duration_label: l.t("Duration"),
            error_label: l.t("Error"),
        }
        .render(),
    )
}
