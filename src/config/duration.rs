//! Prometheus duration syntax (`15s`, `1h30m`, `100ms`, `2d`) as a config value.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the way Prometheus writes them: units `y w d h m s ms`,
/// largest first, each at most once (`1h30m`, not `90m30s` mixed out of order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        PromDuration(Duration::from_secs(secs))
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        PromDuration(Duration::from_millis(ms))
    }

    /// The standard-library duration.
    pub fn as_duration(&self) -> Duration {
        self.0
    }

    /// Whole milliseconds.
    pub fn as_millis(&self) -> i64 {
        self.0.as_millis() as i64
    }
}

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration; the error says what was expected.
pub fn parse_duration(text: &str) -> Result<PromDuration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(PromDuration::default());
    }
    if s.is_empty() {
        return Err("empty duration string".to_string());
    }
    let bad = || format!("not a valid duration string: {text:?} (use units y w d h m s ms, e.g. \"15s\" or \"1h30m\")");
    let bytes = s.as_bytes();
    let mut total: u64 = 0;
    let mut i = 0;
    let mut last_unit = None::<usize>;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad());
        }
        let number: u64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let pos = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        // Prometheus requires units in decreasing order, each once.
        if last_unit.is_some_and(|last| pos <= last) {
            return Err(bad());
        }
        last_unit = Some(pos);
        total = number
            .checked_mul(UNITS[pos].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration out of range: {text:?}"))?;
    }
    Ok(PromDuration(Duration::from_millis(total)))
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            // Like Prometheus, only use y/w when they divide evenly.
            if (unit == "y" || unit == "w") && ms % size != 0 {
                continue;
            }
            if ms >= size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for PromDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_forms() {
        assert_eq!(parse_duration("15s").unwrap(), PromDuration::from_secs(15));
        assert_eq!(parse_duration("1h30m").unwrap(), PromDuration::from_secs(5400));
        assert_eq!(parse_duration("100ms").unwrap(), PromDuration::from_millis(100));
        assert_eq!(parse_duration("2d").unwrap(), PromDuration::from_secs(172_800));
        assert_eq!(parse_duration("0").unwrap(), PromDuration::default());
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in ["", "15", "s", "1m1h", "1x", "-5s", "1.5s", "99999999999999999999y"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn displays_round_trip() {
        for text in ["15s", "1h30m", "100ms", "1w", "1y", "1d2h", "0s"] {
            assert_eq!(parse_duration(text).unwrap().to_string(), text);
        }
    }
}
