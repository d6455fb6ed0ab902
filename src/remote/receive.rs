//! The remote-write receiver: `POST /api/v1/write` takes Prometheus
//! remote_write 1.0 requests (snappy block-compressed protobuf
//! `WriteRequest`), so Prometheus agents and other senders can push into
//! infermon's store.
//!
//! Answers as Prometheus does: 204 when everything was stored; 400 for a
//! body that is not a valid request (the sender drops it) and for samples
//! or series that cannot be taken (the rest of the request is stored
//! first); 413 for a body over `remote_write_receiver.max_request_bytes` or
//! `max_decompressed_bytes`; 503 when the store cannot write (disk nearly
//! full), which senders retry.
//!
//! Bounded work: the body is read up to its limit, and decoding and storing
//! run on blocking threads, at most `max_concurrent_requests` at once. A
//! series over a label limit is dropped before its label set is built;
//! a sample outside the store's time window ([`SampleBounds`]) is dropped.
//! Every drop is counted in `infermon_remote_write_rejected_samples_total`.
//!
//! Appends refuse a sample older than its series' newest one, and one such
//! sample fails a whole batch. So a refused request is stored series by
//! series: a series whose append is refused is backfilled instead when its
//! samples are within `storage.out_of_order_time_window` of now; older ones
//! are counted and refused.

use std::ops::Range;
use std::sync::Arc;

use crate::background::{PoolError, Priority, WorkerPool};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::config::ReceiverConfig;
use crate::model::textparse::{is_label_name, is_metric_name};
use crate::model::{Labels, METRIC_NAME, Sample};
use crate::storage::{
    AppendSample, Appender, Backfill, OUT_OF_BOUNDS, Series, SeriesRef, StorageError,
};
use crate::web::ApiError;

use super::series_cache::SentLabelsCache;

/// The receiver's limits (`remote_write_receiver:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveLimits {
    /// Largest body as sent (compressed).
    pub max_request_bytes: usize,
    /// Largest body once decompressed.
    pub max_decompressed_bytes: usize,
    /// Most labels per series.
    pub max_labels_per_series: usize,
    /// Longest label name (bytes).
    pub max_label_name_length: usize,
    /// Longest label value (bytes).
    pub max_label_value_length: usize,
}

impl ReceiveLimits {
    /// From the config section.
    pub fn from_config(c: &ReceiverConfig) -> Self {
        ReceiveLimits {
            max_request_bytes: c.max_request_bytes,
            max_decompressed_bytes: c.max_decompressed_bytes,
            max_labels_per_series: c.max_labels_per_series,
            max_label_name_length: c.max_label_name_length,
            max_label_value_length: c.max_label_value_length,
        }
    }
}

impl Default for ReceiveLimits {
    fn default() -> Self {
        Self::from_config(&ReceiverConfig::default())
    }
}

/// Why a request was not taken as a whole.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    /// The body as sent is over its limit (answered 413).
    #[error(
        "the request body is larger than remote_write_receiver.max_request_bytes ({limit} bytes); send smaller batches or raise the limit"
    )]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body decompresses to more than its limit (answered 413).
    #[error(
        "the request decompresses to {size} bytes, more than remote_write_receiver.max_decompressed_bytes ({limit}); send smaller batches or raise the limit"
    )]
    DecompressedTooLarge {
        /// The decompressed size the body announces.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not a valid request (answered 400).
    #[error("{0}")]
    Malformed(String),
}

/// A series dropped for a label limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelLimit {
    /// More labels than `max_labels_per_series`.
    TooManyLabels,
    /// A name longer than `max_label_name_length`.
    NameTooLong,
    /// A value longer than `max_label_value_length`.
    ValueTooLong,
}

impl LabelLimit {
    /// The `reason` label of the rejected-samples counter.
    pub fn reason(self) -> &'static str {
        match self {
            LabelLimit::TooManyLabels => "too_many_labels",
            LabelLimit::NameTooLong => "label_name_too_long",
            LabelLimit::ValueTooLong => "label_value_too_long",
        }
    }

    /// The config key of the limit.
    pub fn key(self) -> &'static str {
        match self {
            LabelLimit::TooManyLabels => "remote_write_receiver.max_labels_per_series",
            LabelLimit::NameTooLong => "remote_write_receiver.max_label_name_length",
            LabelLimit::ValueTooLong => "remote_write_receiver.max_label_value_length",
        }
    }
}

