//! Figures about the store for the dashboard's Status page and the
//! `infermon_storage_*` metrics.

use std::sync::atomic::Ordering;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

use super::StorageError;
use super::sqlite::{SqliteStorage, backend, lock, read};

/// A snapshot of the store's size and activity.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StorageStats {
    /// Series in the index.
    pub series: u64,
    /// Samples stored (closed chunks plus open head chunks).
    pub samples: u64,
    /// Samples accepted since start.
    pub samples_appended_total: u64,
    /// Samples refused since start (out of order, disk full).
    pub samples_rejected_total: u64,
    /// Backfilled (imported) samples skipped since start for a timestamp
    /// outside the accepted window.
    pub backfill_out_of_bounds_total: u64,
    /// Closed chunks in the database.
    pub chunks: u64,
    /// Samples held in memory in open chunks.
    pub head_samples: u64,
    /// Encoded bytes of the open chunks.
    pub head_chunk_bytes: u64,
    /// Bytes of every file in the data directory.
    pub bytes: u64,
    /// Bytes of batches logged since the last checkpoint.
    pub wal_bytes: u64,
    /// Why ingestion is stopped, when it is.
    pub ingestion_blocked: Option<String>,
    /// Series with 5-minute rollups.
    pub rollup_series: u64,
    /// 5-minute rollup points stored.
    pub rollup_points: u64,
    /// Encoded bytes of the rollup points.
    pub rollup_bytes: u64,
    /// Bytes of decoded chunks and rollup rows kept for later queries.
    pub decoded_cache_bytes: u64,
    /// Stored chunks and rollup rows read since start whose decoding was
    /// kept from an earlier read.
    pub decoded_cache_hits_total: u64,
    /// Stored chunks and rollup rows read since start that were decoded.
    pub decoded_cache_misses_total: u64,
}

impl SqliteStorage {
    /// The timestamp of the oldest raw sample (closed chunks, else the
    /// head), `None` for an empty store. Reads SQLite: call off the async
    /// threads.
    pub fn oldest_sample_ms(&self) -> Result<Option<i64>, StorageError> {
        let oldest: Option<i64> = self
            .reader()?
            .conn()
            .query_row("SELECT MIN(min_t) FROM chunks", [], |r| r.get(0))
            .map_err(backend)?;
        Ok(oldest.or_else(|| {
            read(&self.inner.head)
                .series
                .values()
                .filter(|s| !s.chunk.is_empty())
                .map(|s| s.chunk.min_t())
                .min()
        }))
    }
}

pub(super) fn collect(s: &SqliteStorage) -> StorageStats {
    let c = &s.inner.counters;
    let (head_samples, head_bytes) = {
        let head = read(&s.inner.head);
        (head.samples() as u64, head.bytes() as u64)
    };
    let chunk_samples = c.chunk_samples.load(Ordering::Relaxed);
    let decoded = s.inner.decoded.counts();
    StorageStats {
        series: read(&s.inner.index).len() as u64,
        samples: chunk_samples + head_samples,
        samples_appended_total: c.samples_appended.load(Ordering::Relaxed),
        samples_rejected_total: c.samples_rejected.load(Ordering::Relaxed),
        backfill_out_of_bounds_total: c.backfill_out_of_bounds.load(Ordering::Relaxed),
        chunks: c.chunks.load(Ordering::Relaxed),
        head_samples,
        head_chunk_bytes: head_bytes,
        bytes: super::retention::dir_bytes(&s.inner.dir),
        wal_bytes: c.wal_bytes.load(Ordering::Relaxed),
        ingestion_blocked: lock(&s.inner.blocked).clone(),
        rollup_series: c.rollup_series.load(Ordering::Relaxed),
        rollup_points: c.rollup_points.load(Ordering::Relaxed),
        rollup_bytes: c.rollup_bytes.load(Ordering::Relaxed),
        decoded_cache_bytes: s.inner.decoded.bytes(),
        decoded_cache_hits_total: decoded.hits,
        decoded_cache_misses_total: decoded.misses,
    }
}

/// Exposes [`StorageStats`] as `infermon_storage_*`, read at scrape time.
pub struct StorageCollector {
    storage: SqliteStorage,
    series: IntGauge,
    samples: IntGauge,
    appended: IntCounter,
    rejected: IntCounter,
    backfill_rejected: IntCounterVec,
    chunks: IntGauge,
    head_samples: IntGauge,
    bytes: IntGauge,
    wal_bytes: IntGauge,
    blocked: IntGauge,
    rollup_series: IntGauge,
    rollup_points: IntGauge,
    rollup_bytes: IntGauge,
    decoded_cache_bytes: IntGauge,
    decoded_cache_reads: IntCounterVec,
}

