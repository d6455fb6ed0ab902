//! Daily snapshots: every morning yesterday's metrics land on disk as
//! OpenMetrics (backfillable with promtool), CSV, a human summary and a
//! manifest with checksums; written under a temporary name and renamed so a
//! crash never leaves a half snapshot that looks complete.

mod csv;
mod day;
pub mod export;
mod import;
mod manifest;
mod openmetrics;
mod summary;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use flate2::Compression;
use flate2::write::GzEncoder;

pub use day::{day_range, folder_name, local_zone, parse_folder_name, yesterday};
pub use import::{import, split as split_import};
pub use manifest::{FileEntry, Manifest};
pub use summary::{Summary, histogram_quantile, summarize};

use crate::config::SnapshotsConfig;
use crate::model::{MatchOp, Matcher};
use crate::shutdown::Shutdown;
use crate::storage::{Backfill, BackfillReport, Querier, Series, StorageError};

/// The files of a snapshot folder, in the order they are written.
pub const FILES: [&str; 4] = [
    "metrics.om.gz",
    "metrics.csv.gz",
    "summary.json",
    "manifest.json",
];

/// Errors of the snapshot part.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading the store failed.
    #[error("cannot read metrics: {0}")]
    Storage(#[from] StorageError),
    /// Writing files failed.
    #[error("cannot write snapshot: {0}")]
    Io(#[from] std::io::Error),
    /// CSV encoding failed.
    #[error("cannot write CSV: {0}")]
    Csv(#[from] ::csv::Error),
    /// JSON encoding failed.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// `snapshots.timezone` is not an IANA zone.
    #[error("snapshots.timezone {0:?} is not an IANA time zone like Asia/Shanghai")]
    TimeZone(String),
    /// The cron expression is invalid or the scheduler failed.
    #[error("snapshot schedule: {0}")]
    Schedule(String),
    /// An import file is not an OpenMetrics export.
    #[error("cannot import: {0}")]
    Import(String),
    /// A snapshot was asked for a day that has not ended or that the store
    /// holds nothing of.
    #[error("{0}")]
    Day(String),
    /// The snapshot thread could not take the job.
    #[error("snapshot work: {0}")]
    Background(#[from] crate::background::PoolError),
}

/// Writes a consistent copy of the whole store to the given path; returns its size.
pub type BackupFn = Arc<dyn Fn(&Path) -> Result<u64, String> + Send + Sync>;

/// How long a snapshot, backup, import or export waits for the one before it.
pub const JOB_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Whole-store backups kept (newest first).
pub const BACKUPS_KEPT: usize = 4;

/// Writes, lists and prunes snapshots of one store.
pub struct Snapshotter {
    dir: PathBuf,
    tz: Tz,
    keep: usize,
    querier: Arc<dyn Querier>,
    backup: Option<BackupFn>,
    backfill: Option<Arc<dyn Backfill>>,
    /// Held while a snapshot folder is written or the folder is pruned, so
    /// a prune never sees a write between its renames.
    ops: std::sync::Mutex<()>,
    /// The thread snapshots, backups and imports run on: one, at the
    /// lowest OS priority, so they never take CPU the model wants.
    jobs: crate::background::WorkerPool,
}

/// A whole-store backup on disk.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackupInfo {
    /// File name under `<dir>/backups/`.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// A snapshot on disk, for listings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotInfo {
    /// The day.
    pub day: String,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Snapshotter {
    /// From `snapshots:`; `storage_path` is the default parent of the folder.
    pub fn new(
        config: &SnapshotsConfig,
        storage_path: &Path,
        querier: Arc<dyn Querier>,
    ) -> Result<Self, SnapshotError> {
        let tz = match &config.timezone {
            Some(name) => name
                .parse()
                .map_err(|_| SnapshotError::TimeZone(name.clone()))?,
            None => local_zone(),
        };
        let dir = config
            .dir
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| storage_path.join("snapshots"));
        Ok(Snapshotter {
            dir,
            tz,
            keep: config.keep,
            querier,
            backup: None,
            backfill: None,
            ops: std::sync::Mutex::new(()),
            jobs: crate::background::WorkerPool::new(
                "infermon-snapshot",
                1,
                crate::background::Priority {
                    nice: 19,
                    batch: true,
                },
            ),
        })
    }

    /// Runs `job` on the snapshot thread once it is free (waiting at most
    /// [`JOB_WAIT`]): snapshots, backups, imports and exports run one at a
    /// time there, at the lowest OS priority, never on the async threads.
    pub async fn in_background<T, F>(self: &Arc<Self>, job: F) -> Result<T, SnapshotError>
    where
        T: Send + 'static,
        F: FnOnce(&Snapshotter) -> T + Send + 'static,
    {
        let me = self.clone();
        Ok(self.jobs.run(JOB_WAIT, move |_| job(&me)).await?)
    }

    /// Enables whole-store backups through `backup`.
    pub fn with_backup(mut self, backup: BackupFn) -> Self {
        self.backup = Some(backup);
        self
    }

    /// Enables `POST /api/v1/admin/import` into `store`.
    pub fn with_backfill(mut self, store: Arc<dyn Backfill>) -> Self {
        self.backfill = Some(store);
        self
    }

    /// Imports an OpenMetrics export (plain or gzip) into the store.
    pub fn import(&self, input: impl std::io::Read) -> Result<BackfillReport, SnapshotError> {
        let store = self.backfill.as_ref().ok_or_else(|| {
            SnapshotError::Import("imports are not available for this store".into())
        })?;
        import::import(input, store.as_ref())
    }

    /// Takes a whole-store backup now into `<dir>/backups/infermon-<UTC time>.db`
    /// and keeps the newest [`BACKUPS_KEPT`].
    pub fn backup_now(&self) -> Result<BackupInfo, SnapshotError> {
        let backup = self.backup.as_ref().ok_or_else(|| {
            SnapshotError::Schedule("backups are not available for this store".into())
        })?;
        let dir = self.dir.join("backups");
        std::fs::create_dir_all(&dir)?;
        let file = format!(
            "infermon-{}.db",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        let bytes =
            backup(&dir.join(&file)).map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        for old in self.backups().into_iter().skip(BACKUPS_KEPT) {
            std::fs::remove_file(dir.join(old.file))?;
        }
        tracing::info!(file = %file, bytes, "store backup written");
        Ok(BackupInfo { file, bytes })
    }

    /// Backups on disk, newest first.
    pub fn backups(&self) -> Vec<BackupInfo> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("backups")) else {
            return Vec::new();
        };
        let mut out: Vec<BackupInfo> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                is_backup_name(&file).then(|| BackupInfo {
                    bytes: e.metadata().map(|m| m.len()).unwrap_or(0),
                    file,
                })
            })
            .collect();
        out.sort_by(|a, b| b.file.cmp(&a.file));
        out
    }

    /// The path of a backup file, only for a name this module writes.
    pub fn backup_path(&self, file: &str) -> Option<PathBuf> {
        if !is_backup_name(file) {
            return None;
        }
        let p = self.dir.join("backups").join(file);
        p.is_file().then_some(p)
    }

    /// The folder holding the `YYYY-MM-DD/` snapshots.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The time zone days are counted in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Writes the snapshot of `day` (replacing an existing one) and returns its manifest.
    pub fn take(&self, day: NaiveDate) -> Result<Manifest, SnapshotError> {
        let series = self.day_series(day)?;
        self.write(day, series)
    }

    /// Writes the snapshot of a day someone asked for at `now_ms`, then
    /// prunes. Only a day that has ended in the snapshot time zone and that
    /// the store holds samples of is taken (a future day would sort first
    /// and push real snapshots out of `snapshots.keep`).
    pub fn take_requested(&self, day: NaiveDate, now_ms: i64) -> Result<Manifest, SnapshotError> {
        let name = folder_name(day);
        let (_, end) = day_range(day, self.tz);
        if end > now_ms {
            return Err(SnapshotError::Day(format!(
                "day {name} has not ended yet in {}; a snapshot is of a day that has ended",
                self.tz.name()
            )));
        }
        let series = self.day_series(day)?;
        if series.is_empty() {
            return Err(SnapshotError::Day(format!(
                "the store holds no samples of {name} ({}); a snapshot is of a day the store covers",
                self.tz.name()
            )));
        }
        let manifest = self.write(day, series)?;
        self.prune_at(now_ms)?;
        Ok(manifest)
    }

    /// Every series of `day`, sorted by labels.
    fn day_series(&self, day: NaiveDate) -> Result<Vec<Series>, SnapshotError> {
        let (from, to) = day_range(day, self.tz);
        let all = [Matcher::new("__name__", MatchOp::Regex, ".+")
            .map_err(|e| SnapshotError::Schedule(e.to_string()))?];
        let mut series = self.querier.select(&all, from, to - 1)?;
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(series)
    }

    fn write(&self, day: NaiveDate, series: Vec<Series>) -> Result<Manifest, SnapshotError> {
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let (from, to) = day_range(day, self.tz);
        std::fs::create_dir_all(&self.dir)?;
        let name = folder_name(day);
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let manifest = self.write_folder(&tmp, day, from, to, &series)?;
        let final_dir = self.dir.join(&name);
        // A crash between the two renames leaves the old copy in `.old-`
        // and the new one in `.tmp-`; `prune` restores one of them.
        if final_dir.exists() {
            let old = self.dir.join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(&final_dir, &old)?;
            std::fs::rename(&tmp, &final_dir)?;
            std::fs::remove_dir_all(&old)?;
        } else {
            std::fs::rename(&tmp, &final_dir)?;
        }
        sync_dir(&self.dir);
        tracing::info!(day = %name, series = manifest.series, samples = manifest.samples, "snapshot written");
        Ok(manifest)
    }

    fn write_folder(
        &self,
        tmp: &Path,
        day: NaiveDate,
        from: i64,
        to: i64,
        series: &[Series],
    ) -> Result<Manifest, SnapshotError> {
        let samples = write_gz(&tmp.join(FILES[0]), |w| {
            openmetrics::write(w, series).map_err(SnapshotError::from)
        })?;
        write_gz(&tmp.join(FILES[1]), |w| {
            csv::write(w, series).map_err(SnapshotError::from)
        })?;
        let report = summarize(series, (to - from) as f64 / 1000.0);
        write_synced(&tmp.join(FILES[2]), &serde_json::to_vec_pretty(&report)?)?;
        let files = FILES[..3]
            .iter()
            .map(|f| manifest::describe(&tmp.join(f)))
            .collect::<Result<Vec<_>, _>>()?;
        let manifest = Manifest {
            format: 1,
            infermon_version: env!("CARGO_PKG_VERSION").to_string(),
            day: folder_name(day),
            timezone: self.tz.name().to_string(),
            from_ms: from,
            to_ms: to,
            series: series.len() as u64,
            samples,
            files,
            created_ms: crate::util::now_ms(),
        };
        write_synced(&tmp.join(FILES[3]), &serde_json::to_vec_pretty(&manifest)?)?;
        Ok(manifest)
    }

    /// Complete snapshots, newest first (folders without a readable manifest are skipped).
    pub fn list(&self) -> Vec<SnapshotInfo> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<SnapshotInfo> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                parse_folder_name(&name)?;
                let text = std::fs::read(e.path().join("manifest.json")).ok()?;
                let manifest: Manifest = serde_json::from_slice(&text).ok()?;
                Some(SnapshotInfo {
                    day: name,
                    manifest,
                })
            })
            .collect();
        out.sort_by(|a, b| b.day.cmp(&a.day));
        out
    }

    /// Removes all but the newest `keep` snapshots of days that have ended,
    /// and finishes or removes what crashed writes left; returns how many
    /// snapshots went.
    pub fn prune(&self) -> Result<usize, SnapshotError> {
        self.prune_at(crate::util::now_ms())
    }

    /// [`prune`](Self::prune) as of `now_ms`. Folders dated after today
    /// (a wrong clock, an older version) neither count toward `keep` nor
    /// are removed: they never push a real snapshot out.
    pub fn prune_at(&self, now_ms: i64) -> Result<usize, SnapshotError> {
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        self.recover_leftovers()?;
        let mut removed = 0;
        let ended = self.list().into_iter().filter(|s| {
            parse_folder_name(&s.day).is_some_and(|d| day_range(d, self.tz).1 <= now_ms)
        });
        for old in ended.skip(self.keep) {
            std::fs::remove_dir_all(self.dir.join(&old.day))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Leftovers of a write that crashed: a complete new copy (`.tmp-` with
    /// its manifest, written last) or the old copy (`.old-`) becomes the
    /// snapshot when the dated folder is missing; the rest is removed. So
    /// at no point are both copies of a day deleted.
    fn recover_leftovers(&self) -> Result<(), SnapshotError> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        let mut temps = Vec::new();
        let mut olds = Vec::new();
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix('.') else {
                continue;
            };
            if let Some((day, _)) = rest.split_once(".tmp-") {
                temps.push((e.path(), day.to_string()));
            } else if let Some((day, _)) = rest.split_once(".old-") {
                olds.push((e.path(), day.to_string()));
            }
        }
        for (path, day) in temps.into_iter().chain(olds) {
            let dated = parse_folder_name(&day).map(|_| self.dir.join(&day));
            match dated {
                Some(dated) if !dated.exists() && path.join("manifest.json").is_file() => {
                    tracing::warn!(day = %day, from = %path.display(), "restoring a snapshot left by an interrupted write");
                    std::fs::rename(&path, &dated)?;
                }
                _ => std::fs::remove_dir_all(&path)?,
            }
        }
        sync_dir(&self.dir);
        Ok(())
    }

    /// The path of a snapshot file, only for a strict `YYYY-MM-DD` day and
    /// one of [`FILES`] — never anything outside the folder.
    pub fn file_path(&self, day: &str, file: &str) -> Option<PathBuf> {
        parse_folder_name(day)?;
        if !FILES.contains(&file) {
            return None;
        }
        let p = self.dir.join(day).join(file);
        p.is_file().then_some(p)
    }

    /// Takes yesterday's snapshot if it is missing (infermon was down when
    /// the schedule fired), then prunes.
    pub fn catch_up(&self, now_ms: i64) -> Result<Option<Manifest>, SnapshotError> {
        let day = yesterday(now_ms, self.tz);
        let taken = if self
            .dir
            .join(folder_name(day))
            .join("manifest.json")
            .exists()
        {
            None
        } else {
            // A day before infermon kept anything (a fresh install) is not a missed day.
            let series = self.day_series(day)?;
            if series.is_empty() {
                None
            } else {
                Some(self.write(day, series)?)
            }
        };
        self.prune()?;
        Ok(taken)
    }

    /// Runs the schedule until `shutdown`: a missed run first, then one
    /// snapshot of the previous day each time `schedule` fires (in the zone).
    /// At shutdown the schedule stops and a job already running is waited
    /// for (a backup is cancelled by the store's close if it runs too long).
    pub async fn run(
        self: Arc<Self>,
        schedule: String,
        backup_schedule: String,
        shutdown: Shutdown,
    ) -> Result<(), SnapshotError> {
        use tokio_cron_scheduler::{Job, JobScheduler};
        // Each job holds a read guard while it runs; stopping takes the
        // write side, so it waits for running jobs and no new one starts.
        let jobs = Arc::new(tokio::sync::RwLock::new(()));
        if let Err(e) = self
            .in_background(|me| me.catch_up(crate::util::now_ms()))
            .await
            .and_then(|r| r)
        {
            tracing::warn!(error = %e, "missed snapshot could not be taken");
        }
        let sched_err =
            |e: tokio_cron_scheduler::JobSchedulerError| SnapshotError::Schedule(e.to_string());
        let mut scheduler = JobScheduler::new().await.map_err(sched_err)?;
        let (me, tracker) = (self.clone(), jobs.clone());
        let job = Job::new_async_tz(schedule.as_str(), self.tz, move |_, _| {
            let (me, tracker) = (me.clone(), tracker.clone());
            Box::pin(async move {
                let Ok(_running) = tracker.try_read_owned() else {
                    return;
                };
                let day = yesterday(crate::util::now_ms(), me.tz);
                let taken = me
                    .in_background(move |s| s.take(day).and_then(|m| s.prune().map(|_| m)))
                    .await
                    .and_then(|r| r);
                if let Err(e) = taken {
                    tracing::error!(error = %e, "daily snapshot failed");
                }
            })
        })
        .map_err(sched_err)?;
        scheduler.add(job).await.map_err(sched_err)?;
        if self.backup.is_some() {
            let (me, tracker) = (self.clone(), jobs.clone());
            let backup_job = Job::new_async_tz(backup_schedule.as_str(), self.tz, move |_, _| {
                let (me, tracker) = (me.clone(), tracker.clone());
                Box::pin(async move {
                    let Ok(_running) = tracker.try_read_owned() else {
                        return;
                    };
                    let backup = me.in_background(|s| s.backup_now()).await.and_then(|r| r);
                    if let Err(e) = backup {
                        tracing::error!(error = %e, "store backup failed");
                    }
                })
            })
            .map_err(sched_err)?;
            scheduler.add(backup_job).await.map_err(sched_err)?;
        }
        scheduler.start().await.map_err(sched_err)?;
        shutdown.wait().await;
        let stopped = scheduler.shutdown().await.map_err(sched_err);
        let _idle = jobs.write().await;
        stopped
    }
}

/// `infermon-<digits, T, dot, Z>.db`: nothing that can leave the folder.
fn is_backup_name(file: &str) -> bool {
    file.strip_prefix("infermon-")
        .and_then(|r| r.strip_suffix(".db"))
        .is_some_and(|mid| {
            !mid.is_empty()
                && mid
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, 'T' | 'Z' | '.'))
        })
}

fn write_gz<T>(
    path: &Path,
    body: impl FnOnce(&mut GzEncoder<std::io::BufWriter<std::fs::File>>) -> Result<T, SnapshotError>,
) -> Result<T, SnapshotError> {
    let file = std::fs::File::create(path)?;
    let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::default());
    let out = body(&mut gz)?;
    let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(out)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests;
