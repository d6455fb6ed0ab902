//! `server.auth`: bearer API keys, basic-auth users with bcrypt hashes, and
//! the dashboard's login sessions; roles decide who may change things.
//! Every wrong key or password counts in one [`LoginLimiter`] (per user name
//! and per client address), and bcrypt runs on the blocking pool behind a
//! semaphore, so guessing clients neither succeed nor take the async threads.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::ApiError;
use super::login_limit::LoginLimiter;
use super::session::{self, Session, SessionStore};
use crate::config::{AuthConfig, Role};

/// Paths anyone may call: liveness and readiness probes, the login page.
const PUBLIC_PATHS: [&str; 5] = ["/health", "/ready", "/-/healthy", "/-/ready", "/login"];

/// Header a browser script sends its session's CSRF token in (API calls
/// authenticated by the session cookie).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a password check waits for a free slot before the caller is
/// told to come back (503).
const PASSWORD_CHECK_WAIT: Duration = Duration::from_secs(10);

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
    /// The token this principal's forms carry: the session's own, or one
    /// derived from the user name for basic auth, so no user ever sees
    /// another's (`None` for API keys, which browsers never send alone).
    pub csrf: Option<String>,
}

/// What a password check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The password is the user's.
    Ok(Role),
    /// Wrong user name or password (counted in the limiter).
    Wrong,
    /// Too many recent failures for this name or address: wait this long.
    Locked {
        /// Milliseconds until an attempt counts again.
        retry_after_ms: i64,
    },
    /// Every password-check slot stayed busy; try again shortly.
    Busy,
}

/// Checks credentials on every request but the public ones.
pub struct Authenticator {
    // Keys, users and what is public: a reload swaps them at once.
    creds: ArcSwap<Credentials>,
    // bcrypt costs ~50 ms per check; remember credentials already verified
    // (by digest, never in clear) so a dashboard's many requests stay fast.
    verified: Mutex<HashMap<[u8; 32], (String, Role)>>,
    sessions: SessionStore,
    logins: LoginLimiter,
    login_csrf: String,
    // Keys the per-user form tokens of basic-auth users.
    form_key: String,
    // bcrypt runs on the blocking pool, this many at once.
    password_checks: Arc<Semaphore>,
}

/// What `server.auth` says, as the checks use it.
struct Credentials {
    api_keys: Vec<[u8; 32]>,
    users: BTreeMap<String, (String, Role)>,
    protect_metrics: bool,
    // Unknown users are checked against this hash (the users' highest
    // cost), so a wrong name takes as long as a wrong password.
    dummy_hash: OnceLock<Option<String>>,
}

impl Credentials {
    fn new(config: &AuthConfig) -> Self {
        Credentials {
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
            dummy_hash: OnceLock::new(),
        }
    }
}

impl Authenticator {
    /// From the config's `server.auth`.
    pub fn new(config: &AuthConfig) -> Self {
        Authenticator {
            creds: ArcSwap::from_pointee(Credentials::new(config)),
            verified: Mutex::new(HashMap::new()),
            sessions: SessionStore::new(session::SESSION_TTL_MS),
            logins: LoginLimiter::default(),
            login_csrf: session::random_token().unwrap_or_default(),
            form_key: session::random_token().unwrap_or_default(),
            password_checks: Arc::new(Semaphore::new(config.max_concurrent_password_checks.max(1))),
        }
    }

    /// Takes new API keys, users and roles (a config reload). Credentials
    /// checked before are checked again; sessions of users removed, or
    /// whose password or role changed, end. Sessions of the others, the
    /// login limiter and the form keys stay.
    pub fn update(&self, config: &AuthConfig) {
        let new = Credentials::new(config);
        let old = self.creds.swap(Arc::new(new));
        let creds = self.creds.load();
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.sessions.retain(|s| {
            creds
                .users
                .get(&s.user)
                .is_some_and(|u| old.users.get(&s.user) == Some(u) && u.1 == s.role)
        });
    }

    /// Whether users can log in to the pages (otherwise only API keys work).
    pub fn has_users(&self) -> bool {
        !self.creds.load().users.is_empty()
    }

    /// The login form's CSRF token (there is no session yet to tie it to).
    pub fn login_csrf(&self) -> &str {
        &self.login_csrf
    }

    /// The logged-in sessions.
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// Failed checks per user name and client address (brute-force protection).
    pub fn logins(&self) -> &LoginLimiter {
        &self.logins
    }

