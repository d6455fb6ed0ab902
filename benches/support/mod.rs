//! Data shared by the PromQL benchmarks: a small fleet's counters, gauges and
//! classic histogram buckets every 15s, the shapes infermon's dashboard and
//! default alert rules query.
#![allow(dead_code)]

use infermon::model::{Labels, Sample};
use infermon::storage::{AppendSample, Appender};

/// Scrape interval of the generated data.
pub const STEP_MS: i64 = 15_000;

/// Dashboard- and alert-style queries.
pub const QUERIES: &[(&str, &str)] = &[
    (
        "request rate by model",
        "sum by (model) (rate(bench_requests_total[5m]))",
    ),
    (
        "error ratio alert",
        "sum(rate(bench_requests_total{code=\"500\"}[5m])) / sum(rate(bench_requests_total[5m])) > 0.03",
    ),
    (
        "p95 latency",
        "histogram_quantile(0.95, sum by (le, model) (rate(bench_latency_seconds_bucket[5m])))",
    ),
    (
        "gpu util avg",
        "avg by (gpu) (avg_over_time(bench_gpu_utilization[5m]))",
    ),
    ("queue depth max", "max(bench_queue_depth)"),
];

/// A deterministic pseudo-random sequence.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number in `[0, 1)`.
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Series with samples from `start_ms` for `span_ms`, `STEP_MS` apart.
pub fn generate(start_ms: i64, span_ms: i64) -> Vec<(Labels, Vec<Sample>)> {
    let n = span_ms / STEP_MS;
    let ts = |i: i64| start_ms + i * STEP_MS + 7;
    let mut rng = Lcg(7);
    let mut out = Vec::new();
    for model in ["minilm", "reranker"] {
        for code in ["200", "429", "500"] {
            let mut v = 0.0;
            let samples = (0..n)
                .map(|i| {
                    v += (rng.next() * 20.0).floor() * if code == "200" { 1.0 } else { 0.05 };
                    Sample {
                        timestamp_ms: ts(i),
                        value: v,
                    }
                })
                .collect();
            out.push((
                Labels::new([
                    ("__name__", "bench_requests_total"),
                    ("model", model),
                    ("code", code),
                ]),
                samples,
            ));
        }
        let bounds = [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
        ];
        let mut counts = vec![0.0; bounds.len()];
        let mut series: Vec<Vec<Sample>> = vec![Vec::with_capacity(n as usize); bounds.len()];
        for i in 0..n {
            for _ in 0..(rng.next() * 10.0) as usize {
                let obs = rng.next() * rng.next() * 3.0;
                for (b, le) in bounds.iter().enumerate() {
                    if *le == "+Inf" || obs <= le.parse::<f64>().unwrap_or(f64::INFINITY) {
                        counts[b] += 1.0;
                    }
                }
            }
            for b in 0..bounds.len() {
                series[b].push(Sample {
                    timestamp_ms: ts(i),
                    value: counts[b],
                });
            }
        }
        for (b, le) in bounds.iter().enumerate() {
            let labels = Labels::new([
                ("__name__", "bench_latency_seconds_bucket"),
                ("model", model),
                ("le", le),
            ]);
            out.push((labels, std::mem::take(&mut series[b])));
        }
        let mut q = 0.0f64;
        let samples = (0..n)
            .map(|i| {
                q = (q + rng.next() * 4.0 - 2.0).max(0.0);
                Sample {
                    timestamp_ms: ts(i),
                    value: q.round(),
                }
            })
            .collect();
        out.push((
            Labels::new([("__name__", "bench_queue_depth"), ("model", model)]),
            samples,
        ));
    }
    for gpu in ["0", "1", "2", "3"] {
        let samples = (0..n)
            .map(|i| Sample {
                timestamp_ms: ts(i),
                value: (rng.next() * 100.0).round(),
            })
            .collect();
        out.push((
            Labels::new([("__name__", "bench_gpu_utilization"), ("gpu", gpu)]),
            samples,
        ));
    }
    out
}

/// Appends `data` one scrape round at a time (all series at one timestamp),
/// in batches of about 240 rounds, as a running scraper fills the store.
pub fn append_by_rounds(store: &dyn Appender, data: &[(Labels, Vec<Sample>)]) {
    let rounds = data.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    let mut batch = Vec::with_capacity(data.len() * 240);
    for i in 0..rounds {
        for (labels, s) in data {
            if let Some(x) = s.get(i) {
                batch.push(AppendSample {
                    labels: labels.clone(),
                    sample: *x,
                });
            }
        }
        if batch.len() >= data.len() * 240 {
            store.append(&batch).expect("append");
            batch.clear();
        }
    }
    store.append(&batch).expect("append");
}
