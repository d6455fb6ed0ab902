//! Which sample timestamps the store takes, and day numbers that hold
//! timestamps before 1970 too. Like Prometheus' out-of-bounds check, a
//! sample far from now is refused at ingest (and counted by the path that
//! refused it) instead of being written: a negative timestamp once made day
//! grouping loop, and a sample years ahead makes every later sample of its
//! series out of order until that day comes.
//!
//! The window is `[1970-01-01T00:00:00Z, now + storage.max_future_skew]`.
//! Old samples are not refused beyond that: imports of old history are
//! legitimate, and retention removes what it does not keep.

/// The `reason` label of samples refused for their timestamp.
pub const OUT_OF_BOUNDS: &str = "out_of_bounds";

/// Default `storage.max_future_skew`: 10 minutes, room for clocks that
/// drift between hosts without letting one sample block a series for long.
pub const DEFAULT_MAX_FUTURE_SKEW_MS: i64 = 10 * 60 * 1000;

/// The accepted sample time window, relative to the time of ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleBounds {
    /// How far ahead of now (ms) a timestamp may be.
    pub max_future_ms: i64,
}

impl Default for SampleBounds {
    fn default() -> Self {
        SampleBounds {
            max_future_ms: DEFAULT_MAX_FUTURE_SKEW_MS,
        }
    }
}

impl SampleBounds {
    /// The oldest timestamp taken: the Unix epoch.
    pub const MIN_MS: i64 = 0;

    /// The newest timestamp taken at wall-clock time `now_ms`.
    pub fn max_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.max_future_ms.max(0))
    }

    /// Whether a sample at `t` (ms) is taken at `now_ms`.
    pub fn contains(&self, t: i64, now_ms: i64) -> bool {
        (Self::MIN_MS..=self.max_ms(now_ms)).contains(&t)
    }

    /// Why `t` is refused, for error messages.
    pub fn describe(&self, t: i64, now_ms: i64) -> String {
        if t < Self::MIN_MS {
            format!("timestamp {t} ms is before 1970-01-01")
        } else {
            format!(
                "timestamp {t} ms is more than storage.max_future_skew ({} ms) ahead of now ({now_ms} ms)",
                self.max_future_ms
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window() {
        let b = SampleBounds::default();
        let now = 1_800_000_000_000;
        assert!(b.contains(0, now));
        assert!(b.contains(now + DEFAULT_MAX_FUTURE_SKEW_MS, now));
        assert!(!b.contains(-1, now));
        assert!(!b.contains(now + DEFAULT_MAX_FUTURE_SKEW_MS + 1, now));
        assert!(!b.contains(i64::MAX, now));
        assert!(b.describe(-1, now).contains("1970"));
    }
}
