//! `summary.json`: the daily report a person reads — per model requests,
//! QPS, latency quantiles, error ratio; per job availability; alerts fired;
//! GPU memory peak. Computed from the day's raw samples.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{Sample, is_stale_nan};
use crate::storage::Series;

/// Per-model figures.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ModelSummary {
    /// Requests answered during the day.
    pub requests: f64,
    /// Requests answered with a non-2xx status.
    pub errors: f64,
    /// errors / requests (0 without requests).
    pub error_ratio: f64,
    /// Mean requests per second over the day.
    pub qps_mean: f64,
    /// Highest one-minute average of requests per second.
    pub qps_max: f64,
    /// Latency quantiles from the total-duration histogram, seconds.
    pub latency_seconds: BTreeMap<String, f64>,
    /// Distinct alerts that fired with this model's label.
    pub alerts_fired: usize,
}

/// Per-job figures.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct JobSummary {
    /// Targets seen.
    pub targets: usize,
    /// Share of scrapes that succeeded (mean of `up`).
    pub up_ratio: f64,
    /// Scrapes seen.
    pub scrapes: usize,
}

/// The whole report.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Per model.
    pub models: BTreeMap<String, ModelSummary>,
    /// Per scrape job.
    pub jobs: BTreeMap<String, JobSummary>,
    /// Distinct alerts that fired during the day.
    pub alerts_fired: usize,
    /// Peak GPU memory in use, per GPU index, bytes.
    pub gpu_memory_max_bytes: BTreeMap<String, f64>,
}

/// Counter increase over the samples, counting resets as Prometheus does.
fn increase(samples: &[Sample]) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for s in samples.iter().filter(|s| !is_stale_nan(s.value)) {
        if let Some(p) = prev {
            total += if s.value >= p { s.value - p } else { s.value };
        }
        prev = Some(s.value);
    }
    total
}

/// Adds each sample-to-sample increase to the minute it ends in.
fn increase_per_minute(samples: &[Sample], minutes: &mut BTreeMap<i64, f64>) {
    let mut prev: Option<f64> = None;
    for s in samples.iter().filter(|s| !is_stale_nan(s.value)) {
        if let Some(p) = prev {
            let d = if s.value >= p { s.value - p } else { s.value };
            *minutes
                .entry(s.timestamp_ms.div_euclid(60_000))
                .or_default() += d;
        }
        prev = Some(s.value);
    }
}

/// Prometheus' histogram_quantile over (upper bound, cumulative count) pairs.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last().filter(|(le, _)| le.is_infinite())?.1;
    if total <= 0.0 || b.len() < 2 {
        return None;
    }
    let rank = q * total;
    let idx = b.iter().position(|(_, c)| *c >= rank)?;
    if idx == b.len() - 1 {
        return Some(b[b.len() - 2].0);
    }
    let (upper, count) = b[idx];
    let (lower, below) = if idx == 0 {
        (0.0f64.min(upper), 0.0)
    } else {
        b[idx - 1]
    };
    if count == below {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / (count - below))
}