impl StorageCollector {
    /// A collector over `storage`; register it in the telemetry registry.
    pub fn new(storage: SqliteStorage) -> prometheus::Result<Self> {
        let g = |n: &str, h: &str| IntGauge::with_opts(Opts::new(n, h));
        Ok(StorageCollector {
            storage,
            series: g("infermon_storage_series", "Series in the store's index.")?,
            samples: g(
                "infermon_storage_samples",
                "Samples stored (chunks and head).",
            )?,
            appended: IntCounter::with_opts(Opts::new(
                "infermon_storage_samples_appended_total",
                "Samples accepted by the store since start.",
            ))?,
            rejected: IntCounter::with_opts(Opts::new(
                "infermon_storage_samples_rejected_total",
                "Samples refused by the store since start (out of order, disk nearly full).",
            ))?,
            backfill_rejected: IntCounterVec::new(
                Opts::new(
                    "infermon_backfill_rejected_samples_total",
                    "Samples of imports (backfills) skipped since start, by reason.",
                ),
                &["reason"],
            )?,
            chunks: g("infermon_storage_chunks", "Closed chunks in the database.")?,
            head_samples: g(
                "infermon_storage_head_samples",
                "Samples in open in-memory chunks.",
            )?,
            bytes: g(
                "infermon_storage_bytes",
                "Bytes of every file in the data directory.",
            )?,
            wal_bytes: g(
                "infermon_storage_wal_bytes",
                "Bytes of batches logged since the last checkpoint.",
            )?,
            blocked: g(
                "infermon_storage_ingestion_blocked",
                "1 while ingestion is stopped because the disk is nearly full (storage.min_free_disk).",
            )?,
            rollup_series: g(
                "infermon_storage_rollup_series",
                "Series with 5-minute rollups (kept for storage.rollup_retention).",
            )?,
            rollup_points: g(
                "infermon_storage_rollup_points",
                "5-minute rollup points stored.",
            )?,
            rollup_bytes: g(
                "infermon_storage_rollup_bytes",
                "Encoded bytes of the 5-minute rollup points.",
            )?,
            decoded_cache_bytes: g(
                "infermon_storage_decoded_cache_bytes",
                "Bytes of decoded chunks kept for later queries (storage.decoded_cache_size).",
            )?,
            decoded_cache_reads: IntCounterVec::new(
                Opts::new(
                    "infermon_storage_decoded_cache_reads_total",
                    "Stored chunks and rollup rows read by queries, by whether their decoding was kept from an earlier read (hit) or done (miss).",
                ),
                &["result"],
            )?,
        })
    }
}

impl Collector for StorageCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.series.desc(),
            self.samples.desc(),
            self.appended.desc(),
            self.rejected.desc(),
            self.backfill_rejected.desc(),
            self.chunks.desc(),
            self.head_samples.desc(),
            self.bytes.desc(),
            self.wal_bytes.desc(),
            self.blocked.desc(),
            self.rollup_series.desc(),
            self.rollup_points.desc(),
            self.rollup_bytes.desc(),
            self.decoded_cache_bytes.desc(),
            self.decoded_cache_reads.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = self.storage.stats();
        self.series.set(s.series as i64);
        self.samples.set(s.samples as i64);
        self.appended.reset();
        self.appended.inc_by(s.samples_appended_total);
        self.rejected.reset();
        self.rejected.inc_by(s.samples_rejected_total);
        let oob = self
            .backfill_rejected
            .with_label_values(&[super::OUT_OF_BOUNDS]);
        oob.reset();
        oob.inc_by(s.backfill_out_of_bounds_total);
        self.chunks.set(s.chunks as i64);
        self.head_samples.set(s.head_samples as i64);
        self.bytes.set(s.bytes as i64);
        self.wal_bytes.set(s.wal_bytes as i64);
        self.blocked.set(i64::from(s.ingestion_blocked.is_some()));
        self.rollup_series.set(s.rollup_series as i64);
        self.rollup_points.set(s.rollup_points as i64);
        self.rollup_bytes.set(s.rollup_bytes as i64);
        self.decoded_cache_bytes.set(s.decoded_cache_bytes as i64);
        for (result, n) in [
            ("hit", s.decoded_cache_hits_total),
            ("miss", s.decoded_cache_misses_total),
        ] {
            let c = self.decoded_cache_reads.with_label_values(&[result]);
            c.reset();
            c.inc_by(n);
        }
        [
            self.series.collect(),
            self.samples.collect(),
            self.appended.collect(),
            self.rejected.collect(),
            self.backfill_rejected.collect(),
            self.chunks.collect(),
            self.head_samples.collect(),
            self.bytes.collect(),
            self.wal_bytes.collect(),
            self.blocked.collect(),
            self.rollup_series.collect(),
            self.rollup_points.collect(),
            self.rollup_bytes.collect(),
            self.decoded_cache_bytes.collect(),
            self.decoded_cache_reads.collect(),
        ]
        .concat()
    }
}
