//! The Overview (the first dashboard) and `/dashboards/{uid}`: a Grafana
//! dashboard's variables and panels, drawn for the picked range.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::ctx::{PageCtx, PageFrame};
use super::{Dashboard, Pages, PanelView, Window, render_panel};
use crate::web::{ApiError, Params};

struct VariableView {
    name: String,
    label: String,
    options: Vec<(String, bool)>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: PageFrame,
    title: String,
    variables: Vec<VariableView>,
    panels: Vec<PanelView>,
}

/// `GET /`: the first dashboard.
pub(super) async fn overview(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    let dashboards = pages.dashboards.load_full();
    match dashboards.first() {
        Some((_, d)) => render(&pages, d, "Overview", &ctx).await,
        None => ApiError::not_found("no dashboards").into_response(),
    }
}

/// `GET /dashboards/{uid}`.
pub(super) async fn dashboard(
    State(pages): State<Arc<Pages>>,
    Path(uid): Path<String>,
    ctx: PageCtx,
) -> Response {
    match pages.find_dashboard(&uid) {
        Some(d) => render(&pages, &d, "Dashboards", &ctx).await,
        None => {
            ApiError::not_found(format!("no dashboard {uid:?}; see /dashboards")).into_response()
        }
    }
}

/// Template variables: their options (a `label_values(...)` query or a
/// custom list) and the value picked by `var-<name>`, else the saved one.
async fn variables(
    pages: &Pages,
    d: &Dashboard,
    params: &Params,
    w: Window,
) -> (Vec<VariableView>, Vec<(String, String)>) {
    let mut views = Vec::new();
    let mut values = Vec::new();
    for v in &d.templating.list {
        let mut options: Vec<String> = Vec::new();
        match v.kind.as_str() {
            "query" => {
                let q = v
                    .query
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| {
                        v.query
                            .get("query")
                            .and_then(|q| q.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                if let Some(inner) = q
                    .trim()
                    .strip_prefix("label_values(")
                    .and_then(|s| s.strip_suffix(')'))
                {
                    let (metric, label) = match inner.rsplit_once(',') {
                        Some((m, l)) => (m.trim().to_string(), l.trim().to_string()),
                        None => (String::new(), inner.trim().to_string()),
                    };
                    let expr = if metric.is_empty() {
                        format!("group by ({label}) ({{{label}=~\".+\"}})")
                    } else {
                        format!("group by ({label}) ({metric})")
                    };
                    if let Ok(result) = pages.query.instant(expr, w.end).await {
                        options = result
                            .into_iter()
                            .filter_map(|(l, _)| l.get(&label).map(str::to_string))
                            .collect();
                        options.sort();
                        options.dedup();
                    }
                }
            }
            "custom" => {
                options = v
                    .query
                    .as_str()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
            _ => continue,
        }
        if v.include_all || options.is_empty() {
            options.insert(0, "All".to_string());
        }
        let chosen = params
            .get(&format!("var-{}", v.name))
            .or_else(|| v.saved().map(|s| if s == "$__all" { "All" } else { s }))
            .map(str::to_string)
            .filter(|c| options.contains(c))
            .unwrap_or_else(|| options[0].clone());
        values.push((v.name.clone(), chosen.clone()));
        views.push(VariableView {
            name: v.name.clone(),
            label: v.label.clone().unwrap_or_else(|| v.name.clone()),
            options: options
                .into_iter()
                .map(|o| (o.clone(), o == chosen))
                .collect(),
        });
    }
    (views, values)
}

async fn render(pages: &Pages, d: &Dashboard, active: &str, ctx: &PageCtx) -> Response {
    let frame = ctx.frame(&d.title, active, true);
    let (views, values) = variables(pages, d, &ctx.params, frame.window).await;
    let panels = futures::future::join_all(d.flat_panels().iter().map(|p| async {
        render_panel(pages.query.as_ref(), p, frame.window, &values, frame.lang).await
    }))
    .await;
    let title = d.title.clone();
    ctx.html(
        DashboardPage {
            page: frame,
            title,
            variables: views,
            panels,
        }
        .render(),
    )
}
