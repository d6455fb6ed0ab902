//! [`SqliteStorage`]: the durable store behind [`Appender`] and [`Querier`].
//!
//! One writer (a mutex around the write connection) logs every batch to the
//! `wal` table and keeps each series' open chunk in the in-memory head; full
//! chunks go to the `chunks` table in the same transaction. A checkpoint
//! writes the open chunks to `head_chunks` and empties `wal`. At open,
//! `head_chunks` + `wal` rebuild the head. Readers use their own connections
//! (SQLite WAL mode), so queries never wait for a commit to reach the disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use super::chunk::{self, ChunkEncoder};
use super::head::{Admission, ChunkPolicy, ClosedChunk, Head, HeadSeries};
use super::index::{SeriesId, SeriesIndex};
use super::pco_chunk::{self, Encoding};
use super::{AppendSample, Appender, Querier, Series, StorageError, schema, wal};
use crate::config::StorageConfig;
use crate::model::{Labels, Matcher, Sample};

/// The file inside `storage.path` that holds everything.
pub const DB_FILE: &str = "infermon.db";

/// Tunables of the store, from `storage:` in the config.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// Chunks whose newest sample is older than this are deleted.
    pub retention_ms: i64,
    /// Oldest chunks go first once the store is larger than this.
    pub retention_size: Option<u64>,
    /// Ingestion stops while the file system has less free space than this.
    pub min_free_disk: u64,
    /// When open chunks are closed.
    pub chunk: ChunkPolicy,
    /// A UTC day is summarised into 5-minute rollups once it ended this long ago.
    pub rollup_after_ms: i64,
    /// Rollup points whose bucket is older than this are deleted.
    pub rollup_retention_ms: i64,
    /// Checkpoint once the WAL rows hold this many bytes…
    pub checkpoint_wal_bytes: u64,
    /// …or this long after the last checkpoint.
    pub checkpoint_interval: Duration,
    /// Most WAL bytes kept for remote_write destinations that are behind
    /// (see `follow.rs`); beyond it their oldest rows are dropped.
    pub wal_hold_max_bytes: u64,
    /// Sample times taken (`storage.max_future_skew`).
    pub bounds: super::SampleBounds,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            retention_ms: 15 * 24 * 3600 * 1000,
            retention_size: None,
            rollup_after_ms: 3600 * 1000,
            rollup_retention_ms: 400 * 24 * 3600 * 1000,
            min_free_disk: 256 << 20,
            chunk: ChunkPolicy::default(),
            checkpoint_wal_bytes: 16 << 20,
            checkpoint_interval: Duration::from_secs(300),
            wal_hold_max_bytes: 1 << 30,
            bounds: super::SampleBounds::default(),
        }
    }
}

impl StorageOptions {
    /// Reads the `storage:` section.
    pub fn from_config(c: &StorageConfig) -> Result<Self, StorageError> {
        let size = |key: &str, v: &Option<String>| -> Result<Option<u64>, StorageError> {
            v.as_deref()
                .map(|t| {
                    crate::util::parse_bytes(t).ok_or_else(|| {
                        StorageError::Backend(format!(
                            "storage.{key}: {t:?} is not a size like 10GB"
                        ))
                    })
                })
                .transpose()
        };
        Ok(StorageOptions {
            retention_ms: c.retention.as_millis(),
            retention_size: size("retention_size", &c.retention_size)?,
            rollup_after_ms: c.rollup_after.as_millis(),
            rollup_retention_ms: c.rollup_retention.as_millis(),
            min_free_disk: size("min_free_disk", &c.min_free_disk)?.unwrap_or(256 << 20),
            bounds: super::SampleBounds {
                max_future_ms: c.max_future_skew.as_millis(),
            },
            ..StorageOptions::default()
        })
    }
}

/// Totals since open, kept without touching SQLite.
#[derive(Default)]
pub(super) struct Counters {
    pub samples_appended: AtomicU64,
    pub samples_rejected: AtomicU64,
    /// Backfilled (imported) samples skipped for their timestamp.
    pub backfill_out_of_bounds: AtomicU64,
    pub chunks: AtomicU64,
    pub chunk_samples: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub rollup_series: AtomicU64,
    pub rollup_points: AtomicU64,
    pub rollup_bytes: AtomicU64,
    /// Newest point time of any rollup row (never lowered): queries over
    /// newer ranges skip the rollup lookup.
    pub rollup_max_t: AtomicI64,
}

