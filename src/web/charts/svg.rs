//! SVG charts drawn on the server: time series (lines or stacked areas),
//! heatmaps and bar charts. Pages work without JavaScript; the small script
//! in `static/app.js` only adds tooltips, zoom and refresh on top.

use std::fmt::Write;

use super::scale::{nice_ticks, time_ticks};
use super::units;

/// Series colours, readable on white and in grey-scale print.
pub const PALETTE: [&str; 10] = [
    "#3274d9", "#e0752d", "#37872d", "#c4162a", "#8f3bb8", "#1f78c1", "#b877d9", "#705da0",
    "#508642", "#cca300",
];

/// One line of a time-series chart; NaN values are gaps.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartSeries {
    /// Legend text.
    pub name: String,
    /// (milliseconds, value), time-ordered.
    pub points: Vec<(i64, f64)>,
}

/// What a time-series chart shows.
pub struct TimeSeriesChart<'a> {
    /// The lines.
    pub series: &'a [ChartSeries],
    /// Range start, ms.
    pub start: i64,
    /// Range end, ms.
    pub end: i64,
    /// Query step, ms: points further apart than 1.5 steps are a gap.
    pub step: i64,
    /// Unit of the values (see [`units::format`]).
    pub unit: &'a str,
    /// Dashed horizontal lines (alert thresholds).
    pub thresholds: &'a [f64],
    /// Stack the series as areas.
    pub stacked: bool,
}

const W: f64 = 600.0;
const H: f64 = 200.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;

/// A chart's accessible name (escaped): what it draws, by the names a
/// reader also finds in its legend — the first 8, then how many more.
fn alt_text<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.filter(|n| !n.is_empty()).collect();
    let mut text = names.iter().take(8).copied().collect::<Vec<_>>().join(", ");
    if names.len() > 8 {
        let _ = write!(text, " … (+{})", names.len() - 8);
    }
    if text.is_empty() {
        text.push('–');
    }
    esc(&text)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Splits points into runs without gaps (NaN, or a jump over 1.5 steps).
