//! What a browser may make this server do on another site's behalf. With
//! auth off (the default) any page the operator has open could otherwise
//! POST to `/api/v1/admin/*` or `/api/v1/write`, and a DNS-rebinding page
//! could read everything. Two checks, before auth:
//!
//! - state-changing requests (anything but GET/HEAD/OPTIONS) that carry an
//!   `Origin` (or, without one, a `Referer`) must come from this server's
//!   own origin or one in `server.allowed_origins`; requests with neither
//!   (curl, vmagent, Prometheus remote_write) pass;
//! - the `Host` must be an IP literal, `localhost`, this machine's host
//!   name or a name in `server.allowed_hosts` — with auth off always, with
//!   auth on only when `allowed_hosts` is set (then credentials, which a
//!   rebinding page does not have, already guard the box).
//!
//! With `server.cookie_secure`, every cookie set carries `Secure`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::config::ServerConfig;

/// The Origin/Host policy, from `server:`.
#[derive(Clone, Debug)]
pub struct BrowserGuard {
    allowed_origins: Vec<String>,
    allowed_hosts: Vec<String>,
    check_host: bool,
    cookie_secure: bool,
}

impl BrowserGuard {
    /// The policy of `server` (`auth` decides whether Host is checked by default).
    pub fn new(server: &ServerConfig) -> Self {
        let mut allowed_hosts: Vec<String> = server
            .allowed_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let check_host = server.auth.is_none() || !allowed_hosts.is_empty();
        if let Some(name) = host_name() {
            allowed_hosts.push(name.to_ascii_lowercase());
        }
        if let Some(listen) = split_port(&server.listen).map(|h| h.to_ascii_lowercase())
            && !listen.is_empty()
        {
            allowed_hosts.push(listen);
        }
        BrowserGuard {
            allowed_origins: server
                .allowed_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allowed_hosts,
            check_host,
            cookie_secure: server.cookie_secure,
        }
    }

    /// Whether `host` (a `Host` header value, port included or not) may be served.
    pub fn host_allowed(&self, host: &str) -> bool {
        if !self.check_host {
            return true;
        }
        let Some(name) = split_port(host) else {
            return false;
        };
        let name = name.to_ascii_lowercase();
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|a| match a.strip_prefix("*.") {
                    Some(domain) => name.ends_with(&format!(".{domain}")),
                    None => *a == name,
                })
    }

    /// Whether a state-changing request with these headers is same-origin
    /// (or from an allowed origin, or not from a browser at all).
    pub fn origin_allowed(&self, headers: &HeaderMap) -> Result<(), String> {
        let header_str = |h| headers.get(h).and_then(|v| v.to_str().ok());
        let origin = match (header_str(header::ORIGIN), header_str(header::REFERER)) {
            (Some(o), _) => o.trim().to_ascii_lowercase(),
            (None, Some(r)) => match origin_of(r) {
                Some(o) => o,
                None => return Err(format!("unreadable Referer {r:?}")),
            },
            (None, None) => return Ok(()),
        };
        if self.allowed_origins.contains(&origin) {
            return Ok(());
        }
        let host = header_str(header::HOST).map(str::to_ascii_lowercase);
        let same = origin.split_once("://").is_some_and(|(scheme, authority)| {
            host.as_deref()
                .is_some_and(|h| authority == h || authority == strip_default_port(h, scheme))
        });
        if same { Ok(()) } else { Err(origin) }
    }
}

/// `scheme://authority` of a URL, lower-cased.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

/// `host:80` as `host` for http, `host:443` as `host` for https (browsers
/// leave default ports out of `Origin`).
fn strip_default_port<'a>(host: &'a str, scheme: &str) -> &'a str {
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return host,
    };
    host.strip_suffix(default).unwrap_or(host)
}

/// The name part of `host[:port]` or `[v6][:port]`; `None` if malformed.
fn split_port(host: &str) -> Option<&str> {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        return (after.is_empty() || after.starts_with(':')).then_some(inside);
    }
    Some(match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    })
}