pub(super) struct Writer {
    pub conn: Connection,
    wal_bytes: u64,
    last_checkpoint: Instant,
    pub closed: bool,
}

pub(super) struct Inner {
    pub dir: PathBuf,
    pub db_path: PathBuf,
    pub opts: StorageOptions,
    pub writer: Mutex<Writer>,
    pub head: RwLock<Head>,
    pub index: RwLock<SeriesIndex>,
    readers: Mutex<Vec<Connection>>,
    pub counters: Counters,
    /// Why ingestion is stopped (disk nearly full), if it is.
    pub blocked: Mutex<Option<String>>,
    /// The data directory's lock file, held while the store is open so a
    /// second infermon (or `restore`) cannot write the same files.
    _lock: std::fs::File,
    /// The newest WAL seq, for followers waiting for appends.
    pub wal_seq: tokio::sync::watch::Sender<i64>,
    /// Backups being written, so `close` can wait for them or cancel them.
    backups: Mutex<RunningBackups>,
    /// Signalled whenever a backup ends.
    backup_ended: std::sync::Condvar,
}

/// The backups in progress and whether new ones are still allowed.
#[derive(Default)]
struct RunningBackups {
    /// Set by `close`: no new backup starts after it.
    closing: bool,
    next_id: u64,
    /// Each running backup's handle to interrupt its `VACUUM INTO`.
    running: HashMap<u64, rusqlite::InterruptHandle>,
}

/// Deregisters a backup when it ends, however it ends.
struct BackupTicket<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for BackupTicket<'_> {
    fn drop(&mut self) {
        lock(&self.inner.backups).running.remove(&self.id);
        self.inner.backup_ended.notify_all();
    }
}

/// The SQLite time-series store. Cloning is cheap: clones share one store.
#[derive(Clone)]
pub struct SqliteStorage {
    pub(super) inner: Arc<Inner>,
}

pub(super) fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string())
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// Gives the database file's free pages back to the file system. The pragma
/// frees one page per step, so every row must be stepped through.
pub(super) fn release_free_pages(conn: &Connection) -> Result<(), StorageError> {
    let mut stmt = conn.prepare("PRAGMA incremental_vacuum").map_err(backend)?;
    let mut rows = stmt.query([]).map_err(backend)?;
    while rows.next().map_err(backend)?.is_some() {}
    Ok(())
}

/// The file in a data directory locked by the process that has it open.
pub const LOCK_FILE: &str = "lock";

