//! Human units for axis labels, tiles and tooltips (Grafana's unit names).

/// Formats `v` in `unit`: `s`, `ms`, `bytes`, `percentunit` (0–1), `percent`
/// (0–100), `reqps`, `celsius`, `watt`, `hertz`, `short`/`none`.
pub fn format(v: f64, unit: &str) -> String {
    if v.is_nan() {
        return "–".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".to_string()
        } else {
            "-Inf".to_string()
        };
    }
    match unit {
        "s" => seconds(v),
        "ms" => seconds(v / 1000.0),
        "bytes" | "decbytes" => bytes(v),
        "percentunit" => format!("{}%", trim(v * 100.0)),
        "percent" => format!("{}%", trim(v)),
        "reqps" => format!("{} req/s", short(v)),
        "ops" => format!("{} ops/s", short(v)),
        "celsius" => format!("{} °C", trim(v)),
        "watt" => format!("{} W", trim(v)),
        "hertz" => si(v, "Hz"),
        _ => short(v),
    }
}

thread_local! {
    /// Fixed decimals for the numbers [`format_decimals`] is formatting.
    static DECIMALS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Like [`format`], with exactly `decimals` digits after the point when
/// given (Grafana's `fieldConfig.defaults.decimals`), in the unit's scale.
pub fn format_decimals(v: f64, unit: &str, decimals: Option<u32>) -> String {
    with_decimals(decimals, || format(v, unit))
}

/// Runs `f` (which formats values, e.g. draws a chart's axis) with every
/// number [`format`] writes given exactly `decimals` digits, when given.
pub fn with_decimals<T>(decimals: Option<u32>, f: impl FnOnce() -> T) -> T {
    let Some(d) = decimals else {
        return f();
    };
    let before = DECIMALS.with(|c| c.replace(Some(d.min(10) as usize)));
    let out = f();
    DECIMALS.with(|c| c.set(before));
    out
}

/// 3 significant digits, no trailing zeros (or fixed decimals, see [`format_decimals`]).
fn trim(v: f64) -> String {
    if let Some(d) = DECIMALS.with(|c| c.get()) {
        return format!("{v:.d$}");
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let digits = (3 - 1 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn seconds(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0 s".to_string()
    } else if a < 1e-6 {
        format!("{} ns", trim(v * 1e9))
    } else if a < 1e-3 {
        format!("{} µs", trim(v * 1e6))
    } else if a < 1.0 {
        format!("{} ms", trim(v * 1e3))
    } else if a < 60.0 {
        format!("{} s", trim(v))
    } else if a < 3600.0 {
        format!("{} min", trim(v / 60.0))
    } else if a < 86400.0 {
        format!("{} h", trim(v / 3600.0))
    } else {
        format!("{} d", trim(v / 86400.0))
    }
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = v;
    let mut i = 0;
    while x.abs() >= 1024.0 && i < UNITS.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    format!("{} {}", trim(x), UNITS[i])
}

fn si(v: f64, suffix: &str) -> String {
    let s = short(v);
    format!("{s} {suffix}")
}

fn short(v: f64) -> String {
    let a = v.abs();
    for (limit, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if a >= limit {
            return format!("{}{suffix}", trim(v / limit));
        }
    }
    trim(v)
}

#[cfg(test)]
mod tests {
    use super::{format, format_decimals};

    #[test]
    fn fixed_decimals_in_the_units_scale() {
        assert_eq!(format_decimals(0.031416, "percentunit", Some(2)), "3.14%");
        assert_eq!(format_decimals(1536.0, "bytes", Some(0)), "2 KiB");
        assert_eq!(format_decimals(2.0, "short", Some(3)), "2.000");
        assert_eq!(format_decimals(2.0, "short", None), "2");
        assert_eq!(format(2.0, "short"), "2", "no decimals left behind");
        assert_eq!(
            super::with_decimals(Some(1), || format(0.5, "s")),
            "500.0 ms"
        );
    }

    #[test]
    fn formats_like_grafana() {
        assert_eq!(format(0.0123, "s"), "12.3 ms");
        assert_eq!(format(2.5, "s"), "2.5 s");
        assert_eq!(format(90.0, "s"), "1.5 min");
        assert_eq!(format(1536.0, "bytes"), "1.5 KiB");
        assert_eq!(format(3.0 * 1024.0 * 1024.0 * 1024.0, "bytes"), "3 GiB");
        assert_eq!(format(0.031, "percentunit"), "3.1%");
        assert_eq!(format(1234.0, "reqps"), "1.23k req/s");
        assert_eq!(format(61.0, "celsius"), "61 °C");
        assert_eq!(format(f64::NAN, "s"), "–");
        assert_eq!(format(0.0, "short"), "0");
    }

    #[test]
    fn every_unit_and_sign() {
        assert_eq!(format(250.0, "ms"), "250 ms");
        assert_eq!(format(1500.0, "ms"), "1.5 s");
        assert_eq!(format(0.000_004_2, "s"), "4.2 µs");
        assert_eq!(format(0.000_000_3, "s"), "300 ns");
        assert_eq!(format(-0.25, "s"), "-250 ms");
        assert_eq!(format(7200.0, "s"), "2 h");
        assert_eq!(format(172_800.0, "s"), "2 d");
        assert_eq!(format(512.0, "bytes"), "512 B");
        assert_eq!(format(2.0f64.powi(50), "bytes"), "1 PiB");
        assert_eq!(format(-3072.0, "bytes"), "-3 KiB");
        assert_eq!(format(42.5, "percent"), "42.5%");
        assert_eq!(format(1.0, "percentunit"), "100%");
        assert_eq!(format(1.98e9, "hertz"), "1.98G Hz");
        assert_eq!(format(301.6, "watt"), "302 W");
        assert_eq!(format(12.0, "ops"), "12 ops/s");
        assert_eq!(format(1_500_000.0, "short"), "1.5M");
        assert_eq!(format(2.0e12, "none"), "2T");
        assert_eq!(
            format(0.5, "unknown-unit"),
            "0.5",
            "unknown units as plain numbers"
        );
        assert_eq!(format(f64::INFINITY, "bytes"), "+Inf");
        assert_eq!(format(f64::NEG_INFINITY, "s"), "-Inf");
    }
}
