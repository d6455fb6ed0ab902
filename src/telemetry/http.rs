//! Per-route HTTP metrics, recorded by one middleware for every request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// `infermon_http_*` metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
}

/// Latency buckets from 1 ms to 30 s.
const BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

impl HttpMetrics {
    /// Registers the HTTP metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("infermon_http_requests_total", "HTTP requests answered, by route, method and status."),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("infermon_http_request_duration_seconds", "Time to answer HTTP requests, by route.")
                .buckets(BUCKETS.to_vec()),
            &["route"],
        )?;
        let in_flight = IntGaugeVec::new(
            Opts::new("infermon_http_requests_in_flight", "HTTP requests being answered now, by route."),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(HttpMetrics { requests, duration, in_flight })
    }
}

/// Middleware: counts, times and tracks in-flight requests by matched route.
/// Unmatched paths share the route label `unmatched` so scanners cannot
/// create unbounded series.
pub async fn track_http(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let gauge = metrics.in_flight.with_label_values(&[&route]);
    gauge.inc();
    // Decrement even if the handler future is dropped (client went away).
    let _guard = DecOnDrop(gauge);
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.duration.with_label_values(&[&route]).observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    response
}

struct DecOnDrop(prometheus::IntGauge);

impl Drop for DecOnDrop {
    fn drop(&mut self) {
        self.0.dec();
    }
}
