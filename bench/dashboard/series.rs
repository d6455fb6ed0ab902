//! 24 hours of what a busy inference box's self-scrape stores, for the
//! Overview page: two models (an embedder and a reranker) on two routes each,
//! requests by status, latency histograms, queue depth, batch sizes, tokens,
//! rerank scores, one GPU, the process. Traffic follows the day (quiet at
//! night, a peak in the afternoon) with noise; deterministic for a seed.
//! Shared by `bench/dashboard/fill.rs` and the page-size test in
//! `tests/browser.rs` (included with `#[path]`).

use infermon::model::{Labels, Sample};
use infermon::storage::{AppendSample, Appender, StorageError};

/// Latency buckets of `infermon_inference_total_duration_seconds`.
const SECONDS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
    20.0, 30.0,
];
const SCORES: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
const MODELS: [(&str, [&str; 2], f64); 2] = [
    ("all-MiniLM-L6-v2", ["/embed", "/v1/embeddings"], 0.012),
    ("bge-reranker-base", ["/rerank", "/v1/rerank"], 0.045),
];

/// A small xorshift generator: the same data every run, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Requests per second at `t` ms: a day curve between ~5 and ~60 req/s.
fn qps(t: i64, rng: &mut Rng) -> f64 {
    let hour = (t / 1000 % 86_400) as f64 / 3600.0;
    let day = 0.5 - 0.5 * ((hour - 3.0) / 24.0 * std::f64::consts::TAU).cos();
    (5.0 + 55.0 * day) * (0.85 + 0.3 * rng.next())
}

/// Counter state of one (model, route).
struct RouteState {
    model: &'static str,
    route: &'static str,
    median_s: f64,
    by_status: [f64; 3],
    buckets: [f64; 18],
    sum: f64,
}

