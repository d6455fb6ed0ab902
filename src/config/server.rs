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
    /// Host names (besides IP literals, `localhost` and this machine's host
    /// name) the server answers to; `*.example.com` allows subdomains.
    /// Default empty. Other names get a JSON 403, which stops DNS-rebinding
    /// pages. Checked always without `auth`; with `auth` only when set.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://grafana.example`) besides this server's own whose
    /// pages may send state-changing requests (POST/PUT/DELETE). Default
    /// empty. Requests without `Origin`/`Referer` (curl, vmagent) always pass.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Mark the session and language cookies `Secure` (default false); set it
    /// when a TLS-terminating proxy serves infermon over https.
    #[serde(default)]
    pub cookie_secure: bool,
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
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
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
    /// Password (bcrypt) checks run at once, on the blocking pool (default
    /// 2); more wait up to 10 s, then get 503. bcrypt is slow on purpose:
    /// this keeps guessing clients from taking the CPU from the model.
    #[serde(default = "default_max_concurrent_password_checks")]
    pub max_concurrent_password_checks: usize,
}

fn default_max_concurrent_password_checks() -> usize {
    2
}

impl Default for AuthConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("empty auth config deserializes")
    }
}

/// One user: a bare bcrypt hash (an admin), or a hash with a role.
#[derive(Clone, Debug, Serialize, PartialEq)]
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

// By hand rather than `untagged`, so a mistake inside the map form (a
// misspelt role, an unknown key) is reported as itself, at its line.
impl<'de> Deserialize<'de> for UserConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = UserConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a bcrypt hash, or {password_hash, role}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UserConfig, E> {
                Ok(UserConfig::Hash(Secret(v.to_string())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<UserConfig, A::Error> {
                UserWithRole::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(UserConfig::WithRole)
            }
        }
        d.deserialize_any(Visit)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_with_and_without_roles() {
        let auth: AuthConfig = serde_yaml_ng::from_str(
            "basic_auth_users:\n  ann: '$2b$04$x'\n  bob:\n    password_hash: '$2b$04$y'\n    role: read_only\n  cy:\n    password_hash: '$2b$04$z'\n",
        )
        .unwrap();
        let users = &auth.basic_auth_users;
        assert_eq!(
            users["ann"].role(),
            Role::Admin,
            "a bare hash stays an admin"
        );
        assert_eq!(users["ann"].password_hash().expose(), "$2b$04$x");
        assert_eq!(users["bob"].role(), Role::ReadOnly);
        assert_eq!(users["cy"].role(), Role::Admin, "role defaults to admin");
        let err = serde_yaml_ng::from_str::<AuthConfig>(
            "basic_auth_users:\n  bob:\n    password_hash: x\n    role: viewer\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant `viewer`"), "{err}");
        let err = serde_yaml_ng::from_str::<AuthConfig>("basic_auth_users:\n  bob:\n    hash: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `hash`"), "{err}");
        assert!(
            !serde_yaml_ng::to_string(&auth).unwrap().contains("$2b"),
            "hashes stay redacted"
        );
    }
}