/// This machine's host name, as DNS-rebinding pages cannot pick it.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// Middleware enforcing [`BrowserGuard`] on every request.
pub async fn guard(
    State(policy): State<std::sync::Arc<BrowserGuard>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if let Some(host) = &host
        && !policy.host_allowed(host)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            format!(
                "Host {host:?} is not a name this server answers to; use its IP address or localhost, or add the name to server.allowed_hosts"
            ),
        )
        .into_response();
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && let Err(origin) = policy.origin_allowed(req.headers())
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!(
                "a page on {origin} may not change this server; requests from other sites are refused (add the origin to server.allowed_origins if it is yours)"
            ),
        )
        .into_response();
    }
    let mut response = next.run(req).await;
    if policy.cookie_secure {
        mark_cookies_secure(response.headers_mut());
    }
    response
}

/// Adds `Secure` to every `Set-Cookie` that lacks it (`server.cookie_secure`).
fn mark_cookies_secure(headers: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for value in cookies {
        let secure = value.to_str().ok().and_then(|v| {
            let has = v
                .split(';')
                .any(|attr| attr.trim().eq_ignore_ascii_case("secure"));
            (!has).then(|| HeaderValue::from_str(&format!("{v}; Secure")).ok())?
        });
        headers.append(header::SET_COOKIE, secure.unwrap_or(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> BrowserGuard {
        BrowserGuard::new(&serde_yaml_ng::from_str(yaml).unwrap())
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn hosts_without_auth_are_ip_literals_localhost_or_configured() {
        let p = policy("allowed_hosts: [infermon.lan, '*.corp.example']");
        for ok in [
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "localhost:8080",
            "app.localhost",
            "infermon.lan:8080",
            "INFERMON.LAN",
            "gpu7.corp.example",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "corp.example",
            "[::1",
            "infermon.lan.evil",
        ] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
        // With auth and no list, names are not checked.
        let p = policy("auth: {api_keys: [k]}");
        assert!(p.host_allowed("box.example"));
        // Without auth they are.
        assert!(!policy("{}").host_allowed("rebind.evil.example"));
        // The listen address's name is always fine.
        assert!(policy("listen: 'gpu7.lan:8080'").host_allowed("gpu7.lan:8080"));
    }

    #[test]
    fn changes_need_the_same_origin_or_none() {
        let p = policy("allowed_origins: ['https://grafana.example/']");
        let host = (header::HOST, "127.0.0.1:8080");
        assert!(
            p.origin_allowed(&headers(std::slice::from_ref(&host)))
                .is_ok(),
            "curl"
        );
        assert!(
            p.origin_allowed(&headers(&[
                host.clone(),
                (header::ORIGIN, "http://127.0.0.1:8080")
            ]))
            .is_ok()
        );
        assert!(
            p.origin_allowed(&headers(&[
                (header::HOST, "box:80"),
                (header::ORIGIN, "http://box")
            ]))
            .is_ok()
        );
        assert!(
            p.origin_allowed(&headers(&[
                host.clone(),
                (header::ORIGIN, "https://grafana.example")
            ]))
            .is_ok()
        );
        for bad in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
            assert!(
                p.origin_allowed(&headers(&[host.clone(), (header::ORIGIN, bad)]))
                    .is_err(),
                "{bad}"
            );
        }
        assert!(
            p.origin_allowed(&headers(&[
                host.clone(),
                (header::REFERER, "http://127.0.0.1:8080/alerts?x=1")
            ]))
            .is_ok()
        );
        assert!(
            p.origin_allowed(&headers(&[
                host,
                (header::REFERER, "http://evil.example/page")
            ]))
            .is_err()
        );
    }

    #[test]
    fn cookies_become_secure() {
        let mut h = HeaderMap::new();
        h.append(header::SET_COOKIE, "a=1; Path=/".parse().unwrap());
        h.append(header::SET_COOKIE, "b=2; Secure".parse().unwrap());
        mark_cookies_secure(&mut h);
        let all: Vec<_> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(all, ["a=1; Path=/; Secure", "b=2; Secure"]);
    }

    #[test]
    fn ports_and_brackets() {
        assert_eq!(split_port("a:1"), Some("a"));
        assert_eq!(split_port("[::1]:8080"), Some("::1"));
        assert_eq!(split_port("[::1]x"), None);
        assert_eq!(origin_of("HTTP://A:1/x?y"), Some("http://a:1".into()));
        assert_eq!(origin_of("/relative"), None);
    }
}
