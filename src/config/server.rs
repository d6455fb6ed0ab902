//! `server:` — the HTTP listener, its authentication and limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{PromDuration, Secret};

/// The one HTTP port that serves the model API, the dashboard and /metrics.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Allow a non-loopback `listen` without `auth` (you take responsibility).
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// API keys and users; absent means no authentication.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// How long in-flight requests may take to finish after SIGTERM (default 30s).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: PromDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("empty server config deserializes")
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_string()
}
fn default_shutdown_timeout() -> PromDuration {
    PromDuration::from_secs(30)
}

/// Who may call the server.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer tokens accepted in `Authorization: Bearer <key>`.
    #[serde(default)]
    pub api_keys: Vec<Secret>,
    /// Basic-auth users: name → bcrypt hash (make one with `infermon hash-password`).
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, Secret>,
    /// Require credentials for `/metrics` too (default false: Prometheus can scrape).
    #[serde(default)]
    pub protect_metrics: bool,
}

/// Request size limits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body in bytes (default 2 MiB); larger ones get a JSON 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { max_body_bytes: default_max_body_bytes() }
    }
}

fn default_max_body_bytes() -> usize {
    2 * 1024 * 1024
}
