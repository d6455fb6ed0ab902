//! Every `infermon_inference_*`, `infermon_model_*` and quality metric of the
//! model server, defined once and registered in the registry passed in.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Latency buckets, 0.5 ms to 30 s.
const SECONDS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
    20.0, 30.0,
];

/// The model server's metrics.
#[derive(Clone)]
pub struct Metrics {
    requests: IntCounterVec,
    errors: IntCounterVec,
    queue: HistogramVec,
    tokenization: HistogramVec,
    compute: HistogramVec,
    total: HistogramVec,
    batch_size: HistogramVec,
    batch_tokens: HistogramVec,
    input_tokens: HistogramVec,
    queue_depth: IntGaugeVec,
    in_flight: IntGaugeVec,
    info: IntGaugeVec,
    load_seconds: GaugeVec,
    rerank_score: HistogramVec,
    truncated: IntCounterVec,
}

/// The metrics of one model, with its label already applied, for the hot
/// paths (batcher thread, handlers).
#[derive(Clone)]
pub struct ModelMetrics {
    /// Forward-pass time per batch.
    pub compute: Histogram,
    /// Inputs per batch.
    pub batch_size: Histogram,
    /// Real (unpadded) tokens per batch.
    pub batch_tokens: Histogram,
    /// Tokens per input.
    pub input_tokens: Histogram,
    /// Inputs waiting for a batch.
    pub queue_depth: IntGauge,
    /// Requests admitted and not yet answered.
    pub in_flight: IntGauge,
    /// Rerank scores (after sigmoid).
    pub rerank_score: Histogram,
    /// Inputs cut to the model's maximum length.
    pub truncated: IntCounter,
    /// Time to load.
    pub load_seconds: Gauge,
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Registers every model-server metric in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Metrics> {
        let powers = |start: f64, n: usize| prometheus::exponential_buckets(start, 2.0, n);
        let load_seconds = GaugeVec::new(
            Opts::new(
                "infermon_model_load_seconds",
                "Seconds it took to load the model (at start or at its last change).",
            ),
            &["model"],
        )?;
        registry.register(Box::new(load_seconds.clone()))?;
        Ok(Metrics {
            requests: counter(
                registry,
                "infermon_inference_requests_total",
                "Inference requests answered, by model, route and HTTP status.",
                &["model", "route", "status"],
            )?,
            errors: counter(
                registry,
                "infermon_inference_errors_total",
                "Inference requests that failed, by model, route and error type.",
                &["model", "route", "error_type"],
            )?,
            queue: histogram(
                registry,
                "infermon_inference_queue_duration_seconds",
                "Time a request waited for its first batch.",
                &["model", "route"],
                SECONDS.to_vec(),
            )?,
            tokenization: histogram(
                registry,
                "infermon_inference_tokenization_duration_seconds",
                "Time spent tokenizing a request.",
                &["model", "route"],
                SECONDS.to_vec(),
            )?,
            compute: histogram(
                registry,
                "infermon_inference_compute_duration_seconds",
                "Time of one forward pass over a batch.",
                &["model"],
                SECONDS.to_vec(),
            )?,
            total: histogram(
                registry,
                "infermon_inference_total_duration_seconds",
                "Time from request to answer, successful requests only.",
                &["model", "route"],
                SECONDS.to_vec(),
            )?,
            batch_size: histogram(
                registry,
                "infermon_inference_batch_size",
                "Inputs per forward pass.",
                &["model"],
                powers(1.0, 10)?,
            )?,
            batch_tokens: histogram(
                registry,
                "infermon_inference_batch_tokens",
                "Real (unpadded) tokens per forward pass.",
                &["model"],
                powers(16.0, 12)?,
            )?,
            input_tokens: histogram(
                registry,
                "infermon_inference_input_tokens",
                "Tokens per input, after truncation.",
                &["model"],
                powers(4.0, 12)?,
            )?,
            queue_depth: gauge(
                registry,
                "infermon_inference_queue_depth",
                "Inputs waiting for a forward pass.",
                &["model"],
            )?,
            in_flight: gauge(
                registry,
                "infermon_inference_in_flight",
                "Requests admitted and not yet answered (at most max_concurrent_requests).",
                &["model"],
            )?,
            info: gauge(
                registry,
                "infermon_model_info",
                "The models served; the value is always 1.",
                &["model", "architecture", "task", "device", "dtype"],
            )?,
            load_seconds,
            rerank_score: histogram(
                registry,
                "infermon_rerank_score",
                "Relevance scores returned (0 to 1, after sigmoid).",
                &["model"],
                vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            )?,
            truncated: counter(
                registry,
                "infermon_embedding_input_truncated_total",
                "Inputs cut to the model's maximum length because the request allowed truncation.",
                &["model"],
            )?,
        })
    }

