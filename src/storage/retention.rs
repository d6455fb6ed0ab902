//! Keeping the store within its limits: time retention, size retention,
//! closing idle head chunks, forgetting series without data, and stopping
//! ingestion while the disk is nearly full. One pass is [`SqliteStorage::maintain`];
//! [`SqliteStorage::spawn_maintenance`] runs it continuously.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::params;

use super::StorageError;
use super::head::ClosedChunk;
use super::sqlite::{
    DB_FILE, SqliteStorage, backend, insert_chunks, lock, release_free_pages, write,
};
use crate::background::{Priority, WorkerPool};
use crate::shutdown::Shutdown;

/// What one maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Open chunks closed because their series went quiet.
    pub idle_chunks_closed: usize,
    /// Chunks deleted by time retention.
    pub expired_chunks: usize,
    /// Chunks deleted to get under `retention_size`.
    pub size_evicted_chunks: usize,
    /// Series forgotten because no sample of theirs is left.
    pub series_removed: usize,
    /// Chunks rewritten by compaction: finished blocks into one pco chunk
    /// each, finished days into one chunk per series.
    pub chunks_compacted: usize,
    /// Series-days summarised into 5-minute rollups.
    pub days_rolled_up: usize,
    /// Rollup rows (series-days) deleted by `storage.rollup_retention`.
    pub expired_rollups: usize,
}

/// Bytes of every file under `dir` (everything infermon writes there).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Free bytes for unprivileged writers on the file system holding `dir`.
pub fn free_disk_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

