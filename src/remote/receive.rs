//! The remote-write receiver: `POST /api/v1/write` takes Prometheus
//! remote_write 1.0 requests (snappy block-compressed protobuf
//! `WriteRequest`), so Prometheus agents and other senders can push into
//! infermon's store.
//!
//! Answers as Prometheus does: 204 when everything was stored; 400 for a
//! body that is not a valid request (the sender drops it) and for samples
//! that are too old to take (the rest of the request is stored first); 503
//! when the store cannot write (disk nearly full), which senders retry.
//!
//! Appends refuse a sample older than its series' newest one, and one such
//! sample fails a whole batch. So a refused request is stored series by
//! series: a series whose append is refused is backfilled instead when its
//! samples are within `storage.out_of_order_time_window` of now; older ones
//! are counted and refused.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use prost::Message;

use super::proto::WriteRequest;
use crate::model::textparse::{is_label_name, is_metric_name};
use crate::model::{Labels, METRIC_NAME, Sample};
use crate::storage::{AppendSample, Appender, Backfill, Series, StorageError};
use crate::web::ApiError;

/// Largest decompressed request taken (Prometheus' limit is 32 MiB too).
const MAX_DECODED_BYTES: usize = 32 << 20;

/// What the receiver writes to and how it counts.
#[derive(Clone)]
pub struct Receiver {
    appender: Arc<dyn Appender>,
    backfill: Arc<dyn Backfill>,
    window_ms: i64,
    metrics: ReceiverMetrics,
}

/// `infermon_remote_write_received_*`.
#[derive(Clone)]
struct ReceiverMetrics {
    requests: IntCounterVec,
    samples: IntCounter,
    rejected: IntCounterVec,
}

impl ReceiverMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = ReceiverMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "infermon_remote_write_received_requests_total",
                    "Remote-write requests received, by HTTP status answered.",
                ),
                &["code"],
            )?,
            samples: IntCounter::new(
                "infermon_remote_write_received_samples_total",
                "Samples stored from remote-write requests.",
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "infermon_remote_write_rejected_samples_total",
                    "Samples of remote-write requests not stored, by reason.",
                ),
                &["reason"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.samples.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        Ok(m)
    }
}

/// What one request did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Samples stored (appended or backfilled).
    pub stored: u64,
    /// Samples older than the out-of-order window.
    pub too_old: u64,
}

impl Receiver {
    /// A receiver writing to `appender`/`backfill` (the same store), taking
    /// out-of-order samples up to `window_ms` old; metrics in `registry`.
    pub fn new(
        appender: Arc<dyn Appender>,
        backfill: Arc<dyn Backfill>,
        window_ms: i64,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        Ok(Receiver {
            appender,
            backfill,
            window_ms,
            metrics: ReceiverMetrics::new(registry)?,
        })
    }

