//! Single-value drawings: a gauge (an arc), a bar gauge (a horizontal bar)
//! and the sparkline under a stat. Colours are SVG attributes, so the page's
//! strict CSP (no inline styles) holds.

use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Where `v` sits between `lo` and `hi`, 0…1.
fn fraction(v: f64, lo: f64, hi: f64) -> f64 {
    if !v.is_finite() || hi <= lo {
        return 0.0;
    }
    ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// A half-circle gauge from `lo` to `hi`, filled to `v` in `color`, with
/// the formatted value and the series name under it.
pub fn gauge(v: f64, text: &str, name: &str, lo: f64, hi: f64, color: &str) -> String {
    let f = fraction(v, lo, hi);
    let (cx, cy, r) = (60.0_f64, 56.0_f64, 44.0_f64);
    let point = |f: f64| {
        let a = std::f64::consts::PI * (1.0 - f);
        (cx + r * a.cos(), cy - r * a.sin())
    };
    let (x0, y0) = point(0.0);
    let (x1, y1) = point(1.0);
    let (xv, yv) = point(f);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg class="gauge" viewBox="0 0 120 84" role="img" aria-label="{} {}" data-value="{v}" data-fraction="{f:.4}"><path class="track" d="M{x0:.1},{y0:.1} A{r},{r} 0 0 1 {x1:.1},{y1:.1}" fill="none" stroke="#d8dee4" stroke-width="10"/>"##,
        esc(name),
        esc(text)
    );
    if f > 0.0 {
        let _ = write!(
            svg,
            r#"<path class="fill" d="M{x0:.1},{y0:.1} A{r},{r} 0 0 1 {xv:.1},{yv:.1}" fill="none" stroke="{color}" stroke-width="10"/>"#
        );
    }
    let _ = write!(
        svg,
        r#"<text class="gauge-value" x="{cx}" y="{}" text-anchor="middle" fill="{color}">{}</text><text class="gauge-name" x="{cx}" y="80" text-anchor="middle">{}</text></svg>"#,
        cy - 4.0,
        esc(text),
        esc(name)
    );
    svg
}

/// One bar of a bar gauge: the name, a bar filled to `v` between `lo` and
/// `hi` in `color`, and the formatted value.
pub fn bar_gauge(v: f64, text: &str, name: &str, lo: f64, hi: f64, color: &str) -> String {
    let f = fraction(v, lo, hi);
    let width = 150.0 * f;
    format!(
        r##"<svg class="bargauge" viewBox="0 0 300 24" role="img" aria-label="{} {}" data-value="{v}" data-fraction="{f:.4}"><text x="0" y="16" class="bar-name">{}</text><rect x="90" y="3" width="150" height="18" fill="#eef1f4"/><rect class="bar" x="90" y="3" width="{width:.1}" height="18" fill="{color}"/><text x="298" y="16" text-anchor="end" class="bar-value" fill="{color}">{}</text></svg>"##,
        esc(name),
        esc(text),
        esc(name),
        esc(text)
    )
}

/// A stat's sparkline: the series over `[start, end]` as a filled line,
/// scaled to its own range; empty for fewer than two points.
pub fn sparkline(points: &[(i64, f64)], start: i64, end: i64, color: &str) -> String {
    let pts: Vec<(i64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    if pts.len() < 2 {
        return String::new();
    }
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let span_v = if hi > lo { hi - lo } else { 1.0 };
    let span_t = (end - start).max(1) as f64;
    let (w, h) = (200.0, 40.0);
    let x = |t: i64| (t - start) as f64 / span_t * w;
    let y = |v: f64| h - 2.0 - (v - lo) / span_v * (h - 4.0);
    let mut d = String::new();
    for (i, (t, v)) in pts.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { "L" },
            x(*t),
            y(*v)
        );
    }
    let area = format!(
        "{d}L{:.1},{h}L{:.1},{h}Z",
        x(pts[pts.len() - 1].0),
        x(pts[0].0)
    );
    format!(
        r#"<svg class="sparkline" viewBox="0 0 {w} {h}" preserveAspectRatio="none" aria-hidden="true"><path d="{area}" fill="{color}" fill-opacity="0.15" stroke="none"/><path d="{d}" fill="none" stroke="{color}"/></svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_follows_the_value_within_its_bounds() {
        assert!(
            gauge(50.0, "50", "x", 0.0, 100.0, "#37872d").contains(r#"data-fraction="0.5000""#)
        );
        assert!(gauge(150.0, "150", "x", 0.0, 100.0, "red").contains(r#"data-fraction="1.0000""#));
        assert!(!gauge(0.0, "0", "x", 0.0, 100.0, "red").contains("class=\"fill\""));
        let b = bar_gauge(0.25, "25%", "<gpu>", 0.0, 1.0, "#c4162a");
        assert!(
            b.contains(r#"width="37.5""#) && b.contains("&lt;gpu&gt;"),
            "{b}"
        );
        assert_eq!(sparkline(&[(0, 1.0)], 0, 10, "red"), "");
        assert!(sparkline(&[(0, 1.0), (10, 2.0)], 0, 10, "red").starts_with("<svg"));
    }
}