impl SqliteStorage {
    /// Bytes the data directory takes, not counting free pages inside the
    /// database file (they are reused before the file grows).
    pub fn used_bytes(&self) -> Result<u64, StorageError> {
        let w = lock(&self.inner.writer);
        let (free_pages, page_size): (i64, i64) = w
            .conn
            .query_row(
                "SELECT (SELECT freelist_count FROM pragma_freelist_count), (SELECT page_size FROM pragma_page_size)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(backend)?;
        Ok(dir_bytes(&self.inner.dir).saturating_sub((free_pages * page_size) as u64))
    }

    /// One maintenance pass at wall-clock time `now_ms`.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, StorageError> {
        self.check_disk();
        let mut report = MaintenanceReport::default();
        let opts = self.inner.opts.clone();
        let cutoff = now_ms.saturating_sub(opts.retention_ms);
        let mut w = lock(&self.inner.writer);

        // Quiet series: close their open chunk so the head only holds live
        // data. While samples keep arriving (some since the last pass),
        // quiet is measured against the newest sample appended, not the
        // clock: a sender catching up on hours of old data would otherwise
        // have every chunk it is filling closed by each pass (and merged
        // back by compaction, at a cost).
        let c = &self.inner.counters;
        let window = opts.chunk.window_ms;
        let appended = c.samples_appended.load(Ordering::Relaxed);
        let appending = c.appended_at_last_pass.swap(appended, Ordering::Relaxed) != appended;
        let reference = if appending {
            now_ms.min(c.newest_appended_t.load(Ordering::Relaxed))
        } else {
            now_ms
        };
        let idle_before = reference.saturating_sub(window);
        let closed: Vec<ClosedChunk> = {
            let head = super::sqlite::read(&self.inner.head);
            head.series
                .iter()
                .filter(|(_, s)| !s.chunk.is_empty() && s.chunk.max_t() < idle_before)
                .map(|(id, s)| s.clone().close(*id))
                .collect()
        };
        if !closed.is_empty() {
            let tx = w.conn.transaction().map_err(backend)?;
            insert_chunks(&tx, &closed, true)?;
            let mut head = write(&self.inner.head);
            tx.commit().map_err(backend)?;
            for c in &closed {
                if let Some(s) = head.series.get_mut(&c.series) {
                    s.chunk = Default::default();
                }
            }
            drop(head);
            let c = &self.inner.counters;
            c.chunks.fetch_add(closed.len() as u64, Ordering::Relaxed);
            c.chunk_samples.fetch_add(
                closed.iter().map(|c| c.samples as u64).sum(),
                Ordering::Relaxed,
            );
            report.idle_chunks_closed = closed.len();
            // head_chunks must not keep the closed chunks: checkpoint now.
            self.checkpoint_locked(&mut w)?;
        }

        // Summarise raw samples before raw retention may delete them.
        drop(w);
        let rolled = self.rollup(now_ms)?;
        report.days_rolled_up = rolled.days_rolled_up;
        report.expired_rollups = rolled.expired_rows;
        w = lock(&self.inner.writer);

        let deleted = delete_chunks(
            &w.conn,
            "DELETE FROM chunks WHERE max_t < ?1 RETURNING samples",
            params![cutoff],
        )?;
        report.expired_chunks = self.uncount(deleted);

        if let Some(limit) = opts.retention_size {
            drop(w);
            for _ in 0..64 {
                let used = self.used_bytes()?;
                if used <= limit {
                    break;
                }
                let w = lock(&self.inner.writer);
                let avg: f64 = w
                    .conn
                    .query_row(
                        "SELECT COALESCE(AVG(length(data)), 0) + 48 FROM chunks",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                // Free a little more than the excess so the next pass has room.
                let target = (used - limit) as f64 + limit as f64 * 0.05;
                let n = ((target / avg.max(1.0)).ceil() as i64).max(1);
                let deleted = delete_chunks(
                    &w.conn,
                    "DELETE FROM chunks WHERE (series_id, min_t) IN
                       (SELECT series_id, min_t FROM chunks ORDER BY min_t LIMIT ?1) RETURNING samples",
                    params![n],
                )?;
                let mut count = self.uncount(deleted);
                report.size_evicted_chunks += count;
                if count == 0 {
                    // No raw chunk left: the oldest rollup days go next.
                    count = self.evict_rollups(&w.conn, target)?;
                    report.expired_rollups += count;
                }
                // Move the deletions out of the SQLite WAL file and hand
                // freed pages back so the directory really shrinks.
                w.conn
                    .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                    .map_err(backend)?;
                release_free_pages(&w.conn)?;
                if count == 0 {
                    break;
                }
            }
            w = lock(&self.inner.writer);
        }

        // Series with no chunk, no rollup and no open chunk have no data left.
        let empty: Vec<i64> = {
            let mut stmt = w
                .conn
                .prepare("SELECT id FROM series s WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.series_id = s.id)
                            AND NOT EXISTS (SELECT 1 FROM rollups r WHERE r.series_id = s.id)")
                .map_err(backend)?;
            let head = super::sqlite::read(&self.inner.head);
            let ids = stmt
                .query_map([], |r| r.get::<_, i64>(0))
                .map_err(backend)?;
            ids.filter_map(Result::ok)
                .filter(|id| head.series.get(id).is_none_or(|s| s.chunk.is_empty()))
                .collect()
        };
        if !empty.is_empty() {
            let tx = w.conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare("DELETE FROM series WHERE id = ?1")
                    .map_err(backend)?;
                for id in &empty {
                    stmt.execute([id]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)?;
            let mut head = write(&self.inner.head);
            let mut index = write(&self.inner.index);
            for id in &empty {
                head.series.remove(id);
                index.remove(*id);
            }
            report.series_removed = empty.len();
        }
        drop(w);
        report.chunks_compacted = self.compact(now_ms, false)?;
        if report != MaintenanceReport::default() {
            release_free_pages(&lock(&self.inner.writer).conn)?;
        }
        Ok(report)
    }

    /// Deletes the oldest rollup rows, about `bytes` of them.
    fn evict_rollups(
        &self,
        conn: &rusqlite::Connection,
        bytes: f64,
    ) -> Result<usize, StorageError> {
        let avg: f64 = conn
            .query_row(
                "SELECT COALESCE(AVG(length(data)), 0) + 48 FROM rollups",
                [],
                |r| r.get(0),
            )
            .map_err(backend)?;
        let n = ((bytes / avg.max(1.0)).ceil() as i64).max(1);
        let deleted = {
            let mut stmt = conn
                .prepare(
                    "DELETE FROM rollups WHERE id IN (SELECT id FROM rollups ORDER BY min_t LIMIT ?1)
                     RETURNING points, length(data)",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([n], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)?
        };
        let c = &self.inner.counters;
        for (points, bytes) in &deleted {
            c.rollup_points.fetch_sub(*points as u64, Ordering::Relaxed);
            c.rollup_bytes.fetch_sub(*bytes as u64, Ordering::Relaxed);
        }
        if !deleted.is_empty() {
            self.refresh_rollup_series(conn)?;
        }
        Ok(deleted.len())
    }

    fn uncount(&self, deleted: Vec<i64>) -> usize {
        let c = &self.inner.counters;
        c.chunks.fetch_sub(deleted.len() as u64, Ordering::Relaxed);
        c.chunk_samples
            .fetch_sub(deleted.iter().sum::<i64>() as u64, Ordering::Relaxed);
        deleted.len()
    }

    /// Stops ingestion while free disk space is under `min_free_disk`, and
    /// resumes it once there is room again.
    pub fn check_disk(&self) {
        let free = free_disk_bytes(&self.inner.dir);
        let min = self.inner.opts.min_free_disk;
        let mut blocked = lock(&self.inner.blocked);
        match free {
            Some(free) if free < min => {
                if blocked.is_none() {
                    tracing::error!(
                        free,
                        min,
                        "disk nearly full: ingestion stopped until space is freed"
                    );
                }
                *blocked = Some(format!(
                    "ingestion stopped: only {free} bytes free on the disk holding {}, storage.min_free_disk is {min}",
                    self.inner.dir.display()
                ));
            }
            _ => {
                if blocked.take().is_some() {
                    tracing::info!("disk space available again: ingestion resumed");
                }
            }
        }
    }

    /// Why ingestion is stopped, if it is.
    pub fn ingestion_blocked(&self) -> Option<String> {
        lock(&self.inner.blocked).clone()
    }

    /// Runs [`maintain`](Self::maintain) every `every` until `shutdown`, on
    /// one thread at the lowest OS priority.
    pub fn spawn_maintenance(
        &self,
        every: Duration,
        shutdown: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let storage = self.clone();
        // Compaction and rollups decode and re-encode whole days: they run on
        // one thread at the lowest priority, so the model keeps the CPU.
        let pool = WorkerPool::new(
            "infermon-maintenance",
            1,
            Priority {
                nice: 19,
                batch: true,
            },
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tick.tick() => {}
                }
                let s = storage.clone();
                match pool
                    .run(every, move |_| s.maintain(crate::util::now_ms()))
                    .await
                {
                    Ok(Ok(r)) if r != MaintenanceReport::default() => {
                        tracing::info!(?r, "storage maintenance")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "storage maintenance failed"),
                    Err(e) => tracing::error!(error = %e, "storage maintenance task failed"),
                }
            }
            tracing::debug!("storage maintenance stopped");
        })
    }

    /// Path of the database file.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.inner.dir.join(DB_FILE)
    }
}