    /// Publishes `infermon_model_info` and returns the per-model handles.
    pub fn model(
        &self,
        model: &str,
        architecture: &str,
        task: &str,
        device: &str,
        dtype: &str,
    ) -> ModelMetrics {
        self.publish(model, [architecture, task, device, dtype]);
        self.handles(model)
    }

    /// Marks a model as served: `infermon_model_info` with its
    /// architecture, task, device and dtype.
    pub fn publish(&self, model: &str, [architecture, task, device, dtype]: [&str; 4]) {
        self.info
            .with_label_values(&[model, architecture, task, device, dtype])
            .set(1);
    }

    /// Takes back [`publish`](Self::publish) for a model no longer served in
    /// that shape.
    pub fn unpublish(&self, model: &str, [architecture, task, device, dtype]: [&str; 4]) {
        let _ = self
            .info
            .remove_label_values(&[model, architecture, task, device, dtype]);
    }

    /// Drops the gauges of a model that is gone (queue depth, in flight,
    /// load time), so they do not show a dead model at a stale value. Its
    /// counters and histograms stay: they only grow, and a series that comes
    /// back under the same name continues them instead of resetting.
    pub fn forget(&self, model: &str) {
        for gauge in [&self.queue_depth, &self.in_flight] {
            let _ = gauge.remove_label_values(&[model]);
        }
        let _ = self.load_seconds.remove_label_values(&[model]);
    }

    /// The per-model handles, without publishing the model as served.
    pub fn handles(&self, model: &str) -> ModelMetrics {
        ModelMetrics {
            compute: self.compute.with_label_values(&[model]),
            batch_size: self.batch_size.with_label_values(&[model]),
            batch_tokens: self.batch_tokens.with_label_values(&[model]),
            input_tokens: self.input_tokens.with_label_values(&[model]),
            queue_depth: self.queue_depth.with_label_values(&[model]),
            in_flight: self.in_flight.with_label_values(&[model]),
            rerank_score: self.rerank_score.with_label_values(&[model]),
            truncated: self.truncated.with_label_values(&[model]),
            load_seconds: self.load_seconds.with_label_values(&[model]),
        }
    }

    /// Counts one answered request (any status).
    pub fn request(&self, model: &str, route: &str, status: u16) {
        self.requests
            .with_label_values(&[model, route, status_label(status)])
            .inc();
    }

    /// Counts one failed request.
    pub fn error(&self, model: &str, route: &str, error_type: &str) {
        self.errors
            .with_label_values(&[model, route, error_type])
            .inc();
    }

    /// Records the phases of one successful request.
    pub fn timings(&self, model: &str, route: &str, t: &crate::inference::queue::Timings) {
        self.queue
            .with_label_values(&[model, route])
            .observe(t.queue.as_secs_f64());
        self.tokenization
            .with_label_values(&[model, route])
            .observe(t.tokenization.as_secs_f64());
        self.total
            .with_label_values(&[model, route])
            .observe(t.total.as_secs_f64());
    }
}

/// Status codes as static labels (no allocation per request).
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        404 => "404",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
