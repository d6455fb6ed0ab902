//! Login sessions for the dashboard: a random token in an HttpOnly,
//! SameSite=Strict cookie, kept in memory (a restart logs everyone out) and
//! valid for a fixed time after login. Each session has its own CSRF token.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::config::Role;

/// Name of the session cookie.
pub const COOKIE: &str = "infermon_session";

/// How long a login lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// A logged-in user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// User name.
    pub user: String,
    /// What the user may do.
    pub role: Role,
    /// Token every state-changing form of this session must carry.
    pub csrf: String,
    /// When the session ends, ms.
    pub expires_ms: i64,
}

/// The sessions of this process, keyed by a digest of their token so the
/// tokens themselves are never kept.
pub struct SessionStore {
    ttl_ms: i64,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 random bytes from the OS, hex-encoded; `None` only when the OS has no
/// randomness to give (then no session is made rather than a guessable one).
pub fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl SessionStore {
    /// A store whose sessions last `ttl_ms`.
    pub fn new(ttl_ms: i64) -> Self {
        SessionStore {
            ttl_ms,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session at `now_ms`; returns its cookie token and the session.
    pub fn create(&self, user: &str, role: Role, now_ms: i64) -> Option<(String, Session)> {
        let token = random_token()?;
        let session = Session {
            user: user.to_string(),
            role,
            csrf: random_token()?,
            expires_ms: now_ms + self.ttl_ms,
        };
        let mut sessions = self.lock();
        // Logins are rare; sweeping here keeps the map at the live sessions.
        sessions.retain(|_, s| s.expires_ms > now_ms);
        sessions.insert(key(&token), session.clone());
        Some((token, session))
    }

    /// The live session of `token` at `now_ms`.
    pub fn get(&self, token: &str, now_ms: i64) -> Option<Session> {
        let mut sessions = self.lock();
        let k = key(token);
        match sessions.get(&k) {
            Some(s) if s.expires_ms > now_ms => Some(s.clone()),
            Some(_) => {
                sessions.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Keeps only the sessions `keep` accepts (a reload changed users).
    pub fn retain(&self, keep: impl Fn(&Session) -> bool) {
        self.lock().retain(|_, s| keep(s));
    }

    /// Ends the session of `token` (logout).
    pub fn remove(&self, token: &str) {
        self.lock().remove(&key(token));
    }

    /// Number of sessions held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').map(str::trim).find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_log_out() {
        let store = SessionStore::new(1000);
        let (token, s) = store.create("ann", Role::ReadOnly, 10_000).unwrap();
        assert_eq!(token.len(), 64);
        assert_ne!(s.csrf, token);
        assert_eq!(
            store.get(&token, 10_999).map(|s| s.user),
            Some("ann".into())
        );
        assert_eq!(store.get(&token, 11_000), None, "expired at ttl");
        assert!(store.is_empty(), "an expired session is dropped when seen");
        let (t2, _) = store.create("bob", Role::Admin, 20_000).unwrap();
        let (t3, _) = store.create("bob", Role::Admin, 20_000).unwrap();
        assert_ne!(t2, t3, "tokens are random");
        store.remove(&t2);
        assert_eq!(store.get(&t2, 20_001), None);
        assert!(store.get(&t3, 20_001).is_some());
        assert_eq!(store.get("forged", 20_001), None);
        // Creating sweeps sessions that ran out without being seen.
        store.create("cy", Role::Admin, 40_000).unwrap();
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn cookie_values() {
        let h = Some("lang=zh; infermon_session=abc; x=y=z");
        assert_eq!(cookie(h, COOKIE), Some("abc"));
        assert_eq!(cookie(h, "lang"), Some("zh"));
        assert_eq!(cookie(h, "x"), Some("y=z"));
        assert_eq!(cookie(h, "infermon"), None);
        assert_eq!(cookie(None, "lang"), None);
    }
}
