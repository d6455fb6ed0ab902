//! The login page, logout, and the readable 403 page for read-only users.
//! Sessions themselves live in `web::session`; this is their HTML face.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::CSP;
use super::ctx::{Viewer, csrf_rejected, lang_of};
use super::i18n::Lang;
use crate::web::Params;
use crate::web::auth::{Authenticator, ClientAddr, PasswordCheck, Via};
use crate::web::session;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    lang_code: &'static str,
    lang_label: &'static str,
    title: &'static str,
    user_label: &'static str,
    password_label: &'static str,
    submit_label: &'static str,
    error: Option<String>,
    next: String,
    csrf: String,
}

#[derive(Template)]
#[template(path = "forbidden.html")]
struct ForbiddenPage {
    lang_code: &'static str,
    title: &'static str,
    message: String,
    back_label: &'static str,
}

/// Where to go after login: a path on this server only. Browsers read
/// `//host`, `/\host` and `\host` as another host, and drop tabs and
/// newlines inside URLs (`/\t/host` is `//host`), so a `next` holding a
/// backslash, a control character or `//` at its start goes to `/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn page(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    match body {
        Ok(b) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::CACHE_CONTROL, "no-store"),
            ],
            b,
        )
            .into_response(),
        Err(e) => crate::web::ApiError::from(e).into_response(),
    }
}

fn login_page(
    auth: &Authenticator,
    lang: Lang,
    next: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    page(
        status,
        LoginPage {
            lang_code: lang.code(),
            lang_label: lang.t("Language"),
            title: lang.t("Log in"),
            user_label: lang.t("User name"),
            password_label: lang.t("Password"),
            submit_label: lang.t("Log in"),
            error,
            next,
            csrf: auth.login_csrf().to_string(),
        }
        .render(),
    )
}

/// A 403 a person can read (read-only users trying to change something).
pub fn forbidden_page(headers: &HeaderMap, message: &str) -> Response {
    let lang = lang_of(&Params::default(), headers);
    page(
        StatusCode::FORBIDDEN,
        ForbiddenPage {
            lang_code: lang.code(),
            title: lang.t("Forbidden"),
            message: message.to_string(),
            back_label: lang.t("Back to the overview"),
        }
        .render(),
    )
}

/// `/login` (public) and `/logout`.
pub fn routes(auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/login", get(show).post(submit))
        .route("/logout", post(logout))
        .with_state(auth)
}

async fn show(
    State(auth): State<Arc<Authenticator>>,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let next = safe_next(params.get("next"));
    if auth.session(&headers).is_some() {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    }
    let mut response = login_page(
        &auth,
        lang_of(&params, &headers),
        next,
        None,
        StatusCode::OK,
    );
    if let Some(lang) = params.get("lang").filter(|l| *l == "en" || *l == "zh")
        && let Ok(v) = HeaderValue::from_str(&format!(
            "lang={lang}; Path=/; Max-Age=31536000; SameSite=Strict"
        ))
    {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn submit(
    State(auth): State<Arc<Authenticator>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&Params::default(), &headers);
    let next = safe_next(form.get("next").map(String::as_str));
    if form.get("csrf").map(String::as_str) != Some(auth.login_csrf()) {
        return login_page(
            &auth,
            lang,
            next,
            Some(lang.t("The form expired; log in again").to_string()),
            StatusCode::FORBIDDEN,
        );
    }
    let user = form.get("username").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let now = crate::util::now_ms();
    // The same limiter, blocking pool and admission as basic auth.
    let role = match auth.check_password(&user, &password, client).await {
        PasswordCheck::Ok(role) => role,
        PasswordCheck::Locked { retry_after_ms } => {
            tracing::warn!(user = %user, "dashboard login refused: too many failed attempts");
            let minutes = (retry_after_ms + 59_999) / 60_000;
            let mut response = login_page(
                &auth,
                lang,
                next,
                Some(
                    lang.t("Too many failed logins for this user; try again in {n} min")
                        .replace("{n}", &minutes.to_string()),
                ),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(v) = HeaderValue::from_str(&((retry_after_ms + 999) / 1000).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
        PasswordCheck::Busy => {
            return crate::web::ApiError::unavailable(
                "too many password checks in progress; try again shortly",
            )
            .into_response();
        }
        PasswordCheck::Wrong => {
            tracing::info!(user = %user, "dashboard login refused");
            return login_page(
                &auth,
                lang,
                next,
                Some(lang.t("Wrong user name or password").to_string()),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let Some((token, _)) = auth.sessions().create(&user, role, now) else {
        return crate::web::ApiError::internal("no randomness for a session token").into_response();
    };
    tracing::info!(user = %user, ?role, "dashboard login");
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        session::COOKIE,
        session::SESSION_TTL_MS / 1000
    );
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, next), (header::SET_COOKIE, cookie)],
    )
        .into_response()
}

async fn logout(
    State(auth): State<Arc<Authenticator>>,
    viewer: Viewer,
    headers: HeaderMap,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(p) = viewer.0 else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    };
    if p.via != Via::Session || form.get("csrf") != p.csrf.as_ref() {
        return csrf_rejected();
    }
    if let Some((token, _)) = auth.session(&headers) {
        auth.sessions().remove(&token);
    }
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        session::COOKIE
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_string()),
            (header::SET_COOKIE, clear),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next(Some("/alerts?x=1")), "/alerts?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
        for bad in [
            "/\\/evil.example",
            "/\t/evil.example",
            "/\n/evil",
            "\\\\evil",
            "/a\\b",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(
            safe_next(Some("/dashboards/x?from=1#y")),
            "/dashboards/x?from=1#y"
        );
    }
}
