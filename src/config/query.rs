//! `query:` — limits and defaults of the PromQL engine (Prometheus' `--query.*` flags).

use serde::{Deserialize, Serialize};

use super::PromDuration;

/// PromQL engine settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// How far back an instant selector looks for a sample (default 5m).
    #[serde(default = "default_lookback_delta")]
    pub lookback_delta: PromDuration,
    /// Longest a query may run before it is stopped with an error (default 2m).
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// Most samples one query may hold in memory; more is an error, never
    /// an out-of-memory kill (default 50000000).
    #[serde(default = "default_max_samples")]
    pub max_samples: usize,
    /// Most series one query may select, all its selectors together; more is
    /// an error (default 300000, as VictoriaMetrics' `-search.maxUniqueTimeseries`).
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// Most memory (bytes, estimated: samples, cached subquery steps, label
    /// strings) one query may hold; more is an error (default 1073741824, 1 GiB).
    #[serde(default = "default_max_memory_bytes")]
    pub max_memory_bytes: usize,
    /// Longest label value `label_replace`/`label_join` may build; longer is
    /// an error (default 16384, as VictoriaMetrics' `-maxLabelValueLen`).
    #[serde(default = "default_max_label_value_bytes")]
    pub max_label_value_bytes: usize,
    /// Queries (API, dashboard and rules together) evaluated at once, each on
    /// its own low-priority thread; more wait (default 2: few, so the model
    /// keeps the CPU; Prometheus' default is 20 on a box of its own).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Longest a query waits for a free slot before it gets 503 with
    /// `errorType: unavailable` (default 2m, the default timeout: a dashboard
    /// page asks ~30 queries at once, and on a box busy with inference the
    /// last ones wait; VictoriaMetrics' `-search.maxQueueDuration` is 10s).
    #[serde(default = "default_max_queue_wait")]
    pub max_queue_wait: PromDuration,
    /// Nice value (0–19) of the query threads; higher yields more CPU to the
    /// model when both want it (default 19: queries only use CPU the model leaves).
    #[serde(default = "default_nice")]
    pub nice: i32,
    /// Range queries with at least this step read summarised days and
    /// blocks (all but the newest hours) from their 5-minute rollups instead
    /// of raw samples (`rate`, `increase`,
    /// `*_over_time` windows of 5m or more, instant selectors; windows snap
    /// to 5-minute buckets), which makes week-long panels cheap (default
    /// 5m; `0s` reads raw samples wherever they exist).
    #[serde(default = "default_rollup_min_step")]
    pub rollup_min_step: PromDuration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("empty query config deserializes")
    }
}

fn default_lookback_delta() -> PromDuration {
    PromDuration::from_secs(300)
}
fn default_timeout() -> PromDuration {
    PromDuration::from_secs(120)
}
fn default_max_samples() -> usize {
    50_000_000
}
fn default_max_series() -> usize {
    300_000
}
fn default_max_memory_bytes() -> usize {
    1 << 30
}
fn default_max_label_value_bytes() -> usize {
    16 * 1024
}
fn default_max_concurrency() -> usize {
    2
}
fn default_max_queue_wait() -> PromDuration {
    PromDuration::from_secs(120)
}
fn default_nice() -> i32 {
    19
}
fn default_rollup_min_step() -> PromDuration {
    PromDuration::from_secs(300)
}
