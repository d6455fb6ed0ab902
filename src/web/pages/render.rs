//! Turns dashboard panels into HTML: runs their queries through the query
//! API and draws SVG charts, stat tiles and tables.

use futures::future::BoxFuture;

use super::grafana::{Interpolate, Intervals, Panel, VarValue, interpolate, legend};
use super::i18n::Lang;
use crate::model::Labels;
use crate::web::charts::{self, ChartSeries, HeatColumn, PALETTE, units};

/// Columns a heatmap is drawn with (its query step is the range over this).
const HEATMAP_COLUMNS: i64 = 60;

/// Points a panel's queries return: like Grafana's `maxDataPoints`, from
/// the panel's width — 10 per grid column, about one every 5–6 px on a
/// 1400 px page (240 across the full width), never under 60. A heatmap
/// draws 60 columns. Fewer points than pixels look the same and cost the
/// query engine proportionally less (a day of a histogram's buckets at 120
/// points takes half the time of 240).
pub fn points_for(panel: &Panel) -> i64 {
    if panel.kind == "heatmap" {
        return HEATMAP_COLUMNS;
    }
    (i64::from(panel.grid_pos.w) * 10).clamp(60, 240)
}

/// A range query result: labels and (ms, value) points.
pub type RangeResult = Vec<(Labels, Vec<(i64, f64)>)>;

/// Why a panel's query gave nothing to draw (shown in the panel).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The engine refused or failed the expression.
    #[error(transparent)]
    Promql(#[from] crate::promql::PromqlError),
    /// A range query of a string expression.
    #[error("a string expression cannot be drawn")]
    NotDrawable,
    /// An instant query of a string expression.
    #[error("string result: {0}")]
    StringResult(String),
}

/// How pages read metrics: PromQL through whatever engine is wired in.
pub trait QueryApi: Send + Sync {
    /// Range query, `[start, end]` every `step` ms.
    fn range(
        &self,
        expr: String,
        start: i64,
        end: i64,
        step: i64,
    ) -> BoxFuture<'static, Result<RangeResult, QueryError>>;
    /// Instant query at `t` ms.
    fn instant(
        &self,
        expr: String,
        t: i64,
    ) -> BoxFuture<'static, Result<Vec<(Labels, f64)>, QueryError>>;
}

/// The time window of a page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Start, ms.
    pub start: i64,
    /// End, ms.
    pub end: i64,
    /// Query step, ms.
    pub step: i64,
}

/// A legend entry.
#[derive(Clone, Debug)]
pub struct LegendItem {
    /// Colour.
    pub color: &'static str,
    /// Text.
    pub name: String,
}

/// A link on a panel or a dashboard, its URL already checked.
#[derive(Clone, Debug)]
pub struct LinkView {
    /// Text.
    pub title: String,
    /// Target (http(s) or a path on this server).
    pub url: String,
    /// Opens in a new tab.
    pub blank: bool,
}

/// A panel ready for the template.
#[derive(Clone, Debug)]
pub struct PanelView {
    /// Title.
    pub title: String,
    /// Panel type.
    pub kind: String,
    /// CSS grid classes from gridPos.
    pub grid: String,
    /// Rendered body (trusted HTML built here, every text escaped).
    pub html: String,
    /// Legend.
    pub legend: Vec<LegendItem>,
    /// Query error, shown instead of the body.
    pub error: Option<String>,
    /// Number of series drawn (tests and the page's data attribute).
    pub series: usize,
    /// Panel links.
    pub links: Vec<LinkView>,
    /// Description (shown as the title's tooltip).
    pub description: String,
    /// What of the panel infermon leaves out (named, never silently).
    pub notes: Vec<String>,
    /// Link to Explore with the panel's query (the page adds its range).
    pub explore: Option<String>,
}

/// Data sources that are off on this box; an empty panel reading one says
/// so instead of showing bare axes. Each holds the message key (see i18n).
#[derive(Clone, Debug, Default)]
pub struct SourcesOff {
    /// No GPU, or the GPU collector off.
    pub gpu: Option<&'static str>,
    /// The host collector off.
    pub host: Option<&'static str>,
    /// No rerank model served.
    pub rerank: Option<&'static str>,
}

