//! What every page starts from ([`PageCtx`]): who is looking, in which
//! language, the form token, the parameters and the time range picked; and
//! the frame (nav, toolbar) the layout template draws from it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{CSP, Lang, Pages, Window};
use crate::config::Role;
use crate::web::auth::{Principal, Via};
use crate::web::charts::query_step;
use crate::web::{ApiError, Params};

/// The ranges the toolbar offers (`custom` only after a zoom).
const RANGES: [(&str, i64); 6] = [
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("6h", 21_600_000),
    ("24h", 86_400_000),
    ("7d", 604_800_000),
    ("custom", 0),
];
const REFRESHES: [&str; 4] = ["off", "5s", "15s", "1m"];

/// Who is looking at a page: the principal the auth layer found, or nobody
/// when `server.auth` is off (then everyone may do everything, as before).
pub struct Viewer(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Viewer(parts.extensions.get::<Principal>().cloned()))
    }
}

impl Viewer {
    /// Whether the viewer may change things (the auth layer enforces it; pages
    /// only hide what would be refused).
    pub(super) fn is_admin(&self) -> bool {
        self.0.as_ref().is_none_or(|p| p.role == Role::Admin)
    }

    /// The token this viewer's forms carry: the session's own, else the process's.
    fn csrf<'a>(&'a self, process_token: &'a str) -> &'a str {
        self.0
            .as_ref()
            .and_then(|p| p.csrf.as_deref())
            .unwrap_or(process_token)
    }
}

/// The window a page shows: `from`/`to` (ms, after a zoom) or a named range
/// ending now, and the auto-refresh picked.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeRange {
    /// Start, ms.
    pub start: i64,
    /// End, ms.
    pub end: i64,
    /// `15m` … `7d`, or `custom` for a zoomed window.
    pub name: &'static str,
    /// `off`, `5s`, `15s` or `1m`.
    pub refresh: &'static str,
}

impl TimeRange {
    /// From `from`/`to`, `range` and `refresh`; unknown values fall back to the last hour, no refresh.
    /// A named `range` beats `from`/`to`: the toolbar's form carries a zoomed
    /// window's `from`/`to` along, and picking `1h` there must leave the zoom.
    pub fn from_params(params: &Params, now: i64) -> Self {
        let named = params
            .get("range")
            .is_some_and(|r| r != "custom" && RANGES.iter().any(|(n, _)| *n == r));
        let (start, end, name) = match (
            params.get("from").and_then(|v| v.parse::<i64>().ok()),
            params.get("to").and_then(|v| v.parse::<i64>().ok()),
        ) {
            (Some(f), Some(t)) if t > f && !named => (f, t, "custom"),
            _ => {
                let (name, ms) = params
                    .get("range")
                    .and_then(|r| RANGES.iter().find(|(n, ms)| *n == r && *ms > 0))
                    .copied()
                    .unwrap_or(("1h", 3_600_000));
                (now - ms, now, name)
            }
        };
        let refresh = params
            .get("refresh")
            .and_then(|r| REFRESHES.iter().find(|x| **x == r))
            .copied()
            .unwrap_or("off");
        TimeRange {
            start,
            end,
            name,
            refresh,
        }
    }

    /// `range=1h`, or `from=..&to=..` for a zoomed window.
    pub fn query(&self) -> String {
        if self.name == "custom" {
            format!("from={}&to={}", self.start, self.end)
        } else {
            format!("range={}", self.name)
        }
    }

    /// The query window: this range at about 240 points.
    pub fn window(&self) -> Window {
        Window {
            start: self.start,
            end: self.end,
            step: query_step(self.end - self.start, 240),
        }
    }
}

/// The page language from `?lang=`, the `lang` cookie, `Accept-Language`.
pub(super) fn lang_of(params: &Params, headers: &HeaderMap) -> Lang {
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Lang::pick(
        params.get("lang"),
        crate::web::session::cookie(cookies, "lang"),
        accept,
    )
}

/// Everything a page handler needs about the request, in one extractor.
pub struct PageCtx {
    /// Who is looking.
    pub viewer: Viewer,
    /// The language picked.
    pub lang: Lang,
    /// The token this viewer's forms must carry.
    pub csrf: String,
    /// The query string.
    pub params: Params,
    /// The time range and refresh picked.
    pub range: TimeRange,
}

impl FromRequestParts<Arc<Pages>> for PageCtx {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        pages: &Arc<Pages>,
    ) -> Result<Self, Self::Rejection> {
        let viewer = Viewer(parts.extensions.get::<Principal>().cloned());
        let params = Params::from_query(parts.uri.query());
        let lang = lang_of(&params, &parts.headers);
        let csrf = viewer.csrf(&pages.csrf).to_string();
        let range = TimeRange::from_params(&params, crate::util::now_ms());
        Ok(PageCtx {
            viewer,
            lang,
            csrf,
            params,
            range,
        })
    }
}

