//! The Overview (the first dashboard) and `/dashboards/{uid}`: a Grafana
//! dashboard's variables, links, rows and panels, drawn for the picked range.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::ctx::{PageCtx, PageFrame};
use super::grafana::{Interpolate, Intervals, Link, VarValue, Variable, interpolate};
use super::render::{
    GPU_COLLECTOR_OFF, HOST_COLLECTOR_OFF, LinkView, NO_GPU, NO_RERANK_MODEL, PanelScope, Source,
    SourcesOff, panel_source, render_panel_in, safe_url,
};
use super::{Dashboard, Pages, Panel, PanelView, Window};
use crate::web::{ApiError, Params};

/// Most copies of a repeated panel (a variable with thousands of values
/// must not turn one panel into thousands of queries).
const MAX_REPEATS: usize = 24;

/// A variable's selector on the page.
struct VariableView {
    name: String,
    label: String,
    /// Several values may be picked (`<select multiple>`).
    multi: bool,
    /// A free-text variable (`textbox`).
    textbox: bool,
    /// The text of a textbox.
    text: String,
    options: Vec<(String, bool)>,
}

/// Panels under one row (the first section has no row).
struct Section {
    title: String,
    /// Drawn unfolded.
    open: bool,
    /// Said beside the row's title (why it is folded).
    note: String,
    panels: Vec<PanelView>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: PageFrame,
    title: String,
    variables: Vec<VariableView>,
    links: Vec<LinkView>,
    notes: Vec<String>,
    sections: Vec<Section>,
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

/// The options of a `query` variable: `label_values(metric, label)` or
/// `label_values(label)`; `None` for any other query.
async fn query_options(pages: &Pages, query: &str, w: Window) -> Option<Vec<String>> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))?;
    let (metric, label) = match inner.rsplit_once(',') {
        Some((m, l)) => (m.trim().to_string(), l.trim().to_string()),
        None => (String::new(), inner.trim().to_string()),
    };
    let expr = if metric.is_empty() {
        format!("group by ({label}) ({{{label}=~\".+\"}})")
    } else {
        format!("group by ({label}) ({metric})")
    };
    let mut options: Vec<String> = match pages.query.instant(expr, w.end).await {
        Ok(result) => result
            .into_iter()
            .filter_map(|(l, _)| l.get(&label).map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    };
    options.sort();
    options.dedup();
    Some(options)
}