/// Builds the report from the day's series; `day_seconds` is the day's length.
pub fn summarize(series: &[Series], day_seconds: f64) -> Summary {
    let mut out = Summary::default();
    let mut per_minute: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut buckets: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut fired: BTreeSet<String> = BTreeSet::new();
    let mut fired_by_model: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut up: BTreeMap<String, (BTreeSet<String>, usize, f64)> = BTreeMap::new();
    for s in series {
        let l = &s.labels;
        let model = l.get("model").unwrap_or("").to_string();
        match l.metric_name().unwrap_or("") {
            "infermon_inference_requests_total" => {
                let inc = increase(&s.samples);
                let m = out.models.entry(model.clone()).or_default();
                m.requests += inc;
                if !l.get("status").is_some_and(|st| st.starts_with('2')) {
                    m.errors += inc;
                }
                increase_per_minute(&s.samples, per_minute.entry(model).or_default());
            }
            "infermon_inference_total_duration_seconds_bucket" => {
                if let Some(le) = l.get("le") {
                    *buckets
                        .entry(model)
                        .or_default()
                        .entry(le.to_string())
                        .or_default() += increase(&s.samples);
                }
            }
            "ALERTS"
                if l.get("alertstate") == Some("firing")
                    && s.samples.iter().any(|x| x.value == 1.0) =>
            {
                let mut id = l.clone();
                id.remove("alertstate");
                fired.insert(id.to_string());
                if !model.is_empty() {
                    fired_by_model
                        .entry(model)
                        .or_default()
                        .insert(id.to_string());
                }
            }
            "up" => {
                let job = l.get("job").unwrap_or("").to_string();
                let e = up.entry(job).or_default();
                e.0.insert(l.get("instance").unwrap_or("").to_string());
                for x in s.samples.iter().filter(|x| !is_stale_nan(x.value)) {
                    e.1 += 1;
                    e.2 += x.value;
                }
            }
            "infermon_gpu_memory_used_bytes" => {
                let gpu = l.get("gpu").unwrap_or("").to_string();
                let max = s
                    .samples
                    .iter()
                    .filter(|x| !x.value.is_nan())
                    .map(|x| x.value)
                    .fold(f64::NEG_INFINITY, f64::max);
                if max.is_finite() {
                    let e = out.gpu_memory_max_bytes.entry(gpu).or_insert(max);
                    *e = e.max(max);
                }
            }
            _ => {}
        }
    }
    for (model, m) in out.models.iter_mut() {
        m.error_ratio = if m.requests > 0.0 {
            m.errors / m.requests
        } else {
            0.0
        };
        m.qps_mean = if day_seconds > 0.0 {
            m.requests / day_seconds
        } else {
            0.0
        };
        m.qps_max = per_minute
            .get(model)
            .map(|w| w.values().fold(0.0, |a: f64, b| a.max(*b)) / 60.0)
            .unwrap_or(0.0);
        if let Some(b) = buckets.get(model) {
            let pairs: Vec<(f64, f64)> = b
                .iter()
                .filter_map(|(le, c)| le.parse::<f64>().ok().map(|le| (le, *c)))
                .collect();
            for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                if let Some(v) = histogram_quantile(q, &pairs) {
                    m.latency_seconds.insert(name.to_string(), v);
                }
            }
        }
        m.alerts_fired = fired_by_model.get(model).map_or(0, BTreeSet::len);
    }
    for (job, (targets, scrapes, ups)) in up {
        out.jobs.insert(
            job,
            JobSummary {
                targets: targets.len(),
                scrapes,
                up_ratio: if scrapes > 0 {
                    ups / scrapes as f64
                } else {
                    0.0
                },
            },
        );
    }
    out.alerts_fired = fired.len();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
        Series {
            labels: Labels::new(labels.iter().copied()),
            samples: points
                .iter()
                .map(|&(t, v)| Sample {
                    timestamp_ms: t,
                    value: v,
                })
                .collect(),
        }
    }

    #[test]
    fn counts_requests_errors_latency_and_alerts() {
        let ok = [
            ("__name__", "infermon_inference_requests_total"),
            ("model", "m"),
            ("status", "200"),
        ];
        let bad = [
            ("__name__", "infermon_inference_requests_total"),
            ("model", "m"),
            ("status", "500"),
        ];
        let b = |le: &'static str| {
            [
                (
                    "__name__",
                    "infermon_inference_total_duration_seconds_bucket",
                ),
                ("model", "m"),
                ("le", le),
            ]
        };
        let input = vec![
            // 90 ok requests with a counter reset in the middle; 10 errors.
            series(&ok, &[(0, 100.0), (60_000, 160.0), (120_000, 30.0)]),
            series(&bad, &[(0, 0.0), (120_000, 10.0)]),
            series(&b("0.1"), &[(0, 0.0), (120_000, 50.0)]),
            series(&b("1"), &[(0, 0.0), (120_000, 90.0)]),
            series(&b("+Inf"), &[(0, 0.0), (120_000, 100.0)]),
            series(
                &[
                    ("__name__", "ALERTS"),
                    ("alertname", "HighLatency"),
                    ("alertstate", "firing"),
                    ("model", "m"),
                ],
                &[(60_000, 1.0)],
            ),
            series(
                &[("__name__", "up"), ("job", "node"), ("instance", "a")],
                &[(0, 1.0), (15_000, 0.0), (30_000, 1.0), (45_000, 1.0)],
            ),
            series(
                &[("__name__", "infermon_gpu_memory_used_bytes"), ("gpu", "0")],
                &[(0, 5.0), (1, 9.0), (2, 7.0)],
            ),
        ];
        let s = summarize(&input, 86_400.0);
        let m = &s.models["m"];
        assert_eq!(m.requests, 100.0);
        assert_eq!(m.errors, 10.0);
        assert!((m.error_ratio - 0.1).abs() < 1e-12);
        assert!((m.qps_mean - 100.0 / 86_400.0).abs() < 1e-12);
        // Busiest minute: the ok counter went 100 → 160.
        assert!((m.qps_max - 1.0).abs() < 1e-12, "{}", m.qps_max);
        assert!((m.latency_seconds["p50"] - 0.1).abs() < 1e-12);
        assert!(
            (m.latency_seconds["p95"] - 1.0).abs() < 1e-12,
            "{:?}",
            m.latency_seconds
        );
        assert_eq!(m.alerts_fired, 1);
        assert_eq!(s.alerts_fired, 1);
        assert_eq!(s.jobs["node"].up_ratio, 0.75);
        assert_eq!(s.gpu_memory_max_bytes["0"], 9.0);
    }

    #[test]
    fn quantile_interpolates_like_prometheus() {
        let b = [(0.1, 50.0), (1.0, 90.0), (f64::INFINITY, 100.0)];
        assert_eq!(histogram_quantile(0.5, &b), Some(0.1));
        assert!((histogram_quantile(0.7, &b).unwrap() - 0.55).abs() < 1e-12);
        assert_eq!(histogram_quantile(0.99, &b), Some(1.0));
        assert_eq!(
            histogram_quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
    }
}
