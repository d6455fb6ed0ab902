//! `remote_write_receiver:` — limits of `POST /api/v1/write`, the endpoint
//! Prometheus agents and vmagent push into. Defaults follow
//! VictoriaMetrics' flags of the same meaning.

use serde::{Deserialize, Serialize};

/// Limits of the remote-write receiver. A request over a size limit gets a
/// JSON 413; a series over a label limit is dropped (the rest is stored)
/// and the request answers a JSON 400 naming the limit and its key. A
/// label limit of 0 lifts it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Largest request body as sent, snappy-compressed, in bytes (default
    /// 32 MiB, VictoriaMetrics' `-maxInsertRequestSize`; vmagent sends
    /// blocks of up to 8 MB). Its own limit: `server.limits.max_body_bytes`
    /// does not apply to this endpoint.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Largest request once decompressed, in bytes (default 64 MiB).
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    /// Most labels of one series, `__name__` included (default 30,
    /// VictoriaMetrics' `-maxLabelsPerTimeseries`).
    #[serde(default = "default_max_labels_per_series")]
    pub max_labels_per_series: usize,
    /// Longest label name in bytes (default 256, VictoriaMetrics' `-maxLabelNameLen`).
    #[serde(default = "default_max_label_name_length")]
    pub max_label_name_length: usize,
    /// Longest label value in bytes (default 16384, VictoriaMetrics' `-maxLabelValueLen`).
    #[serde(default = "default_max_label_value_length")]
    pub max_label_value_length: usize,
    /// Requests decoded and stored at once, on threads at the lowest
    /// priority (nice 19); more wait their turn, up to 30 s, then get a 503
    /// (default 2 × CPU cores, VictoriaMetrics' `-maxConcurrentInserts`).
    #[serde(default)]
    pub max_concurrent_requests: Option<usize>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("empty receiver config deserializes")
    }
}

impl ReceiverConfig {
    /// `max_concurrent_requests`, or its default for this machine.
    pub fn concurrency(&self) -> usize {
        self.max_concurrent_requests
            .unwrap_or_else(|| {
                2 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            })
            .max(1)
    }
}

fn default_max_request_bytes() -> usize {
    32 << 20
}
fn default_max_decompressed_bytes() -> usize {
    64 << 20
}
fn default_max_labels_per_series() -> usize {
    30
}
fn default_max_label_name_length() -> usize {
    256
}
fn default_max_label_value_length() -> usize {
    16384
}