/// What a GPU panel says when `infermon_gpu_available` is 0.
pub const NO_GPU: &str = "No NVIDIA GPU detected on this host";
/// What a GPU panel says when `collectors.gpu.enabled` is false.
pub const GPU_COLLECTOR_OFF: &str = "The GPU collector is off (collectors.gpu.enabled: false)";
/// What a host panel says when `collectors.host.enabled` is false.
pub const HOST_COLLECTOR_OFF: &str = "The host collector is off (collectors.host.enabled: false); scrape node_exporter to fill host panels";
/// What the rerank-score panel says without a rerank model.
pub const NO_RERANK_MODEL: &str = "No rerank model is served, so there are no rerank scores";

/// The data source a panel's queries read, when it is one that can be off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// GPU metrics (infermon's or dcgm-exporter's).
    Gpu,
    /// Host metrics (node_exporter's names).
    Host,
    /// Rerank scores.
    Rerank,
}

/// Which switchable source a panel reads, from its queries' metric names.
pub fn panel_source(panel: &Panel) -> Option<Source> {
    let exprs: Vec<String> = panel
        .targets
        .iter()
        .map(|t| t.expr.to_ascii_lowercase())
        .collect();
    let any = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    if any("infermon_gpu_") || any("dcgm_") {
        Some(Source::Gpu)
    } else if any("infermon_rerank_") {
        Some(Source::Rerank)
    } else if any("node_") {
        Some(Source::Host)
    } else {
        None
    }
}

impl SourcesOff {
    /// The message for `source`, when it is off.
    pub fn message(&self, source: Option<Source>) -> Option<&'static str> {
        match source? {
            Source::Gpu => self.gpu,
            Source::Host => self.host,
            Source::Rerank => self.rerank,
        }
    }
}

/// Everything a panel is drawn with besides the panel itself.
#[derive(Clone, Copy, Debug)]
pub struct PanelScope<'a> {
    /// The page's window.
    pub window: Window,
    /// Template variables.
    pub vars: &'a [VarValue],
    /// Scrape interval, ms (`$__rate_interval`).
    pub scrape_ms: i64,
    /// Sources that are off.
    pub off: &'a SourcesOff,
    /// Language.
    pub lang: Lang,
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn grid_classes(p: &Panel) -> String {
    let w = p.grid_pos.w.clamp(1, 24);
    let x = p.grid_pos.x.min(23) + 1;
    let h = p.grid_pos.h.clamp(1, 40);
    format!("w{w} x{x} h{h}")
}

/// A link's URL when it is safe to put in `href`: http(s), or a path,
/// query or fragment on this server (never `javascript:` or `data:`).
pub fn safe_url(url: &str) -> Option<String> {
    let u = url.trim();
    let lower = u.to_ascii_lowercase();
    let ok = lower.starts_with("http://")
        || lower.starts_with("https://")
        || (u.starts_with('/') && !u.starts_with("//"))
        || u.starts_with('?')
        || u.starts_with('#');
    (ok && !u.chars().any(char::is_control)).then(|| u.to_string())
}

/// Panel types infermon draws.
pub const SUPPORTED_KINDS: [&str; 13] = [
    "timeseries",
    "graph",
    "stat",
    "singlestat",
    "gauge",
    "bargauge",
    "heatmap",
    "histogram",
    "barchart",
    "table",
    "table-old",
    "row",
    "text",
];

/// Renders one panel with single-valued variables (`All`: every value)
/// and every source assumed on (Explore and tests).
pub async fn render_panel(
    q: &dyn QueryApi,
    panel: &Panel,
    w: Window,
    vars: &[(String, String)],
    lang: Lang,
) -> PanelView {
    let vars: Vec<VarValue> = vars
        .iter()
        .map(|(n, v)| VarValue {
            all: v == "All" || v == "$__all",
            ..VarValue::single(n, v)
        })
        .collect();
    let off = SourcesOff::default();
    render_panel_in(
        q,
        panel,
        PanelScope {
            window: w,
            vars: &vars,
            scrape_ms: 15_000,
            off: &off,
            lang,
        },
    )
    .await
}