impl PageCtx {
    /// Whether the viewer may change things.
    pub fn is_admin(&self) -> bool {
        self.viewer.is_admin()
    }

    /// Whether a form's token is right. API keys are never sent by a browser
    /// on its own, so a request with one cannot be forged cross-site.
    pub fn csrf_ok(&self, sent: Option<&str>) -> bool {
        self.viewer.0.as_ref().is_some_and(|p| p.via == Via::ApiKey)
            || (!self.csrf.is_empty() && sent == Some(self.csrf.as_str()))
    }

    /// The frame of a page titled `title`, with `active` lit in the nav and
    /// the range toolbar when `show_range`.
    pub fn frame(&self, title: &str, active: &str, show_range: bool) -> PageFrame {
        let lang = self.lang;
        let nav = [
            ("/", "Overview"),
            ("/explore", "Explore"),
            ("/dashboards", "Dashboards"),
            ("/targets", "Targets"),
            ("/alerts", "Alerts"),
            ("/snapshots", "Snapshots"),
            ("/status", "Status"),
        ]
        .into_iter()
        .map(|(href, label)| NavItem {
            href,
            label: lang.t(label),
            active: label == active,
        })
        .collect();
        let keep_params = self
            .params
            .pairs()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "range" | "refresh" | "lang"))
            .cloned()
            .collect();
        let r = &self.range;
        PageFrame {
            user: self.viewer.0.as_ref().map(|p| p.user.clone()),
            session: self
                .viewer
                .0
                .as_ref()
                .is_some_and(|p| p.via == Via::Session),
            read_only_label: (!self.is_admin()).then(|| lang.t("read-only")),
            logout_label: lang.t("Log out"),
            csrf: self.csrf.clone(),
            title: lang.t(title).to_string(),
            lang,
            lang_code: lang.code(),
            lang_label: lang.t("Language"),
            nav,
            show_range,
            ranges: RANGES
                .iter()
                .filter(|(n, ms)| *ms > 0 || r.name == *n)
                .map(|(n, _)| (*n, *n == r.name))
                .collect(),
            refreshes: REFRESHES.iter().map(|x| (*x, *x == r.refresh)).collect(),
            range_label: lang.t("Range"),
            refresh_label: lang.t("Refresh"),
            query_error_label: lang.t("Query error"),
            refresh: r.refresh.to_string(),
            keep_params,
            start: r.start,
            end: r.end,
            window_text: format!("{} – {}", when(r.start), when(r.end)),
            window: r.window(),
            range_query: r.query(),
            range_nav_label: lang.t("Move or zoom the time range"),
            range_links: range_links(&self.params, r, crate::util::now_ms(), lang),
        }
    }

    /// An HTML answer with the CSP and, when `?lang=` was given, a cookie remembering it.
    pub fn html(&self, body: Result<String, askama::Error>) -> Response {
        let mut response = match body {
            Ok(b) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                b,
            )
                .into_response(),
            Err(e) => ApiError::from(e).into_response(),
        };
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if let Some(lang) = self.params.get("lang").filter(|l| *l == "en" || *l == "zh")
            && let Ok(v) = HeaderValue::from_str(&format!(
                "lang={lang}; Path=/; Max-Age=31536000; SameSite=Strict"
            ))
        {
            h.insert(header::SET_COOKIE, v);
        }
        response
    }
}

/// The common frame every page fills (read by `layout.html`).
pub struct PageFrame {
    pub(super) user: Option<String>,
    pub(super) session: bool,
    pub(super) read_only_label: Option<&'static str>,
    pub(super) logout_label: &'static str,
    pub(super) csrf: String,
    pub(super) title: String,
    pub(super) lang: Lang,
    pub(super) lang_code: &'static str,
    pub(super) lang_label: &'static str,
    pub(super) nav: Vec<NavItem>,
    pub(super) show_range: bool,
    pub(super) ranges: Vec<(&'static str, bool)>,
    pub(super) refreshes: Vec<(&'static str, bool)>,
    pub(super) range_label: &'static str,
    pub(super) refresh_label: &'static str,
    pub(super) query_error_label: &'static str,
    pub(super) refresh: String,
    pub(super) keep_params: Vec<(String, String)>,
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) window_text: String,
    pub(super) window: Window,
    /// `range=1h` or `from=..&to=..`: the range, for links to other pages.
    pub(super) range_query: String,
    pub(super) range_nav_label: &'static str,
    /// Zoom and shift links: the keyboard's way to what a drag does.
    pub(super) range_links: Vec<RangeLink>,
}

/// A link that moves or zooms the time range.
pub struct RangeLink {
    pub(super) href: String,
    pub(super) label: &'static str,
    pub(super) symbol: &'static str,
    pub(super) class: &'static str,
}

/// The shortest window a zoom-in link narrows to.
const MIN_ZOOM_MS: i64 = 60_000;

/// Zoom in/out (half/double the window around its middle) and shift
/// earlier/later (by half a window, never past `now`), as plain links that
/// keep the page's other parameters.
fn range_links(params: &Params, r: &TimeRange, now: i64, lang: Lang) -> Vec<RangeLink> {
    let span = (r.end - r.start).max(1);
    let mid = r.start + span / 2;
    let clamp = |from: i64, to: i64| {
        if to > now {
            (from - (to - now), now)
        } else {
            (from, to)
        }
    };
    let link = |(from, to): (i64, i64), label: &'static str, symbol, class| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.pairs() {
            if !matches!(k.as_str(), "range" | "from" | "to" | "lang") {
                q.append_pair(k, v);
            }
        }
        q.append_pair("from", &from.to_string());
        q.append_pair("to", &to.to_string());
        RangeLink {
            href: format!("?{}", q.finish()),
            label: lang.t(label),
            symbol,
            class,
        }
    };
    let mut links = vec![
        link(
            clamp(r.start - span / 2, r.end - span / 2),
            "Earlier",
            "◀",
            "earlier",
        ),
        link(clamp(mid - span, mid + span), "Zoom out", "−", "zoom-out"),
    ];
    if span > MIN_ZOOM_MS {
        let half = (span / 4).max(MIN_ZOOM_MS / 2);
        links.push(link((mid - half, mid + half), "Zoom in", "+", "zoom-in"));
    }
    if r.end < now - 1_000 {
        links.push(link(
            clamp(r.start + span / 2, r.end + span / 2),
            "Later",
            "▶",
            "later",
        ));
    }
    links
}

