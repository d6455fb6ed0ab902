//! `scrape_configs:` — Prometheus' scrape job shape, key for key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Authorization, BasicAuth, PromDuration, RelabelConfig, Secret, TlsConfig};

/// One scrape job. Intervals and timeouts left out take `global`'s.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ScrapeConfig {
    /// Job name, also the `job` label of every series.
    pub job_name: String,
    /// How often to scrape (default `global.scrape_interval`).
    #[serde(default)]
    pub scrape_interval: Option<PromDuration>,
    /// Scrape timeout (default `global.scrape_timeout`, capped at the interval).
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    /// Path to fetch (default `/metrics`).
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` (default) or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// URL query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Keep the target's labels when they clash with server-side ones.
    #[serde(default)]
    pub honor_labels: bool,
    /// Use timestamps the target exposes (default true).
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token (prefer `authorization`).
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// TLS settings for https targets.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Follow HTTP redirects (default true).
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    /// Ask for gzip (default true).
    #[serde(default = "default_true")]
    pub enable_compression: bool,
    /// Fixed lists of targets.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Targets read from JSON/YAML files, reloaded when they change.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Relabelling of targets before scraping.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabelling of scraped series before storing.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Fail a scrape with more samples than this (0 = no limit).
    #[serde(default)]
    pub sample_limit: Option<u64>,
    /// Fail a scrape with a series of more labels than this (default 30;
    /// 0 = no limit).
    #[serde(default)]
    pub label_limit: Option<u64>,
    /// Fail a scrape with a label name longer than this (default 256; 0 = no limit).
    #[serde(default)]
    pub label_name_length_limit: Option<u64>,
    /// Fail a scrape with a label value longer than this (default 16384; 0 = no limit).
    #[serde(default)]
    pub label_value_length_limit: Option<u64>,
    /// Fail a scrape whose uncompressed body is larger (`10MB`, `512KiB`;
    /// default `64MiB`; `0` = no limit).
    #[serde(default)]
    pub body_size_limit: Option<String>,
    /// Most targets after relabelling (0 = no limit).
    #[serde(default)]
    pub target_limit: Option<u64>,
    /// Everything else: Prometheus keys infermon does not implement are warned
    /// about (service discovery other than file/static, proxies…); others are errors.
    #[serde(flatten, skip_serializing)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// `static_configs` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` of each target.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels added to every series of these targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// File globs (`*.json`, `*.yml`, `*.yaml`).
    pub files: Vec<String>,
    /// How often to re-read the files (default 5m).
    #[serde(default = "default_refresh")]
    pub refresh_interval: PromDuration,
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}
fn default_scheme() -> String {
    "http".to_string()
}
fn default_true() -> bool {
    true
}
fn default_refresh() -> PromDuration {
    PromDuration::from_secs(300)
}

/// Prometheus scrape keys that infermon accepts with a warning.
pub(crate) fn is_known_unimplemented_scrape_key(key: &str) -> bool {
    key.ends_with("_sd_configs")
        || matches!(
            key,
            "proxy_url"
                | "no_proxy"
                | "proxy_from_environment"
                | "proxy_connect_header"
                | "oauth2"
                | "enable_http2"
                | "scrape_protocols"
                | "track_timestamps_staleness"
                | "scrape_classic_histograms"
                | "native_histogram_bucket_limit"
                | "native_histogram_min_bucket_factor"
                | "keep_dropped_targets"
                | "metric_name_validation_scheme"
                | "metric_name_escaping_scheme"
                | "always_scrape_classic_histograms"
                | "convert_classic_histograms_to_nhcb"
                | "scrape_failure_log_file"
                | "http_headers"
                | "bearer_token_file"
                | "fallback_scrape_protocol"
        )
}
