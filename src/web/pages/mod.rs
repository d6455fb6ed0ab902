//! The dashboard: server-rendered pages (askama templates, SVG charts, one
//! small script), built-in dashboards in Grafana's JSON format and users' own.

mod catalog;
mod grafana;
mod i18n;
mod login;
mod ops;
mod render;
mod uploads;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use grafana::{Dashboard, Panel, legend, substitute};
pub use i18n::Lang;
pub use login::{forbidden_page, routes as login_routes};
pub use ops::{
    AlertRow, AlertsView, NoOperations, NotificationRow, Operations, RuleRow, SilenceFormError,
    SilenceRow, TargetRow,
};
pub use render::{
    LegendItem, PanelView, QueryApi, QueryError, RangeResult, Window, esc, heat_columns,
    render_panel,
};
pub use uploads::{UploadError, UploadedDashboards};

use crate::config::{Config, Role};
use crate::snapshot::Snapshotter;
use crate::web::Params;
use crate::web::auth::{Principal, Via};
use crate::web::charts::query_step;

/// Dashboards compiled into the binary: (uid, JSON).
const BUILT_IN: [(&str, &str); 2] = [
    (
        "inference",
        include_str!("../../../config/dashboards/inference.json"),
    ),
    ("host", include_str!("../../../config/dashboards/host.json")),
];

/// Strict CSP: only our own script and stylesheet, nothing inline.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// What the pages read from.
pub struct Pages {
    /// PromQL.
    pub query: Arc<dyn QueryApi>,
    /// The running config (shown redacted).
    pub config: Arc<Config>,
    /// Process start, ms.
    pub started_ms: i64,
    /// Dashboards by uid, built-in first.
    pub dashboards: Vec<(String, Dashboard)>,
    /// Daily snapshots, when enabled.
    pub snapshots: Option<Arc<Snapshotter>>,
    /// Extra facts for the Status page (models, storage…), refreshed by their owners.
    pub facts: Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>,
    /// Targets, alerts, silences.
    pub ops: Arc<dyn Operations>,
    /// Token every state-changing form must carry (random per process).
    pub csrf: String,
    /// Dashboards uploaded through the Dashboards page.
    pub uploads: Arc<UploadedDashboards>,
}

/// A random token for [`Pages::csrf`] (empty only if the OS has no
/// randomness, which then refuses every form rather than accept a guessable one).
pub fn new_csrf_token() -> String {
    crate::web::session::random_token().unwrap_or_default()
}

/// Local-time-free display of a millisecond timestamp (the script localizes it).
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Errors loading users' dashboards.
#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    /// A dashboard file could not be read or parsed.
    #[error("dashboard {path}: {reason}")]
    Dashboard {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
}

impl Pages {
    /// A dashboard by uid: built-in, configured, then uploaded.
    pub fn find_dashboard(&self, uid: &str) -> Option<Dashboard> {
        self.dashboards
            .iter()
            .find(|(u, _)| u == uid)
            .map(|(_, d)| d.clone())
            .or_else(|| self.uploads.get(uid))
    }

    /// The built-in dashboards plus users' Grafana JSON files.
    pub fn load_dashboards(
        files: &[std::path::PathBuf],
    ) -> Result<Vec<(String, Dashboard)>, PagesError> {
        let mut out = Vec::new();
        for (uid, json) in BUILT_IN {
            let d: Dashboard = serde_json::from_str(json).map_err(|e| PagesError::Dashboard {
                path: format!("built-in {uid}"),
                reason: e.to_string(),
            })?;
            out.push((uid.to_string(), d));
        }
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|e| PagesError::Dashboard {
                path: f.display().to_string(),
                reason: e.to_string(),
            })?;
            let d: Dashboard = serde_json::from_str(&text).map_err(|e| PagesError::Dashboard {
                path: f.display().to_string(),
                reason: e.to_string(),
            })?;
            let uid = d.uid.clone().unwrap_or_else(|| {
                f.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            out.push((uid, d));
        }
        Ok(out)
    }
}

