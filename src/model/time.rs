//! Timestamps as Prometheus' HTTP API writes them: unix seconds (a float) or
//! RFC 3339, plus the min/max strings clients send for "unbounded". Used by
//! the API, the pages, exports and the CLI, so they all read times alike.

/// Earliest time an unbounded `start` stands for (Prometheus' `minTime`, in ms).
pub const MIN_TIME_MS: i64 = i64::MIN / 4;
/// Latest time an unbounded `end` stands for; see [`MIN_TIME_MS`].
pub const MAX_TIME_MS: i64 = i64::MAX / 4;

/// Unix seconds (float) or RFC 3339 in ms, as Prometheus' `parseTime`;
/// `None` when the text is neither.
pub fn parse_time(v: &str) -> Option<i64> {
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() {
            return None;
        }
        // `as` saturates; clamping after it keeps the bounds exact (as f64
        // they round up by one).
        let ms = (secs * 1000.0).round() as i64;
        return Some(ms.clamp(MIN_TIME_MS, MAX_TIME_MS));
    }
    // Clients send Prometheus' own min/max time strings for "unbounded".
    if v.starts_with("-292273086-") {
        return Some(MIN_TIME_MS);
    }
    if v.starts_with("292277025-") {
        return Some(MAX_TIME_MS);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// A time as [`parse_time`] reads it, or a plain `YYYY-MM-DD` (UTC
/// midnight), for exports by day.
pub fn parse_time_or_day(v: &str) -> Option<i64> {
    parse_time(v).or_else(|| {
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis())
    })
}

/// Float seconds as ms (a duration parameter's plain-number form); `None`
/// when not a finite number that fits.
pub fn parse_float_seconds_ms(v: &str) -> Option<i64> {
    let secs = v.parse::<f64>().ok()?;
    if !secs.is_finite() || secs.abs() > (i64::MAX / 1000) as f64 {
        return None;
    }
    Some((secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_time_formats() {
        assert_eq!(parse_time("1.5"), Some(1500));
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z"), Some(1435781451781));
        assert_eq!(parse_time("2015-07-01T22:10:51+02:00"), Some(1435781451000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("NaN"), None);
        assert_eq!(parse_time("-292273086-05-16T16:47:06Z"), Some(MIN_TIME_MS));
        assert_eq!(
            parse_time("292277025-08-18T07:12:54.999999999Z"),
            Some(MAX_TIME_MS)
        );
        assert_eq!(parse_time("1e300"), Some(MAX_TIME_MS));
    }

    #[test]
    fn days_and_float_seconds() {
        assert_eq!(parse_time_or_day("2015-07-01"), Some(1435708800000));
        assert_eq!(parse_time_or_day("1.5"), Some(1500));
        assert_eq!(parse_time_or_day("2015-13-01"), None);
        assert_eq!(parse_float_seconds_ms("0.5"), Some(500));
        assert_eq!(parse_float_seconds_ms("15s"), None);
        assert_eq!(parse_float_seconds_ms("inf"), None);
    }
}
