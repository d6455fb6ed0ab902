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
