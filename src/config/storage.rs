//! `storage:` — where and how long samples are kept.

use serde::{Deserialize, Serialize};

use super::PromDuration;

/// The SQLite time-series store.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Data directory (default `data/`).
    #[serde(default = "default_path")]
    pub path: String,
    /// How long raw samples are kept (default 15d). Older data survives as
    /// 5-minute rollups until `rollup_retention`.
    #[serde(default = "default_retention")]
    pub retention: PromDuration,
    /// Raw samples are also summarised into 5-minute rollup points once
    /// their block (the 2h chunk window) ended this long ago, so a UTC day
    /// is whole in the rollups this long after it ended (default 1h: late
    /// and out-of-order samples are in by then; data that still changes is
    /// summarised again). Range queries
    /// with a step of `query.rollup_min_step` or more read what is
    /// summarised from the rollups; data about to reach `retention` is
    /// summarised first even when younger.
    #[serde(default = "default_rollup_after")]
    pub rollup_after: PromDuration,
    /// How long the 5-minute rollups are kept (default 400d); `0s` turns
    /// rollups off.
    #[serde(default = "default_rollup_retention")]
    pub rollup_retention: PromDuration,
    /// Largest the store may grow to (e.g. `10GB`); oldest data goes first.
    #[serde(default)]
    pub retention_size: Option<String>,
    /// Ingestion stops (and says so) while the disk has less free space than
    /// this, instead of failing mid-write (default `256MB`).
    #[serde(default)]
    pub min_free_disk: Option<String>,
    /// How old a sample pushed to `POST /api/v1/write` may be when its
    /// series already has newer samples (default 10m); older ones are refused.
    #[serde(default = "default_out_of_order_time_window")]
    pub out_of_order_time_window: PromDuration,
    /// How far ahead of this machine's clock a sample's timestamp may be
    /// (default 10m). Later samples, and samples before 1970, are refused
    /// at every ingest path and counted as
    /// `infermon_*_rejected_samples_total{reason="out_of_bounds"}`.
    #[serde(default = "default_max_future_skew")]
    pub max_future_skew: PromDuration,
    /// Group commit window (default 1ms): a commit that finds other
    /// batches already waiting for the writer waits this much longer for
    /// more, so busy ingest shares one fsync'd transaction among more
    /// batches. An append that finds the writer idle never waits. `0s`
    /// turns the wait off (batches arriving during a commit still share the
    /// next one).
    #[serde(default = "default_commit_interval")]
    pub commit_interval: PromDuration,
    /// When a commit is forced to the disk (default `checkpoint`).
    #[serde(default)]
    pub fsync: Fsync,
    /// Most memory kept for decoded chunks and rollup rows, so a dashboard
    /// refreshing the same ranges decodes each stored chunk once, not at
    /// every refresh (default `64MB`, about four million samples; `0`
    /// keeps none).
    #[serde(default)]
    pub decoded_cache_size: Option<String>,
    /// Prometheus' TSDB settings: accepted and warned about, no effect here.
    #[serde(default, skip_serializing)]
    pub tsdb: Option<serde_yaml_ng::Value>,
    /// Prometheus' exemplar storage: accepted and warned about, no effect here.
    #[serde(default, skip_serializing)]
    pub exemplars: Option<serde_yaml_ng::Value>,
}

/// When the store's commits are forced to the disk (`storage.fsync`).
///
/// Either way every commit is in the operating system's hands before the
/// writer acknowledges it, so a killed or crashed infermon (kill -9, OOM,
/// panic) loses nothing it acknowledged, and the file is never left
/// corrupt. The choice is what an operating-system crash or power cut may
/// take back.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// fsync when the write-ahead log is checkpointed into the database
    /// (every 4 MiB of log, or sooner): a power cut may lose the commits
    /// since the last checkpoint. Prometheus' WAL works the same way
    /// (fsync when a segment is cut), and VictoriaMetrics buffers up to
    /// a second in memory.
    #[default]
    Checkpoint,
    /// fsync every commit before acknowledging it (SQLite's
    /// `synchronous = FULL`): nothing acknowledged is lost even to a power
    /// cut, at the price of one fsync per group commit.
    Commit,
}

impl Default for StorageConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("empty storage config deserializes")
    }
}

fn default_path() -> String {
    "data/".to_string()
}
fn default_rollup_after() -> PromDuration {
    PromDuration::from_secs(3600)
}
fn default_rollup_retention() -> PromDuration {
    PromDuration::from_secs(400 * 24 * 3600)
}
fn default_out_of_order_time_window() -> PromDuration {
    PromDuration::from_secs(600)
}
fn default_max_future_skew() -> PromDuration {
    PromDuration::from_secs(600)
}
fn default_commit_interval() -> PromDuration {
    PromDuration::from_millis(1)
}
fn default_retention() -> PromDuration {
    PromDuration::from_secs(15 * 24 * 3600)
}