/// A custom or interval variable's options: `a,b,c`, or `text : value`.
fn list_options(v: &Variable) -> Vec<String> {
    let text = v.query_text();
    let mut out: Vec<String> = text
        .split(',')
        .map(|s| match s.split_once(" : ") {
            Some((_, value)) => value.trim().to_string(),
            None => s.trim().to_string(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    if out.is_empty() {
        out = v
            .options
            .iter()
            .filter_map(|o| o.get("value").and_then(|x| x.as_str()).map(str::to_string))
            .filter(|s| s != "$__all")
            .collect();
    }
    out
}

/// Grafana's `regex` on a variable's options (`/pattern/`): keeps the
/// matching ones, the first capture group when there is one.
fn filter_options(options: Vec<String>, regex: &str) -> Result<Vec<String>, String> {
    let pattern = regex
        .trim()
        .strip_prefix('/')
        .and_then(|r| r.rsplit_once('/'))
        .map(|(p, _)| p)
        .unwrap_or(regex.trim());
    if pattern.is_empty() {
        return Ok(options);
    }
    let re = regex::Regex::new(pattern).map_err(|e| e.to_string())?;
    let mut out: Vec<String> = options
        .iter()
        .filter_map(|o| {
            re.captures(o).map(|c| {
                c.get(1)
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_else(|| o.clone())
            })
        })
        .collect();
    out.dedup();
    Ok(out)
}

/// Template variables: their options and the values picked by
/// `var-<name>` (repeated for several), else the saved ones. Variables of
/// a kind infermon does not read are named in `notes`.
async fn variables(
    pages: &Pages,
    d: &Dashboard,
    params: &Params,
    w: Window,
    notes: &mut Vec<String>,
    lang: super::Lang,
) -> (Vec<VariableView>, Vec<VarValue>) {
    let mut views = Vec::new();
    let mut values: Vec<VarValue> = Vec::new();
    for v in &d.templating.list {
        let picked: Vec<String> = params
            .all(&format!("var-{}", v.name))
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| if s == "$__all" { "All" } else { s }.to_string())
            .collect();
        let mut options: Vec<String> = match v.kind.as_str() {
            "query" => {
                // Queries may use variables defined before them.
                let q = interpolate(
                    &v.query_text(),
                    Intervals {
                        step_ms: w.step,
                        range_ms: w.end - w.start,
                        scrape_ms: pages.scrape_ms(),
                    },
                    &values,
                    Interpolate::Query,
                );
                match query_options(pages, &q, w).await {
                    Some(o) => o,
                    None => {
                        notes.push(
                            lang.t("Variable '{name}': only label_values(...) queries are supported by infermon")
                                .replace("{name}", &v.name),
                        );
                        Vec::new()
                    }
                }
            }
            "custom" | "interval" => list_options(v),
            "constant" => {
                values.push(VarValue::single(&v.name, &v.query_text()));
                continue;
            }
            "textbox" => {
                let text = picked
                    .first()
                    .cloned()
                    .or_else(|| v.saved().into_iter().next())
                    .unwrap_or_else(|| v.query_text());
                values.push(VarValue::single(&v.name, &text));
                views.push(VariableView {
                    name: v.name.clone(),
                    label: v.label.clone().unwrap_or_else(|| v.name.clone()),
                    multi: false,
                    textbox: true,
                    text,
                    options: Vec::new(),
                });
                continue;
            }
            // One data source: `${datasource}` has nothing to choose.
            "datasource" => continue,
            other => {
                notes.push(
                    lang.t("Variable '{name}' of type '{kind}' is not supported by infermon")
                        .replace("{name}", &v.name)
                        .replace("{kind}", other),
                );
                continue;
            }
        };
        if !v.regex.is_empty() {
            match filter_options(options.clone(), &v.regex) {
                Ok(o) => options = o,
                Err(e) => notes.push(format!("{}: regex: {e}", v.name)),
            }
        }
        if v.kind == "interval" && v.auto {
            options.insert(0, "auto".to_string());
        }
        let all_offered = v.include_all || options.is_empty();
        if all_offered {
            options.insert(0, "All".to_string());
        }
        let valid = |list: Vec<String>| -> Vec<String> {
            list.into_iter().filter(|c| options.contains(c)).collect()
        };
        let mut chosen = valid(picked);
        if chosen.is_empty() {
            chosen = valid(
                v.saved()
                    .into_iter()
                    .map(|s| if s == "$__all" { "All".to_string() } else { s })
                    .collect(),
            );
        }
        if chosen.is_empty() {
            chosen = vec![options[0].clone()];
        }
        if !v.multi {
            chosen.truncate(1);
        }
        let all = chosen.iter().any(|c| c == "All");
        let concrete: Vec<String> = if all {
            options.iter().filter(|o| *o != "All").cloned().collect()
        } else {
            chosen.clone()
        };
        let value = if v.kind == "interval" && concrete.first().map(String::as_str) == Some("auto")
        {
            VarValue::single(&v.name, "$__interval")
        } else {
            VarValue {
                name: v.name.clone(),
                values: concrete,
                all,
                all_value: v.all_value.clone(),
                regex: v.multi || v.include_all,
            }
        };
        values.push(value);
        if v.hide >= 2 {
            continue;
        }
        views.push(VariableView {
            name: v.name.clone(),
            label: v.label.clone().unwrap_or_else(|| v.name.clone()),
            multi: v.multi,
            textbox: false,
            text: String::new(),
            options: options
                .into_iter()
                .map(|o| {
                    let sel = chosen.contains(&o);
                    (o, sel)
                })
                .collect(),
        });
    }
    // `$__interval` picked by an interval variable's `auto` is filled per panel.
    (views, values)
}

/// The dashboard's links: URLs (variables substituted) and `dashboards`
/// links, one per dashboard carrying one of the tags.
fn dashboard_links(
    pages: &Pages,
    d: &Dashboard,
    iv: Intervals,
    vars: &[VarValue],
) -> Vec<LinkView> {
    let mut out = Vec::new();
    for l in &d.links {
        match l.kind.as_str() {
            "dashboards" => {
                let mut all: Vec<(String, Dashboard)> = pages.dashboards.load().as_ref().clone();
                all.extend(pages.uploads.list());
                for (uid, other) in all {
                    let tagged = l.tags.is_empty() || l.tags.iter().any(|t| other.tags.contains(t));
                    if tagged && other.title != d.title {
                        out.push(LinkView {
                            title: other.title.clone(),
                            url: format!("/dashboards/{uid}"),
                            blank: l.target_blank,
                        });
                    }
                }
            }
            _ => out.extend(link_view(l, iv, vars)),
        }
    }
    out
}

fn link_view(l: &Link, iv: Intervals, vars: &[VarValue]) -> Option<LinkView> {
    let url = safe_url(&interpolate(&l.url, iv, vars, Interpolate::Url))?;
    Some(LinkView {
        title: if l.title.is_empty() {
            url.clone()
        } else {
            interpolate(&l.title, iv, vars, Interpolate::Text)
        },
        url,
        blank: l.target_blank,
    })
}

/// Which data sources are off on this box (only asked when the dashboard
/// has panels reading them).
async fn sources_off(pages: &Pages, panels: &[&Panel], w: Window) -> SourcesOff {
    let reads = |s: Source| panels.iter().any(|p| panel_source(p) == Some(s));
    let mut off = SourcesOff::default();
    let config = pages.config.load();
    let collectors = &config.collectors;
    if reads(Source::Gpu) {
        off.gpu = if !collectors.gpu.enabled {
            Some(GPU_COLLECTOR_OFF)
        } else {
            match pages
                .query
                .instant("max(infermon_gpu_available)".to_string(), w.end)
                .await
            {
                Ok(r) if r.first().is_some_and(|(_, v)| *v == 0.0) => Some(NO_GPU),
                _ => None,
            }
        };
    }
    if reads(Source::Host) && !collectors.host.enabled {
        off.host = Some(HOST_COLLECTOR_OFF);
    }
    // No rerank model among the models served, once the self-scrape has
    // stored anything (before that nothing is known).
    if reads(Source::Rerank)
        && let Ok(r) = pages
            .query
            .instant(
                "count(up{job=\"infermon\"}) unless count(infermon_model_info{task=\"rerank\"})"
                    .to_string(),
                w.end,
            )
            .await
        && !r.is_empty()
    {
        off.rerank = Some(NO_RERANK_MODEL);
    }
    off
}

/// The copies of a panel repeated by a variable: one per picked value,
/// laid side by side (`h`, at most `maxPerRow`, 4 by default) or stacked.
fn repeats(p: &Panel, vars: &[VarValue]) -> Vec<(Panel, Vec<VarValue>)> {
    let Some(var) = p
        .repeat
        .as_deref()
        .and_then(|name| vars.iter().find(|v| v.name == name))
    else {
        return vec![(p.clone(), vars.to_vec())];
    };
    let values: Vec<String> = var.values.iter().take(MAX_REPEATS).cloned().collect();
    if values.is_empty() {
        return vec![(p.clone(), vars.to_vec())];
    }
    let horizontal = p.repeat_direction.as_deref() != Some("v");
    let per_row = p.max_per_row.unwrap_or(4).clamp(1, 24) as usize;
    let width = if horizontal {
        (24 / values.len().min(per_row)).max(1) as u32
    } else {
        p.grid_pos.w
    };
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let mut copy = p.clone();
            if horizontal {
                copy.grid_pos.w = width;
                copy.grid_pos.x = (i % per_row) as u32 * width;
            }
            let scoped = vars
                .iter()
                .map(|v| {
                    if v.name == var.name {
                        VarValue::single(&v.name, value)
                    } else {
                        v.clone()
                    }
                })
                .collect();
            (copy, scoped)
        })
        .collect()
}

