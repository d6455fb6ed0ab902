//! Calendar days in a time zone, as millisecond ranges. DST-safe: a day is
//! from local midnight to the next local midnight, 23 or 25 hours long on
//! the days clocks change.

use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// The `[start, end)` milliseconds of `day` in `tz`.
pub fn day_range(day: NaiveDate, tz: Tz) -> (i64, i64) {
    let start = local_midnight(day, tz);
    let end = local_midnight(day.checked_add_days(Days::new(1)).unwrap_or(day), tz);
    (start, end)
}

/// Milliseconds of local midnight; where midnight does not exist (a DST gap
/// at midnight) the first instant after the gap.
fn local_midnight(day: NaiveDate, tz: Tz) -> i64 {
    let naive = NaiveDateTime::new(day, NaiveTime::MIN);
    if let Some(t) = tz.from_local_datetime(&naive).earliest() {
        return t.timestamp_millis();
    }
    // Skipped local times: step forward minute by minute (gaps are ≤ 2 h).
    for minutes in 1..=180 {
        let probe = naive + chrono::Duration::minutes(minutes);
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.timestamp_millis();
        }
    }
    tz.from_utc_datetime(&naive).timestamp_millis()
}

/// Yesterday in `tz`, seen from `now_ms`.
pub fn yesterday(now_ms: i64, tz: Tz) -> NaiveDate {
    let today = tz
        .timestamp_millis_opt(now_ms)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default();
    today.pred_opt().unwrap_or(today)
}

/// The box's local zone (from the system), UTC when it cannot be told.
pub fn local_zone() -> Tz {
    std::env::var("TZ")
        .ok()
        .and_then(|z| z.trim_start_matches(':').parse().ok())
        .or_else(|| {
            iana_time_zone::get_timezone()
                .ok()
                .and_then(|z| z.parse().ok())
        })
        .unwrap_or(Tz::UTC)
}

/// `YYYY-MM-DD`.
pub fn folder_name(day: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", day.year(), day.month(), day.day())
}

/// Parses a strict `YYYY-MM-DD` (nothing else, so it is safe as a path part).
pub fn parse_folder_name(s: &str) -> Option<NaiveDate> {
    if s.len() != 10
        || !s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
    {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let hours = |d: &str| {
            let (s, e) = day_range(NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap(), tz);
            (e - s) / 3_600_000
        };
        assert_eq!(hours("2026-03-29"), 23);
        assert_eq!(hours("2026-10-25"), 25);
        assert_eq!(hours("2026-06-01"), 24);
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let (s, _) = day_range(NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(), shanghai);
        assert_eq!(s, 1_795_190_400_000); // 2026-11-20T16:00:00Z
    }

    #[test]
    fn folder_names_are_strict() {
        assert!(parse_folder_name("2026-11-21").is_some());
        for bad in [
            "../etc",
            "2026-11-21/..",
            "2026-1-21",
            "2026-13-01",
            "20261121xx",
        ] {
            assert!(parse_folder_name(bad).is_none(), "{bad}");
        }
    }
}