pub fn segments(points: &[(i64, f64)], step: i64) -> Vec<Vec<(i64, f64)>> {
    let mut out: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut current: Vec<(i64, f64)> = Vec::new();
    let mut last_t: Option<i64> = None;
    for &(t, v) in points {
        let gap = v.is_nan() || last_t.is_some_and(|lt| (t - lt) as f64 > 1.5 * step.max(1) as f64);
        if gap && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if !v.is_nan() {
            current.push((t, v));
            last_t = Some(t);
        } else {
            last_t = None;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Renders a time-series chart as an SVG element.
pub fn time_series(c: &TimeSeriesChart) -> String {
    time_series_bounded(c, None, None)
}

/// [`time_series`] with a fixed bottom and/or top of the value axis
/// (Grafana's `fieldConfig.defaults.min`/`max`); values outside are clipped.
pub fn time_series_bounded(c: &TimeSeriesChart, min: Option<f64>, max: Option<f64>) -> String {
    // Stacked: each series drawn on top of the sum of those before it.
    let drawn: Vec<ChartSeries> = if c.stacked {
        let mut acc: std::collections::BTreeMap<i64, f64> = Default::default();
        c.series
            .iter()
            .map(|s| ChartSeries {
                name: s.name.clone(),
                points: s
                    .points
                    .iter()
                    .map(|&(t, v)| {
                        if v.is_nan() {
                            (t, v)
                        } else {
                            let e = acc.entry(t).or_insert(0.0);
                            *e += v;
                            (t, *e)
                        }
                    })
                    .collect(),
            })
            .collect()
    } else {
        c.series.to_vec()
    };
    let values = drawn
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(c.thresholds.iter().copied());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if lo > 0.0 {
        lo = 0.0;
    }
    if let Some(m) = min.filter(|m| m.is_finite()) {
        lo = m;
        hi = hi.max(m);
    }
    if let Some(m) = max.filter(|m| m.is_finite() && *m > lo) {
        hi = m;
    }
    let ticks: Vec<f64> = nice_ticks(lo, hi, 4)
        .into_iter()
        .filter(|t| min.is_none_or(|m| *t >= m) && max.is_none_or(|m| *t <= m))
        .collect();
    let ticks = if ticks.is_empty() {
        vec![lo, hi]
    } else {
        ticks
    };
    let (y0, y1) = (
        min.filter(|m| m.is_finite()).unwrap_or(ticks[0]),
        max.filter(|m| m.is_finite() && *m > lo)
            .unwrap_or(*ticks.last().unwrap_or(&1.0)),
    );
    let clip = |v: f64| v.clamp(y0.min(y1), y0.max(y1));
    let span_t = (c.end - c.start).max(1) as f64;
    let x = |t: i64| LEFT + (t - c.start) as f64 / span_t * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - (v - y0) / (y1 - y0).max(f64::MIN_POSITIVE)) * (H - TOP - BOTTOM);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" preserveAspectRatio="none" role="img" aria-label="{}" data-start="{}" data-end="{}" data-unit="{}" data-step="{}">"#,
        alt_text(c.series.iter().map(|s| s.name.as_str())),
        c.start,
        c.end,
        esc(c.unit),
        c.step
    );
    for v in &ticks {
        let yy = y(*v);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text class="ylabel" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 4.0,
            yy + 3.5,
            esc(&units::format(*v, c.unit))
        );
    }
    for t in time_ticks(c.start, c.end, 6) {
        let xx = x(t);
        let _ = write!(
            svg,
            r#"<text class="xlabel" x="{xx:.1}" y="{}" text-anchor="middle" data-ts="{t}">{}</text>"#,
            H - 6.0,
            chrono::DateTime::from_timestamp_millis(t)
                .map(|d| d.format("%H:%M").to_string())
                .unwrap_or_default()
        );
    }
    for (i, s) in drawn.iter().enumerate().rev() {
        let color = PALETTE[i % PALETTE.len()];
        let mut d = String::new();
        for seg in segments(&s.points, c.step) {
            for (j, (t, v)) in seg.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if j == 0 { "M" } else { "L" },
                    x(*t),
                    y(clip(*v))
                );
            }
            if c.stacked && seg.len() > 1 {
                let (first, last) = (seg[0].0, seg[seg.len() - 1].0);
                let _ = write!(
                    d,
                    "L{:.1},{:.1}L{:.1},{:.1}Z",
                    x(last),
                    y(y0.max(0.0)),
                    x(first),
                    y(y0.max(0.0))
                );
            }
        }
        let fill = if c.stacked {
            format!(r#" fill="{color}" fill-opacity="0.35""#)
        } else {
            r#" fill="none""#.to_string()
        };
        let _ = write!(
            svg,
            r#"<path class="series" d="{d}" stroke="{color}"{fill} data-name="{}" data-values="{}"/>"#,
            esc(&s.name),
            grid_values(&c.series[i].points, c.start, c.end, c.step)
        );
    }
    for th in c.thresholds {
        let yy = y(*th);
        let _ = write!(
            svg,
            r#"<line class="threshold" x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke-dasharray="6 4"/>"#,
            W - RIGHT
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A value in at most 4 significant digits, as short as JavaScript's
/// `parseFloat` reads back (`0.0123`, `8.59e10`); empty for NaN.
pub fn short_number(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&mag) {
        let s = format!("{v:.3e}");
        return match s.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => s,
        };
    }
    let decimals = (3 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The values a series has on the query's grid (`start + i × step`), comma
/// separated, empty where it has none: what the tooltip script reads.
/// Timestamps are implied by the chart's `data-start`/`data-step`, which
/// keeps a day of points per series at about 1.5 KB instead of 7.
pub fn grid_values(points: &[(i64, f64)], start: i64, end: i64, step: i64) -> String {
    let step = step.max(1);
    let n = ((end - start).max(0) / step + 1).min(100_000) as usize;
    let mut grid: Vec<Option<f64>> = vec![None; n];
    for &(t, v) in points {
        let i = ((t - start) as f64 / step as f64).round();
        if i >= 0.0 && (i as usize) < n {
            grid[i as usize] = Some(v);
        }
    }
    let mut out = String::with_capacity(n * 6);
    for (i, v) in grid.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(v) = v {
            out.push_str(&short_number(*v));
        }
    }
    out
}

/// One column of a heatmap: time and per-bucket counts (not cumulative).
#[derive(Clone, Debug, PartialEq)]
pub struct HeatColumn {
    /// Milliseconds.
    pub t: i64,
    /// Count per bucket, same order as the bucket bounds.
    pub counts: Vec<f64>,
}

/// Turns cumulative `le` buckets (upper bound, cumulative count) into
/// per-bucket counts in bound order; `+Inf` last.
pub fn decumulate(buckets: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut b = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut prev = 0.0;
    b.into_iter()
        .map(|(le, c)| {
            let own = (c - prev).max(0.0);
            prev = c.max(prev);
            (le, own)
        })
        .collect()
}

/// Renders a heatmap: one row per bucket (bounds in `unit`), darker = more.
pub fn heatmap(bounds: &[f64], columns: &[HeatColumn], start: i64, end: i64, unit: &str) -> String {
    let rows = bounds.len().max(1);
    let max = columns
        .iter()
        .flat_map(|c| c.counts.iter().copied())
        .fold(0.0, f64::max);
    let span_t = (end - start).max(1) as f64;
    let cell_w = if columns.len() > 1 {
        (W - LEFT - RIGHT) / columns.len() as f64
    } else {
        W - LEFT - RIGHT
    };
    let cell_h = (H - TOP - BOTTOM) / rows as f64;
    let names: Vec<String> = bounds.iter().map(|b| units::format(*b, unit)).collect();
    let mut svg = format!(
        r#"<svg class="chart heatmap" viewBox="0 0 {W} {H}" preserveAspectRatio="none" role="img" aria-label="{}" data-start="{start}" data-end="{end}">"#,
        alt_text(names.iter().map(String::as_str))
    );
    for (i, b) in bounds.iter().enumerate() {
        let yy = H - BOTTOM - (i as f64 + 0.5) * cell_h;
        let label = if b.is_infinite() {
            "+Inf".to_string()
        } else {
            units::format(*b, unit)
        };
        let _ = write!(
            svg,
            r#"<text class="ylabel" x="{}" y="{:.1}" text-anchor="end">≤ {}</text>"#,
            LEFT - 4.0,
            yy + 3.5,
            esc(&label)
        );
    }
    // One group per column, its title listing the column's buckets (a
    // tooltip without script), cells only where there is something.
    svg.push_str(r##"<g class="cells" fill="#c4162a">"##);
    for col in columns {
        if max <= 0.0 || col.counts.iter().all(|c| *c <= 0.0) {
            continue;
        }
        let xx = LEFT + (col.t - start) as f64 / span_t * (W - LEFT - RIGHT) - cell_w / 2.0;
        let when = chrono::DateTime::from_timestamp_millis(col.t)
            .map(|d| d.format("%H:%M").to_string())
            .unwrap_or_default();
        let parts: Vec<String> = col
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0.0)
            .map(|(i, c)| {
                format!(
                    "≤ {}: {}",
                    bounds
                        .get(i)
                        .map(|b| units::format(*b, unit))
                        .unwrap_or_default(),
                    units::format(*c, "short")
                )
            })
            .collect();
        let _ = write!(
            svg,
            "<g><title>{when} UTC · {}</title>",
            esc(&parts.join(", "))
        );
        for (i, count) in col.counts.iter().enumerate() {
            if *count <= 0.0 {
                continue;
            }
            let opacity = 0.15 + 0.85 * (count / max);
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill-opacity="{opacity:.2}"/>"#,
                xx.max(LEFT),
                H - BOTTOM - (i + 1) as f64 * cell_h,
                cell_w.max(1.0),
                cell_h,
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</g>");
    for t in time_ticks(start, end, 6) {
        let xx = LEFT + (t - start) as f64 / span_t * (W - LEFT - RIGHT);
        let _ = write!(
            svg,
            r#"<text class="xlabel" x="{xx:.1}" y="{}" text-anchor="middle" data-ts="{t}">{}</text>"#,
            H - 6.0,
            chrono::DateTime::from_timestamp_millis(t)
                .map(|d| d.format("%H:%M").to_string())
                .unwrap_or_default()
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Renders vertical bars (e.g. a score distribution): (label, value).
pub fn bars(items: &[(String, f64)], unit: &str) -> String {
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max);
    let ticks = nice_ticks(0.0, if max > 0.0 { max } else { 1.0 }, 4);
    let top = *ticks.last().unwrap_or(&1.0);
    let n = items.len().max(1) as f64;
    let bw = (W - LEFT - RIGHT) / n;
    let mut svg = format!(
        r#"<svg class="chart bars" viewBox="0 0 {W} {H}" preserveAspectRatio="none" role="img" aria-label="{}">"#,
        alt_text(items.iter().map(|i| i.0.as_str()))
    );
    for v in &ticks {
        let yy = TOP + (1.0 - v / top) * (H - TOP - BOTTOM);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text class="ylabel" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 4.0,
            yy + 3.5,
            esc(&units::format(*v, unit))
        );
    }
    for (i, (label, v)) in items.iter().enumerate() {
        let h = v / top * (H - TOP - BOTTOM);
        let xx = LEFT + i as f64 * bw;
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {}</title></rect><text class="xlabel" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            xx + bw * 0.1,
            H - BOTTOM - h,
            bw * 0.8,
            PALETTE[0],
            esc(label),
            esc(&units::format(*v, unit)),
            xx + bw / 2.0,
            H - 6.0,
            esc(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chart is an image with a name (axe: svg-img-alt), built from
    /// what it draws, escaped.
    #[test]
    fn charts_have_an_accessible_name() {
        let names: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
        assert_eq!(
            alt_text(names.iter().map(String::as_str)),
            "s0, s1, s2, s3, s4, s5, s6, s7 … (+2)"
        );
        assert_eq!(alt_text(["a\"<b>"].into_iter()), "a&quot;&lt;b&gt;");
        assert_eq!(alt_text(std::iter::empty()), "–");
        assert!(bars(&[("≤1".into(), 2.0)], "short").contains(r#"role="img" aria-label="≤1""#));
        let heat = heatmap(&[0.5, f64::INFINITY], &[], 0, 1, "s");
        assert!(heat.contains(r#"aria-label="500 ms, +Inf""#), "{heat}");
    }

    #[test]
    fn gaps_split_lines() {
        let p = [
            (0, 1.0),
            (10, 2.0),
            (20, f64::NAN),
            (30, 3.0),
            (40, 4.0),
            (100, 5.0),
        ];
        let s = segments(&p, 10);
        assert_eq!(
            s,
            vec![
                vec![(0, 1.0), (10, 2.0)],
                vec![(30, 3.0), (40, 4.0)],
                vec![(100, 5.0)]
            ]
        );
    }

    #[test]
    fn chart_has_one_path_per_series_threshold_and_units() {
        let series = vec![
            ChartSeries {
                name: "p95".into(),
                points: vec![(0, 0.5), (60_000, 1.5)],
            },
            ChartSeries {
                name: "a<b".into(),
                points: vec![(0, 0.1), (60_000, f64::NAN)],
            },
        ];
        let svg = time_series(&TimeSeriesChart {
            series: &series,
            start: 0,
            end: 60_000,
            step: 60_000,
            unit: "s",
            thresholds: &[2.0],
            stacked: false,
        });
        assert_eq!(svg.matches("class=\"series\"").count(), 2);
        assert_eq!(svg.matches("class=\"threshold\"").count(), 1);
        assert!(svg.contains("2 s"), "threshold in range: {svg}");
        assert!(svg.contains("a&lt;b"), "names escaped");
        assert!(
            svg.contains(r#"data-values="0.1,""#),
            "gaps kept for tooltips: {svg}"
        );
    }

    #[test]
    fn heatmap_buckets_decumulate() {
        let b = decumulate(&[(1.0, 7.0), (0.1, 5.0), (f64::INFINITY, 10.0)]);
        assert_eq!(b, vec![(0.1, 5.0), (1.0, 2.0), (f64::INFINITY, 3.0)]);
        let svg = heatmap(
            &[0.1, 1.0, f64::INFINITY],
            &[HeatColumn {
                t: 0,
                counts: vec![5.0, 2.0, 3.0],
            }],
            0,
            60_000,
            "s",
        );
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("≤ 100 ms"));
    }

    #[test]
    fn compact_values_on_the_query_grid() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(0.012345), "0.01235");
        assert_eq!(short_number(1234.5678), "1235");
        assert_eq!(short_number(-2.5), "-2.5");
        assert_eq!(short_number(85_899_345_920.0), "8.59e10");
        assert_eq!(short_number(0.00001234), "1.234e-5");
        assert_eq!(short_number(f64::NAN), "");
        assert_eq!(
            "8.59e10".parse::<f64>().unwrap(),
            8.59e10,
            "what JS reads back"
        );
        // Grid 0..40 every 10: a missing point and a NaN both leave a hole;
        // points off the grid snap to the nearest slot, outside ones drop.
        let v = grid_values(
            &[(0, 1.0), (19, 2.0), (30, f64::NAN), (40, 4.0), (90, 9.0)],
            0,
            40,
            10,
        );
        assert_eq!(v, "1,,2,,4");
    }

    #[test]
    fn stacked_series_add_up_and_close_their_areas() {
        let series = vec![
            ChartSeries {
                name: "a".into(),
                points: vec![(0, 1.0), (10, 1.0)],
            },
            ChartSeries {
                name: "b".into(),
                points: vec![(0, 2.0), (10, 2.0)],
            },
        ];
        let chart = |stacked| {
            time_series(&TimeSeriesChart {
                series: &series,
                start: 0,
                end: 10,
                step: 10,
                unit: "short",
                thresholds: &[],
                stacked,
            })
        };
        let (flat, stacked) = (chart(false), chart(true));
        let top_label = |svg: &str| {
            svg.split("class=\"ylabel\"")
                .filter_map(|s| s.split('>').nth(1)?.split('<').next())
                .filter_map(|t| t.parse::<f64>().ok())
                .fold(0.0, f64::max)
        };
        assert!(top_label(&flat) >= 2.0 && top_label(&flat) < 3.0, "{flat}");
        assert!(top_label(&stacked) >= 3.0, "b drawn on top of a: {stacked}");
        assert_eq!(
            stacked.matches("Z\"").count(),
            2,
            "areas closed to the axis"
        );
        assert_eq!(flat.matches("fill=\"none\"").count(), 2);
        // Tooltips still get each series' own values, not the running sum.
        assert!(
            stacked.contains(r#"data-name="b" data-values="2,2""#),
            "{stacked}"
        );
    }

    #[test]
    fn heatmap_shades_by_count_and_titles_columns() {
        let svg = heatmap(
            &[0.1, 1.0],
            &[
                HeatColumn {
                    t: 0,
                    counts: vec![4.0, 0.0],
                },
                HeatColumn {
                    t: 30_000,
                    counts: vec![0.0, 0.0],
                },
                HeatColumn {
                    t: 60_000,
                    counts: vec![1.0, 2.0],
                },
            ],
            0,
            60_000,
            "s",
        );
        assert_eq!(svg.matches("<rect").count(), 3, "empty cells are not drawn");
        assert_eq!(
            svg.matches("<title>").count(),
            2,
            "one title per non-empty column"
        );
        assert!(
            svg.contains("fill-opacity=\"1.00\""),
            "the largest count is solid"
        );
        assert!(
            svg.contains("fill-opacity=\"0.36\""),
            "1 of 4: 0.15 + 0.85/4"
        );
        assert!(svg.contains("≤ 100 ms: 1, ≤ 1 s: 2"), "{svg}");
        let empty = heatmap(&[], &[], 0, 60_000, "s");
        assert_eq!(empty.matches("<rect").count(), 0);
    }

    #[test]
    fn bars_scale_to_the_largest() {
        let svg = bars(&[("≤0.1".into(), 5.0), ("+Inf".into(), 0.0)], "short");
        assert_eq!(svg.matches("class=\"bar\"").count(), 2);
        assert!(svg.contains("<title>≤0.1: 5</title>"));
        assert!(svg.contains("height=\"0.0\""), "a zero bar is flat");
        let none = bars(&[], "short");
        assert!(none.contains(">1<"), "no data: a 0..1 axis, not NaN");
    }
}