/// Takes the data directory's exclusive lock, or says who holds it.
pub fn lock_dir(dir: &Path) -> Result<std::fs::File, StorageError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::Backend(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(StorageError::Backend(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Puts samples gathered from several chunks in time order with one sample
/// per timestamp; backfilled chunks may overlap the ones written by appends.
pub(super) fn normalize(samples: &mut Vec<Sample>) {
    if samples
        .windows(2)
        .all(|w| w[0].timestamp_ms < w[1].timestamp_ms)
    {
        return;
    }
    samples.sort_by_key(|s| s.timestamp_ms);
    samples.dedup_by_key(|s| s.timestamp_ms);
}

pub(super) fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

impl SqliteStorage {
    /// Opens (creating when missing) the store in directory `dir`, replaying
    /// whatever the last run acknowledged but did not checkpoint.
    pub fn open(dir: impl AsRef<Path>, opts: StorageOptions) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| {
            StorageError::Backend(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let lock = lock_dir(&dir)?;
        // state.db (opened later, by alerting) is checked now too, so a
        // directory from a newer infermon is refused before either file changes.
        let state_path = dir.join(schema::STATE.file);
        if let Some(found) = schema::file_version(&state_path)?
            && found > schema::STATE.version()
        {
            return Err(StorageError::SchemaTooNew {
                path: state_path,
                found,
                supported: schema::STATE.version(),
            });
        }
        let db_path = dir.join(DB_FILE);
        let conn = schema::open_writer(&db_path)?;
        let mut index = SeriesIndex::default();
        {
            let mut stmt = conn
                .prepare("SELECT id, labels FROM series")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(backend)?;
            for row in rows {
                let (id, text) = row.map_err(backend)?;
                let labels: Labels = serde_json::from_str(&text).map_err(|e| {
                    StorageError::Backend(format!("series {id} has unreadable labels: {e}"))
                })?;
                index.insert(id, labels);
            }
        }
        let counters = Counters::default();
        let (chunks, chunk_samples): (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(samples), 0) FROM chunks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(backend)?;
        counters.chunks.store(chunks as u64, Ordering::Relaxed);
        counters
            .chunk_samples
            .store(chunk_samples as u64, Ordering::Relaxed);
        let (rollup_points, rollup_bytes, rollup_max_t): (i64, i64, i64) = conn
            .query_row(
                "SELECT COALESCE(SUM(points), 0), COALESCE(SUM(length(data)), 0), COALESCE(MAX(max_t), ?1) FROM rollups",
                [i64::MIN],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(backend)?;
        counters.rollup_max_t.store(rollup_max_t, Ordering::Relaxed);
        counters
            .rollup_points
            .store(rollup_points as u64, Ordering::Relaxed);
        counters
            .rollup_bytes
            .store(rollup_bytes as u64, Ordering::Relaxed);
        let head = load_head(&conn)?;
        let newest_seq = super::follow::newest_seq(&conn).map_err(backend)?;
        let storage = SqliteStorage {
            inner: Arc::new(Inner {
                dir,
                db_path,
                opts,
                writer: Mutex::new(Writer {
                    conn,
                    wal_bytes: 0,
                    last_checkpoint: Instant::now(),
                    closed: false,
                }),
                head: RwLock::new(head),
                index: RwLock::new(index),
                readers: Mutex::new(Vec::new()),
                counters,
                blocked: Mutex::new(None),
                _lock: lock,
                wal_seq: tokio::sync::watch::Sender::new(newest_seq),
                backups: Mutex::default(),
                backup_ended: std::sync::Condvar::new(),
            }),
        };
        storage.refresh_rollup_series(&self::lock(&storage.inner.writer).conn)?;
        storage.replay_wal()?;
        Ok(storage)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Applies the WAL rows left by the last run to the head, then checkpoints.
    fn replay_wal(&self) -> Result<(), StorageError> {
        let mut w = lock(&self.inner.writer);
        let policy = self.inner.opts.chunk;
        let mut closed = Vec::new();
        let mut replayed = 0usize;
        {
            let mut head = write(&self.inner.head);
            let mut stmt = w
                .conn
                .prepare("SELECT seq, data FROM wal ORDER BY seq")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
                .map_err(backend)?;
            for row in rows {
                let (seq, data) = row.map_err(backend)?;
                let samples = match wal::decode(&data) {
                    Ok(s) => s,
                    Err(e) => {
                        // A committed row is never torn (SQLite), so this is
                        // damage from outside; skip the record, keep the rest.
                        tracing::error!(seq, error = %e, "skipping unreadable WAL record");
                        continue;
                    }
                };
                for s in samples {
                    let hs = head.series.entry(s.series).or_default();
                    if hs.admit(s.t, s.v) == Admission::Append {
                        hs.append(s.series, s.t, s.v, policy, &mut closed);
                        replayed += 1;
                    }
                }
            }
        }
        if replayed > 0 {
            tracing::info!(samples = replayed, "replayed storage WAL");
        }
        let tx = w.conn.transaction().map_err(backend)?;
        // Chunks closed during replay were already written when the batch was
        // first appended; OR IGNORE keeps the replay idempotent.
        let added = insert_chunks(&tx, &closed, true)?;
        tx.commit().map_err(backend)?;
        self.count_chunks_added(&added);
        self.checkpoint_locked(&mut w)
    }

    fn count_chunks_added(&self, added: &[&ClosedChunk]) {
        let c = &self.inner.counters;
        c.chunks.fetch_add(added.len() as u64, Ordering::Relaxed);
        c.chunk_samples.fetch_add(
            added.iter().map(|c| c.samples as u64).sum(),
            Ordering::Relaxed,
        );
    }

    /// Writes every open chunk to `head_chunks` and empties the WAL.
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        let mut w = lock(&self.inner.writer);
        self.checkpoint_locked(&mut w)
    }

    pub(super) fn checkpoint_locked(&self, w: &mut Writer) -> Result<(), StorageError> {
        let head = read(&self.inner.head);
        let tx = w.conn.transaction().map_err(backend)?;
        let opts = &self.inner.opts;
        let held = super::follow::truncate(
            &tx,
            crate::util::now_ms(),
            opts.retention_ms,
            opts.wal_hold_max_bytes,
        )
        .map_err(backend)?;
        tx.execute("DELETE FROM head_chunks", []).map_err(backend)?;
        {
            let mut stmt = tx
                .prepare("INSERT INTO head_chunks (series_id, data) VALUES (?1, ?2)")
                .map_err(backend)?;
            for (id, s) in head.series.iter().filter(|(_, s)| !s.chunk.is_empty()) {
                stmt.execute(params![id, s.chunk.bytes()])
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        w.wal_bytes = 0;
        w.last_checkpoint = Instant::now();
        self.inner.counters.wal_bytes.store(held, Ordering::Relaxed);
        Ok(())
    }

    /// Writes a consistent copy of the whole database to `dest` while ingest
    /// goes on (`VACUUM INTO` from a read transaction: the copy holds every
    /// batch acknowledged before it started, WAL rows included, which a
    /// store opened on the copy replays). The copy is integrity-checked and
    /// only then renamed to `dest`. Returns its size in bytes.
    pub fn backup_to(&self, dest: &Path) -> Result<u64, StorageError> {
        let partial = dest.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(backend)?;
        }
        let written = self.vacuum_into(&partial).and_then(|()| {
            let copy = Connection::open(&partial).map_err(backend)?;
            let verdict: String = copy
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .map_err(backend)?;
            drop(copy);
            if verdict != "ok" {
                return Err(StorageError::Backend(format!(
                    "backup failed its integrity check: {verdict}"
                )));
            }
            std::fs::rename(&partial, dest).map_err(backend)
        });
        if let Err(e) = written {
            // A failed or cancelled backup leaves nothing behind.
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        std::fs::metadata(dest).map(|m| m.len()).map_err(backend)
    }

    /// Copies the store into `out` with `VACUUM INTO`, registered so that
    /// `close` waits for it (or interrupts it once its wait is over).
    fn vacuum_into(&self, out: &Path) -> Result<(), StorageError> {
        // Its own connection: pooled readers are read-only, and VACUUM INTO
        // needs to create the output file. In WAL mode it only reads the
        // source, so the writer is not blocked.
        let conn = Connection::open(&self.inner.db_path).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(backend)?;
        let _ticket = {
            let mut b = lock(&self.inner.backups);
            if b.closing {
                return Err(StorageError::Backend(
                    "the store is closing (infermon is shutting down); no backup was taken".into(),
                ));
            }
            b.next_id += 1;
            let id = b.next_id;
            b.running.insert(id, conn.get_interrupt_handle());
            BackupTicket {
                inner: &self.inner,
                id,
            }
        };
        conn.execute("VACUUM INTO ?1", params![out.to_string_lossy()])
            .map_err(|e| {
                if lock(&self.inner.backups).closing {
                    StorageError::Backend(format!(
                        "backup cancelled because infermon is shutting down ({e})"
                    ))
                } else {
                    backend(e)
                }
            })?;
        Ok(())
    }

    /// Refuses new backups, then waits up to `wait` for running ones to
    /// finish; backups still running after that are interrupted (they remove
    /// their partial file). Returns how many were interrupted.
    pub fn finish_backups(&self, wait: Duration) -> usize {
        let mut b = lock(&self.inner.backups);
        b.closing = true;
        b = self.until_no_backup_runs(b, wait);
        let cancelled = b.running.len();
        for handle in b.running.values() {
            handle.interrupt();
        }
        // An interrupted VACUUM stops at its next page step.
        drop(self.until_no_backup_runs(b, Duration::from_secs(5)));
        cancelled
    }

    /// Waits on `backup_ended` until no backup runs or `wait` has passed.
    fn until_no_backup_runs<'a>(
        &'a self,
        mut b: MutexGuard<'a, RunningBackups>,
        wait: Duration,
    ) -> MutexGuard<'a, RunningBackups> {
        let deadline = Instant::now() + wait;
        while !b.running.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            b = self
                .inner
                .backup_ended
                .wait_timeout(b, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        b
    }

    /// Checkpoints and closes the write path; later appends fail. Called at
    /// shutdown after the scrapers stopped. Backups still running are waited
    /// for briefly, then cancelled, so none races the final checkpoint.
    pub fn close(&self) -> Result<(), StorageError> {
        self.close_within(Duration::from_secs(10))
    }

    /// [`close`](Self::close), waiting at most `backup_wait` for running
    /// backups before they are cancelled (the shutdown deadline decides it).
    pub fn close_within(&self, backup_wait: Duration) -> Result<(), StorageError> {
        self.finish_backups(backup_wait);
        let mut w = lock(&self.inner.writer);
        if w.closed {
            return Ok(());
        }
        self.checkpoint_locked(&mut w)?;
        // Give the pages of the emptied WAL rows back before the files are left.
        release_free_pages(&w.conn)?;
        w.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(backend)?;
        w.closed = true;
        Ok(())
    }

    pub(super) fn reader(&self) -> Result<PooledReader<'_>, StorageError> {
        let conn = match lock(&self.inner.readers).pop() {
            Some(c) => c,
            None => schema::open_reader(&self.inner.db_path).map_err(backend)?,
        };
        Ok(PooledReader {
            conn: Some(conn),
            pool: &self.inner.readers,
        })
    }

    /// Series ids (with labels) matching `matchers`.
    fn matching(&self, matchers: &[Matcher]) -> Vec<(SeriesId, Labels)> {
        let index = read(&self.inner.index);
        index
            .select(matchers)
            .into_iter()
            .filter_map(|id| index.labels(id).map(|l| (id, l.clone())))
            .collect()
    }

    /// Runs `f` with a read transaction whose snapshot matches `head_copy`:
    /// the head is copied and the snapshot opened under one head lock, and
    /// the writer moves a chunk from head to table under the same lock.
    fn with_snapshot<R>(
        &self,
        ids: &[SeriesId],
        f: impl FnOnce(&Connection, HashMap<SeriesId, Vec<u8>>) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let reader = self.reader()?;
        let conn = reader.conn();
        let heads;
        {
            let head = read(&self.inner.head);
            heads = ids
                .iter()
                .filter_map(|id| {
                    head.series
                        .get(id)
                        .filter(|s| !s.chunk.is_empty())
                        .map(|s| (*id, s.chunk.bytes().to_vec()))
                })
                .collect::<HashMap<_, _>>();
            conn.execute_batch("BEGIN").map_err(backend)?;
            // The first read fixes the snapshot.
            conn.query_row("SELECT COUNT(*) FROM wal WHERE seq < 0", [], |_| Ok(()))
                .map_err(backend)?;
        }
        let result = f(conn, heads);
        let _ = conn.execute_batch("COMMIT");
        result
    }

    fn series_with_data(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        let matched = self.matching(matchers);
        let ids: Vec<SeriesId> = matched.iter().map(|(id, _)| *id).collect();
        self.with_snapshot(&ids, |conn, heads| {
            let mut stmt = conn
                .prepare_cached("SELECT 1 FROM chunks WHERE series_id = ?1 AND min_t <= ?3 AND max_t >= ?2 LIMIT 1")
                .map_err(backend)?;
            // Rolled-up history counts too; a rollup row spans a UTC day.
            let rollups_in_range = mint <= self.inner.counters.rollup_max_t.load(Ordering::Relaxed);
            let mut rolled = conn
                .prepare_cached("SELECT 1 FROM rollups WHERE series_id = ?1 AND min_t <= ?3 AND max_t >= ?2 LIMIT 1")
                .map_err(backend)?;
            let mut out = Vec::new();
            for (id, labels) in matched {
                let in_head = heads.get(&id).is_some_and(|b| {
                    let mut s = Vec::new();
                    chunk::decode_into(b, mint, maxt, &mut s).is_ok() && !s.is_empty()
                });
                if in_head
                    || stmt.exists(params![id, mint, maxt]).map_err(backend)?
                    || (rollups_in_range
                        && rolled.exists(params![id, mint, maxt]).map_err(backend)?)
                {
                    out.push(labels);
                }
            }
            Ok(out)
        })
    }

    /// Figures for the Status page and `infermon_storage_*`.
    pub fn stats(&self) -> super::StorageStats {
        super::stats::collect(self)
    }
}

pub(super) struct PooledReader<'a> {
    conn: Option<Connection>,
    pool: &'a Mutex<Vec<Connection>>,
}

impl PooledReader<'_> {
    pub(super) fn conn(&self) -> &Connection {
        // Present from construction until drop.
        self.conn.as_ref().expect("pooled connection present")
    }
}

impl Drop for PooledReader<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            let mut pool = lock(self.pool);
            if pool.len() < 4 {
                pool.push(c);
            }
        }
    }
}

