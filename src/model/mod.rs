//! Data types every part shares: label sets, label matchers, samples, and
//! Prometheus' time formats.

mod labels;
mod matcher;
pub mod relabel;
pub mod textparse;
mod time;

pub use labels::{Label, Labels, METRIC_NAME, escape_label_value};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use time::{MAX_TIME_MS, MIN_TIME_MS, parse_float_seconds_ms, parse_time, parse_time_or_day};

/// One float sample: milliseconds since the epoch and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value (may be the StaleNaN marker).
    pub value: f64,
}

/// Prometheus' staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the staleness marker (not just any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}
