//! `global:` — Prometheus' global section, same keys and defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PromDuration;

/// Defaults that apply to every scrape job and rule group.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// How often to scrape targets (Prometheus default 1m).
    #[serde(default = "default_scrape_interval")]
    pub scrape_interval: PromDuration,
    /// How long a scrape may take (default 10s, never more than the interval).
    #[serde(default = "default_scrape_timeout")]
    pub scrape_timeout: PromDuration,
    /// How often rule groups are evaluated (default 1m).
    #[serde(default = "default_evaluation_interval")]
    pub evaluation_interval: PromDuration,
    /// Labels added to alerts and remote_write series (e.g. `box: gpu-07`).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Offset applied to every rule group's queries (default 0s).
    #[serde(default)]
    pub rule_query_offset: PromDuration,
    /// Prometheus keys infermon accepts but does not act on (warned about).
    #[serde(default, skip_serializing)]
    pub query_log_file: Option<serde_yaml_ng::Value>,
    /// Not implemented; warned about.
    #[serde(default, skip_serializing)]
    pub scrape_protocols: Option<serde_yaml_ng::Value>,
    /// Global limit for every job (per-job limits win).
    #[serde(default)]
    pub body_size_limit: Option<String>,
    /// Global limit for every job (per-job limits win).
    #[serde(default)]
    pub sample_limit: Option<u64>,
    /// Global limit for every job (per-job limits win).
    #[serde(default)]
    pub label_limit: Option<u64>,
    /// Global limit for every job (per-job limits win).
    #[serde(default)]
    pub label_name_length_limit: Option<u64>,
    /// Global limit for every job (per-job limits win).
    #[serde(default)]
    pub label_value_length_limit: Option<u64>,
    /// Global limit for every job (per-job limits win).
    #[serde(default)]
    pub target_limit: Option<u64>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("empty global config deserializes")
    }
}

fn default_scrape_interval() -> PromDuration {
    PromDuration::from_secs(60)
}
fn default_scrape_timeout() -> PromDuration {
    PromDuration::from_secs(10)
}
fn default_evaluation_interval() -> PromDuration {
    PromDuration::from_secs(60)
}