    fn is_public(&self, path: &str) -> bool {
        PUBLIC_PATHS.contains(&path)
            || path.starts_with("/static/")
            || (path == "/metrics" && !self.creds.load().protect_metrics)
    }

    /// The form token of basic-auth user `user`: derived from a per-process
    /// key and the name, so read-only users never learn an admin's.
    fn user_form_token(&self, user: &str) -> String {
        hex::encode(digest(&format!("{}\n{user}", self.form_key)))
    }

    /// The dummy hash for unknown users: a hash at the highest cost of the
    /// configured ones (made once, on the blocking pool).
    fn dummy_hash(creds: &Credentials) -> Option<&str> {
        creds
            .dummy_hash
            .get_or_init(|| {
                let cost = creds
                    .users
                    .values()
                    .filter_map(|(hash, _)| hash.get(4..6)?.parse::<u32>().ok())
                    .max()?;
                let password = session::random_token().unwrap_or_default();
                bcrypt::hash(password, cost.clamp(4, 31)).ok()
            })
            .as_deref()
    }

    /// The user's role if `password` is theirs. bcrypt, blocking: unknown
    /// names are checked against a dummy hash of the same cost, so the
    /// answer's timing does not tell which names exist.
    pub fn verify_password(&self, user: &str, password: &str) -> Option<Role> {
        let creds = self.creds.load();
        match creds.users.get(user) {
            Some((hash, role)) => bcrypt::verify(password, hash)
                .unwrap_or(false)
                .then_some(*role),
            None => {
                if let Some(dummy) = Self::dummy_hash(&creds) {
                    let _ = bcrypt::verify(password, dummy);
                }
                None
            }
        }
    }

    /// Checks `user`'s `password` from `client`: refused while the name or
    /// the address is locked; bcrypt runs on the blocking pool, at most
    /// `server.auth.max_concurrent_password_checks` at once; failures count.
    pub async fn check_password(
        self: &Arc<Self>,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> PasswordCheck {
        let now = crate::util::now_ms();
        if let Some(ms) = self.logins.blocked_for(Some(user), client, now) {
            return PasswordCheck::Locked { retry_after_ms: ms };
        }
        let permit = match tokio::time::timeout(
            PASSWORD_CHECK_WAIT,
            self.password_checks.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => p,
            _ => return PasswordCheck::Busy,
        };
        // Failures may have locked the name while this one waited.
        let now = crate::util::now_ms();
        if let Some(ms) = self.logins.blocked_for(Some(user), client, now) {
            return PasswordCheck::Locked { retry_after_ms: ms };
        }
        let (me, who, pw) = (self.clone(), user.to_string(), password.to_string());
        let role = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            me.verify_password(&who, &pw)
        })
        .await
        .ok()
        .flatten();
        match role {
            Some(role) => {
                self.logins.succeeded(user);
                PasswordCheck::Ok(role)
            }
            None => {
                self.logins
                    .failed(Some(user), client, crate::util::now_ms());
                PasswordCheck::Wrong
            }
        }
    }

    /// Whether the `Authorization` header value is accepted, and as whom.
    /// Wrong keys and passwords count against `client` (and the user name).
    pub async fn check(
        self: &Arc<Self>,
        authorization: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Principal, Refusal> {
        let value = authorization.ok_or_else(|| {
            ApiError::unauthorized(
                "authentication required: send `Authorization: Bearer <api key>` or basic auth",
            )
        })?;
        if let Some(token) = value.strip_prefix("Bearer ") {
            let now = crate::util::now_ms();
            if let Some(ms) = self.logins.blocked_for(None, client, now) {
                return Err(locked(ms));
            }
            let d = digest(token.trim());
            return if self.creds.load().api_keys.contains(&d) {
                Ok(Principal {
                    user: "api-key".to_string(),
                    role: Role::Admin,
                    via: Via::ApiKey,
                    csrf: None,
                })
            } else {
                self.logins.failed(None, client, now);
                Err(ApiError::unauthorized("unknown API key").into())
            };
        }
        if let Some(encoded) = value.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::unauthorized("malformed basic auth header"))?;
            // Keyed by what was decoded, so spelling variants of one header
            // cannot grow the cache.
            let d = digest(&decoded);
            let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            let basic = |user: &str, role: Role| Principal {
                user: user.to_string(),
                role,
                via: Via::Basic,
                csrf: Some(self.user_form_token(user)),
            };
            // Credentials proven before are not guesses: they pass even
            // while someone else's failures lock the name.
            let known = self
                .verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&d)
                .cloned();
            if let Some((user, role)) = known {
                return Ok(basic(&user, role));
            }
            return match self.check_password(user, password, client).await {
                PasswordCheck::Ok(role) => {
                    self.verified
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(d, (user.to_string(), role));
                    Ok(basic(user, role))
                }
                PasswordCheck::Wrong => {
                    Err(ApiError::unauthorized("wrong user name or password").into())
                }
                PasswordCheck::Locked { retry_after_ms } => Err(locked(retry_after_ms)),
                PasswordCheck::Busy => Err(busy()),
            };
        }
        Err(ApiError::unauthorized("unsupported Authorization scheme: use Bearer or Basic").into())
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
    pub async fn identify(
        self: &Arc<Self>,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Result<Principal, Refusal> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if authorization.is_some() {
            return self.check(authorization, client).await;
        }
        match self.session(headers) {
            Some((_, s)) => Ok(Principal {
                user: s.user,
                role: s.role,
                via: Via::Session,
                csrf: Some(s.csrf),
            }),
            None => self.check(None, client).await,
        }
    }
}