fn load_head(conn: &Connection) -> Result<Head, StorageError> {
    let mut head = Head::default();
    // The newest stored sample of every series, so out-of-order appends are
    // refused across restarts too.
    let mut stmt = conn
        .prepare(
            "SELECT c.series_id, c.data, c.encoding FROM chunks c
             WHERE c.min_t = (SELECT MAX(min_t) FROM chunks WHERE series_id = c.series_id)",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(backend)?;
    for row in rows {
        let (id, data, encoding) = row.map_err(backend)?;
        let mut samples = Vec::new();
        let decoded = Encoding::from_code(encoding)
            .and_then(|enc| pco_chunk::decode_any(enc, &data, i64::MIN, i64::MAX, &mut samples));
        if let Some(last) = decoded.ok().and_then(|_| samples.last().copied()) {
            let hs = head.series.entry(id).or_default();
            hs.last_t = Some(last.timestamp_ms);
            hs.last_v = last.value.to_bits();
        }
    }
    let mut stmt = conn
        .prepare("SELECT series_id, data FROM head_chunks")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .map_err(backend)?;
    for row in rows {
        let (id, data) = row.map_err(backend)?;
        let enc = ChunkEncoder::from_bytes(&data)
            .map_err(|e| StorageError::Backend(format!("head chunk of series {id}: {e}")))?;
        if enc.is_empty() {
            continue;
        }
        let hs = head.series.entry(id).or_default();
        hs.last_t = Some(enc.max_t());
        hs.last_v = enc.last_value_bits();
        hs.chunk = enc;
    }
    Ok(head)
}

/// Inserts closed chunks; returns those actually added.
pub(super) fn insert_chunks<'c>(
    tx: &rusqlite::Transaction,
    chunks: &'c [ClosedChunk],
    ignore_existing: bool,
) -> Result<Vec<&'c ClosedChunk>, StorageError> {
    let sql = if ignore_existing {
        "INSERT OR IGNORE INTO chunks (series_id, min_t, max_t, samples, data) VALUES (?1, ?2, ?3, ?4, ?5)"
    } else {
        "INSERT INTO chunks (series_id, min_t, max_t, samples, data) VALUES (?1, ?2, ?3, ?4, ?5)"
    };
    let mut stmt = tx.prepare_cached(sql).map_err(backend)?;
    let mut added = Vec::new();
    for c in chunks {
        if stmt
            .execute(params![
                c.series,
                c.min_t,
                c.max_t,
                c.samples as i64,
                c.data
            ])
            .map_err(backend)?
            > 0
        {
            added.push(c);
        }
    }
    Ok(added)
}