/// Routes of the pages and their static assets.
pub fn routes(pages: Arc<Pages>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/dashboards", get(catalog::list))
        .route("/dashboards/upload", axum::routing::post(catalog::upload))
        .route(
            "/dashboards/{uid}/delete",
            axum::routing::post(catalog::delete),
        )
        .route("/dashboards/{uid}", get(dashboard))
        .route("/explore", get(explore))
        .route("/status", get(status))
        .route("/snapshots", get(snapshots))
        .route("/targets", get(targets))
        .route("/alerts", get(alerts))
        .route("/alerts/silences", axum::routing::post(create_silence))
        .route(
            "/alerts/silences/{id}/expire",
            axum::routing::post(expire_silence),
        )
        .route("/static/{file}", get(static_file))
        .with_state(pages)
}

const RANGES: [(&str, i64); 6] = [
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("6h", 21_600_000),
    ("24h", 86_400_000),
    ("7d", 604_800_000),
    ("custom", 0),
];
const REFRESHES: [&str; 4] = ["off", "5s", "15s", "1m"];

/// The common frame every page fills.
struct PageFrame {
    user: Option<String>,
    session: bool,
    read_only_label: Option<&'static str>,
    logout_label: &'static str,
    csrf: String,
    title: String,
    lang: Lang,
    lang_code: &'static str,
    lang_label: &'static str,
    nav: Vec<NavItem>,
    show_range: bool,
    ranges: Vec<(&'static str, bool)>,
    refreshes: Vec<(&'static str, bool)>,
    range_label: &'static str,
    refresh_label: &'static str,
    query_error_label: &'static str,
    refresh: String,
    keep_params: Vec<(String, String)>,
    start: i64,
    end: i64,
    window_text: String,
    window: Window,
}

struct NavItem {
    href: &'static str,
    label: &'static str,
    active: bool,
}

fn frame(
    title: &str,
    active: &str,
    params: &Params,
    headers: &HeaderMap,
    show_range: bool,
    viewer: &Viewer,
    pages: &Pages,
) -> PageFrame {
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| {
            c.split(';')
                .map(str::trim)
                .find_map(|kv| kv.strip_prefix("lang="))
        });
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = Lang::pick(params.get("lang"), cookie, accept);
    let now = crate::util::now_ms();
    let (start, end, range_name) = match (
        params.get("from").and_then(|v| v.parse::<i64>().ok()),
        params.get("to").and_then(|v| v.parse::<i64>().ok()),
    ) {
        (Some(f), Some(t)) if t > f => (f, t, "custom"),
        _ => {
            let name = params
                .get("range")
                .filter(|r| RANGES.iter().any(|(n, ms)| n == r && *ms > 0))
                .unwrap_or("1h");
            let ms = RANGES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|r| r.1)
                .unwrap_or(3_600_000);
            (now - ms, now, name)
        }
    };
    let refresh = params
        .get("refresh")
        .filter(|r| REFRESHES.contains(r))
        .unwrap_or("off")
        .to_string();
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
    let keep_params = params
        .pairs()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "range" | "refresh" | "lang"))
        .cloned()
        .collect();
    let fmt = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    PageFrame {
        user: viewer.0.as_ref().map(|p| p.user.clone()),
        session: viewer.0.as_ref().is_some_and(|p| p.via == Via::Session),
        read_only_label: (!viewer.is_admin()).then(|| lang.t("read-only")),
        logout_label: lang.t("Log out"),
        csrf: viewer.csrf(pages).to_string(),
        title: lang.t(title).to_string(),
        lang,
        lang_code: lang.code(),
        lang_label: lang.t("Language"),
        nav,
        show_range,
        ranges: RANGES
            .iter()
            .filter(|(n, ms)| *ms > 0 || range_name == *n)
            .map(|(n, _)| (*n, *n == range_name))
            .collect(),
        refreshes: REFRESHES.iter().map(|r| (*r, *r == refresh)).collect(),
        range_label: lang.t("Range"),
        refresh_label: lang.t("Refresh"),
        query_error_label: lang.t("Query error"),
        refresh,
        keep_params,
        start,
        end,
        window_text: format!("{} – {}", fmt(start), fmt(end)),
        window: Window {
            start,
            end,
            step: query_step(end - start, 240),
        },
    }
}

