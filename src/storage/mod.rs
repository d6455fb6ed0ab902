//! The time-series store boundary: [`Appender`] for writers (scrape, rule
//! results, remote-write receive) and [`Querier`] for readers (PromQL, export).
//!
//! Everything reads and writes samples through these traits; only the
//! implementations know how samples are kept. [`MemoryStorage`] serves unit
//! tests and the PromQL test runner; [`SqliteStorage`] is the durable store
//! (schema and chunk format in `FORMAT.md` beside this file).

mod backfill;
mod bounds;
pub mod chunk;
mod chunk_ids;
mod compaction;
mod decoded_cache;
mod follow;
mod head;
mod index;
mod memory;
mod page_pack;
pub mod pco_chunk;
mod read;
mod restore;
mod retention;
mod rollup;
pub mod schema;
mod sqlite;
mod state;
mod stats;
mod wal;

pub use backfill::{Backfill, BackfillReport};
pub use bounds::{DEFAULT_MAX_FUTURE_SKEW_MS, OUT_OF_BOUNDS, SampleBounds};
pub use compaction::{BLOCK_GRACE_MS, CompactionReport, DAY_GRACE_MS};
pub use follow::{FollowerLag, FollowerState, WalBacklog, WalRecord};
pub use head::ChunkPolicy;
pub use index::SeriesId;
pub use memory::MemoryStorage;
pub use restore::{RestoreReport, verify_backup};
pub use retention::MaintenanceReport;
pub use rollup::{BUCKET_MS, RollupPoint, RollupSeries, counter_step, merge as merge_rollups};
pub use sqlite::{DB_FILE, LOCK_FILE, SqliteStorage, StorageOptions, lock_dir};
pub use state::{DeliveryRecord, OutboxRow, StateStore};
pub use stats::{StorageCollector, StorageStats};
pub use wal::WalSample;

use crate::model::{Labels, Matcher, Sample};

/// Errors of the storage part.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A sample was refused (out of order, bad labels…); nothing of the batch was stored.
    #[error("sample rejected: {0}")]
    Rejected(String),
    /// The backing store failed.
    #[error("storage failure: {0}")]
    Backend(String),
    /// The query would touch more samples than allowed.
    #[error("query processing would load too many samples into memory")]
    TooManySamples,
    /// The reader's [`ReadLimit`] stopped the read (it knows why).
    #[error("read stopped by the reader's limit")]
    ReadStopped,
    /// Another process has the data directory open.
    #[error(
        "data directory {} is in use by another infermon (it holds {}/lock); stop it first, or talk to it over HTTP",
        .0.display(), .0.display()
    )]
    Locked(std::path::PathBuf),
    /// The file was written by a newer infermon (its schema version is
    /// larger than this binary's); it was not changed.
    #[error(
        "{} has schema version {found}, but this infermon ({}) knows versions up to {supported}: \
         it was written by a newer infermon. Run that version (or newer) again, or restore a \
         backup taken by this version; the file was not changed",
        .path.display(), env!("CARGO_PKG_VERSION")
    )]
    SchemaTooNew {
        /// The file.
        path: std::path::PathBuf,
        /// Its recorded version.
        found: u32,
        /// The newest version this binary knows.
        supported: u32,
    },
}

/// One sample of one series, as written.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendSample {
    /// Series labels, including `__name__`.
    pub labels: Labels,
    /// The sample.
    pub sample: Sample,
}

/// One series with its samples in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Labels, including `__name__`.
    pub labels: Labels,
    /// Samples sorted by timestamp, within the asked range.
    pub samples: Vec<Sample>,
}

/// A store's handle on one stored series, handed out by
/// [`Appender::append_with_refs`] and [`Appender::find_series`]. Passing it
/// back lets the store skip looking the label set up. Only meaningful to the
/// store that handed it out; a stale one (the series was deleted) is
/// ignored, never trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesRef(pub u64);

/// Writes samples. A batch is atomic: all of it is stored, or none.
pub trait Appender: Send + Sync {
    /// Stores a batch; returns once it is durable.
    fn append(&self, batch: &[AppendSample]) -> Result<(), StorageError>;