impl Appender for SqliteStorage {
    fn sample_bounds(&self) -> super::SampleBounds {
        self.inner.opts.bounds
    }

    fn append(&self, batch: &[AppendSample]) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        // The last guard: ingest paths drop such samples before appending.
        let (bounds, now) = (self.inner.opts.bounds, crate::util::now_ms());
        if let Some(s) = batch
            .iter()
            .find(|s| !bounds.contains(s.sample.timestamp_ms, now))
        {
            self.inner
                .counters
                .samples_rejected
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            return Err(StorageError::Rejected(format!(
                "{}: {}",
                s.labels,
                bounds.describe(s.sample.timestamp_ms, now)
            )));
        }
        if let Some(reason) = lock(&self.inner.blocked).clone() {
            self.inner
                .counters
                .samples_rejected
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            return Err(StorageError::Backend(reason));
        }
        let mut w = lock(&self.inner.writer);
        if w.closed {
            return Err(StorageError::Backend("storage is closed".to_string()));
        }
        let policy = self.inner.opts.chunk;
        let tx = w.conn.transaction().map_err(backend)?;

        // Resolve series ids, creating new series inside the transaction so a
        // refused batch leaves none behind.
        let mut new_series: HashMap<&Labels, SeriesId> = HashMap::new();
        let mut ids = Vec::with_capacity(batch.len());
        {
            let index = read(&self.inner.index);
            let mut insert = tx
                .prepare_cached("INSERT INTO series (labels) VALUES (?1)")
                .map_err(backend)?;
            for s in batch {
                if s.labels.is_empty() {
                    return Err(StorageError::Rejected("a sample has no labels".to_string()));
                }
                let id = match index
                    .get(&s.labels)
                    .or_else(|| new_series.get(&s.labels).copied())
                {
                    Some(id) => id,
                    None => {
                        insert.execute([labels_json(&s.labels)]).map_err(backend)?;
                        let id = tx.last_insert_rowid();
                        new_series.insert(&s.labels, id);
                        id
                    }
                };
                ids.push(id);
            }
        }

