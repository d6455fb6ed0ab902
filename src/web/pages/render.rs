//! Turns dashboard panels into HTML: runs their queries through the query
//! API and draws SVG charts, stat tiles and tables.

use futures::future::BoxFuture;

use super::grafana::{Panel, legend, substitute};
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
    /// Link to Explore with the panel's query (the page adds its range).
    pub explore: Option<String>,
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

/// Renders one panel.
pub async fn render_panel(
    q: &dyn QueryApi,
    panel: &Panel,
    w: Window,
    vars: &[(String, String)],
    lang: Lang,
) -> PanelView {
    let mut view = PanelView {
        title: panel.title.clone(),
        kind: panel.kind.clone(),
        grid: grid_classes(panel),
        html: String::new(),
        legend: Vec::new(),
        error: None,
        series: 0,
        explore: None,
    };
    let unit = panel.unit();
    let targets: Vec<_> = panel
        .targets
        .iter()
        .filter(|t| !t.hide && !t.expr.trim().is_empty())
        .collect();
    let supported = matches!(
        panel.kind.as_str(),
        "timeseries"
            | "graph"
            | "stat"
            | "singlestat"
            | "gauge"
            | "bargauge"
            | "heatmap"
            | "histogram"
            | "barchart"
            | "table"
            | "row"
            | "text"
    );
    if !supported || !panel.is_prometheus() {
        let what = if supported {
            format!("{} (non-Prometheus data source)", panel.kind)
        } else {
            panel.kind.clone()
        };
        view.html = format!(
            r#"<div class="placeholder">{}: {}</div>"#,
            lang.t("Unsupported panel type"),
            esc(&what)
        );
        return view;
    }
    let w = Window {
        step: charts::query_step(w.end - w.start, points_for(panel)),
        ..w
    };
    let exprs: Vec<(String, String)> = targets
        .iter()
        .map(|t| {
            (
                substitute(&t.expr, w.step, w.end - w.start, vars),
                t.legend_format.clone(),
            )
        })
        .collect();
    view.explore = super::explore::panel_href(&exprs);
    // A panel's queries run at once (each on the blocking pool), in target order.
    let ranged = matches!(panel.kind.as_str(), "timeseries" | "graph" | "heatmap");
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
    let instants: Vec<Result<Vec<(Labels, f64)>, QueryError>> = if ranged || panel.kind == "row" {
        Vec::new()
    } else {
        futures::future::join_all(exprs.iter().map(|(e, _)| q.instant(e.clone(), w.end))).await
    };
    match panel.kind.as_str() {
        "row" | "text" => {}
        "timeseries" | "graph" => {
            let mut series = Vec::new();
            for ((_, fmt), result) in exprs.iter().zip(ranges) {
                match result {
                    Ok(result) => {
                        for (labels, points) in result {
                            series.push(ChartSeries {
                                name: legend(fmt, &labels),
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
            view.html = charts::time_series(&charts::TimeSeriesChart {
                series: &series,
                start: w.start,
                end: w.end,
                step: w.step,
                unit: &unit,
                thresholds: &panel.thresholds(),
                stacked: panel.stacked(),
            });
        }
        "stat" | "singlestat" | "gauge" | "bargauge" => {
            let mut tiles = String::new();
            for ((_, fmt), result) in exprs.iter().zip(instants) {
                match result {
                    Ok(result) if result.is_empty() => {
                        tiles.push_str(&format!(
                            r#"<div class="stat nodata">{}</div>"#,
                            lang.t("No data")
                        ));
                    }
                    Ok(result) => {
                        for (labels, v) in result {
                            view.series += 1;
                            let level = panel.thresholds().iter().filter(|t| v >= **t).count();
                            let name = if fmt.is_empty() && labels.len() <= 1 {
                                String::new()
                            } else {
                                legend(fmt, &labels)
                            };
                            tiles.push_str(&format!(
                                r#"<div class="stat level{level}" data-value="{v}"><span class="value">{}</span><span class="name">{}</span></div>"#,
                                esc(&units::format(v, &unit)),
                                esc(&name)
                            ));
                        }
                    }
                    Err(e) => view.error = Some(e.to_string()),
                }
            }
            view.html = format!(r#"<div class="stats">{tiles}</div>"#);
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
        "table" => {
            let mut rows = String::new();
            for ((_, fmt), result) in exprs.iter().zip(instants) {
                match result {
                    Ok(result) => {
                        for (labels, v) in result {
                            view.series += 1;
                            rows.push_str(&format!(
                                "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
                                esc(&legend(fmt, &labels)),
                                esc(&units::format(v, &unit))
                            ));
                        }
                    }
                    Err(e) => view.error = Some(e.to_string()),
                }
            }
            view.html = format!(
                r#"<table class="data"><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>{rows}</tbody></table>"#,
                lang.t("Labels"),
                lang.t("Value")
            );
        }
        _ => {}
    }
    // An empty chart says so in words instead of showing bare axes; GPU
    // panels say why they are empty on a box without NVIDIA's NVML.
    let charted = matches!(
        panel.kind.as_str(),
        "timeseries" | "graph" | "heatmap" | "histogram" | "barchart" | "table"
    );
    if charted && view.series == 0 && view.error.is_none() {
        let gpu = exprs
            .iter()
            .any(|(e, _)| e.to_ascii_lowercase().contains("gpu"));
        let note = if gpu { NO_GPU_DATA } else { "No data" };
        view.html = format!(
            r#"<div class="nodata-note">{}</div>{}"#,
            esc(lang.t(note)),
            view.html
        );
    }
    view
}

/// What an empty GPU panel says.
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