/// How a stat, gauge or bar gauge reduces a series to one value
/// (`options.reduceOptions.calcs`, Grafana's default `lastNotNull`).
fn reduce(points: &[(i64, f64)], calc: &str) -> Option<f64> {
    let vals: Vec<f64> = points.iter().map(|p| p.1).filter(|v| !v.is_nan()).collect();
    let last = vals.last().copied();
    match calc {
        "mean" => (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64),
        "max" => vals.iter().copied().reduce(f64::max),
        "min" => vals.iter().copied().reduce(f64::min),
        "sum" => (!vals.is_empty()).then(|| vals.iter().sum()),
        "first" | "firstNotNull" => vals.first().copied(),
        "count" => Some(vals.len() as f64),
        "range" => vals
            .iter()
            .copied()
            .reduce(f64::max)
            .zip(vals.iter().copied().reduce(f64::min))
            .map(|(a, b)| a - b),
        "delta" | "diff" => vals.first().zip(last).map(|(a, b)| b - a),
        _ => last,
    }
}

/// Renders one panel. A panel type or data source infermon does not draw
/// becomes a placeholder naming it.
pub async fn render_panel_in(q: &dyn QueryApi, panel: &Panel, scope: PanelScope<'_>) -> PanelView {
    let lang = scope.lang;
    let w = scope.window;
    let mut view = PanelView {
        title: panel.title.clone(),
        kind: panel.kind.clone(),
        grid: grid_classes(panel),
        html: String::new(),
        legend: Vec::new(),
        error: None,
        series: 0,
        links: Vec::new(),
        description: panel.description.clone().unwrap_or_default(),
        notes: Vec::new(),
        explore: None,
    };
    let unit = panel.unit();
    let defaults = &panel.field_config.defaults;
    let decimals = defaults.decimals;
    let fmt_value = |v: f64| units::format_decimals(v, &unit, decimals);
    if !SUPPORTED_KINDS.contains(&panel.kind.as_str()) {
        view.html = format!(
            r#"<div class="placeholder">{}</div>"#,
            esc(&lang
                .t("Panel type '{kind}' is not supported by infermon")
                .replace("{kind}", &panel.kind))
        );
        return view;
    }
    if !panel.is_prometheus() {
        view.html = format!(
            r#"<div class="placeholder">{}</div>"#,
            esc(&lang
                .t("Data source '{source}' is not supported by infermon (Prometheus queries only)")
                .replace("{source}", &panel.datasource_name()))
        );
        return view;
    }
    let w = Window {
        step: charts::query_step(w.end - w.start, points_for(panel)),
        ..w
    };
    let iv = Intervals {
        step_ms: w.step,
        range_ms: w.end - w.start,
        scrape_ms: scope.scrape_ms,
    };
    view.title = interpolate(&panel.title, iv, scope.vars, Interpolate::Text);
    view.links = panel
        .links
        .iter()
        .filter_map(|l| {
            safe_url(&interpolate(&l.url, iv, scope.vars, Interpolate::Url)).map(|url| LinkView {
                title: if l.title.is_empty() {
                    url.clone()
                } else {
                    interpolate(&l.title, iv, scope.vars, Interpolate::Text)
                },
                url,
                blank: l.target_blank,
            })
        })
        .collect();
    if !panel.transformations.is_empty() {
        view.notes.push(
            lang.t("Transformations are not supported by infermon; shown without them")
                .to_string(),
        );
    }
    let targets: Vec<_> = panel
        .targets
        .iter()
        .filter(|t| !t.hide && !t.expr.trim().is_empty())
        .collect();
    let exprs: Vec<(String, String)> = targets
        .iter()
        .map(|t| {
            (
                interpolate(&t.expr, iv, scope.vars, Interpolate::Query),
                t.legend_format.clone(),
            )
        })
        .collect();
    view.explore = super::explore::panel_href(&exprs);
    // A panel's queries run at once (each on the blocking pool), in target order.
    let ranged = matches!(
        panel.kind.as_str(),
        "timeseries" | "graph" | "heatmap" | "stat" | "singlestat" | "gauge" | "bargauge"
    );
    let ranges: Vec<Result<RangeResult, QueryError>> = if ranged {
        futures::future::join_all(
            exprs
                .iter()
                .take(if panel.kind == "heatmap" {
                    1
                } else {
                    usize::MAX
                })
                .map(|(e, _)| q.range(e.clone(), w.start, w.end, w.step)),
        )
        .await
    } else {
        Vec::new()
    };
    let instants: Vec<Result<Vec<(Labels, f64)>, QueryError>> =
        if ranged || matches!(panel.kind.as_str(), "row" | "text") {
            Vec::new()
        } else {
            futures::future::join_all(exprs.iter().map(|(e, _)| q.instant(e.clone(), w.end))).await
        };
    let steps = panel.threshold_steps();
    match panel.kind.as_str() {
        "row" => {}
        "text" => {
            let content = panel
                .options
                .get("content")
                .and_then(|c| c.as_str())
                .map(str::to_string)
                .or_else(|| panel.content.clone())
                .unwrap_or_default();
            let content = interpolate(&content, iv, scope.vars, Interpolate::Text);
            let mode = panel
                .options
                .get("mode")
                .and_then(|m| m.as_str())
                .unwrap_or("markdown");
            view.html = match mode {
                "markdown" => format!(r#"<div class="text-panel">{}</div>"#, markdown(&content)),
                _ => {
                    if mode == "html" {
                        view.notes.push(
                            lang.t("HTML text panels are shown as plain text")
                                .to_string(),
                        );
                    }
                    format!(r#"<pre class="text-panel">{}</pre>"#, esc(&content))
                }
            };
        }
        "timeseries" | "graph" => {
            let mut series = Vec::new();
            for ((expr, fmt), result) in exprs.iter().zip(ranges) {
                match result {
                    Ok(result) => {
                        for (labels, points) in result {
                            series.push(ChartSeries {
                                name: series_name(fmt, &labels, expr),
                                points,
                            });
                        }
                    }
                    Err(e) => view.error = Some(e.to_string()),
                }
            }
            view.series = series.len();
            view.legend = series
                .iter()
                .enumerate()
                .map(|(i, s)| LegendItem {
                    color: PALETTE[i % PALETTE.len()],
                    name: s.name.clone(),
                })
                .collect();
            // `decimals` also fixes the axis labels, as in Grafana.
            view.html = units::with_decimals(decimals, || {
                charts::time_series_bounded(
                    &charts::TimeSeriesChart {
                        series: &series,
                        start: w.start,
                        end: w.end,
                        step: w.step,
                        unit: &unit,
                        thresholds: &panel.thresholds(),
                        stacked: panel.stacked(),
                    },
                    defaults.min,
                    defaults.max,
                )
            });
        }
        "stat" | "singlestat" | "gauge" | "bargauge" => {
            let calc = panel
                .options
                .pointer("/reduceOptions/calcs/0")
                .and_then(|c| c.as_str())
                .unwrap_or("lastNotNull")
                .to_string();
            let sparkline = matches!(panel.kind.as_str(), "stat" | "singlestat")
                && panel.options.get("graphMode").and_then(|m| m.as_str()) != Some("none");
            // (name, reduced value, points for the sparkline)
            let mut values: Vec<Reduced> = Vec::new();
            let mut empty = false;
            for ((_, fmt), result) in exprs.iter().zip(ranges) {
                match result {
                    Ok(result) if result.is_empty() => empty = true,
                    Ok(result) => {
                        let single = result.len() == 1;
                        for (labels, points) in result {
                            let Some(v) = reduce(&points, &calc) else {
                                empty = true;
                                continue;
                            };
                            let name = if fmt.is_empty() && single {
                                String::new()
                            } else {
                                legend(fmt, &labels)
                            };
                            values.push((name, v, points));
                        }
                    }
                    Err(e) => view.error = Some(e.to_string()),
                }
            }
            view.series = values.len();
            let mut body = String::new();
            for (i, (name, v, points)) in values.iter().enumerate() {
                let color = step_color(&steps, *v);
                match panel.kind.as_str() {
                    "gauge" => body.push_str(&charts::gauge(
                        *v,
                        &fmt_value(*v),
                        name,
                        gauge_bounds(panel, &unit, *v).0,
                        gauge_bounds(panel, &unit, *v).1,
                        color,
                    )),
                    "bargauge" => {
                        let (lo, hi) = gauge_bounds(panel, &unit, *v);
                        body.push_str(&charts::bar_gauge(*v, &fmt_value(*v), name, lo, hi, color))
                    }
                    _ => {
                        // Coloured by the threshold step reached (its colour name),
                        // else by how many thresholds the value passed.
                        let level = if steps.is_empty() {
                            format!(
                                "level{}",
                                panel.thresholds().iter().filter(|t| *v >= **t).count()
                            )
                        } else {
                            format!("tc-{}", color_class(color))
                        };
                        let spark = if sparkline {
                            charts::sparkline(points, w.start, w.end, PALETTE[i % PALETTE.len()])
                        } else {
                            String::new()
                        };
                        body.push_str(&format!(
                            r#"<div class="stat {level}" data-value="{v}"><span class="value">{}</span><span class="name">{}</span>{spark}</div>"#,
                            esc(&fmt_value(*v)),
                            esc(name)
                        ));
                    }
                }
            }
            if values.is_empty() && (empty || exprs.is_empty()) {
                body.push_str(&format!(
                    r#"<div class="stat nodata">{}</div>"#,
                    lang.t("No data")
                ));
            }
            let class = if panel.kind == "bargauge" {
                "bargauges"
            } else {
                "stats"
            };
            view.html = format!(r#"<div class="{class}">{body}</div>"#);
        }
        "heatmap" => {
            if let Some(result) = ranges.into_iter().next() {
                match result {
                    Ok(result) => {
                        let (bounds, columns) = heat_columns(&result);
                        view.series = bounds.len();
                        view.html = charts::heatmap(&bounds, &columns, w.start, w.end, &unit);
                    }
                    Err(e) => view.error = Some(e.to_string()),
                }
            }
        }
        "histogram" | "barchart" => {
            let mut items = Vec::new();
            for ((_, fmt), result) in exprs.iter().zip(instants) {
                match result {
                    Ok(result) => {
                        let mut pairs: Vec<(f64, String, f64)> = result
                            .into_iter()
                            .map(|(l, v)| {
                                let le = l
                                    .get("le")
                                    .and_then(|x| x.parse::<f64>().ok())
                                    .unwrap_or(f64::NAN);
                                (le, legend(fmt, &l), v)
                            })
                            .collect();
                        if pairs.iter().all(|p| !p.0.is_nan()) {
                            pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                            let own = charts::decumulate(
                                &pairs.iter().map(|p| (p.0, p.2)).collect::<Vec<_>>(),
                            );
                            items.extend(own.into_iter().map(|(le, c)| {
                                (
                                    if le.is_infinite() {
                                        "+Inf".to_string()
                                    } else {
                                        format!("≤{}", units::format(le, "short"))
                                    },
                                    c,
                                )
                            }));
                        } else {
                            items.extend(pairs.into_iter().map(|p| (p.1, p.2)));
                        }
                    }
                    Err(e) => view.error = Some(e.to_string()),
                }
            }
            view.series = items.len();
            view.html = charts::bars(&items, "short");
        }
        "table" | "table-old" => {
            let mut rows: Vec<(Labels, f64)> = Vec::new();
            for result in instants {
                match result {
                    Ok(result) => rows.extend(result),
                    Err(e) => view.error = Some(e.to_string()),
                }
            }
            view.series = rows.len();
            view.html = table(&rows, lang, &fmt_value);
        }
        _ => {}
    }
    // An empty panel says so in words instead of showing bare axes: why,
    // when its source is off on this box.
    let drawn = !matches!(panel.kind.as_str(), "row" | "text");
    if drawn && view.series == 0 && view.error.is_none() {
        let note = match scope.off.message(panel_source(panel)) {
            Some(reason) => Some(reason),
            None if matches!(
                panel.kind.as_str(),
                "stat" | "singlestat" | "gauge" | "bargauge"
            ) =>
            {
                None
            }
            None if panel_source(panel) == Some(Source::Gpu) => Some(NO_GPU_DATA),
            None => Some("No data"),
        };
        if let Some(note) = note {
            let off = scope.off.message(panel_source(panel)).is_some();
            if off && !matches!(panel.kind.as_str(), "timeseries" | "graph" | "heatmap") {
                // Stats, tables and bars have nothing worth keeping beside the reason.
                view.html.clear();
            }
            view.html = format!(
                r#"<div class="nodata-note{}">{}</div>{}"#,
                if off { " source-off" } else { "" },
                esc(lang.t(note)),
                view.html
            );
        }
    }
    view
}

/// A series reduced to one value: (legend, value, its points).
type Reduced = (String, f64, Vec<(i64, f64)>);

/// A series' legend: the template applied, else its labels; a series
/// without labels (an aggregate) is named by its query, as Grafana does.
fn series_name(fmt: &str, labels: &Labels, expr: &str) -> String {
    if fmt.trim().is_empty() && labels.is_empty() {
        return expr.to_string();
    }
    legend(fmt, labels)
}

/// A table of instant values: one column per label (Grafana's table
/// format), then the value.
fn table(rows: &[(Labels, f64)], lang: Lang, fmt_value: &dyn Fn(f64) -> String) -> String {
    let mut columns: Vec<String> = Vec::new();
    for (labels, _) in rows {
        for l in labels.iter() {
            if !columns.contains(&l.name) {
                columns.push(l.name.to_string());
            }
        }
    }
    columns.sort_by_key(|c| (c != "__name__", c.clone()));
    let mut html = String::from(r#"<table class="data"><thead><tr>"#);
    for c in &columns {
        let head = if c == "__name__" {
            lang.t("Metric")
        } else {
            c.as_str()
        };
        html.push_str(&format!("<th>{}</th>", esc(head)));
    }
    html.push_str(&format!(
        r#"<th class="num">{}</th></tr></thead><tbody>"#,
        lang.t("Value")
    ));
    for (labels, v) in rows {
        html.push_str("<tr>");
        for c in &columns {
            html.push_str(&format!("<td>{}</td>", esc(labels.get(c).unwrap_or(""))));
        }
        html.push_str(&format!(
            r#"<td class="num" data-value="{v}">{}</td></tr>"#,
            esc(&fmt_value(*v))
        ));
    }
    html.push_str("</tbody></table>");
    html
}

/// The scale of a gauge: `fieldConfig.defaults.min`/`max`, else 0 and 1
/// (`percentunit`), 100 (`percent`), or the larger of the highest threshold
/// and the value.
fn gauge_bounds(panel: &Panel, unit: &str, v: f64) -> (f64, f64) {
    let d = &panel.field_config.defaults;
    let lo = d.min.unwrap_or(0.0);
    let hi = d.max.unwrap_or_else(|| match unit {
        "percentunit" => 1.0,
        "percent" => 100.0,
        _ => panel
            .thresholds()
            .into_iter()
            .fold(v.max(lo + 1.0), f64::max)
            .max(100.0_f64.min(v.max(1.0) * 1.25)),
    });
    (lo, hi.max(lo + f64::EPSILON))
}

/// The colour of the highest threshold step `v` reaches (Grafana's colour names or hex).
fn step_color(steps: &[(Option<f64>, String)], v: f64) -> &'static str {
    let picked = steps
        .iter()
        .rfind(|(at, _)| at.is_none_or(|t| v >= t))
        .map(|(_, c)| c.as_str())
        .unwrap_or("green");
    named_color(picked)
}

/// The stylesheet's class word for a colour from [`named_color`].
fn color_class(hex: &str) -> &'static str {
    match hex {
        "#37872d" => "green",
        "#c4162a" => "red",
        "#e0752d" => "orange",
        "#cca300" => "yellow",
        "#8f3bb8" => "purple",
        _ => "blue",
    }
}

/// Grafana's colour names as hex (the palette of the stylesheet); an
/// unknown name is the neutral blue.
fn named_color(name: &str) -> &'static str {
    let n = name
        .trim_start_matches("dark-")
        .trim_start_matches("semi-dark-");
    let n = n
        .trim_start_matches("light-")
        .trim_start_matches("super-light-");
    match n {
        "green" => "#37872d",
        "red" => "#c4162a",
        "orange" => "#e0752d",
        "yellow" => "#cca300",
        "purple" => "#8f3bb8",
        "blue" | "text" => "#3274d9",
        _ => "#3274d9",
    }
}

/// Markdown as Grafana's text panels use it, rendered safely: every text is
/// escaped first, then headings, lists, paragraphs, `**bold**`, `*italic*`,
/// `` `code` `` and `[links](url)` (http(s) and paths only) are marked up.
pub fn markdown(src: &str) -> String {
    let mut html = String::new();
    let mut in_list = false;
    let mut para: Vec<String> = Vec::new();
    let flush = |html: &mut String, para: &mut Vec<String>| {
        if !para.is_empty() {
            html.push_str(&format!("<p>{}</p>", para.join(" ")));
            para.clear();
        }
    };
    for line in src.lines() {
        let t = line.trim();
        let item = t.strip_prefix("- ").or_else(|| t.strip_prefix("* "));
        if item.is_none() && in_list {
            html.push_str("</ul>");
            in_list = false;
        }
        if t.is_empty() {
            flush(&mut html, &mut para);
        } else if let Some(item) = item {
            flush(&mut html, &mut para);
            if !in_list {
                html.push_str("<ul>");
                in_list = true;
            }
            html.push_str(&format!("<li>{}</li>", inline_markdown(item)));
        } else if t.starts_with('#') {
            flush(&mut html, &mut para);
            let level = t.chars().take_while(|c| *c == '#').count().min(6);
            let text = t[level..].trim();
            // Headings sit under the panel's own h3.
            let h = (level + 3).min(6);
            html.push_str(&format!("<h{h}>{}</h{h}>", inline_markdown(text)));
        } else {
            para.push(inline_markdown(t));
        }
    }
    flush(&mut html, &mut para);
    if in_list {
        html.push_str("</ul>");
    }
    html
}

/// Inline markdown of one escaped line.
fn inline_markdown(text: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let find = |from: usize, pat: &str| -> Option<usize> {
        let p: Vec<char> = pat.chars().collect();
        (from..chars.len()).find(|&j| chars[j..].starts_with(&p))
    };
    let s = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    while i < chars.len() {
        let c = chars[i];
        if c == '`'
            && let Some(j) = find(i + 1, "`")
        {
            out.push_str(&format!("<code>{}</code>", esc(&s(i + 1, j))));
            i = j + 1;
        } else if chars[i..].starts_with(&['*', '*'])
            && let Some(j) = find(i + 2, "**")
        {
            out.push_str(&format!(
                "<strong>{}</strong>",
                inline_markdown(&s(i + 2, j))
            ));
            i = j + 2;
        } else if c == '*'
            && let Some(j) = find(i + 1, &c.to_string())
            && j > i + 1
        {
            out.push_str(&format!("<em>{}</em>", inline_markdown(&s(i + 1, j))));
            i = j + 1;
        } else if c == '['
            && let Some(j) = find(i + 1, "](")
            && let Some(k) = find(j + 2, ")")
        {
            let label = s(i + 1, j);
            match safe_url(&s(j + 2, k)) {
                Some(url) => out.push_str(&format!(
                    r#"<a href="{}">{}</a>"#,
                    esc(&url),
                    inline_markdown(&label)
                )),
                None => out.push_str(&esc(&label)),
            }
            i = k + 1;
        } else {
            out.push_str(&esc(&c.to_string()));
            i += 1;
        }
    }
    out
}

/// What an empty GPU panel says while it is not known whether this box has a GPU.
pub const NO_GPU_DATA: &str = "No GPU metrics were collected. infermon reads GPUs through NVIDIA's NVML: on a box without an NVIDIA GPU and its driver, GPU panels stay empty.";

/// Bucket series (`le` label, cumulative per point) into heatmap columns.
pub fn heat_columns(result: &RangeResult) -> (Vec<f64>, Vec<HeatColumn>) {
    let mut by_le: Vec<(f64, &Vec<(i64, f64)>)> = result
        .iter()
        .filter_map(|(l, pts)| {
            l.get("le")
                .and_then(|le| le.parse::<f64>().ok())
                .map(|le| (le, pts))
        })
        .collect();
    by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bounds: Vec<f64> = by_le.iter().map(|b| b.0).collect();
    let mut times: Vec<i64> = by_le
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .collect();
    times.sort_unstable();
    times.dedup();
    let columns = times
        .into_iter()
        .map(|t| {
            let cumulative: Vec<(f64, f64)> = by_le
                .iter()
                .map(|(le, pts)| {
                    (
                        *le,
                        pts.iter()
                            .find(|p| p.0 == t)
                            .map(|p| p.1)
                            .filter(|v| !v.is_nan())
                            .unwrap_or(0.0),
                    )
                })
                .collect();
            HeatColumn {
                t,
                counts: charts::decumulate(&cumulative)
                    .into_iter()
                    .map(|x| x.1)
                    .collect(),
            }
        })
        .collect();
    (bounds, columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_escaped_before_it_is_marked_up() {
        let html = markdown(
            "# Runbook\nSee **the <b>guide</b>** and `a<b`.\n\n- [docs](https://x.io/?a=1&b=2)\n- [bad](javascript:void)\n<script>alert(1)</script> infermon_gpu_available",
        );
        assert!(html.contains("<h4>Runbook</h4>"), "{html}");
        assert!(
            html.contains("<strong>the &lt;b&gt;guide&lt;/b&gt;</strong>"),
            "{html}"
        );
        assert!(html.contains("<code>a&lt;b</code>"), "{html}");
        assert!(
            html.contains(r#"<li><a href="https://x.io/?a=1&amp;b=2">docs</a></li>"#),
            "{html}"
        );
        assert!(
            html.contains("<li>bad</li>"),
            "javascript: links lose their link: {html}"
        );
        assert!(
            !html.contains("<script") && html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("infermon_gpu_available"),
            "underscores are not emphasis: {html}"
        );
    }

    #[test]
    fn threshold_steps_pick_their_colour() {
        let steps = vec![
            (None, "green".to_string()),
            (Some(0.8), "orange".to_string()),
            (Some(0.9), "dark-red".to_string()),
        ];
        assert_eq!(color_class(step_color(&steps, 0.39)), "green");
        assert_eq!(color_class(step_color(&steps, 0.85)), "orange");
        assert_eq!(color_class(step_color(&steps, 0.95)), "red");
        assert_eq!(step_color(&[], 1.0), "#37872d");
    }

    #[test]
    fn panels_know_their_switchable_source() {
        let panel = |expr: &str| Panel {
            targets: vec![crate::web::pages::grafana::Target {
                expr: expr.into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            panel_source(&panel("infermon_gpu_power_watts")),
            Some(Source::Gpu)
        );
        assert_eq!(
            panel_source(&panel("DCGM_FI_DEV_GPU_UTIL")),
            Some(Source::Gpu)
        );
        assert_eq!(
            panel_source(&panel("rate(node_cpu_seconds_total[1m])")),
            Some(Source::Host)
        );
        assert_eq!(
            panel_source(&panel("infermon_rerank_score_bucket")),
            Some(Source::Rerank)
        );
        assert_eq!(panel_source(&panel("up")), None);
        assert_eq!(safe_url("javascript:alert(1)"), None);
        assert_eq!(safe_url("//evil.example/x"), None);
        assert_eq!(safe_url("/explore?q=up").as_deref(), Some("/explore?q=up"));
    }

    #[test]
    fn points_follow_the_panel_width() {
        let panel = |kind: &str, w: u32| Panel {
            kind: kind.into(),
            grid_pos: crate::web::pages::grafana::GridPos {
                h: 8,
                w,
                x: 0,
                y: 0,
            },
            ..Default::default()
        };
        assert_eq!(points_for(&panel("timeseries", 24)), 240);
        assert_eq!(points_for(&panel("timeseries", 12)), 120);
        assert_eq!(points_for(&panel("graph", 3)), 60, "never under 60");
        assert_eq!(points_for(&panel("timeseries", 40)), 240, "nor over 240");
        assert_eq!(points_for(&panel("heatmap", 24)), 60);
    }

    #[test]
    fn heat_columns_decumulate_per_time_in_bound_order() {
        let at = |pts: &[(i64, f64)]| pts.to_vec();
        let result: RangeResult = vec![
            (
                Labels::new([("le", "+Inf")]),
                at(&[(0, 10.0), (60, 12.0), (120, 3.0)]),
            ),
            (Labels::new([("le", "0.5")]), at(&[(0, 4.0), (60, 9.0)])),
            (
                Labels::new([("le", "0.1")]),
                at(&[(0, 1.0), (60, f64::NAN), (120, 1.0)]),
            ),
            // Not a bucket series: ignored.
            (Labels::new([("job", "x")]), at(&[(0, 99.0)])),
        ];
        let (bounds, columns) = heat_columns(&result);
        assert_eq!(bounds, vec![0.1, 0.5, f64::INFINITY]);
        assert_eq!(
            columns,
            vec![
                HeatColumn {
                    t: 0,
                    counts: vec![1.0, 3.0, 6.0]
                },
                // NaN counts as nothing in its bucket.
                HeatColumn {
                    t: 60,
                    counts: vec![0.0, 9.0, 3.0]
                },
                // A bucket missing at a time (0.5 at 120): its share goes to
                // the next bound that has one; never negative.
                HeatColumn {
                    t: 120,
                    counts: vec![1.0, 0.0, 2.0]
                },
            ]
        );
        assert_eq!(heat_columns(&Vec::new()), (Vec::new(), Vec::new()));
    }
}
