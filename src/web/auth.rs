//! `server.auth`: bearer API keys and basic-auth users with bcrypt hashes.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::config::AuthConfig;

/// Paths anyone may call: liveness and readiness probes, static assets.
const PUBLIC_PATHS: [&str; 2] = ["/health", "/ready"];

/// Checks credentials on every request but the public ones.
pub struct Authenticator {
    api_keys: Vec<[u8; 32]>,
    users: BTreeMap<String, String>,
    protect_metrics: bool,
    // bcrypt costs ~50 ms per check; remember credentials already verified
    // (by digest, never in clear) so a dashboard's many requests stay fast.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Authenticator {
    /// From the config's `server.auth`.
    pub fn new(config: &AuthConfig) -> Self {
        Authenticator {
            api_keys: config.api_keys.iter().map(|k| digest(k.expose())).collect(),
            users: config
                .basic_auth_users
                .iter()
                .map(|(u, h)| (u.clone(), h.expose().to_string()))
                .collect(),
            protect_metrics: config.protect_metrics,
            verified: Mutex::new(HashSet::new()),
        }
    }

    fn is_public(&self, path: &str) -> bool {
        PUBLIC_PATHS.contains(&path) || path.starts_with("/static/") || (path == "/metrics" && !self.protect_metrics)
    }

    /// Whether the `Authorization` header value is accepted.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let value = authorization.ok_or_else(|| {
            ApiError::unauthorized("authentication required: send `Authorization: Bearer <api key>` or basic auth")
        })?;
        if let Some(token) = value.strip_prefix("Bearer ") {
            let d = digest(token.trim());
            return if self.api_keys.contains(&d) {
                Ok(())
            } else {
                Err(ApiError::unauthorized("unknown API key"))
            };
        }
        if let Some(encoded) = value.strip_prefix("Basic ") {
            let d = digest(value);
            if self.verified.lock().unwrap_or_else(|p| p.into_inner()).contains(&d) {
                return Ok(());
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::unauthorized("malformed basic auth header"))?;
            let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            let ok = self.users.get(user).is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false));
            if ok {
                self.verified.lock().unwrap_or_else(|p| p.into_inner()).insert(d);
                return Ok(());
            }
            return Err(ApiError::unauthorized("wrong user name or password"));
        }
        Err(ApiError::unauthorized("unsupported Authorization scheme: use Bearer or Basic"))
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Middleware enforcing [`Authenticator`].
pub async fn require_auth(State(auth): State<Arc<Authenticator>>, req: Request, next: Next) -> Response {
    if auth.is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match auth.check(header) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn keys_and_users() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let auth = Authenticator::new(&AuthConfig {
            api_keys: vec![Secret("k1".into())],
            basic_auth_users: [("admin".to_string(), Secret(hash))].into(),
            protect_metrics: false,
        });
        assert!(auth.check(Some("Bearer k1")).is_ok());
        assert!(auth.check(Some("Bearer k2")).is_err());
        assert!(auth.check(None).is_err());
        let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("admin:pw"));
        let bad = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("admin:no"));
        assert!(auth.check(Some(&good)).is_ok());
        assert!(auth.check(Some(&good)).is_ok(), "cached");
        assert!(auth.check(Some(&bad)).is_err());
        assert!(auth.is_public("/metrics") && auth.is_public("/health") && !auth.is_public("/embed"));
    }
}
