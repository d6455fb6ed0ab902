//! The dashboard: server-rendered pages (askama templates, SVG charts, one
//! small script), built-in dashboards in Grafana's JSON format and users' own.
//!
//! One file per page; every handler starts from a [`PageCtx`] (viewer,
//! language, form token, time range) and reads the parts through small
//! traits ([`QueryApi`], [`Operations`], [`SnapshotShelf`]).

mod alerts;
mod assets;
mod catalog;
mod ctx;
mod dashboard;
mod explore;
mod grafana;
mod i18n;
mod login;
mod ops;
mod render;
mod snapshots;
mod status;
mod targets;
mod uploads;

use std::sync::Arc;

use arc_swap::ArcSwap;

use axum::Router;
use axum::routing::{get, post};

pub use ctx::{PageCtx, PageFrame, TimeRange, Viewer};
pub use grafana::{
    Dashboard, Interpolate, Intervals, Panel, VarValue, interpolate, legend, substitute,
};
pub use i18n::Lang;
pub use login::{forbidden_page, routes as login_routes};
pub use ops::{
    AlertRow, AlertsView, NoOperations, NotificationRow, Operations, RuleRow, SilenceFormError,
    SilenceRow, TargetRow,
};
pub use render::{
    LegendItem, LinkView, PanelScope, PanelView, QueryApi, QueryError, RangeResult, SourcesOff,
    Window, esc, heat_columns, markdown, render_panel, render_panel_in,
};
pub use snapshots::SnapshotShelf;
pub use status::StatusSources;
pub use uploads::{UploadError, UploadedDashboards};

use crate::config::Config;

/// Dashboards compiled into the binary: (uid, JSON).
const BUILT_IN: [(&str, &str); 2] = [
    (
        "inference",
        include_str!("../../../config/dashboards/inference.json"),
    ),
    ("host", include_str!("../../../config/dashboards/host.json")),
];

/// Strict CSP: only our own script and stylesheet, nothing inline.
pub(super) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// What the pages read from.
pub struct Pages {
    /// PromQL.
    pub query: Arc<dyn QueryApi>,
    /// The running config (shown redacted); a reload swaps it.
    pub config: ArcSwap<Config>,
    /// Process start, ms.
    pub started_ms: i64,
    /// Dashboards by uid, built-in first; a reload swaps them.
    pub dashboards: ArcSwap<Vec<(String, Dashboard)>>,
    /// Daily snapshots, when enabled.
    pub snapshots: Option<Arc<dyn SnapshotShelf>>,
    /// Extra facts for the Status page (models, storage…), refreshed by their owners.
    pub facts: Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>,
    /// Targets, alerts, silences.
    pub ops: Arc<dyn Operations>,
    /// Token every state-changing form must carry (random per process).
    pub csrf: String,
    /// Dashboards uploaded through the Dashboards page.
    pub uploads: Arc<UploadedDashboards>,
    /// What the Status page's Operations section reads.
    pub status: StatusSources,
}

/// A random token for [`Pages::csrf`] (empty only if the OS has no
/// randomness, which then refuses every form rather than accept a guessable one).
pub fn new_csrf_token() -> String {
    crate::web::session::random_token().unwrap_or_default()
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
    /// The scrape interval, ms (Grafana's `$__rate_interval` is built from it).
    pub fn scrape_ms(&self) -> i64 {
        self.config.load().global.scrape_interval.as_millis()
    }

    /// A dashboard by uid: built-in, configured, then uploaded.
    pub fn find_dashboard(&self, uid: &str) -> Option<Dashboard> {
        self.dashboards
            .load()
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
            let mut d: Dashboard =
                serde_json::from_str(json).map_err(|e| PagesError::Dashboard {
                    path: format!("built-in {uid}"),
                    reason: e.to_string(),
                })?;
            d.fill_alert_thresholds(builtin_alert_threshold)
                .map_err(|reason| PagesError::Dashboard {
                    path: format!("built-in {uid}"),
                    reason,
                })?;
            out.push((uid.to_string(), d));
        }
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|e| PagesError::Dashboard {
                path: f.display().to_string(),
                reason: e.to_string(),
            })?;
            // The same reading as an upload: the plain dashboard or Grafana's
            // HTTP API form `{"dashboard": {...}, "overwrite": true}`, and a
            // file without panels is an error, never an empty page.
            let (d, _) = uploads::parse(text.as_bytes()).map_err(|e| PagesError::Dashboard {
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

/// The threshold of a built-in alerting rule `name`: the number its
/// expression compares against (`... > 0.03`). Panels marked with
/// `infermonAlertThreshold` draw their red line here, so a panel and its
/// alert never disagree.
pub fn builtin_alert_threshold(name: &str) -> Option<f64> {
    use promql_parser::parser::Expr;
    for (file, text) in crate::rules::BUILTIN_RULE_FILES {
        let Ok(parsed) = crate::rules::parse_rule_text(text, file) else {
            continue;
        };
        for rule in parsed.groups.iter().flat_map(|g| &g.rules) {
            if rule.alert.as_deref() != Some(name) {
                continue;
            }
            let mut expr = promql_parser::parser::parse(&rule.expr).ok()?;
            while let Expr::Paren(p) = expr {
                expr = *p.expr;
            }
            return match expr {
                Expr::Binary(b) if b.op.is_comparison_operator() => match *b.rhs {
                    Expr::NumberLiteral(n) => Some(n.val),
                    _ => None,
                },
                _ => None,
            };
        }
    }
    None
}

/// Routes of the pages and their static assets.
pub fn routes(pages: Arc<Pages>) -> Router {
    Router::new()
        .route("/", get(dashboard::overview))
        .route("/dashboards", get(catalog::list))
        .route("/dashboards/upload", post(catalog::upload))
        .route("/dashboards/{uid}/delete", post(catalog::delete))
        .route("/dashboards/{uid}", get(dashboard::dashboard))
        .route("/explore", get(explore::explore))
        .route("/explore/csv", get(explore::csv))
        .route("/status", get(status::status))
        .route("/snapshots", get(snapshots::snapshots))
        .route("/targets", get(targets::targets))
        .route("/alerts", get(alerts::alerts))
        .route("/alerts/silences", post(alerts::create_silence))
        .route("/alerts/silences/{id}/expire", post(alerts::expire_silence))
        .route("/static/{file}", get(assets::static_file))
        .with_state(pages)
}

#[cfg(test)]
mod tests;
