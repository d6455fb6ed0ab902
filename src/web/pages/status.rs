//! `/status`: what is running and how it is configured, and an Operations
//! section for whoever runs it for months: config reload state, model load
//! times, storage size against retention, how far each remote_write
//! destination is behind the WAL, and the newest snapshot and backup.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use prometheus::proto::MetricFamily;

use super::Pages;
use super::ctx::{PageCtx, PageFrame};
use super::i18n::Lang;
use crate::storage::SqliteStorage;

/// The gauge the Operations section reads model load times from.
const MODEL_LOAD_SECONDS: &str = "infermon_model_load_seconds";

/// What the Status page's Operations section reads besides the config and
/// the snapshot shelf; the composition root fills it.
#[derive(Clone, Default)]
pub struct StatusSources {
    /// The process's metrics: model load times.
    pub registry: prometheus::Registry,
    /// The store: its size, oldest sample and remote_write followers.
    pub storage: Option<SqliteStorage>,
    /// The last configuration load, when reloads are wired.
    pub reload: Option<std::sync::Arc<crate::web::ReloadStatus>>,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    page: PageFrame,
    facts: Vec<(String, String)>,
    ops_label: &'static str,
    ops: Vec<OpsGroup>,
    config_label: &'static str,
    config: String,
}

/// One table of the Operations section.
struct OpsGroup {
    /// Element id, for links and tests.
    id: &'static str,
    title: String,
    rows: Vec<(String, String)>,
}

/// `GET /status`: version, uptime, the parts' facts, the Operations section
/// and the config (redacted).
pub(super) async fn status(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    let page = ctx.frame("Status", "Status", false);
    let lang = page.lang;
    let uptime_s = (crate::util::now_ms() - pages.started_ms) / 1000;
    let mut facts = vec![
        (
            lang.t("Version").to_string(),
            format!("{} ({})", env!("CARGO_PKG_VERSION"), crate::REVISION),
        ),
        (lang.t("Uptime").to_string(), duration_text(uptime_s)),
        ("Config file".to_string(), pages.config.load().source.name()),
    ];
    facts.extend((pages.facts)());
    // SQLite reads and directory walks: off the async threads.
    let ops = {
        let pages = pages.clone();
        tokio::task::spawn_blocking(move || operations(&pages, lang, crate::util::now_ms()))
            .await
            .unwrap_or_else(|e| {
                vec![OpsGroup {
                    id: "ops-error",
                    title: lang.t("Operations").to_string(),
                    rows: vec![("error".to_string(), e.to_string())],
                }]
            })
    };
    ctx.html(
        StatusPage {
            page,
            facts,
            ops_label: lang.t("Operations"),
            ops,
            config_label: lang.t("Configuration"),
            config: pages.config.load().redacted_yaml(),
        }
        .render(),
    )
}

fn operations(pages: &Pages, lang: Lang, now_ms: i64) -> Vec<OpsGroup> {
    let families = pages.status.registry.gather();
    let group = |id, title: &str, rows| OpsGroup {
        id,
        title: lang.t(title).to_string(),
        rows,
    };
    vec![
        group("ops-config", "Config reload", config_rows(pages, lang)),
        group(
            "ops-models",
            "Model load times",
            model_rows(&families, lang),
        ),
        group("ops-storage", "Storage", storage_rows(pages, lang, now_ms)),
        group(
            "ops-remote",
            "remote_write behind the WAL",
            follower_rows(pages, lang, now_ms),
        ),
        group(
            "ops-snapshots",
            "Snapshots and backups",
            shelf_rows(pages, lang),
        ),
    ]
}

fn config_rows(pages: &Pages, lang: Lang) -> Vec<(String, String)> {
    match &pages.status.reload {
        Some(status) => {
            let (ok, last_ok_ms) = status.get();
            vec![
                (
                    lang.t("Last reload").to_string(),
                    lang.t(if ok { "successful" } else { "failed" }).to_string(),
                ),
                (
                    lang.t("Last successful load").to_string(),
                    time_text(last_ok_ms),
                ),
            ]
        }
        // Without a reloader, the config in use is the one read at start.
        None => vec![
            (
                lang.t("Config loaded").to_string(),
                time_text(pages.started_ms),
            ),
            (
                lang.t("Last reload").to_string(),
                lang.t("none since start").to_string(),
            ),
        ],
    }
}

fn model_rows(families: &[MetricFamily], lang: Lang) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = families
        .iter()
        .filter(|f| f.name() == MODEL_LOAD_SECONDS)
        .flat_map(|f| f.get_metric())
        .map(|m| {
            let model = m
                .get_label()
                .iter()
                .find(|l| l.name() == "model")
                .map(|l| l.value().to_string())
                .unwrap_or_default();
            (
                model,
                crate::web::charts::units::format(m.get_gauge().value(), "s"),
            )
        })
        .collect();
    if rows.is_empty() {
        rows.push((lang.t("Models").to_string(), lang.t("none").to_string()));
    }
    rows.sort();
    rows
}