        // Plan the batch against the head without changing it: a series seen
        // once whose open chunk stays open is appended after the commit
        // (that cannot fail); any other touched series is worked on as a
        // copy that replaces the original after the commit.
        let mut seen: HashMap<SeriesId, u32> = HashMap::with_capacity(batch.len());
        for &id in &ids {
            *seen.entry(id).or_default() += 1;
        }
        let mut scratch: HashMap<SeriesId, HeadSeries> = HashMap::new();
        let mut direct: Vec<(SeriesId, i64, u64)> = Vec::with_capacity(batch.len());
        let mut logged = Vec::with_capacity(batch.len());
        let mut closed = Vec::new();
        {
            let head = read(&self.inner.head);
            for (s, &id) in batch.iter().zip(&ids) {
                let (t, v) = (s.sample.timestamp_ms, s.sample.value.to_bits());
                let current = head.series.get(&id);
                let simple = seen.get(&id) == Some(&1)
                    && current.is_none_or(|hs| !hs.closes_before(t, policy));
                let admission = if simple {
                    current.map_or(Admission::Append, |hs| hs.admit(t, v))
                } else {
                    scratch
                        .entry(id)
                        .or_insert_with(|| current.cloned().unwrap_or_default())
                        .admit(t, v)
                };
                match admission {
                    Admission::Append => {
                        if simple {
                            direct.push((id, t, v));
                        } else if let Some(hs) = scratch.get_mut(&id) {
                            hs.append(id, t, v, policy, &mut closed);
                        }
                        logged.push(wal::WalSample { series: id, t, v });
                    }
                    Admission::Duplicate => {}
                    Admission::OutOfOrder { newest } => {
                        self.inner
                            .counters
                            .samples_rejected
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        return Err(StorageError::Rejected(format!(
                            "out-of-order sample for {}: timestamp {t} is not after the newest stored sample at {newest}",
                            s.labels
                        )));
                    }
                }
            }
        }
        let record = wal::encode(&logged);
        let mut seq = None;
        if !logged.is_empty() {
            tx.execute(
                "INSERT INTO wal (samples, appended_ms, data) VALUES (?1, ?2, ?3)",
                params![logged.len() as i64, crate::util::now_ms(), &record],
            )
            .map_err(backend)?;
            seq = Some(tx.last_insert_rowid());
        }
        insert_chunks(&tx, &closed, false)?;
        {
            let mut head = write(&self.inner.head);
            tx.commit().map_err(backend)?;
            head.series.extend(scratch);
            let mut none_closed = Vec::new();
            for (id, t, v) in direct {
                head.series
                    .entry(id)
                    .or_default()
                    .append(id, t, v, policy, &mut none_closed);
            }
            debug_assert!(none_closed.is_empty());
        }
        if !new_series.is_empty() {
            let mut index = write(&self.inner.index);
            for (labels, id) in new_series {
                index.insert(id, labels.clone());
            }
        }
        // After the index knows the batch's series: a follower woken now
        // finds every series it reads.
        if let Some(seq) = seq {
            self.inner.wal_seq.send_replace(seq);
        }
        let refs: Vec<&ClosedChunk> = closed.iter().collect();
        self.count_chunks_added(&refs);
        let c = &self.inner.counters;
        c.samples_appended
            .fetch_add(logged.len() as u64, Ordering::Relaxed);
        if !logged.is_empty() {
            w.wal_bytes += record.len() as u64;
            c.wal_bytes.store(w.wal_bytes, Ordering::Relaxed);
        }
        let due = w.wal_bytes >= self.inner.opts.checkpoint_wal_bytes
            || w.last_checkpoint.elapsed() >= self.inner.opts.checkpoint_interval;
        if due && let Err(e) = self.checkpoint_locked(&mut w) {
            // The batch is durable in the WAL; a failed checkpoint only delays
            // the WAL's truncation, so it is logged, not returned.
            tracing::warn!(error = %e, "storage checkpoint failed");
        }
        Ok(())
    }
}