/// Rows and their panels in layout order: a row unfolded in Grafana owns
/// the panels below it up to the next row; a folded one carries its own.
fn sections(d: &Dashboard) -> Vec<(Option<Panel>, Vec<Panel>)> {
    let mut top: Vec<&Panel> = d.panels.iter().collect();
    top.sort_by_key(|p| (p.grid_pos.y, p.grid_pos.x));
    let mut out: Vec<(Option<Panel>, Vec<Panel>)> = vec![(None, Vec::new())];
    for p in top {
        if p.kind == "row" {
            let mut inner: Vec<Panel> = p.panels.clone();
            inner.sort_by_key(|p| (p.grid_pos.y, p.grid_pos.x));
            out.push((Some(p.clone()), inner));
        } else if let Some(last) = out.last_mut() {
            last.1.push(p.clone());
        }
    }
    out.retain(|(row, panels)| row.is_some() || !panels.is_empty());
    out
}

async fn render(pages: &Pages, d: &Dashboard, active: &str, ctx: &PageCtx) -> Response {
    let frame = ctx.frame(&d.title, active, true);
    let lang = frame.lang;
    let w = frame.window;
    let mut notes = Vec::new();
    let (views, values) = variables(pages, d, &ctx.params, w, &mut notes, lang).await;
    let iv = Intervals {
        step_ms: w.step,
        range_ms: w.end - w.start,
        scrape_ms: pages.scrape_ms(),
    };
    let links = dashboard_links(pages, d, iv, &values);
    let flat = d.flat_panels();
    let off = sources_off(pages, &flat.iter().collect::<Vec<_>>(), w).await;
    let mut out = Vec::new();
    for (row, panels) in sections(d) {
        if row.as_ref().is_some_and(|r| r.repeat.is_some()) {
            notes.push(
                lang.t("Repeated rows are not supported by infermon; the row is shown once")
                    .to_string(),
            );
        }
        let copies: Vec<(Panel, Vec<VarValue>)> =
            panels.iter().flat_map(|p| repeats(p, &values)).collect();
        // A row whose every panel reads a source that is off is folded, the
        // reason beside its title.
        let row_off = !panels.is_empty()
            && panels
                .iter()
                .all(|p| off.message(panel_source(p)).is_some());
        let note = if row_off {
            panels
                .first()
                .and_then(|p| off.message(panel_source(p)))
                .map(|m| lang.t(m).to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let drawn = futures::future::join_all(copies.iter().map(|(p, vars)| {
            render_panel_in(
                pages.query.as_ref(),
                p,
                PanelScope {
                    window: w,
                    vars,
                    scrape_ms: pages.scrape_ms(),
                    off: &off,
                    lang,
                },
            )
        }))
        .await;
        out.push(Section {
            title: row
                .as_ref()
                .map(|r| interpolate(&r.title, iv, &values, Interpolate::Text))
                .unwrap_or_default(),
            open: !row_off && !row.as_ref().is_some_and(|r| r.collapsed),
            note,
            panels: drawn,
        });
    }
    ctx.html(
        DashboardPage {
            page: frame,
            title: interpolate(&d.title, iv, &values, Interpolate::Text),
            variables: views,
            links,
            notes,
            sections: out,
        }
        .render(),
    )
}