    /// [`Appender::append`] for callers that keep series refs between
    /// batches (the scrape cache, the remote-write receiver): `refs[i]` is
    /// the ref of `batch[i]`'s series when the caller has one, `None`
    /// otherwise (`refs` is as long as `batch`). The labels still decide:
    /// a ref whose series has other labels is ignored. On success every
    /// entry holds its sample's ref. Stores without refs keep this default,
    /// which appends and leaves `refs` as they are.
    fn append_with_refs(
        &self,
        batch: &[AppendSample],
        refs: &mut [Option<SeriesRef>],
    ) -> Result<(), StorageError> {
        let _ = refs;
        self.append(batch)
    }

    /// For each of `sets`, the ref and label set of the stored series whose
    /// labels are exactly its pairs (sorted by name, each name once; pairs
    /// with an empty value are skipped, as [`Labels::new`] drops them),
    /// found by hash without building a label set; `None` when unknown.
    /// The pairs are bytes as received: one equal to a stored set is valid
    /// UTF-8 by that fact, so callers check only the sets not found. A whole
    /// request's sets at once, so the index is locked once. Stores without
    /// an index keep this default.
    fn find_series(&self, sets: &[&[(&[u8], &[u8])]]) -> Vec<Option<(SeriesRef, Labels)>> {
        vec![None; sets.len()]
    }

    /// The sample times this store takes. Ingest paths drop (and count)
    /// samples outside it before appending, since one such sample fails a
    /// whole batch.
    fn sample_bounds(&self) -> SampleBounds {
        SampleBounds::default()
    }
}

/// What a reader lets one read load: [`Querier::select_bounded`] reports
/// every series and every decoded batch of samples as it loads them, so a
/// query's limits (samples, series, memory, deadline, cancellation) stop a
/// read part-way instead of after the whole selection sits in memory.
pub trait ReadLimit {
    /// Accounts for `series` more series and `samples` more samples; `false`
    /// stops the read with [`StorageError::ReadStopped`].
    fn take(&self, series: usize, samples: usize) -> bool;
}

/// Reads samples.
pub trait Querier: Send + Sync {
    /// Series matching every matcher, with their samples in `[mint, maxt]`
    /// (milliseconds, inclusive). Series without samples in range are left out.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError>;

    /// [`Querier::select`] under `limit`, checked while loading. Stores that
    /// load everything at once keep this default, which checks afterwards.
    fn select_bounded(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        limit: &dyn ReadLimit,
    ) -> Result<Vec<Series>, StorageError> {
        let series = self.select(matchers, mint, maxt)?;
        let samples = series.iter().map(|s| s.samples.len()).sum();
        if !limit.take(series.len(), samples) {
            return Err(StorageError::ReadStopped);
        }
        Ok(series)
    }

    /// The 5-minute rollup points ([`RollupPoint`]) of the series matching
    /// every matcher whose last sample lies in `[mint, maxt]`, for the part
    /// of each series' history that no raw samples cover any more. Stores
    /// without rollups keep this default: none.
    fn select_rollups(
        &self,
        _matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
    ) -> Result<Vec<RollupSeries>, StorageError> {
        Ok(Vec::new())
    }

    /// [`Querier::select_bounded`] for range queries with a step of 5
    /// minutes or more: where the start of the range is summarised in
    /// 5-minute rollups that are complete (no raw sample newer or more than
    /// they summarise; ended days, and today's ended blocks), that part comes
    /// as rollup points instead of raw samples, which is what makes long
    /// ranges cheap.
    /// Each series comes with the rollup points its first samples stand for
    /// (their `last` values lead `samples`, as [`merge_rollups`] builds them),
    /// raw samples after them. Sorted by labels. Stores without rollups keep
    /// this default: raw samples, and rollups only where raw samples are gone.
    fn select_summarized(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        limit: &dyn ReadLimit,
    ) -> Result<Vec<(Series, Vec<RollupPoint>)>, StorageError> {
        let raw = self.select_bounded(matchers, mint, maxt, limit)?;
        let rollups = self.select_rollups(matchers, mint, maxt)?;
        let points = rollups.iter().map(|r| r.points.len()).sum();
        if !limit.take(0, points) {
            return Err(StorageError::ReadStopped);
        }
        Ok(rollup::merge_all(raw, rollups))
    }

    /// Label names of the series matching `matchers` (all series when empty)
    /// with samples in range, sorted.
    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError>;

    /// Values of `name` on the series matching `matchers` with samples in range, sorted.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError>;
}

/// A store that can be written and read.
pub trait Storage: Appender + Querier {}

impl<T: Appender + Querier> Storage for T {}

/// A shared handle to the store, as the composition root hands it out.
pub type SharedStorage = std::sync::Arc<dyn Storage>;