impl Querier for SqliteStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        struct Unlimited;
        impl super::ReadLimit for Unlimited {
            fn take(&self, _: usize, _: usize) -> bool {
                true
            }
        }
        self.select_bounded(matchers, mint, maxt, &Unlimited)
    }

    fn select_bounded(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        limit: &dyn super::ReadLimit,
    ) -> Result<Vec<Series>, StorageError> {
        let matched = self.matching(matchers);
        let ids: Vec<SeriesId> = matched.iter().map(|(id, _)| *id).collect();
        let read = self.with_snapshot(&ids, |conn, heads| {
            super::read::select(conn, &heads, matched, (mint, maxt), limit, false)
        })?;
        Ok(read.into_iter().map(|(s, _)| s).collect())
    }

    fn select_summarized(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        limit: &dyn super::ReadLimit,
    ) -> Result<Vec<(Series, Vec<super::RollupPoint>)>, StorageError> {
        // No rollup reaches the range: nothing to look up per series.
        let summarize = mint <= self.inner.counters.rollup_max_t.load(Ordering::Relaxed);
        let matched = self.matching(matchers);
        let ids: Vec<SeriesId> = matched.iter().map(|(id, _)| *id).collect();
        self.with_snapshot(&ids, |conn, heads| {
            super::read::select(conn, &heads, matched, (mint, maxt), limit, summarize)
        })
    }

    fn select_rollups(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<super::RollupSeries>, StorageError> {
        if mint > self.inner.counters.rollup_max_t.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let matched = self.matching(matchers);
        self.with_snapshot(&[], |conn, _| {
            SqliteStorage::read_rollups(conn, matched, mint, maxt)
        })
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self
            .series_with_data(matchers, mint, maxt)?
            .iter()
            .flat_map(|l| l.iter().map(|l| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut values: Vec<String> = self
            .series_with_data(matchers, mint, maxt)?
            .iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let w = self.writer.get_mut().unwrap_or_else(|p| p.into_inner());
        if w.closed {
            return;
        }
        // Best effort: an unclean drop is recovered from the WAL at open.
        let head = self.head.get_mut().unwrap_or_else(|p| p.into_inner());
        let opts = &self.opts;
        let result = (|| -> rusqlite::Result<()> {
            let tx = w.conn.transaction()?;
            super::follow::truncate(
                &tx,
                crate::util::now_ms(),
                opts.retention_ms,
                opts.wal_hold_max_bytes,
            )?;
            tx.execute("DELETE FROM head_chunks", [])?;
            {
                let mut stmt =
                    tx.prepare("INSERT INTO head_chunks (series_id, data) VALUES (?1, ?2)")?;
                for (id, s) in head.series.iter().filter(|(_, s)| !s.chunk.is_empty()) {
                    stmt.execute(params![id, s.chunk.bytes()])?;
                }
            }
            tx.commit()
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "storage checkpoint at drop failed; the WAL will be replayed at next open");
        }
    }
}
