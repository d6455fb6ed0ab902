//! `/explore`: one PromQL expression as a graph or a table.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::ctx::{PageCtx, PageFrame};
use super::grafana::{GridPos, Target};
use super::{Pages, Panel, PanelView, render_panel};

#[derive(Template)]
#[template(path = "explore.html")]
struct ExplorePage {
    page: PageFrame,
    query: String,
    range: String,
    view: String,
    graph_label: &'static str,
    table_label: &'static str,
    error: Option<String>,
    panel: PanelView,
}

/// `GET /explore?q=...&view=table`.
pub(super) async fn explore(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    let params = &ctx.params;
    let page = ctx.frame("Explore", "Explore", true);
    let query = params.get("q").unwrap_or("").to_string();
    let view = if params.get("view") == Some("table") {
        "table"
    } else {
        "timeseries"
    };
    let panel = Panel {
        kind: view.to_string(),
        targets: vec![Target {
            expr: query.clone(),
            ..Default::default()
        }],
        grid_pos: GridPos {
            h: 12,
            w: 24,
            x: 0,
            y: 0,
        },
        ..Default::default()
    };
    let mut rendered =
        render_panel(pages.query.as_ref(), &panel, page.window, &[], page.lang).await;
    let error = rendered.error.take();
    let lang = page.lang;
    let range = params.get("range").unwrap_or("1h").to_string();
    ctx.html(
        ExplorePage {
            page,
            query,
            range,
            view: view.to_string(),
            graph_label: lang.t("Graph"),
            table_label: lang.t("Table"),
            error,
            panel: rendered,
        }
        .render(),
    )
}