fn bytes_text(b: u64) -> String {
    crate::web::charts::units::format(b as f64, "bytes")
}

fn storage_rows(pages: &Pages, lang: Lang, now_ms: i64) -> Vec<(String, String)> {
    let Some(store) = &pages.status.storage else {
        return vec![(lang.t("Storage").to_string(), lang.t("none").to_string())];
    };
    let config = pages.config.load();
    let st = &config.storage;
    let bytes = store.stats().bytes;
    let size = match st
        .retention_size
        .as_deref()
        .and_then(crate::util::parse_bytes)
    {
        Some(limit) if limit > 0 => format!(
            "{} / {} (storage.retention_size), {:.1}%",
            bytes_text(bytes),
            bytes_text(limit),
            bytes as f64 * 100.0 / limit as f64
        ),
        _ => format!(
            "{} ({})",
            bytes_text(bytes),
            lang.t("no size limit: storage.retention_size is unset")
        ),
    };
    let retention_ms = st.retention.as_millis();
    let age = match store.oldest_sample_ms() {
        Ok(Some(oldest)) => {
            let age_ms = (now_ms - oldest).max(0);
            format!(
                "{} / {} (storage.retention), {:.1}%",
                duration_text(age_ms / 1000),
                st.retention,
                age_ms as f64 * 100.0 / retention_ms.max(1) as f64
            )
        }
        Ok(None) => lang.t("no samples yet").to_string(),
        Err(e) => e.to_string(),
    };
    vec![
        (lang.t("Size on disk").to_string(), size),
        (lang.t("Oldest raw sample").to_string(), age),
    ]
}

fn follower_rows(pages: &Pages, lang: Lang, now_ms: i64) -> Vec<(String, String)> {
    let Some(store) = &pages.status.storage else {
        return Vec::new();
    };
    let lags = match store.follower_lags() {
        Ok(lags) => lags,
        Err(e) => return vec![("error".to_string(), e.to_string())],
    };
    if lags.is_empty() {
        return vec![(
            "remote_write".to_string(),
            lang.t("no destinations").to_string(),
        )];
    }
    lags.into_iter()
        .map(|f| {
            let waiting = f
                .backlog
                .oldest_appended_ms
                .map(|t| {
                    format!(
                        ", {} {}",
                        lang.t("oldest waiting"),
                        duration_text((now_ms - t).max(0) / 1000)
                    )
                })
                .unwrap_or_default();
            (
                f.name,
                format!(
                    "{} {} / {}: {} {} · {} {}{waiting}; {} {}",
                    lang.t("position"),
                    f.seq,
                    f.head_seq,
                    f.backlog.rows,
                    lang.t("batches"),
                    f.backlog.samples,
                    lang.t("samples behind"),
                    f.dropped_samples,
                    lang.t("dropped"),
                ),
            )
        })
        .collect()
}

fn shelf_rows(pages: &Pages, lang: Lang) -> Vec<(String, String)> {
    let Some(shelf) = &pages.snapshots else {
        return vec![(
            lang.t("Snapshots").to_string(),
            lang.t("disabled (snapshots.enabled: false)").to_string(),
        )];
    };
    let last_snapshot = shelf
        .list()
        .into_iter()
        .max_by_key(|s| s.manifest.created_ms)
        .map(|s| {
            let bytes: u64 = s.manifest.files.iter().map(|f| f.bytes).sum();
            format!(
                "{} · {} {} · {} · {}",
                s.day,
                s.manifest.files.len(),
                lang.t("files"),
                bytes_text(bytes),
                time_text(s.manifest.created_ms)
            )
        })
        .unwrap_or_else(|| lang.t("none yet").to_string());
    // Backup names carry their time, so the largest name is the newest.
    let last_backup = shelf
        .backups()
        .into_iter()
        .max_by(|a, b| a.file.cmp(&b.file))
        .map(|b| format!("{} · {}", b.file, bytes_text(b.bytes)))
        .unwrap_or_else(|| lang.t("none yet").to_string());
    vec![
        (lang.t("Last snapshot").to_string(), last_snapshot),
        (lang.t("Last backup").to_string(), last_backup),
    ]
}

/// `1h 2m 3s`.
fn duration_text(s: i64) -> String {
    format!("{}h {}m {}s", s / 3600, s / 60 % 60, s % 60)
}

/// UTC, to the second.
fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "–".to_string())
}
