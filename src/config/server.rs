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
    /// Users for basic auth and the dashboard's login: name → bcrypt hash
    /// (make one with `infermon hash-password`), or name →
    /// `{password_hash, role}`; a bare hash is an admin.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, UserConfig>,
    /// Require credentials for `/metrics` too (default false: Prometheus can scrape).
    #[serde(default)]
    pub protect_metrics: bool,
}

/// One user: a bare bcrypt hash (an admin), or a hash with a role.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum UserConfig {
    /// `name: <bcrypt hash>`: an admin, as before roles existed.
    Hash(Secret),
    /// `name: {password_hash: <bcrypt hash>, role: read_only}`.
    WithRole(UserWithRole),
}

/// A user with an explicit role.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserWithRole {
    /// bcrypt hash of the password.
    pub password_hash: Secret,
    /// What the user may do (default `admin`).
    #[serde(default)]
    pub role: Role,
}

impl UserConfig {
    /// The bcrypt hash.
    pub fn password_hash(&self) -> &Secret {
        match self {
            UserConfig::Hash(h) => h,
            UserConfig::WithRole(u) => &u.password_hash,
        }
    }

    /// The user's role.
    pub fn role(&self) -> Role {
        match self {
            UserConfig::Hash(_) => Role::Admin,
            UserConfig::WithRole(u) => u.role,
        }
    }
}

/// What a user may do.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: silences, dashboard uploads, `/api/v1/admin/*`.
    #[default]
    Admin,
    /// Look only: pages and read APIs; changes answer 403.
    ReadOnly,
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
        LimitsConfig {
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

fn default_max_body_bytes() -> usize {
    2 * 1024 * 1024
}
