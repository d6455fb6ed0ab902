//! `server.auth`: bearer API keys, basic-auth users with bcrypt hashes, and
//! the dashboard's login sessions; roles decide who may change things.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::ApiError;
use super::login_limit::LoginLimiter;
use super::session::{self, Session, SessionStore};
use crate::config::{AuthConfig, Role};

/// Paths anyone may call: liveness and readiness probes, the login page.
const PUBLIC_PATHS: [&str; 3] = ["/health", "/ready", "/login"];

/// Header a browser script sends its session's CSRF token in (API calls
/// authenticated by the session cookie).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer <api key>`.
    ApiKey,
    /// `Authorization: Basic …`.
    Basic,
    /// The login session cookie.
    Session,
}

/// Who is calling, put into the request's extensions by [`require_auth`].
#[derive(Clone, Debug)]
pub struct Principal {
    /// User name (`api-key` for bearer tokens).
    pub user: String,
    /// What they may do.
    pub role: Role,
    /// How they authenticated.
    pub via: Via,
    /// The session's CSRF token (sessions only).
    pub csrf: Option<String>,
}

/// Checks credentials on every request but the public ones.
pub struct Authenticator {
    api_keys: Vec<[u8; 32]>,
    users: BTreeMap<String, (String, Role)>,
    protect_metrics: bool,
    // bcrypt costs ~50 ms per check; remember credentials already verified
    // (by digest, never in clear) so a dashboard's many requests stay fast.
    verified: Mutex<HashMap<[u8; 32], (String, Role)>>,
    sessions: SessionStore,
    logins: LoginLimiter,
    login_csrf: String,
}

impl Authenticator {
    /// From the config's `server.auth`.
    pub fn new(config: &AuthConfig) -> Self {
        Authenticator {
            api_keys: config.api_keys.iter().map(|k| digest(k.expose())).collect(),
            users: config
                .basic_auth_users
                .iter()
                .map(|(u, c)| {
                    (
                        u.clone(),
                        (c.password_hash().expose().to_string(), c.role()),
                    )
                })
                .collect(),
            protect_metrics: config.protect_metrics,
            verified: Mutex::new(HashMap::new()),
            sessions: SessionStore::new(session::SESSION_TTL_MS),
            logins: LoginLimiter::default(),
            login_csrf: session::random_token().unwrap_or_default(),
        }
    }

    /// Whether users can log in to the pages (otherwise only API keys work).
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// The login form's CSRF token (there is no session yet to tie it to).
    pub fn login_csrf(&self) -> &str {
        &self.login_csrf
    }

    /// The logged-in sessions.
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// Failed logins per user name (brute-force protection).
    pub fn logins(&self) -> &LoginLimiter {
        &self.logins
    }

    fn is_public(&self, path: &str) -> bool {
        PUBLIC_PATHS.contains(&path)
            || path.starts_with("/static/")
            || (path == "/metrics" && !self.protect_metrics)
    }

    /// The user's role if `password` is theirs (bcrypt; call off the async threads).
    pub fn verify_password(&self, user: &str, password: &str) -> Option<Role> {
        let (hash, role) = self.users.get(user)?;
        bcrypt::verify(password, hash)
            .unwrap_or(false)
            .then_some(*role)
    }

    /// Whether the `Authorization` header value is accepted, and as whom.
    pub fn check(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let value = authorization.ok_or_else(|| {
            ApiError::unauthorized(
                "authentication required: send `Authorization: Bearer <api key>` or basic auth",
            )
        })?;
        if let Some(token) = value.strip_prefix("Bearer ") {
            let d = digest(token.trim());
            return if self.api_keys.contains(&d) {
                Ok(Principal {
                    user: "api-key".to_string(),
                    role: Role::Admin,
                    via: Via::ApiKey,
                    csrf: None,
                })
            } else {
                Err(ApiError::unauthorized("unknown API key"))
            };
        }
        if let Some(encoded) = value.strip_prefix("Basic ") {
            let d = digest(value);
            let basic = |(user, role): (String, Role)| Principal {
                user,
                role,
                via: Via::Basic,
                csrf: None,
            };
            if let Some(known) = self
                .verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&d)
            {
                return Ok(basic(known.clone()));
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::unauthorized("malformed basic auth header"))?;
            let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            if let Some(role) = self.verify_password(user, password) {
                self.verified
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(d, (user.to_string(), role));
                return Ok(basic((user.to_string(), role)));
            }
            return Err(ApiError::unauthorized("wrong user name or password"));
        }
        Err(ApiError::unauthorized(
            "unsupported Authorization scheme: use Bearer or Basic",
        ))
    }

    /// The live session named by the request's cookie.
    pub fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        let token = session::cookie(cookies, session::COOKIE)?;
        self.sessions
            .get(token, crate::util::now_ms())
            .map(|s| (token.to_string(), s))
    }

    /// Who the request comes from: its `Authorization` header when it has
    /// one, else its session cookie.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if authorization.is_some() {
            return self.check(authorization);
        }
        match self.session(headers) {
            Some((_, s)) => Ok(Principal {
                user: s.user,
                role: s.role,
                via: Via::Session,
                csrf: Some(s.csrf),
            }),
            None => self.check(None),
        }
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Whether only admins may make this request: changing silences or alerts,
/// uploading dashboards, pushing samples (`/api/v1/write`), and everything
/// under `/api/v1/admin/`.
pub fn needs_admin(method: &Method, path: &str) -> bool {
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    path.starts_with("/api/v1/admin/")
        || (changes
            && (path.starts_with("/alerts/silences")
                || path.starts_with("/dashboards/")
                || path == "/api/v2/silences"
                || path.starts_with("/api/v2/silence/")
                || path == "/api/v2/alerts"
                || path == "/api/v1/write"))
}

