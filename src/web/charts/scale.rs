//! Axis scales: "nice" value ticks and time ticks at round intervals.

/// Ticks covering `[min, max]` at a round step (1, 2, 2.5 or 5 × 10ⁿ),
/// about `count` of them; the range is widened to the outer ticks.
pub fn nice_ticks(min: f64, max: f64, count: usize) -> Vec<f64> {
    let (mut lo, mut hi) = (min, max);
    if !lo.is_finite() || !hi.is_finite() {
        return vec![0.0, 1.0];
    }
    if lo == hi {
        // A flat line: all zeros show 0…1, anything else ±10 % around it.
        if lo == 0.0 {
            hi = 1.0;
        } else {
            let pad = lo.abs() * 0.1;
            lo -= pad;
            hi += pad;
        }
    }
    let raw = (hi - lo) / count.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let end = (hi / step).ceil() * step;
    let n = ((end - start) / step).round() as usize;
    (0..=n).map(|i| start + i as f64 * step).collect()
}

/// Round time steps, milliseconds.
const TIME_STEPS: [i64; 14] = [
    10_000,
    30_000,
    60_000,
    300_000,
    900_000,
    1_800_000,
    3_600_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
    2_592_000_000,
];

/// Time ticks inside `[start, end]` at a round step, about `count` of them.
pub fn time_ticks(start: i64, end: i64, count: usize) -> Vec<i64> {
    if end <= start {
        return vec![start];
    }
    let raw = (end - start) / count.max(1) as i64;
    let step = TIME_STEPS
        .iter()
        .copied()
        .find(|s| *s >= raw)
        .unwrap_or(TIME_STEPS[TIME_STEPS.len() - 1]);
    let first = start.div_euclid(step) * step + if start.rem_euclid(step) == 0 { 0 } else { step };
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= end)
        .collect()
}

/// Step for a range query of `range_ms` drawn `points` wide, at least 1 s.
pub fn query_step(range_ms: i64, points: i64) -> i64 {
    (range_ms / points.max(1)).max(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_ticks_are_round_and_cover() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = nice_ticks(0.013, 0.97, 4);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap() >= 0.97);
        assert!(nice_ticks(5.0, 5.0, 4).len() >= 2);
        assert_eq!(
            nice_ticks(0.0, 0.0, 4).first(),
            Some(&0.0),
            "no negative axis for all-zero data"
        );
        assert_eq!(nice_ticks(f64::NAN, 1.0, 4), vec![0.0, 1.0]);
    }

    #[test]
    fn time_ticks_fall_on_round_times() {
        let hour = 3_600_000;
        let t = time_ticks(10 * hour + 123, 16 * hour, 6);
        assert_eq!(t, (11..=16).map(|h| h * hour).collect::<Vec<_>>());
        assert_eq!(query_step(3_600_000, 240), 15_000);
        assert_eq!(query_step(60_000, 240), 1000);
    }

    #[test]
    fn negative_tiny_and_huge_ranges() {
        let t = nice_ticks(-3.0, 7.0, 5);
        assert_eq!(t, vec![-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0]);
        let t = nice_ticks(0.001, 0.004, 3);
        assert!(
            t.len() <= 5 && t[0] <= 0.001 && *t.last().unwrap() >= 0.004,
            "{t:?}"
        );
        let t = nice_ticks(0.0, 8.6e10, 4);
        assert_eq!(t[1] - t[0], 2.5e10, "{t:?}");
        let t = nice_ticks(-5.0, -5.0, 4);
        assert!(
            t[0] <= -5.5 && *t.last().unwrap() >= -4.5,
            "flat negative line padded: {t:?}"
        );
    }

    #[test]
    fn time_ticks_for_a_day_and_degenerate_windows() {
        let day = 86_400_000;
        let t = time_ticks(day * 100 + 1, day * 101, 6);
        assert_eq!(t.len(), 4, "every 6 h: {t:?}");
        assert!(t.iter().all(|x| x % 21_600_000 == 0));
        assert_eq!(time_ticks(5, 5, 6), vec![5]);
        assert_eq!(time_ticks(10, 0, 6), vec![10]);
        // A year still gets round (30-day) ticks rather than thousands.
        assert!(time_ticks(0, 365 * day, 6).len() <= 13);
        assert_eq!(query_step(day, 240), 360_000);
        assert_eq!(query_step(day, 0), day, "no zero division");
    }
}