fn delete_chunks(
    conn: &rusqlite::Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<i64>, StorageError> {
    let mut stmt = conn.prepare(sql).map_err(backend)?;
    let rows = stmt.query_map(p, |r| r.get::<_, i64>(0)).map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, Sample};
    use crate::storage::{AppendSample, Appender, StorageOptions};

    const HOUR: i64 = 3_600_000;

    fn at(name: &str, t: i64) -> AppendSample {
        AppendSample {
            labels: Labels::new([("__name__", name)]),
            sample: Sample {
                timestamp_ms: t,
                value: 1.0,
            },
        }
    }

    #[test]
    fn a_sender_catching_up_keeps_its_chunks_open_until_it_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(
            dir.path(),
            StorageOptions {
                min_free_disk: 0,
                ..StorageOptions::default()
            },
        )
        .unwrap();
        let now = crate::util::now_ms();
        // A 2 h window boundary 20 h ago, so the samples below stay in one
        // window until the last one.
        let t0 = (now - 20 * HOUR).div_euclid(2 * HOUR) * 2 * HOUR;
        store.append(&[at("a", t0), at("b", t0)]).unwrap();
        store.append(&[at("a", t0 + HOUR)]).unwrap();
        // Both are hours behind the clock, but a is still being sent and b
        // is not quiet next to it: nothing is idle.
        assert_eq!(store.maintain(now).unwrap().idle_chunks_closed, 0);
        // a moves 3 h on: b has been quiet for longer than a window.
        store.append(&[at("a", t0 + 3 * HOUR + 60_000)]).unwrap();
        assert_eq!(store.maintain(now).unwrap().idle_chunks_closed, 1);
        // Nothing arrived since the last pass: the clock decides, a is idle too.
        assert_eq!(store.maintain(now).unwrap().idle_chunks_closed, 1);
        assert_eq!(store.maintain(now).unwrap().idle_chunks_closed, 0);
    }
}