/// A decoded request: the series taken and those dropped for a limit.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Series within every limit.
    pub series: Vec<DecodedSeries>,
    /// Their samples, one series after another, each series' in time order
    /// (one vector per request, not one per series).
    pub samples: Vec<Sample>,
    /// The store's ref of each of `series`, where the store already had it
    /// (then its label set is the store's, not built again).
    pub refs: Vec<Option<SeriesRef>>,
    /// Series dropped for a label limit.
    pub dropped: Vec<Dropped>,
    /// Per series of `series`, where its label fields as sent are in `raw`
    /// (a [`SentLabelsCache`] key; `None` when they were not one leading run),
    /// and whether the cache's newer generation gave its ref in `refs`.
    pub keys: Vec<Option<(Range<usize>, bool)>>,
    /// The decompressed body.
    pub raw: Vec<u8>,
}

/// A series dropped for a label limit: the limit, its samples, and a
/// message for the sender.
pub type Dropped = (LabelLimit, u64, String);

/// A decoded series.
#[derive(Debug)]
pub struct DecodedSeries {
    /// Its label set.
    pub labels: Labels,
    /// Where its samples are in [`Decoded::samples`].
    pub samples: Range<usize>,
}

/// Ingest threads run at the lowest priority, as queries do: the model's
/// threads get the CPU first whenever both want it.
const INGEST_PRIORITY: Priority = Priority {
    nice: 19,
    batch: true,
};

/// How long a request waits for a free ingest thread before its 503.
const INGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the receiver writes to and how it counts.
#[derive(Clone)]
pub struct Receiver {
    appender: Arc<dyn Appender>,
    backfill: Arc<dyn Backfill>,
    window_ms: i64,
    limits: ReceiveLimits,
    /// Decodes and stores requests, `max_concurrent_requests` at once, below
    /// the model's priority.
    pool: WorkerPool,
    metrics: ReceiverMetrics,
    /// Known series by their label fields as sent.
    cache: Arc<SentLabelsCache>,
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
    /// Samples outside the store's time window ([`SampleBounds`]).
    ///
    /// [`SampleBounds`]: crate::storage::SampleBounds
    pub out_of_bounds: u64,
}

impl Receiver {
    /// A receiver writing to `appender`/`backfill` (the same store), taking
    /// out-of-order samples up to `window_ms` old, within `config`'s
    /// limits; metrics in `registry`.
    pub fn new(
        appender: Arc<dyn Appender>,
        backfill: Arc<dyn Backfill>,
        window_ms: i64,
        config: &ReceiverConfig,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        Ok(Receiver {
            appender,
            backfill,
            window_ms,
            limits: ReceiveLimits::from_config(config),
            pool: WorkerPool::new("rw-ingest", config.concurrency(), INGEST_PRIORITY),
            metrics: ReceiverMetrics::new(registry)?,
            cache: Arc::new(SentLabelsCache::default()),
        })
    }

    /// Stores one decoded request as of `now_ms`; samples outside the
    /// store's time window are left out and counted.
    pub fn store(&self, series: Vec<Series>, now_ms: i64) -> Result<Outcome, StorageError> {
        let mut samples = Vec::new();
        let mut flat: Vec<DecodedSeries> = series
            .into_iter()
            .map(|s| {
                let start = samples.len();
                samples.extend(s.samples);
                DecodedSeries {
                    labels: s.labels,
                    samples: start..samples.len(),
                }
            })
            .collect();
        let mut refs = vec![None; flat.len()];
        self.store_with_refs(&mut flat, &mut samples, &mut refs, now_ms)
    }

