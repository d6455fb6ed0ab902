//! `remote_write:` — Prometheus' remote_write entries, key for key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Authorization, BasicAuth, PromDuration, RelabelConfig, Secret, SecretUrl, TlsConfig};

/// One remote endpoint (VictoriaMetrics, Mimir, Thanos receive, Prometheus).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Endpoint URL. Shown redacted (user info, query values and token path
    /// segments become `<secret>`) in the config API, pages, logs and the
    /// `url` metric label.
    pub url: SecretUrl,
    /// Name used in metrics and logs (default: a hash of the URL).
    #[serde(default)]
    pub name: Option<String>,
    /// Timeout of one request (default 30s).
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: PromDuration,
    /// Extra HTTP headers (e.g. a tenant header). Values are secrets: shown
    /// as `<secret>`, since they often carry API keys.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Relabelling before sending.
    #[serde(default)]
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// Batching and retry settings.
    #[serde(default)]
    pub queue_config: QueueConfig,
    /// Prometheus' metadata sending: accepted and warned about.
    #[serde(default, skip_serializing)]
    pub metadata_config: Option<serde_yaml_ng::Value>,
    /// Exemplars are not stored: accepted and warned about.
    #[serde(default, skip_serializing)]
    pub send_exemplars: Option<serde_yaml_ng::Value>,
    /// Native histograms are not stored: accepted and warned about.
    #[serde(default, skip_serializing)]
    pub send_native_histograms: Option<serde_yaml_ng::Value>,
    /// Follow redirects (default true).
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
}

/// Prometheus' `queue_config` with its defaults.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Samples buffered per shard in Prometheus (default 10000). Accepted for
    /// compatibility: infermon's backlog lives in the WAL, not in memory.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Most parallel senders while catching up (default 50).
    #[serde(default = "default_max_shards")]
    pub max_shards: usize,
    /// Fewest parallel senders (default 1).
    #[serde(default = "default_min_shards")]
    pub min_shards: usize,
    /// Samples per request (default 2000).
    #[serde(default = "default_max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// Send a partial batch after this long (default 5s).
    #[serde(default = "default_batch_send_deadline")]
    pub batch_send_deadline: PromDuration,
    /// First retry delay (default 30ms).
    #[serde(default = "default_min_backoff")]
    pub min_backoff: PromDuration,
    /// Longest retry delay (default 5s).
    #[serde(default = "default_max_backoff")]
    pub max_backoff: PromDuration,
    /// Retry on HTTP 429 (default false, as in Prometheus).
    #[serde(default)]
    pub retry_on_http_429: bool,
    /// Accepted for compatibility; unused.
    #[serde(default, skip_serializing)]
    pub sample_age_limit: Option<serde_yaml_ng::Value>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("empty queue config deserializes")
    }
}

fn default_remote_timeout() -> PromDuration {
    PromDuration::from_secs(30)
}
fn default_true() -> bool {
    true
}
fn default_capacity() -> usize {
    10_000
}
fn default_max_shards() -> usize {
    50
}
fn default_min_shards() -> usize {
    1
}
fn default_max_samples_per_send() -> usize {
    2000
}
fn default_batch_send_deadline() -> PromDuration {
    PromDuration::from_secs(5)
}
fn default_min_backoff() -> PromDuration {
    PromDuration::from_millis(30)
}
fn default_max_backoff() -> PromDuration {
    PromDuration::from_secs(5)
}