/// An HTML answer with the CSP and, when `?lang=` was given, a cookie remembering it.
fn html(body: Result<String, askama::Error>, params: &Params) -> Response {
    let mut response = match body {
        Ok(b) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            b,
        )
            .into_response(),
        Err(e) => crate::web::ApiError::from(e).into_response(),
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
    if let Some(lang) = params.get("lang").filter(|l| *l == "en" || *l == "zh")
        && let Ok(v) = HeaderValue::from_str(&format!(
            "lang={lang}; Path=/; Max-Age=31536000; SameSite=Strict"
        ))
    {
        h.insert(header::SET_COOKIE, v);
    }
    response
}

struct VariableView {
    name: String,
    label: String,
    options: Vec<(String, bool)>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: PageFrame,
    title: String,
    variables: Vec<VariableView>,
    panels: Vec<PanelView>,
}

async fn variables(
    pages: &Pages,
    d: &Dashboard,
    params: &Params,
    w: Window,
) -> (Vec<VariableView>, Vec<(String, String)>) {
    let mut views = Vec::new();
    let mut values = Vec::new();
    for v in &d.templating.list {
        let mut options: Vec<String> = Vec::new();
        match v.kind.as_str() {
            "query" => {
                let q = v
                    .query
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| {
                        v.query
                            .get("query")
                            .and_then(|q| q.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                if let Some(inner) = q
                    .trim()
                    .strip_prefix("label_values(")
                    .and_then(|s| s.strip_suffix(')'))
                {
                    let (metric, label) = match inner.rsplit_once(',') {
                        Some((m, l)) => (m.trim().to_string(), l.trim().to_string()),
                        None => (String::new(), inner.trim().to_string()),
                    };
                    let expr = if metric.is_empty() {
                        format!("group by ({label}) ({{{label}=~\".+\"}})")
                    } else {
                        format!("group by ({label}) ({metric})")
                    };
                    if let Ok(result) = pages.query.instant(expr, w.end).await {
                        options = result
                            .into_iter()
                            .filter_map(|(l, _)| l.get(&label).map(str::to_string))
                            .collect();
                        options.sort();
                        options.dedup();
                    }
                }
            }
            "custom" => {
                options = v
                    .query
                    .as_str()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
            _ => continue,
        }
        if v.include_all || options.is_empty() {
            options.insert(0, "All".to_string());
        }
        let chosen = params
            .get(&format!("var-{}", v.name))
            .or_else(|| v.saved().map(|s| if s == "$__all" { "All" } else { s }))
            .map(str::to_string)
            .filter(|c| options.contains(c))
            .unwrap_or_else(|| options[0].clone());
        values.push((v.name.clone(), chosen.clone()));
        views.push(VariableView {
            name: v.name.clone(),
            label: v.label.clone().unwrap_or_else(|| v.name.clone()),
            options: options
                .into_iter()
                .map(|o| (o.clone(), o == chosen))
                .collect(),
        });
    }
    (views, values)
}

async fn render_dashboard(
    pages: &Pages,
    d: &Dashboard,
    active: &str,
    params: &Params,
    headers: &HeaderMap,
    viewer: &Viewer,
) -> Response {
    let frame = frame(&d.title, active, params, headers, true, viewer, pages);
    let (views, values) = variables(pages, d, params, frame.window).await;
    let panels = futures::future::join_all(d.flat_panels().iter().map(|p| async {
        render_panel(pages.query.as_ref(), p, frame.window, &values, frame.lang).await
    }))
    .await;
    let title = d.title.clone();
    html(
        DashboardPage {
            page: frame,
            title,
            variables: views,
            panels,
        }
        .render(),
        params,
    )
}

async fn overview(
    State(pages): State<Arc<Pages>>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> Response {
    match pages.dashboards.first() {
        Some((_, d)) => render_dashboard(&pages, d, "Overview", &params, &headers, &viewer).await,
        None => crate::web::ApiError::not_found("no dashboards").into_response(),
    }
}

async fn dashboard(
    State(pages): State<Arc<Pages>>,
    Path(uid): Path<String>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> Response {
    match pages.find_dashboard(&uid) {
        Some(d) => render_dashboard(&pages, &d, "Dashboards", &params, &headers, &viewer).await,
        None => crate::web::ApiError::not_found(format!("no dashboard {uid:?}; see /dashboards"))
            .into_response(),
    }
}

#[derive(Template)]
#[template(path = "explore.html")]
struct ExplorePage {
    page: PageFrame,
    query: String,
    range: String,
    view: String,
    graph_label: &'static str,
    table_label: &'static str,
    error: Option<String>,
    panel: PanelView,
}

async fn explore(
    State(pages): State<Arc<Pages>>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let page = frame(
        "Explore", "Explore", &params, &headers, true, &viewer, &pages,
    );
    let query = params.get("q").unwrap_or("").to_string();
    let view = if params.get("view") == Some("table") {
        "table"
    } else {
        "timeseries"
    };
    let panel = Panel {
        kind: view.to_string(),
        targets: vec![grafana::Target {
            expr: query.clone(),
            ..Default::default()
        }],
        grid_pos: grafana::GridPos {
            h: 12,
            w: 24,
            x: 0,
            y: 0,
        },
        ..Default::default()
    };
    let mut rendered =
        render_panel(pages.query.as_ref(), &panel, page.window, &[], page.lang).await;
    let error = rendered.error.take();
    let lang = page.lang;
    let range = params.get("range").unwrap_or("1h").to_string();
    html(
        ExplorePage {
            page,
            query,
            range,
            view: view.to_string(),
            graph_label: lang.t("Graph"),
            table_label: lang.t("Table"),
            error,
            panel: rendered,
        }
        .render(),
        &params,
    )
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    page: PageFrame,
    facts: Vec<(String, String)>,
    config_label: &'static str,
    config: String,
}

async fn status(
    State(pages): State<Arc<Pages>>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let page = frame(
        "Status", "Status", &params, &headers, false, &viewer, &pages,
    );
    let lang = page.lang;
    let uptime_s = (crate::util::now_ms() - pages.started_ms) / 1000;
    let mut facts = vec![
        (
            lang.t("Version").to_string(),
            format!("{} ({})", env!("CARGO_PKG_VERSION"), crate::REVISION),
        ),
        (
            lang.t("Uptime").to_string(),
            format!(
                "{}h {}m {}s",
                uptime_s / 3600,
                uptime_s / 60 % 60,
                uptime_s % 60
            ),
        ),
        ("Config file".to_string(), pages.config.source.name()),
    ];
    facts.extend((pages.facts)());
    html(
        StatusPage {
            page,
            facts,
            config_label: lang.t("Configuration"),
            config: pages.config.redacted_yaml(),
        }
        .render(),
        &params,
    )
}

struct SnapshotRow {
    day: String,
    series: u64,
    samples: u64,
    files: Vec<SnapshotFile>,
}

struct SnapshotFile {
    name: String,
    size: String,
    short_sha: String,
}

#[derive(Template)]
#[template(path = "snapshots.html")]
struct SnapshotsPage {
    page: PageFrame,
    dir: String,
    day_label: &'static str,
    series_label: &'static str,
    samples_label: &'static str,
    files_label: &'static str,
    snapshots: Vec<SnapshotRow>,
    backups_label: &'static str,
    size_label: &'static str,
    restore_hint: &'static str,
    backups: Vec<SnapshotFile>,
}

async fn snapshots(
    State(pages): State<Arc<Pages>>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let page = frame(
        "Snapshots",
        "Snapshots",
        &params,
        &headers,
        false,
        &viewer,
        &pages,
    );
    let lang = page.lang;
    let (dir, list, backups) = match &pages.snapshots {
        Some(s) => {
            let s2 = s.clone();
            let (list, backups) = tokio::task::spawn_blocking(move || (s2.list(), s2.backups()))
                .await
                .unwrap_or_default();
            (s.dir().display().to_string(), list, backups)
        }
        None => (
            "snapshots are disabled (snapshots.enabled: false)".to_string(),
            Vec::new(),
            Vec::new(),
        ),
    };
    let backups = backups
        .into_iter()
        .map(|b| SnapshotFile {
            size: crate::web::charts::units::format(b.bytes as f64, "bytes"),
            name: b.file,
            short_sha: String::new(),
        })
        .collect();
    let rows = list
        .into_iter()
        .map(|s| SnapshotRow {
            day: s.day,
            series: s.manifest.series,
            samples: s.manifest.samples,
            files: s
                .manifest
                .files
                .iter()
                .map(|f| SnapshotFile {
                    name: f.name.clone(),
                    size: crate::web::charts::units::format(f.bytes as f64, "bytes"),
                    short_sha: f.sha256.chars().take(12).collect(),
                })
                .chain(std::iter::once(SnapshotFile {
                    name: "manifest.json".into(),
                    size: String::new(),
                    short_sha: String::new(),
                }))
                .collect(),
        })
        .collect();
    html(
        SnapshotsPage {
            page,
            dir,
            day_label: lang.t("Day"),
            series_label: lang.t("Series"),
            samples_label: lang.t("Samples"),
            files_label: lang.t("Files"),
            snapshots: rows,
            backups_label: lang.t("Whole-store backups"),
            size_label: lang.t("Size"),
            restore_hint: lang.t(
                "Restore one into a stopped infermon with: infermon restore FILE --data-dir DIR",
            ),
            backups,
        }
        .render(),
        &params,
    )
}

/// Static assets compiled into the binary.
const STATIC: [(&str, &str, &str); 2] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../../static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/app.js"),
    ),
];

async fn static_file(Path(file): Path<String>) -> Response {
    match STATIC.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => crate::web::ApiError::not_found(format!("no static file {file:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests;

#[derive(Template)]
#[template(path = "targets.html")]
struct TargetsPage {
    page: PageFrame,
    targets: Vec<TargetRow>,
    health_label: &'static str,
    labels_label: &'static str,
    last_label: &'static str,
    duration_label: &'static str,
    error_label: &'static str,
}

impl TargetsPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
}

async fn targets(
    State(pages): State<Arc<Pages>>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let page = frame(
        "Targets", "Targets", &params, &headers, false, &viewer, &pages,
    );
    let l = page.lang;
    html(
        TargetsPage {
            page,
            targets: pages.ops.targets(),
            health_label: l.t("Health"),
            labels_label: l.t("Labels"),
            last_label: l.t("Last scrape"),
            duration_label: l.t("Duration"),
            error_label: l.t("Error"),
        }
        .render(),
        &params,
    )
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    page: PageFrame,
    view: AlertsView,
    csrf: String,
    admin: bool,
    prefill: String,
    message: Option<String>,
    alerts_label: &'static str,
    state_label: &'static str,
    labels_label: &'static str,
    since_label: &'static str,
    value_label: &'static str,
    silence_label: &'static str,
    silences_label: &'static str,
    create_label: &'static str,
    expire_label: &'static str,
    rules_label: &'static str,
    notifications_label: &'static str,
    error_label: &'static str,
}

impl AlertsPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
}

async fn alerts(
    State(pages): State<Arc<Pages>>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> Response {
    alerts_page(
        &pages,
        &params,
        &headers,
        &viewer,
        params.get("message").map(str::to_string),
    )
    .await
}

async fn alerts_page(
    pages: &Pages,
    params: &Params,
    headers: &HeaderMap,
    viewer: &Viewer,
    message: Option<String>,
) -> Response {
    let page = frame("Alerts", "Alerts", params, headers, false, viewer, pages);
    let l = page.lang;
    let view = pages.ops.alerts().await;
    html(
        AlertsPage {
            page,
            view,
            csrf: viewer.csrf(pages).to_string(),
            admin: viewer.is_admin(),
            prefill: params.get("silence").unwrap_or("").to_string(),
            message,
            alerts_label: l.t("Alerts"),
            state_label: l.t("State"),
            labels_label: l.t("Labels"),
            since_label: l.t("Since"),
            value_label: l.t("Value"),
            silence_label: l.t("Silence"),
            silences_label: l.t("Silences"),
            create_label: l.t("Create silence"),
            expire_label: l.t("Expire"),
            rules_label: l.t("Rules"),
            notifications_label: l.t("Notifications"),
            error_label: l.t("Error"),
        }
        .render(),
        params,
    )
}

/// Who is looking at a page: the principal the auth layer found, or nobody
/// when `server.auth` is off (then everyone may do everything, as before).
pub struct Viewer(pub Option<Principal>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Viewer(parts.extensions.get::<Principal>().cloned()))
    }
}

impl Viewer {
    /// Whether the viewer may change things (the auth layer enforces it; pages
    /// only hide what would be refused).
    fn is_admin(&self) -> bool {
        self.0.as_ref().is_none_or(|p| p.role == Role::Admin)
    }

    /// The token this viewer's forms carry: the session's own, else the process's.
    fn csrf<'a>(&'a self, pages: &'a Pages) -> &'a str {
        self.0
            .as_ref()
            .and_then(|p| p.csrf.as_deref())
            .unwrap_or(&pages.csrf)
    }

    /// Whether a form's token is right. API keys are never sent by a browser
    /// on its own, so a request with one cannot be forged cross-site.
    fn csrf_ok(&self, pages: &Pages, sent: Option<&str>) -> bool {
        let expected = self.csrf(pages);
        self.0.as_ref().is_some_and(|p| p.via == Via::ApiKey)
            || (!expected.is_empty() && sent == Some(expected))
    }
}

fn csrf_rejected() -> Response {
    crate::web::ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        "missing or wrong form token; reload the page and try again",
    )
    .into_response()
}

fn back_to_alerts(message: Option<&str>) -> Response {
    let location = match message {
        Some(m) => format!(
            "/alerts?message={}",
            form_urlencoded::byte_serialize(m.as_bytes()).collect::<String>()
        ),
        None => "/alerts".to_string(),
    };
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

async fn create_silence(
    State(pages): State<Arc<Pages>>,
    viewer: Viewer,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    if !viewer.csrf_ok(&pages, form.get("csrf").map(String::as_str)) {
        return csrf_rejected();
    }
    let matchers: Vec<String> = form
        .get("matchers")
        .map(|m| split_matchers(m))
        .unwrap_or_default();
    let hours = form
        .get("hours")
        .and_then(|h| h.trim().parse::<f64>().ok())
        .filter(|h| *h > 0.0 && h.is_finite())
        .unwrap_or(2.0);
    let user = viewer
        .0
        .as_ref()
        .map(|p| p.user.clone())
        .unwrap_or_else(|| "dashboard".to_string());
    match pages.ops.create_silence(
        matchers,
        hours,
        user,
        form.get("comment").cloned().unwrap_or_default(),
    ) {
        Ok(_) => back_to_alerts(None),
        Err(e) => back_to_alerts(Some(&e.to_string())),
    }
}

/// Splits `a="x", b=~"y,z"` at commas outside quotes.
fn split_matchers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
    {
        match c {
            '\\' if quoted => {
                escaped = !escaped;
                current.push(c);
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        escaped = false;
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

async fn expire_silence(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    viewer: Viewer,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    if !viewer.csrf_ok(&pages, form.get("csrf").map(String::as_str)) {
        return csrf_rejected();
    }
    match pages.ops.expire_silence(&id) {
        Ok(()) => back_to_alerts(None),
        Err(e) => back_to_alerts(Some(&e.to_string())),
    }
}