/// Why a request was not let in: the error, and how long to wait when the
/// name or address is locked (sent as `Retry-After`).
#[derive(Debug)]
pub struct Refusal {
    /// The JSON error.
    pub error: ApiError,
    /// Milliseconds until an attempt counts again (429 only).
    pub retry_after_ms: Option<i64>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal {
            error,
            retry_after_ms: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(ms) = self.retry_after_ms
            && let Ok(v) = HeaderValue::from_str(&((ms + 999) / 1000).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// The 429 for a locked name or address.
fn locked(retry_after_ms: i64) -> Refusal {
    Refusal {
        error: ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            format!(
                "too many failed logins for this user or from this address; try again in {} s",
                (retry_after_ms + 999) / 1000
            ),
        ),
        retry_after_ms: Some(retry_after_ms),
    }
}

fn busy() -> Refusal {
    ApiError::unavailable("too many password checks in progress; try again shortly").into()
}

/// The client's address, when the server was started with connect info.
pub fn client_addr(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The peer address as an extractor (`None` without connect info).
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Whether only admins may make this request: changing silences or alerts,
/// uploading dashboards, pushing samples (`/api/v1/write`), reloading the
/// config (`/-/reload`), and everything under `/api/v1/admin/`.
pub fn needs_admin(method: &Method, path: &str) -> bool {
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    path.starts_with("/api/v1/admin/")
        || path == "/-/reload"
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
    let client = client_addr(&req);
    let principal = match auth.identify(req.headers(), client).await {
        Ok(p) => p,
        Err(e) if e.error.status != StatusCode::UNAUTHORIZED => return e.into_response(),
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
            "user {:?} is read-only: only admins may do this (silences, dashboard uploads, /-/reload, /api/v1/admin/*)",
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

    fn authenticator_with_cost(cost: u32) -> Arc<Authenticator> {
        let hash = bcrypt::hash("pw", cost).unwrap();
        Arc::new(Authenticator::new(&AuthConfig {
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
            max_concurrent_password_checks: 2,
        }))
    }

    fn authenticator() -> Arc<Authenticator> {
        authenticator_with_cost(4)
    }

    fn basic(user_pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pw)
        )
    }

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7)));

    #[tokio::test]
    async fn keys_and_users() {
        let auth = authenticator();
        let check = |h: &str| {
            let (auth, h) = (auth.clone(), h.to_string());
            async move { auth.check(Some(&h), ADDR).await }
        };
        assert_eq!(check("Bearer k1").await.unwrap().via, Via::ApiKey);
        assert!(check("Bearer k2").await.is_err());
        assert!(auth.check(None, ADDR).await.is_err());
        let good = basic("admin:pw");
        assert_eq!(check(&good).await.unwrap().role, Role::Admin);
        assert_eq!(check(&good).await.unwrap().user, "admin", "cached");
        assert!(check(&basic("admin:no")).await.is_err());
        let viewer = check(&basic("viewer:pw")).await.unwrap();
        assert_eq!(viewer.role, Role::ReadOnly);
        let admin = check(&good).await.unwrap();
        assert!(
            viewer.csrf.is_some() && viewer.csrf != admin.csrf,
            "each basic-auth user has an own form token"
        );
        assert!(
            auth.is_public("/metrics")
                && auth.is_public("/health")
                && auth.is_public("/login")
                && !auth.is_public("/embed")
                && !auth.is_public("/logout")
        );
    }

    #[tokio::test]
    async fn basic_and_bearer_failures_lock_like_the_login_form() {
        let auth = authenticator();
        for _ in 0..crate::web::login_limit::MAX_FAILURES {
            let e = auth
                .check(Some(&basic("viewer:guess")), ADDR)
                .await
                .unwrap_err();
            assert_eq!(e.error.status, StatusCode::UNAUTHORIZED);
        }
        // Locked: even the right password is refused, with a wait.
        let e = auth
            .check(Some(&basic("viewer:pw")), ADDR)
            .await
            .unwrap_err();
        assert_eq!(e.error.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.retry_after_ms.is_some_and(|ms| ms > 0));
        // The login form shares the count.
        assert!(matches!(
            auth.check_password("viewer", "pw", None).await,
            PasswordCheck::Locked { .. }
        ));
        // Bearer failures count per address.
        let other = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 8)));
        for _ in 0..crate::web::login_limit::MAX_FAILURES_PER_ADDRESS {
            assert!(auth.check(Some("Bearer nope"), other).await.is_err());
        }
        let e = auth.check(Some("Bearer k1"), other).await.unwrap_err();
        assert_eq!(e.error.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(auth.check(Some("Bearer k1"), ADDR).await.is_ok());
    }

    /// A reload rotates keys and passwords at once: the old key and a
    /// cached password stop working; sessions of changed users end, the
    /// others stay.
    #[tokio::test]
    async fn an_update_swaps_keys_users_and_their_sessions() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let config = |key: &str, viewer_role: &str, admin_pw: &str| -> AuthConfig {
            let admin = bcrypt::hash(admin_pw, 4).unwrap();
            serde_yaml_ng::from_str(&format!(
                "api_keys: [{key}]\nbasic_auth_users:\n  admin: '{admin}'\n  viewer:\n    password_hash: '{hash}'\n    role: {viewer_role}\n  other: '{hash}'\n"
            ))
            .unwrap()
        };
        let auth = Arc::new(Authenticator::new(&config("k1", "read_only", "a1")));
        assert!(auth.check(Some("Bearer k1"), None).await.is_ok());
        let basic = |u: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(u)
            )
        };
        assert!(auth.check(Some(&basic("admin:a1")), None).await.is_ok());
        let now = crate::util::now_ms();
        let (viewer, _) = auth
            .sessions()
            .create("viewer", Role::ReadOnly, now)
            .unwrap();
        let (other, _) = auth.sessions().create("other", Role::Admin, now).unwrap();

        auth.update(&config("k2", "admin", "a2"));
        assert!(auth.check(Some("Bearer k1"), None).await.is_err());
        assert!(auth.check(Some("Bearer k2"), None).await.is_ok());
        assert!(
            auth.check(Some(&basic("admin:a1")), None).await.is_err(),
            "cached password dropped"
        );
        assert!(auth.check(Some(&basic("admin:a2")), None).await.is_ok());
        assert!(
            auth.sessions().get(&viewer, now).is_none(),
            "role changed: session ended"
        );
        assert!(auth.sessions().get(&other, now).is_some());
    }

    #[test]
    fn unknown_users_cost_a_bcrypt_check_too() {
        let auth = authenticator_with_cost(9);
        assert_eq!(auth.verify_password("nobody", "pw"), None);
        let creds = auth.creds.load();
        let dummy = Authenticator::dummy_hash(&creds).unwrap();
        assert!(dummy.starts_with("$2b$09$"), "{dummy}");
        let time = |user: &str| {
            (0..3)
                .map(|_| {
                    let t = std::time::Instant::now();
                    auth.verify_password(user, "wrong");
                    t.elapsed()
                })
                .min()
                .unwrap()
        };
        let (known, unknown) = (time("admin"), time("nobody"));
        assert!(
            unknown * 3 > known,
            "unknown user took {unknown:?}, known {known:?}"
        );
    }

    #[tokio::test]
    async fn sessions_identify_by_cookie() {
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
        let p = auth.identify(&headers, ADDR).await.unwrap();
        assert_eq!(
            (p.user.as_str(), p.via, p.csrf),
            ("viewer", Via::Session, Some(s.csrf))
        );
        headers.insert(header::COOKIE, "infermon_session=forged".parse().unwrap());
        assert!(auth.identify(&headers, ADDR).await.is_err());
        // A header wins over the cookie.
        headers.insert(header::AUTHORIZATION, "Bearer k1".parse().unwrap());
        assert_eq!(
            auth.identify(&headers, ADDR).await.unwrap().via,
            Via::ApiKey
        );
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
        assert!(needs_admin(&Method::POST, "/-/reload"));
        assert!(needs_admin(&Method::PUT, "/-/reload"));
    }
}