/// Whether the request comes from a person's browser (an HTML answer fits).
pub fn wants_html(headers: &HeaderMap, path: &str) -> bool {
    !path.starts_with("/api/")
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// Middleware enforcing [`Authenticator`]: unknown callers get a JSON 401,
/// or a redirect to the login page when a browser asks for a page;
/// read-only users get a 403 for changes; requests authenticated by the
/// session cookie must carry the session's CSRF token to change things
/// through the API (forms carry theirs in a field, checked by the pages).
pub async fn require_auth(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if auth.is_public(&path) {
        return next.run(req).await;
    }
    let principal = match auth.identify(req.headers()) {
        Ok(p) => p,
        Err(e) => {
            let page = matches!(*req.method(), Method::GET | Method::HEAD)
                && wants_html(req.headers(), &path)
                && auth.has_users();
            if page {
                let back = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let location = format!(
                    "/login?next={}",
                    form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
                );
                return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
            }
            return e.into_response();
        }
    };
    if principal.role != Role::Admin && needs_admin(req.method(), &path) {
        let message = format!(
            "user {:?} is read-only: only admins may do this (silences, dashboard uploads, /api/v1/admin/*)",
            principal.user
        );
        if wants_html(req.headers(), &path) {
            return super::pages::forbidden_page(req.headers(), &message);
        }
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response();
    }
    if principal.via == Via::Session
        && path.starts_with("/api/")
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
    {
        let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if sent.is_none() || sent != principal.csrf.as_deref() {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "changes through the API with the login cookie need the session's token in X-CSRF-Token",
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, UserConfig, UserWithRole};

    fn authenticator() -> Authenticator {
        let hash = bcrypt::hash("pw", 4).unwrap();
        Authenticator::new(&AuthConfig {
            api_keys: vec![Secret("k1".into())],
            basic_auth_users: [
                ("admin".to_string(), UserConfig::Hash(Secret(hash.clone()))),
                (
                    "viewer".to_string(),
                    UserConfig::WithRole(UserWithRole {
                        password_hash: Secret(hash),
                        role: Role::ReadOnly,
                    }),
                ),
            ]
            .into(),
            protect_metrics: false,
        })
    }

    fn basic(user_pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pw)
        )
    }

    #[test]
    fn keys_and_users() {
        let auth = authenticator();
        assert_eq!(auth.check(Some("Bearer k1")).unwrap().via, Via::ApiKey);
        assert!(auth.check(Some("Bearer k2")).is_err());
        assert!(auth.check(None).is_err());
        let good = basic("admin:pw");
        assert_eq!(auth.check(Some(&good)).unwrap().role, Role::Admin);
        assert_eq!(auth.check(Some(&good)).unwrap().user, "admin", "cached");
        assert!(auth.check(Some(&basic("admin:no"))).is_err());
        assert_eq!(
            auth.check(Some(&basic("viewer:pw"))).unwrap().role,
            Role::ReadOnly
        );
        assert!(
            auth.is_public("/metrics")
                && auth.is_public("/health")
                && auth.is_public("/login")
                && !auth.is_public("/embed")
                && !auth.is_public("/logout")
        );
    }

    #[test]
    fn sessions_identify_by_cookie() {
        let auth = authenticator();
        assert_eq!(auth.verify_password("viewer", "pw"), Some(Role::ReadOnly));
        assert_eq!(auth.verify_password("viewer", "x"), None);
        assert_eq!(auth.verify_password("nobody", "pw"), None);
        let (token, s) = auth
            .sessions()
            .create("viewer", Role::ReadOnly, crate::util::now_ms())
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("lang=en; {}={token}", session::COOKIE)
                .parse()
                .unwrap(),
        );
        let p = auth.identify(&headers).unwrap();
        assert_eq!(
            (p.user.as_str(), p.via, p.csrf),
            ("viewer", Via::Session, Some(s.csrf))
        );
        headers.insert(header::COOKIE, "infermon_session=forged".parse().unwrap());
        assert!(auth.identify(&headers).is_err());
        // A header wins over the cookie.
        headers.insert(header::AUTHORIZATION, "Bearer k1".parse().unwrap());
        assert_eq!(auth.identify(&headers).unwrap().via, Via::ApiKey);
    }

    #[test]
    fn what_needs_admin() {
        assert!(needs_admin(&Method::POST, "/alerts/silences"));
        assert!(needs_admin(&Method::POST, "/alerts/silences/abc/expire"));
        assert!(needs_admin(&Method::POST, "/dashboards/upload"));
        assert!(needs_admin(&Method::GET, "/api/v1/admin/snapshot"));
        assert!(needs_admin(&Method::DELETE, "/api/v2/silence/x"));
        assert!(needs_admin(&Method::POST, "/api/v2/silences"));
        assert!(!needs_admin(&Method::GET, "/api/v2/silences"));
        assert!(!needs_admin(&Method::GET, "/dashboards/inference"));
        assert!(!needs_admin(&Method::POST, "/api/v1/query"));
        assert!(needs_admin(&Method::POST, "/api/v1/write"));
        assert!(!needs_admin(&Method::POST, "/embed"));
        assert!(!needs_admin(&Method::POST, "/logout"));
    }
}