    /// Stores one decoded request as of `now_ms`.
    pub fn store(&self, series: Vec<Series>, now_ms: i64) -> Result<Outcome, StorageError> {
        let batch: Vec<AppendSample> = series.iter().flat_map(appends).collect();
        let total = batch.len() as u64;
        match self.appender.append(&batch) {
            Ok(()) => {
                return Ok(Outcome {
                    stored: total,
                    too_old: 0,
                });
            }
            Err(StorageError::Rejected(_)) => {}
            Err(e) => return Err(e),
        }
        let mut outcome = Outcome::default();
        let oldest_allowed = now_ms.saturating_sub(self.window_ms);
        for s in series {
            let one: Vec<AppendSample> = appends(&s).collect();
            match self.appender.append(&one) {
                Ok(()) => outcome.stored += one.len() as u64,
                Err(StorageError::Rejected(_)) => {
                    let (recent, old): (Vec<Sample>, Vec<Sample>) = s
                        .samples
                        .iter()
                        .partition(|x| x.timestamp_ms >= oldest_allowed);
                    outcome.too_old += old.len() as u64;
                    if !recent.is_empty() {
                        let report = self.backfill.backfill(&[Series {
                            labels: s.labels,
                            samples: recent,
                        }])?;
                        outcome.stored += report.samples_added + report.samples_existing;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(outcome)
    }

    /// `POST /api/v1/write`.
    pub fn routes(self) -> Router {
        Router::new()
            .route("/api/v1/write", post(write))
            .with_state(self)
    }
}

/// The samples of one series as appends.
fn appends(s: &Series) -> impl Iterator<Item = AppendSample> + '_ {
    s.samples.iter().map(|&sample| AppendSample {
        labels: s.labels.clone(),
        sample,
    })
}

/// Decodes a request body: snappy block format, then protobuf; labels are
/// checked the way Prometheus checks them.
pub fn decode(body: &[u8]) -> Result<Vec<Series>, String> {
    let len = snap::raw::decompress_len(body).map_err(|e| format!("snappy: {e}"))?;
    if len > MAX_DECODED_BYTES {
        return Err(format!(
            "the request decompresses to {len} bytes, more than the {MAX_DECODED_BYTES} taken; send smaller batches"
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e} (remote_write bodies use the snappy block format)"))?;
    let request = WriteRequest::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))?;
    let mut out = Vec::with_capacity(request.timeseries.len());
    for ts in request.timeseries {
        let mut names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("duplicate label name {:?} in one series", w[0]));
        }
        for l in &ts.labels {
            let ok = if l.name == METRIC_NAME {
                is_metric_name(&l.value)
            } else {
                is_label_name(&l.name)
            };
            if !ok {
                return Err(format!("invalid label {}={:?}", l.name, l.value));
            }
        }
        let labels = Labels::new(ts.labels.into_iter().map(|l| (l.name, l.value)));
        if labels.metric_name().is_none() {
            return Err(format!("series {labels} has no metric name"));
        }
        let mut samples: Vec<Sample> = ts
            .samples
            .into_iter()
            .map(|s| Sample {
                timestamp_ms: s.timestamp,
                value: s.value,
            })
            .collect();
        samples.sort_by_key(|s| s.timestamp_ms);
        out.push(Series { labels, samples });
    }
    Ok(out)
}

async fn write(State(r): State<Receiver>, body: Bytes) -> Response {
    let answer = |code: StatusCode, r: &Receiver| {
        r.metrics.requests.with_label_values(&[code.as_str()]).inc();
    };
    let series = match decode(&body) {
        Ok(s) => s,
        Err(e) => {
            answer(StatusCode::BAD_REQUEST, &r);
            r.metrics.rejected.with_label_values(&["malformed"]).inc();
            return ApiError::bad_request(e).into_response();
        }
    };
    let worker = r.clone();
    let now = crate::util::now_ms();
    let result = tokio::task::spawn_blocking(move || worker.store(series, now)).await;
    match result {
        Ok(Ok(outcome)) => {
            r.metrics.samples.inc_by(outcome.stored);
            if outcome.too_old > 0 {
                r.metrics
                    .rejected
                    .with_label_values(&["too_old"])
                    .inc_by(outcome.too_old);
                answer(StatusCode::BAD_REQUEST, &r);
                return ApiError::bad_request(format!(
                    "{} sample(s) are older than storage.out_of_order_time_window and older than their series' newest sample; {} stored",
                    outcome.too_old, outcome.stored
                ))
                .into_response();
            }
            answer(StatusCode::NO_CONTENT, &r);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Err(e)) => {
            answer(StatusCode::SERVICE_UNAVAILABLE, &r);
            ApiError::unavailable(format!("cannot store the samples now: {e}")).into_response()
        }
        Err(e) => {
            answer(StatusCode::INTERNAL_SERVER_ERROR, &r);
            ApiError::internal(format!("write task failed: {e}")).into_response()
        }
    }
}
