//! `/snapshots`: the daily snapshots with their files, and whole-store
//! backups. Reads them through [`SnapshotShelf`], not the snapshotter itself.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::Pages;
use super::ctx::{PageCtx, PageFrame};
use crate::snapshot::{BackupInfo, SnapshotInfo, Snapshotter};

/// What the Snapshots page reads.
pub trait SnapshotShelf: Send + Sync {
    /// The folder snapshots are written to, for display.
    fn dir(&self) -> String;
    /// Every daily snapshot. Reads the disk: call it off the async threads.
    fn list(&self) -> Vec<SnapshotInfo>;
    /// Every whole-store backup. Reads the disk, as [`SnapshotShelf::list`].
    fn backups(&self) -> Vec<BackupInfo>;
}

impl SnapshotShelf for Snapshotter {
    fn dir(&self) -> String {
        Snapshotter::dir(self).display().to_string()
    }
    fn list(&self) -> Vec<SnapshotInfo> {
        Snapshotter::list(self)
    }
    fn backups(&self) -> Vec<BackupInfo> {
        Snapshotter::backups(self)
    }
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

/// `GET /snapshots`: daily snapshots with their files, and whole-store backups.
pub(super) async fn snapshots(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    let page = ctx.frame("Snapshots", "Snapshots", false);
    let lang = page.lang;
    let (dir, list, backups) = match &pages.snapshots {
        Some(s) => {
            let s2 = s.clone();
            let (list, backups) = tokio::task::spawn_blocking(move || (s2.list(), s2.backups()))
                .await
                .unwrap_or_default();
            (s.dir(), list, backups)
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
    ctx.html(
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
    )
}
