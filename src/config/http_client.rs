//! Client-side HTTP settings shared by scrape targets, remote_write and alert
//! channels, with Prometheus' keys.

use serde::{Deserialize, Serialize};

/// `basic_auth:` as Prometheus writes it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name sent to the server.
    pub username: String,
    /// Password (secret; `${ENV}` expansion is the usual way to provide it).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Read the password from this file instead.
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `authorization:` as Prometheus writes it: `Authorization: <type> <credentials>`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Scheme, `Bearer` when absent.
    #[serde(default = "default_auth_type", rename = "type")]
    pub kind: String,
    /// The credentials (secret).
    #[serde(default)]
    pub credentials: Option<Secret>,
    /// Read the credentials from this file instead.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

fn default_auth_type() -> String {
    "Bearer".to_string()
}

/// `tls_config:` as Prometheus writes it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate file to verify the server with.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate file.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// Client key file.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Server name to verify instead of the host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Skip verification of the server's certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Minimum TLS version (`TLS12`, `TLS13`).
    #[serde(default)]
    pub min_version: Option<String>,
}

/// A string that is never shown: `Debug`, `Serialize` print `<secret>`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret's value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(crate::util::redact::SECRET)
    }
}

/// A URL that may carry credentials (user info, a token in the query or the
/// path): `Debug`, `Display` and `Serialize` show it through
/// [`crate::util::redact::url`], so the host and path stay readable.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(pub String);

impl SecretUrl {
    /// The full URL, for the one place that sends to it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL as it may be shown (logs, pages, metric labels).
    pub fn redacted(&self) -> String {
        crate::util::redact::url(&self.0)
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}