/// One nav link.
pub struct NavItem {
    pub(super) href: &'static str,
    pub(super) label: &'static str,
    pub(super) active: bool,
}

/// Local-time-free display of a millisecond timestamp (the script localizes it).
pub(super) fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// 403 for a form without the right token.
pub(super) fn csrf_rejected() -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        "missing or wrong form token; reload the page and try again",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_fall_back_to_the_last_hour() {
        let now = 10_000_000;
        let r = TimeRange::from_params(&Params::from_query(Some("range=6h&refresh=5s")), now);
        assert_eq!(
            (r.start, r.end, r.name, r.refresh),
            (now - 21_600_000, now, "6h", "5s")
        );
        let r = TimeRange::from_params(&Params::from_query(Some("range=custom&refresh=2s")), now);
        assert_eq!((r.start, r.name, r.refresh), (now - 3_600_000, "1h", "off"));
        let r = TimeRange::from_params(&Params::from_query(Some("from=5&to=9&range=custom")), now);
        assert_eq!((r.start, r.end, r.name), (5, 9, "custom"));
        // The toolbar sends a zoomed window's from/to along with the range picked.
        let r = TimeRange::from_params(&Params::from_query(Some("from=5&to=9&range=7d")), now);
        assert_eq!((r.end - r.start, r.name), (604_800_000, "7d"));
        let r = TimeRange::from_params(&Params::from_query(Some("from=9&to=5")), now);
        assert_eq!(r.name, "1h");
    }

    fn pairs(href: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(href.trim_start_matches('?').as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn range_links_zoom_and_shift_around_the_window() {
        let now = 100 * 3_600_000;
        let params = Params::from_query(Some("q=up&range=1h&refresh=5s&lang=zh"));
        let r = TimeRange::from_params(&params, now);
        let links = range_links(&params, &r, now, Lang::En);
        let by = |class: &str| {
            links
                .iter()
                .find(|l| l.class == class)
                .map(|l| pairs(&l.href))
        };
        let window = |class: &str| {
            let p = by(class).unwrap();
            let get = |k: &str| {
                p.iter()
                    .find(|(n, _)| n == k)
                    .unwrap()
                    .1
                    .parse::<i64>()
                    .unwrap()
            };
            (get("from"), get("to"))
        };
        let h = 3_600_000;
        assert_eq!(window("earlier"), (now - 3 * h / 2, now - h / 2));
        assert_eq!(window("zoom-in"), (now - 3 * h / 4, now - h / 4));
        // Doubling around the middle would end in the future: it ends now.
        assert_eq!(window("zoom-out"), (now - 2 * h, now));
        assert!(by("later").is_none(), "a window ending now has no later");
        let kept = by("zoom-in").unwrap();
        assert!(kept.contains(&("q".into(), "up".into())));
        assert!(kept.contains(&("refresh".into(), "5s".into())));
        assert!(!kept.iter().any(|(k, _)| k == "range" || k == "lang"));
        // A window in the past can move later; a minute cannot be zoomed into.
        let past = Params::from_query(Some(&format!(
            "from={}&to={}",
            now - 2 * h,
            now - 2 * h + 60_000
        )));
        let r = TimeRange::from_params(&past, now);
        let links = range_links(&past, &r, now, Lang::En);
        assert!(links.iter().any(|l| l.class == "later"));
        assert!(!links.iter().any(|l| l.class == "zoom-in"));
    }
}