    /// [`Receiver::store`] with the store's ref of each series where known
    /// ([`Decoded::refs`]), so the store skips looking them up; each stored
    /// series' slot then holds the ref the store gave it.
    pub fn store_with_refs(
        &self,
        series: &mut [DecodedSeries],
        samples: &mut Vec<Sample>,
        series_refs: &mut [Option<SeriesRef>],
        now_ms: i64,
    ) -> Result<Outcome, StorageError> {
        // Samples outside the window are dropped in place; the series'
        // ranges are in order and apart, so each moves only down.
        let bounds = self.appender.sample_bounds();
        let mut kept_samples = 0;
        for s in series.iter_mut() {
            let start = kept_samples;
            for i in s.samples.clone() {
                let x = samples[i];
                if bounds.contains(x.timestamp_ms, now_ms) {
                    samples[kept_samples] = x;
                    kept_samples += 1;
                }
            }
            s.samples = start..kept_samples;
        }
        let out_of_bounds = (samples.len() - kept_samples) as u64;
        samples.truncate(kept_samples);
        let samples = &samples[..];
        let total = samples.len();
        let mut batch: Vec<AppendSample> = Vec::with_capacity(total);
        let mut refs: Vec<Option<SeriesRef>> = Vec::with_capacity(total);
        // Indices of the series with samples left.
        let mut kept = Vec::with_capacity(series.len());
        for (i, s) in series.iter().enumerate() {
            if s.samples.is_empty() {
                continue;
            }
            let r = series_refs.get(i).copied().flatten();
            batch.extend(appends(&s.labels, &samples[s.samples.clone()]));
            refs.extend(std::iter::repeat_n(r, s.samples.len()));
            kept.push(i);
        }
        let total = batch.len() as u64;
        match self.appender.append_with_refs(&batch, &mut refs) {
            Ok(()) => {
                let mut at = 0;
                for &i in &kept {
                    if let Some(slot) = series_refs.get_mut(i) {
                        *slot = refs[at];
                    }
                    at += series[i].samples.len();
                }
                return Ok(Outcome {
                    stored: total,
                    too_old: 0,
                    out_of_bounds,
                });
            }
            Err(StorageError::Rejected(_)) => {}
            Err(e) => return Err(e),
        }
        let mut outcome = Outcome {
            out_of_bounds,
            ..Outcome::default()
        };
        let oldest_allowed = now_ms.saturating_sub(self.window_ms);
        for i in kept {
            let s = &series[i];
            let one: Vec<AppendSample> = appends(&s.labels, &samples[s.samples.clone()]).collect();
            let mut one_refs = vec![series_refs.get(i).copied().flatten(); one.len()];
            match self.appender.append_with_refs(&one, &mut one_refs) {
                Ok(()) => {
                    outcome.stored += one.len() as u64;
                    if let Some(slot) = series_refs.get_mut(i) {
                        *slot = one_refs[0];
                    }
                }
                Err(StorageError::Rejected(_)) => {
                    let (recent, old): (Vec<Sample>, Vec<Sample>) = samples[s.samples.clone()]
                        .iter()
                        .partition(|x| x.timestamp_ms >= oldest_allowed);
                    outcome.too_old += old.len() as u64;
                    if !recent.is_empty() {
                        let report = self.backfill.backfill(&[Series {
                            labels: s.labels.clone(),
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

    /// Decodes and stores one request body as of `now_ms`, finding known
    /// series in the cache and caching the ones stored.
    fn take(
        &self,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(Result<Outcome, StorageError>, Vec<Dropped>), ReceiveError> {
        let mut decoded = decode_cached(body, &self.limits, &*self.appender, Some(&self.cache))?;
        let mut refs = decoded.refs.clone();
        let stored =
            self.store_with_refs(&mut decoded.series, &mut decoded.samples, &mut refs, now_ms);
        if stored.is_ok() {
            // New series, ones found in the older generation, and ones whose
            // cached ref the store replaced (the series was created again).
            let items = decoded
                .keys
                .iter()
                .zip(&decoded.series)
                .zip(refs.iter().zip(&decoded.refs))
                .filter_map(|((key, s), (now, given))| {
                    let (range, cached) = key.as_ref()?;
                    let r = (*now)?;
                    (!cached || *given != Some(r))
                        .then(|| (&decoded.raw[range.clone()], r, &s.labels))
                });
            self.cache.insert(items);
        }
        Ok((stored, decoded.dropped))
    }

    /// `POST /api/v1/write`.
    pub fn routes(self) -> Router {
        Router::new()
            .route("/api/v1/write", post(write))
            .with_state(self)
    }
}

/// The samples of one series as appends.
fn appends<'a>(
    labels: &'a Labels,
    samples: &'a [Sample],
) -> impl Iterator<Item = AppendSample> + 'a {
    samples.iter().map(|&sample| AppendSample {
        labels: labels.clone(),
        sample,
    })
}

/// Decodes a request body: snappy block format, then protobuf. Labels are
/// checked the way Prometheus checks them (a bad one refuses the request);
/// a series over a label limit is dropped before its label set is built.
pub fn decode(body: &[u8], limits: &ReceiveLimits) -> Result<Decoded, ReceiveError> {
    struct NoStore;
    impl Appender for NoStore {
        fn append(&self, _: &[AppendSample]) -> Result<(), StorageError> {
            Ok(())
        }
    }
    decode_known(body, limits, &NoStore)
}

/// [`decode_cached`] without a cache.
pub fn decode_known(
    body: &[u8],
    limits: &ReceiveLimits,
    store: &dyn Appender,
) -> Result<Decoded, ReceiveError> {
    decode_cached(body, limits, store, None)
}

/// [`decode`], taking the label set (and ref) of every series in `cache`
/// (found by its label fields as sent, which are then not even decoded) or
/// else in `store` (found by the hash of the decoded pairs): such a
/// series' labels were checked when it was created, and no label set is
/// built for it. Only new series are checked and built.
pub fn decode_cached(
    body: &[u8],
    limits: &ReceiveLimits,
    store: &dyn Appender,
    cache: Option<&SentLabelsCache>,
) -> Result<Decoded, ReceiveError> {
    if body.len() > limits.max_request_bytes {
        return Err(ReceiveError::BodyTooLarge {
            limit: limits.max_request_bytes,
        });
    }
    let len = snap::raw::decompress_len(body)
        .map_err(|e| ReceiveError::Malformed(format!("snappy: {e}")))?;
    if len > limits.max_decompressed_bytes {
        return Err(ReceiveError::DecompressedTooLarge {
            size: len,
            limit: limits.max_decompressed_bytes,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| {
            ReceiveError::Malformed(format!(
                "snappy: {e} (remote_write bodies use the snappy block format)"
            ))
        })?;
    let reader = cache.map(SentLabelsCache::reader);
    let (mut request, slots) =
        super::borrowed::decode_write_request_known(&raw, |key| reader.as_ref()?.get(key))
            .map_err(|e| ReceiveError::Malformed(format!("protobuf: {e}")))?;
    drop(reader);
    let mut out = Decoded {
        series: Vec::with_capacity(request.len()),
        samples: Vec::with_capacity(request.samples.len()),
        refs: Vec::with_capacity(request.len()),
        dropped: Vec::new(),
        keys: Vec::with_capacity(request.len()),
        raw: Vec::new(),
    };
    // Series not in the cache; their label sets are filled in below.
    let mut misses: Vec<Miss> = Vec::new();
    let base = raw.as_ptr() as usize;
    let mut start = (0, 0);
    for (&end, (run, hit)) in request.ends.iter().zip(slots) {
        let (label_span, sample_span) = (start.0..end.0, start.1..end.1);
        start = end;
        let key = run.map(|r| {
            let at = r.as_ptr() as usize - base;
            at..at + r.len()
        });
        let (labels, r, cached) = match hit {
            // Checked (limits, names, UTF-8) when it was cached.
            Some(hit) => (hit.labels, Some(hit.series), hit.current),
            None => {
                let pairs = &mut request.labels[label_span.clone()];
                if let Some((limit, why)) = over_label_limit(pairs, limits) {
                    // A label that is not UTF-8 refuses the request, as it
                    // did when every label was checked while decoding.
                    if pairs.iter().any(|(n, v)| {
                        std::str::from_utf8(n).is_err() || std::str::from_utf8(v).is_err()
                    }) {
                        return Err(not_utf8());
                    }
                    out.dropped.push((limit, sample_span.len() as u64, why));
                    continue;
                }
                // Senders send names sorted; the store's sets are.
                if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
                    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
                }
                let plain = pairs.windows(2).all(|w| w[0].0 != w[1].0)
                    && pairs.iter().all(|(_, v)| !v.is_empty());
                misses.push(Miss {
                    at: out.series.len(),
                    labels: label_span,
                    plain,
                });
                (Labels::default(), None, false)
            }
        };
        let start = out.samples.len();
        out.samples.extend(
            request.samples[sample_span]
                .iter()
                .map(|&(timestamp_ms, value)| Sample {
                    timestamp_ms,
                    value,
                }),
        );
        let samples = &mut out.samples[start..];
        if !samples
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
        {
            samples.sort_by_key(|s| s.timestamp_ms);
        }
        out.series.push(DecodedSeries {
            labels,
            samples: start..out.samples.len(),
        });
        out.refs.push(r);
        out.keys.push(key.map(|k| (k, cached)));
    }
    if !misses.is_empty() {
        let sets: Vec<&[(&[u8], &[u8])]> = misses
            .iter()
            .filter(|m| m.plain)
            .map(|m| &request.labels[m.labels.clone()])
            .collect();
        let mut found = store.find_series(&sets).into_iter();
        let known: Vec<Option<(SeriesRef, Labels)>> = misses
            .iter()
            .map(|m| {
                if m.plain {
                    found.next().flatten()
                } else {
                    None
                }
            })
            .collect();
        // The sets the store does not have, as text (empty for known
        // ones): every one is checked for UTF-8 before any is built, so
        // that error comes first, as it did from the decoder.
        let texts = misses
            .iter()
            .zip(&known)
            .map(|(m, found)| match found {
                Some(_) => Ok(Vec::new()),
                None => utf8_pairs(&request.labels[m.labels.clone()]),
            })
            .collect::<Result<Vec<_>, _>>()?;
        for ((m, found), text) in misses.iter().zip(known).zip(texts) {
            let (labels, r) = match found {
                Some((r, labels)) => (labels, Some(r)),
                None => (new_series_labels(&text)?, None),
            };
            out.series[m.at].labels = labels;
            out.refs[m.at] = r;
        }
    }
    drop(request);
    out.raw = raw;
    Ok(out)
}

/// A series of a request the cache did not know: where it is in
/// [`Decoded::series`] (its label set is filled in once looked up), where
/// its labels are in the decoded request, and whether its set is one the
/// store could hold as it is (names unique, no empty value), so worth
/// looking up; others are checked and refused.
struct Miss {
    at: usize,
    labels: Range<usize>,
    plain: bool,
}

/// A request with a label that is not UTF-8.
fn not_utf8() -> ReceiveError {
    ReceiveError::Malformed(format!("protobuf: {}", super::borrowed::WireError::Utf8))
}

/// The pairs as text; a label that is not UTF-8 refuses the request.
fn utf8_pairs<'a>(pairs: &[(&'a [u8], &'a [u8])]) -> Result<Vec<(&'a str, &'a str)>, ReceiveError> {
    let text = |b: &'a [u8]| std::str::from_utf8(b).map_err(|_| not_utf8());
    pairs
        .iter()
        .map(|&(n, v)| Ok((text(n)?, text(v)?)))
        .collect()
}

/// Checks the name-sorted pairs of a series the store does not have yet and
/// builds its label set.
fn new_series_labels(pairs: &[(&str, &str)]) -> Result<Labels, ReceiveError> {
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ReceiveError::Malformed(format!(
            "duplicate label name {:?} in one series",
            w[0].0
        )));
    }
    for &(name, value) in pairs {
        let ok = if name == METRIC_NAME {
            is_metric_name(value)
        } else {
            is_label_name(name)
        };
        if !ok {
            return Err(ReceiveError::Malformed(format!(
                "invalid label {name}={value:?}"
            )));
        }
    }
    let labels = Labels::new(pairs.iter().copied());
    if labels.metric_name().is_none() {
        return Err(ReceiveError::Malformed(format!(
            "series {labels} has no metric name"
        )));
    }
    Ok(labels)
}

/// The first label limit a series breaks, with a message for the sender.
fn over_label_limit(
    labels: &[(&[u8], &[u8])],
    limits: &ReceiveLimits,
) -> Option<(LabelLimit, String)> {
    let name = || {
        labels
            .iter()
            .find(|l| l.0 == METRIC_NAME.as_bytes())
            .map_or("(no name)".into(), |l| String::from_utf8_lossy(l.1))
            .chars()
            .take(200)
            .collect::<String>()
    };
    // 0 means no limit, as for the scrape limits.
    let over = |n: usize, limit: usize| limit > 0 && n > limit;
    if over(labels.len(), limits.max_labels_per_series) {
        let limit = LabelLimit::TooManyLabels;
        return Some((
            limit,
            format!(
                "series {} has {} labels, more than {} ({})",
                name(),
                labels.len(),
                limits.max_labels_per_series,
                limit.key()
            ),
        ));
    }
    for &(label_name, value) in labels {
        if over(label_name.len(), limits.max_label_name_length) {
            let limit = LabelLimit::NameTooLong;
            return Some((
                limit,
                format!(
                    "series {} has a label name of {} bytes, more than {} ({})",
                    name(),
                    label_name.len(),
                    limits.max_label_name_length,
                    limit.key()
                ),
            ));
        }
        if over(value.len(), limits.max_label_value_length) {
            let limit = LabelLimit::ValueTooLong;
            return Some((
                limit,
                format!(
                    "series {} has a value of {} bytes for label {:?}, more than {} ({})",
                    name(),
                    value.len(),
                    String::from_utf8_lossy(label_name)
                        .chars()
                        .take(200)
                        .collect::<String>(),
                    limits.max_label_value_length,
                    limit.key()
                ),
            ));
        }
    }
    None
}

/// Reads a body up to `limit` bytes; `None` when it is longer.
async fn read_limited(body: Body, limit: usize) -> Result<Option<Vec<u8>>, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

async fn write(State(r): State<Receiver>, headers: HeaderMap, body: Body) -> Response {
    let answer = |code: StatusCode, r: &Receiver| {
        r.metrics.requests.with_label_values(&[code.as_str()]).inc();
    };
    let limit = r.limits.max_request_bytes;
    let too_large = |r: &Receiver| {
        answer(StatusCode::PAYLOAD_TOO_LARGE, r);
        r.metrics.rejected.with_label_values(&["too_large"]).inc();
        ApiError::payload_too_large(ReceiveError::BodyTooLarge { limit }.to_string())
            .into_response()
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return too_large(&r);
    }
    let body = match read_limited(body, limit).await {
        Ok(Some(b)) => b,
        Ok(None) => return too_large(&r),
        Err(e) => {
            answer(StatusCode::BAD_REQUEST, &r);
            return ApiError::bad_request(format!("cannot read the request body: {e}"))
                .into_response();
        }
    };
    // Decoding and storing are CPU work sized by the sender: on the
    // ingest pool's threads, which yield to the model's. A sender that finds
    // them busy for INGEST_WAIT gets a 503 and retries (as Prometheus'
    // remote_write does on 5xx); nothing is stored twice or lost.
    let worker = r.clone();
    let now = crate::util::now_ms();
    let result = r
        .pool
        .run(INGEST_WAIT, move |_| worker.take(&body, now))
        .await;
    let (stored, dropped) = match result {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            let status = match e {
                ReceiveError::Malformed(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::PAYLOAD_TOO_LARGE,
            };
            answer(status, &r);
            let reason = if status == StatusCode::BAD_REQUEST {
                "malformed"
            } else {
                "too_large"
            };
            r.metrics.rejected.with_label_values(&[reason]).inc();
            return ApiError::new(
                status,
                if status == StatusCode::BAD_REQUEST {
                    "bad_request"
                } else {
                    "payload_too_large"
                },
                e.to_string(),
            )
            .into_response();
        }
        Err(e @ (PoolError::Busy { .. } | PoolError::Closed(_))) => {
            answer(StatusCode::SERVICE_UNAVAILABLE, &r);
            return ApiError::unavailable(format!(
                "remote_write ingest is busy ({e}); retry later (remote_write_receiver.max_concurrent_requests)"
            ))
            .into_response();
        }
        Err(e) => {
            answer(StatusCode::INTERNAL_SERVER_ERROR, &r);
            return ApiError::internal(format!("write task failed: {e}")).into_response();
        }
    };
    for (limit, samples, _) in &dropped {
        r.metrics
            .rejected
            .with_label_values(&[limit.reason()])
            .inc_by(*samples);
    }
    match stored {
        Ok(outcome) => {
            r.metrics.samples.inc_by(outcome.stored);
            let mut problems: Vec<String> = Vec::new();
            if let Some((_, _, first)) = dropped.first() {
                problems.push(format!(
                    "{} series dropped for label limits, e.g. {first}",
                    dropped.len()
                ));
            }
            if outcome.out_of_bounds > 0 {
                r.metrics
                    .rejected
                    .with_label_values(&[OUT_OF_BOUNDS])
                    .inc_by(outcome.out_of_bounds);
                problems.push(format!(
                    "{} sample(s) have timestamps before 1970 or more than storage.max_future_skew ahead of now",
                    outcome.out_of_bounds
                ));
            }
            if outcome.too_old > 0 {
                r.metrics
                    .rejected
                    .with_label_values(&["too_old"])
                    .inc_by(outcome.too_old);
                problems.push(format!(
                    "{} sample(s) are older than storage.out_of_order_time_window and older than their series' newest sample",
                    outcome.too_old
                ));
            }
            if !problems.is_empty() {
                answer(StatusCode::BAD_REQUEST, &r);
                return ApiError::bad_request(format!(
                    "{}; {} sample(s) stored",
                    problems.join("; "),
                    outcome.stored
                ))
                .into_response();
            }
            answer(StatusCode::NO_CONTENT, &r);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            answer(StatusCode::SERVICE_UNAVAILABLE, &r);
            ApiError::unavailable(format!("cannot store the samples now: {e}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::proto::{Label, Sample as WireSample, TimeSeries, WriteRequest};
    use prost::Message;

    fn body(timeseries: Vec<TimeSeries>) -> Vec<u8> {
        super::super::proto::compress(&WriteRequest { timeseries }.encode_to_vec()).unwrap()
    }

    fn ts(labels: Vec<(&str, String)>) -> TimeSeries {
        TimeSeries {
            labels: labels
                .into_iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v,
                })
                .collect(),
            samples: vec![WireSample {
                value: 1.0,
                timestamp: 1_000,
            }],
        }
    }

    #[test]
    fn label_limits_drop_series_before_building_label_sets() {
        let limits = ReceiveLimits::default();
        let mut wide = vec![("__name__", "wide".to_string())];
        let names: Vec<String> = (0..100_000).map(|i| format!("l{i}")).collect();
        wide.extend(names.iter().map(|n| (n.as_str(), "v".to_string())));
        let long_name = "n".repeat(257);
        let decoded = decode(
            &body(vec![
                ts(wide),
                ts(vec![("__name__", "ok".into())]),
                ts(vec![("__name__", "v".into()), ("a", "x".repeat(16_385))]),
                ts(vec![
                    ("__name__", "n".into()),
                    (long_name.as_str(), "x".into()),
                ]),
            ]),
            &limits,
        )
        .unwrap();
        assert_eq!(decoded.series.len(), 1);
        let reasons: Vec<_> = decoded.dropped.iter().map(|d| d.0).collect();
        assert_eq!(
            reasons,
            [
                LabelLimit::TooManyLabels,
                LabelLimit::ValueTooLong,
                LabelLimit::NameTooLong
            ]
        );
        assert!(decoded.dropped[0].2.contains("max_labels_per_series"));
    }

    #[test]
    fn known_series_take_the_stores_label_set_and_ref() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::SqliteStorage::open(
            dir.path(),
            crate::storage::StorageOptions::default(),
        )
        .unwrap();
        let known = Labels::new([("__name__", "up"), ("job", "a")]);
        let mut refs = vec![None];
        store
            .append_with_refs(
                &[AppendSample {
                    labels: known.clone(),
                    sample: Sample {
                        timestamp_ms: 1,
                        value: 1.0,
                    },
                }],
                &mut refs,
            )
            .unwrap();
        let limits = ReceiveLimits::default();
        // Unsorted names still find it; a new series is built; a duplicate
        // name is refused even though the rest of it matches a known set.
        let decoded = decode_known(
            &body(vec![
                ts(vec![("job", "a".into()), ("__name__", "up".into())]),
                ts(vec![("__name__", "up".into()), ("job", "b".into())]),
            ]),
            &limits,
            &store,
        )
        .unwrap();
        assert_eq!(decoded.refs, vec![refs[0], None]);
        assert_eq!(decoded.series[0].labels.ptr_id(), known.ptr_id());
        assert_eq!(decoded.series[1].labels.get("job"), Some("b"));
        let dup = decode_known(
            &body(vec![ts(vec![
                ("__name__", "up".into()),
                ("job", "".into()),
                ("job", "a".into()),
            ])]),
            &limits,
            &store,
        );
        assert!(matches!(dup, Err(ReceiveError::Malformed(_))), "{dup:?}");
    }

    #[test]
    fn cached_series_with_stale_refs_are_stored_as_themselves() {
        use crate::storage::Querier;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            crate::storage::SqliteStorage::open(
                dir.path(),
                crate::storage::StorageOptions::default(),
            )
            .unwrap(),
        );
        let r = Receiver::new(
            store.clone(),
            store.clone(),
            0,
            &ReceiverConfig::default(),
            &Registry::new(),
        )
        .unwrap();
        let now = crate::util::now_ms();
        let series = |name: &str, t: i64| {
            let mut s = ts(vec![("__name__", name.into()), ("job", "j".into())]);
            s.samples[0].timestamp = t;
            s
        };
        let key = |name: &str| {
            TimeSeries {
                samples: vec![],
                ..series(name, 0)
            }
            .encode_to_vec()
        };
        let send = |t: i64| {
            let (stored, dropped) = r
                .take(&body(vec![series("a", t), series("b", t)]), now)
                .unwrap();
            assert_eq!(stored.unwrap().stored, 2);
            assert!(dropped.is_empty());
        };
        send(now - 3000);
        assert_eq!(r.cache.len(), 2);
        let cached = |name: &str| r.cache.reader().get(&key(name)).unwrap();
        let (a, b) = (cached("a"), cached("b"));
        assert_ne!(a.series, b.series);
        // As if `a` had been deleted and its id reused by `b`; then as if
        // its id were gone altogether.
        for stale in [b.series, SeriesRef(1 << 40)] {
            r.cache.insert([(&key("a")[..], stale, &a.labels)]);
            assert_eq!(cached("a").series, stale);
            send(now - 2000 + stale.0.min(1000) as i64);
            assert_eq!(cached("a").series, a.series, "the store's ref replaces it");
            assert_eq!(cached("b").series, b.series);
        }
        let m = |n: &str| {
            vec![crate::model::Matcher::new("__name__", crate::model::MatchOp::Equal, n).unwrap()]
        };
        for name in ["a", "b"] {
            let got = store.select(&m(name), 0, now).unwrap();
            assert_eq!(got.len(), 1, "{name}");
            assert_eq!(got[0].samples.len(), 3, "{name}: {got:?}");
        }
    }

    #[test]
    fn size_limits_are_checked_before_decompressing() {
        let limits = ReceiveLimits {
            max_request_bytes: 1 << 20,
            max_decompressed_bytes: 1 << 20,
            ..ReceiveLimits::default()
        };
        let big = vec![0u8; (1 << 20) + 1];
        assert_eq!(
            decode(&big, &limits).unwrap_err(),
            ReceiveError::BodyTooLarge { limit: 1 << 20 }
        );
        let bomb = super::super::proto::compress(&vec![0u8; 2 << 20]).unwrap();
        assert!(matches!(
            decode(&bomb, &limits).unwrap_err(),
            ReceiveError::DecompressedTooLarge { .. }
        ));
    }
}