fn labels(name: &str, extra: &[(&str, &str)]) -> Labels {
    let mut pairs: Vec<(String, String)> = vec![
        ("__name__".into(), name.into()),
        ("job".into(), "infermon".into()),
        ("instance".into(), "127.0.0.1:8080".into()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Labels::new(pairs)
}

/// Appends `[start_ms, end_ms]` every `step_ms` to `store`, one batch per
/// step (as a scrape would); returns the number of samples.
pub fn fill(
    store: &dyn Appender,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<u64, StorageError> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut routes: Vec<RouteState> = MODELS
        .iter()
        .flat_map(|(m, rs, median)| {
            rs.iter().map(move |r| RouteState {
                model: m,
                route: r,
                median_s: *median,
                by_status: [0.0; 3],
                buckets: [0.0; 18],
                sum: 0.0,
            })
        })
        .collect();
    let les: Vec<String> = SECONDS
        .iter()
        .map(|b| b.to_string())
        .chain(std::iter::once("+Inf".to_string()))
        .collect();
    let score_les: Vec<String> = SCORES
        .iter()
        .map(|b| b.to_string())
        .chain(std::iter::once("+Inf".to_string()))
        .collect();
    let mut scores = [0.0f64; 11];
    let mut score_sum = 0.0;
    let mut batches = [(0.0f64, 0.0f64); 2];
    let mut tokens = [(0.0f64, 0.0f64); 2];
    let mut cpu = 0.0;
    let mut samples = 0u64;
    let mut t = start_ms;
    while t <= end_ms {
        let mut batch: Vec<(Labels, f64)> = Vec::with_capacity(160);
        let dt = step_ms as f64 / 1000.0;
        let mut total_qps = 0.0;
        for r in routes.iter_mut() {
            let q = qps(t, &mut rng) * if r.route.starts_with("/v1") { 0.4 } else { 1.0 };
            total_qps += q;
            let n = q * dt;
            let errors = n * 0.004 * (1.0 + 4.0 * rng.next());
            let throttled = n * if q > 40.0 { 0.02 * rng.next() } else { 0.0 };
            r.by_status[0] += (n - errors - throttled).round().max(0.0);
            r.by_status[1] += throttled.round();
            r.by_status[2] += errors.round();
            // Latency: log-normal-ish around the model's median, slower under load.
            let ok = (n - errors - throttled).round().max(0.0);
            let median = r.median_s * (1.0 + q / 80.0);
            // ln(v / median) is uniform on [-0.8, 0.8]; 1 request in 97 is 6× slower.
            let cdf = |le: f64, m: f64| (((le / m).ln() + 0.8) / 1.6).clamp(0.0, 1.0);
            let tail = 1.0 / 97.0;
            for (b, le) in SECONDS.iter().enumerate() {
                r.buckets[b] += (ok
                    * ((1.0 - tail) * cdf(*le, median) + tail * cdf(*le, 6.0 * median)))
                .round();
            }
            r.buckets[17] += ok;
            r.sum += ok * median * 1.1097 * (1.0 + 5.0 * tail);
            for (s, code) in ["200", "429", "500"].iter().enumerate() {
                batch.push((
                    labels(
                        "infermon_inference_requests_total",
                        &[("model", r.model), ("route", r.route), ("status", code)],
                    ),
                    r.by_status[s],
                ));
            }
            for (b, le) in les.iter().enumerate() {
                batch.push((
                    labels(
                        "infermon_inference_total_duration_seconds_bucket",
                        &[("model", r.model), ("route", r.route), ("le", le)],
                    ),
                    r.buckets[b],
                ));
            }
            batch.push((
                labels(
                    "infermon_inference_total_duration_seconds_sum",
                    &[("model", r.model), ("route", r.route)],
                ),
                r.sum,
            ));
            batch.push((
                labels(
                    "infermon_inference_total_duration_seconds_count",
                    &[("model", r.model), ("route", r.route)],
                ),
                r.buckets[17],
            ));
            if r.model.starts_with("bge") && r.route == "/rerank" {
                // Scores u^1.7 for uniform u: P(score <= le) = le^(1/1.7).
                let n = ok * 8.0;
                for (b, le) in SCORES.iter().enumerate() {
                    scores[b] += (n * le.powf(1.0 / 1.7)).round();
                }
                scores[10] += n;
                score_sum += n / 2.7;
            }
        }
        for (m, (model, _, _)) in MODELS.iter().enumerate() {
            let load = qps(t, &mut rng) / 60.0;
            batch.push((
                labels("infermon_inference_in_flight", &[("model", model)]),
                (load * 12.0 * rng.next()).round(),
            ));
            batch.push((
                labels("infermon_inference_queue_depth", &[("model", model)]),
                (load * 40.0 * rng.next()).round(),
            ));
            let forward = (total_qps * dt / 4.0).round();
            batches[m].0 += forward * (2.0 + 10.0 * load);
            batches[m].1 += forward;
            tokens[m].0 += total_qps * dt * 29.0;
            tokens[m].1 += total_qps * dt;
            for (name, v) in [
                ("infermon_inference_batch_size_sum", batches[m].0),
                ("infermon_inference_batch_size_count", batches[m].1),
                ("infermon_inference_input_tokens_sum", tokens[m].0),
                ("infermon_inference_input_tokens_count", tokens[m].1),
            ] {
                batch.push((labels(name, &[("model", model)]), v));
            }
            batch.push((
                labels(
                    "infermon_model_info",
                    &[
                        ("model", model),
                        ("architecture", "bert"),
                        ("task", if m == 0 { "embed" } else { "rerank" }),
                        ("device", "cuda:0"),
                        ("dtype", "f16"),
                    ],
                ),
                1.0,
            ));
        }
        for (b, le) in score_les.iter().enumerate() {
            batch.push((
                labels(
                    "infermon_rerank_score_bucket",
                    &[("model", "bge-reranker-base"), ("le", le)],
                ),
                scores[b],
            ));
        }
        batch.push((
            labels(
                "infermon_rerank_score_sum",
                &[("model", "bge-reranker-base")],
            ),
            score_sum,
        ));
        batch.push((
            labels(
                "infermon_rerank_score_count",
                &[("model", "bge-reranker-base")],
            ),
            scores[10],
        ));
        let load = total_qps / 120.0;
        let gpu = [("gpu", "0"), ("name", "H100"), ("uuid", "GPU-1")];
        for (name, v) in [
            (
                "infermon_gpu_memory_used_bytes",
                (20.0 + 8.0 * load) * 1073741824.0,
            ),
            ("infermon_gpu_memory_total_bytes", 80.0 * 1073741824.0),
            (
                "infermon_gpu_utilization_ratio",
                (load * (0.8 + 0.2 * rng.next())).min(1.0),
            ),
            (
                "infermon_gpu_temperature_celsius",
                (38.0 + 30.0 * load).round(),
            ),
            ("infermon_gpu_power_watts", 90.0 + 450.0 * load),
        ] {
            batch.push((labels(name, &gpu), v));
        }
        cpu += dt * (0.2 + 1.5 * load);
        batch.push((labels("process_cpu_seconds_total", &[]), cpu));
        batch.push((
            labels("process_resident_memory_bytes", &[]),
            (900.0 + 50.0 * rng.next()) * 1048576.0,
        ));
        batch.push((labels("up", &[]), 1.0));
        samples += batch.len() as u64;
        let appends: Vec<AppendSample> = batch
            .into_iter()
            .map(|(labels, value)| AppendSample {
                labels,
                sample: Sample {
                    timestamp_ms: t,
                    value,
                },
            })
            .collect();
        store.append(&appends)?;
        t += step_ms;
    }
    Ok(samples)
}
