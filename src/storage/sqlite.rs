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
use rustc_hash::FxHashMap;

use super::chunk::{self, ChunkEncoder};
use super::head::{Admission, ChunkPolicy, ClosedChunk, Head, HeadSeries};
use super::index::{SeriesId, SeriesIndex};
use super::pco_chunk::{self, Encoding};
use super::{AppendSample, Appender, Querier, Series, SeriesRef, StorageError, schema, wal};
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
    /// A block (and so a UTC day) is summarised into 5-minute rollups once
    /// it ended this long ago.
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
    /// How long a group commit that finds batches already waiting waits
    /// for more (`storage.commit_interval`).
    pub commit_interval: Duration,
    /// When commits are forced to the disk (`storage.fsync`).
    pub fsync: crate::config::Fsync,
    /// Most bytes of decoded chunks kept for later queries
    /// (`storage.decoded_cache_size`); 0 keeps none.
    pub decoded_cache_bytes: u64,
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
            commit_interval: Duration::from_millis(1),
            fsync: crate::config::Fsync::default(),
            decoded_cache_bytes: super::decoded_cache::DEFAULT_BYTES,
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
            decoded_cache_bytes: size("decoded_cache_size", &c.decoded_cache_size)?
                .unwrap_or(super::decoded_cache::DEFAULT_BYTES),
            bounds: super::SampleBounds {
                max_future_ms: c.max_future_skew.as_millis(),
            },
            commit_interval: c.commit_interval.as_duration(),
            fsync: c.fsync,
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
    /// Newest sample time appended since the store opened (0: none).
    pub newest_appended_t: AtomicI64,
    /// `samples_appended` as the last maintenance pass saw it.
    pub appended_at_last_pass: AtomicU64,
}

pub(super) struct Writer {
    pub conn: Connection,
    wal_bytes: u64,
    last_checkpoint: Instant,
    pub closed: bool,
    /// Where compaction's next `chunks` rows land, once it has run
    /// (`page_pack.rs`).
    pub chunk_edge: Option<super::page_pack::RightEdge>,
    /// Where the rollup pass's next `rollups` rows land, once it has run.
    pub rollup_edge: Option<super::page_pack::RightEdge>,
}

pub(super) struct Inner {
    pub dir: PathBuf,
    pub db_path: PathBuf,
    pub opts: StorageOptions,
    pub writer: Mutex<Writer>,
    /// Batches waiting for the writer's next group commit.
    queue: Mutex<Vec<Arc<QueuedBatch>>>,
    pub head: RwLock<Head>,
    pub index: RwLock<SeriesIndex>,
    readers: Mutex<Vec<Connection>>,
    /// Decoded chunks and rollup rows kept for the next query.
    pub decoded: super::decoded_cache::DecodedCache,
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
        let conn = schema::open_writer(&db_path, opts.fsync)?;
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
        let decoded = super::decoded_cache::DecodedCache::new(opts.decoded_cache_bytes);
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
                    chunk_edge: None,
                    rollup_edge: None,
                }),
                queue: Mutex::new(Vec::new()),
                head: RwLock::new(head),
                index: RwLock::new(index),
                readers: Mutex::new(Vec::new()),
                decoded,
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

    /// The series matching `matchers` in `[mint, maxt]`, read in one
    /// snapshot ([`super::read::select`]).
    fn read_selection(
        &self,
        matchers: &[Matcher],
        range: (i64, i64),
        limit: &dyn super::ReadLimit,
        summarize: bool,
    ) -> Result<Vec<(Series, Vec<super::RollupPoint>)>, StorageError> {
        let matched = self.matching(matchers);
        let ids: Vec<SeriesId> = matched.iter().map(|(id, _)| *id).collect();
        self.with_snapshot(&ids, |conn, heads| {
            let cache = &self.inner.decoded;
            super::read::select(conn, cache, &heads, matched, range, limit, summarize)
        })
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
    let or_ignore = if ignore_existing { "OR IGNORE " } else { "" };
    let mut stmt = tx
        .prepare_cached(&format!(
            "INSERT {or_ignore}INTO chunks (id, series_id, min_t, max_t, samples, data) VALUES ({}, ?1, ?2, ?3, ?4, ?5)",
            super::chunk_ids::next_id_sql(6, 7)
        ))
        .map_err(backend)?;
    let (ids_from, ids_to) = super::chunk_ids::Lifetime::Head.ids();
    let mut added = Vec::new();
    for c in chunks {
        if stmt
            .execute(params![
                c.series,
                c.min_t,
                c.max_t,
                c.samples as i64,
                c.data,
                ids_from,
                ids_to
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
        let mut refs = vec![None; batch.len()];
        self.append_with_refs(batch, &mut refs)
    }

    fn append_with_refs(
        &self,
        batch: &[AppendSample],
        refs: &mut [Option<SeriesRef>],
    ) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        if refs.len() != batch.len() {
            return Err(StorageError::Backend(format!(
                "append_with_refs: {} refs for {} samples",
                refs.len(),
                batch.len()
            )));
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
        // Group commit: whoever holds the writer commits every batch queued
        // meanwhile in its transaction. An idle writer is taken at once and
        // the batch is used in place; a busy one means queueing a copy.
        match self.inner.writer.try_lock() {
            Ok(mut w) => self.commit_group(&mut w, Some((batch, refs))),
            Err(std::sync::TryLockError::Poisoned(p)) => {
                self.commit_group(&mut p.into_inner(), Some((batch, refs)))
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                let job = Arc::new(QueuedBatch {
                    batch: batch.to_vec(),
                    state: Mutex::new(QueuedState {
                        refs: refs.to_vec(),
                        result: None,
                    }),
                });
                lock(&self.inner.queue).push(job.clone());
                let mut w = lock(&self.inner.writer);
                // A leader that took the job finished it before letting go
                // of the writer; otherwise it is still queued and this
                // thread leads the next group.
                if lock(&job.state).result.is_none() {
                    // Its own result is in the job, like the others'.
                    let _ = self.commit_group(&mut w, None);
                }
                drop(w);
                let mut st = lock(&job.state);
                refs.copy_from_slice(&st.refs);
                st.result.take().unwrap_or_else(|| {
                    Err(StorageError::Backend(
                        "append was not committed (lost from the commit queue)".to_string(),
                    ))
                })
            }
        }
    }

    fn find_series(&self, sets: &[&[(&[u8], &[u8])]]) -> Vec<Option<(SeriesRef, Labels)>> {
        let index = read(&self.inner.index);
        sets.iter()
            .map(|pairs| {
                index
                    .get_pairs(pairs)
                    .map(|(id, labels)| (SeriesRef(id as u64), labels.clone()))
            })
            .collect()
    }
}

/// A batch waiting for the writer (group commit).
pub(super) struct QueuedBatch {
    batch: Vec<AppendSample>,
    state: Mutex<QueuedState>,
}

/// Refs in and out, and the result once a leader committed the group.
struct QueuedState {
    refs: Vec<Option<SeriesRef>>,
    result: Option<Result<(), StorageError>>,
}

/// What the batches of one group did so far, applied to the head, index
/// and counters only once the group's transaction committed.
#[derive(Default)]
struct Group {
    /// Series touched in a way that needs a copy of their head state (seen
    /// twice, or their open chunk closes): replaces the head's after commit.
    scratch: FxHashMap<SeriesId, HeadSeries>,
    /// Single appends that leave the open chunk open, applied in place after
    /// commit; never holds a series that is also in `scratch`.
    direct: FxHashMap<SeriesId, (i64, u64)>,
    /// Series created by the group's batches.
    created: HashMap<Labels, SeriesId>,
    logged: Vec<wal::WalSample>,
    closed: Vec<ClosedChunk>,
}

impl Group {
    /// The head state of `id` as the group's accepted batches left it.
    fn current(&self, head: &Head, id: SeriesId, policy: ChunkPolicy) -> Option<HeadSeries> {
        if let Some(hs) = self.scratch.get(&id) {
            return Some(hs.clone());
        }
        let mut hs = head.series.get(&id).cloned();
        if let Some(&(t, v)) = self.direct.get(&id) {
            // Cannot close a chunk: it was planned as a direct append.
            let mut none_closed = Vec::new();
            hs.get_or_insert_default()
                .append(id, t, v, policy, &mut none_closed);
            debug_assert!(none_closed.is_empty());
        }
        hs
    }
}

impl SqliteStorage {
    /// Leads one group commit: takes every queued batch (and `own`, the
    /// leader's batch used in place), plans each against the head as the
    /// batches before it left it, and commits them in one transaction. A
    /// batch refused (out of order, no labels) fails alone: the series it
    /// created are rolled back to its savepoint and its samples are not
    /// logged. Returns `own`'s result; queued batches get theirs in their
    /// [`QueuedBatch`] before the writer is let go.
    fn commit_group(
        &self,
        w: &mut Writer,
        own: Option<(&[AppendSample], &mut [Option<SeriesRef>])>,
    ) -> Result<(), StorageError> {
        let wait = self.inner.opts.commit_interval;
        if !wait.is_zero() && !lock(&self.inner.queue).is_empty() {
            // Others are already waiting: give more a moment to join.
            std::thread::sleep(wait);
        }
        let jobs = std::mem::take(&mut *lock(&self.inner.queue));
        let mut states: Vec<MutexGuard<'_, QueuedState>> =
            jobs.iter().map(|j| lock(&j.state)).collect();
        let own_at = own.as_ref().map(|_| 0);
        let mut batches: Vec<(&[AppendSample], &mut [Option<SeriesRef>])> = Vec::new();
        batches.extend(own);
        for (job, st) in jobs.iter().zip(states.iter_mut()) {
            batches.push((&job.batch, &mut st.refs));
        }
        let results = self.commit_batches(w, &mut batches);
        let mut own_result = None;
        for (i, r) in results.into_iter().enumerate() {
            if Some(i) == own_at {
                own_result = Some(r);
            } else {
                let k = i - usize::from(own_at.is_some());
                states[k].result = Some(r);
            }
        }
        drop(states);
        own_result.unwrap_or(Ok(()))
    }

    /// Plans and commits `batches` in one transaction; one result per batch.
    fn commit_batches(
        &self,
        w: &mut Writer,
        batches: &mut [(&[AppendSample], &mut [Option<SeriesRef>])],
    ) -> Vec<Result<(), StorageError>> {
        let failed = |n: usize, msg: &str| {
            (0..n)
                .map(|_| Err(StorageError::Backend(msg.to_string())))
                .collect::<Vec<_>>()
        };
        if w.closed {
            return failed(batches.len(), "storage is closed");
        }
        let mut tx = match w.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => return failed(batches.len(), &e.to_string()),
        };
        let mut group = Group::default();
        let mut results: Vec<Result<Vec<SeriesId>, StorageError>> =
            Vec::with_capacity(batches.len());
        {
            let head = read(&self.inner.head);
            let index = read(&self.inner.index);
            for (batch, refs) in batches.iter() {
                let r = self.plan_batch(&mut tx, &head, &index, &mut group, batch, refs);
                if r.is_err() {
                    self.inner
                        .counters
                        .samples_rejected
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                results.push(r);
            }
        }
        let policy = self.inner.opts.chunk;
        let record = wal::encode(&group.logged);
        let written = (|| -> Result<Option<i64>, StorageError> {
            let mut seq = None;
            if !group.logged.is_empty() {
                tx.execute(
                    "INSERT INTO wal (samples, appended_ms, data) VALUES (?1, ?2, ?3)",
                    params![group.logged.len() as i64, crate::util::now_ms(), &record],
                )
                .map_err(backend)?;
                seq = Some(tx.last_insert_rowid());
            }
            insert_chunks(&tx, &group.closed, false)?;
            Ok(seq)
        })();
        let seq = match written {
            Ok(seq) => {
                let mut head = write(&self.inner.head);
                match tx.commit() {
                    Ok(()) => {
                        head.series.extend(group.scratch);
                        let mut none_closed = Vec::new();
                        for (id, (t, v)) in group.direct {
                            head.series.entry(id).or_default().append(
                                id,
                                t,
                                v,
                                policy,
                                &mut none_closed,
                            );
                        }
                        debug_assert!(none_closed.is_empty());
                        seq
                    }
                    Err(e) => return self.group_failed(results, &backend(e)),
                }
            }
            Err(e) => {
                drop(tx);
                return self.group_failed(results, &e);
            }
        };
        if !group.created.is_empty() {
            let mut index = write(&self.inner.index);
            for (labels, id) in group.created {
                index.insert(id, labels);
            }
        }
        // After the index knows the group's series: a follower woken now
        // finds every series it reads.
        if let Some(seq) = seq {
            self.inner.wal_seq.send_replace(seq);
        }
        let refs: Vec<&ClosedChunk> = group.closed.iter().collect();
        self.count_chunks_added(&refs);
        let c = &self.inner.counters;
        c.samples_appended
            .fetch_add(group.logged.len() as u64, Ordering::Relaxed);
        if let Some(newest) = group.logged.iter().map(|s| s.t).max() {
            c.newest_appended_t.fetch_max(newest, Ordering::Relaxed);
        }
        if !group.logged.is_empty() {
            w.wal_bytes += record.len() as u64;
            c.wal_bytes.store(w.wal_bytes, Ordering::Relaxed);
        }
        let due = w.wal_bytes >= self.inner.opts.checkpoint_wal_bytes
            || w.last_checkpoint.elapsed() >= self.inner.opts.checkpoint_interval;
        if due && let Err(e) = self.checkpoint_locked(w) {
            // The batches are durable in the WAL; a failed checkpoint only
            // delays the WAL's truncation, so it is logged, not returned.
            tracing::warn!(error = %e, "storage checkpoint failed");
        }
        batches
            .iter_mut()
            .zip(results)
            .map(|((_, refs), r)| {
                r.map(|ids| {
                    for (slot, id) in refs.iter_mut().zip(ids) {
                        *slot = Some(SeriesRef(id as u64));
                    }
                })
            })
            .collect()
    }

    /// Every batch of a group whose transaction failed fails with it (the
    /// ones refused on their own keep their own error).
    fn group_failed(
        &self,
        results: Vec<Result<Vec<SeriesId>, StorageError>>,
        e: &StorageError,
    ) -> Vec<Result<(), StorageError>> {
        results
            .into_iter()
            .map(|r| match r {
                Ok(ids) => {
                    self.inner
                        .counters
                        .samples_rejected
                        .fetch_add(ids.len() as u64, Ordering::Relaxed);
                    Err(StorageError::Backend(e.to_string()))
                }
                Err(e) => Err(e),
            })
            .collect()
    }

    /// Plans one batch of a group: resolves (and creates) its series and
    /// admits its samples against the head as the group left it. Accepted,
    /// it joins `group` and gives each sample's series id; refused, it
    /// leaves `group` and the database as they were.
    fn plan_batch(
        &self,
        tx: &mut rusqlite::Transaction<'_>,
        head: &Head,
        index: &SeriesIndex,
        group: &mut Group,
        batch: &[AppendSample],
        refs: &[Option<SeriesRef>],
    ) -> Result<Vec<SeriesId>, StorageError> {
        let mut savepoint = false;
        let planned = self.plan_batch_in(tx, head, index, group, batch, refs, &mut savepoint);
        if savepoint {
            let sql = if planned.is_ok() {
                "RELEASE batch"
            } else {
                "ROLLBACK TO batch; RELEASE batch"
            };
            tx.execute_batch(sql).map_err(backend)?;
        }
        planned
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_batch_in(
        &self,
        tx: &mut rusqlite::Transaction<'_>,
        head: &Head,
        index: &SeriesIndex,
        group: &mut Group,
        batch: &[AppendSample],
        refs: &[Option<SeriesRef>],
        savepoint: &mut bool,
    ) -> Result<Vec<SeriesId>, StorageError> {
        let policy = self.inner.opts.chunk;
        // Resolve series ids, creating new series inside the batch's
        // savepoint so a refused batch leaves none behind.
        let mut created: HashMap<&Labels, SeriesId> = HashMap::new();
        let mut ids = Vec::with_capacity(batch.len());
        for (s, r) in batch.iter().zip(refs) {
            if s.labels.is_empty() {
                return Err(StorageError::Rejected("a sample has no labels".to_string()));
            }
            // A ref is a hint: its series must have these very labels (the
            // same shared set, usually, so the check is a pointer compare).
            let by_ref = r
                .map(|r| r.0 as SeriesId)
                .filter(|id| index.labels(*id) == Some(&s.labels));
            let id = match by_ref
                .or_else(|| index.get(&s.labels))
                .or_else(|| group.created.get(&s.labels).copied())
                .or_else(|| created.get(&s.labels).copied())
            {
                Some(id) => id,
                None => {
                    if !*savepoint {
                        tx.execute_batch("SAVEPOINT batch").map_err(backend)?;
                        *savepoint = true;
                    }
                    tx.prepare_cached("INSERT INTO series (labels) VALUES (?1)")
                        .and_then(|mut insert| insert.execute([labels_json(&s.labels)]))
                        .map_err(backend)?;
                    let id = tx.last_insert_rowid();
                    created.insert(&s.labels, id);
                    id
                }
            };
            ids.push(id);
        }

        // Plan the batch without changing the head: a series seen once
        // whose open chunk stays open is appended after the commit (that
        // cannot fail); any other touched series is worked on as a copy that
        // replaces the original after the commit.
        let mut seen: FxHashMap<SeriesId, u32> = FxHashMap::default();
        seen.reserve(batch.len());
        for &id in &ids {
            *seen.entry(id).or_default() += 1;
        }
        let mut scratch: FxHashMap<SeriesId, HeadSeries> = FxHashMap::default();
        let mut direct: Vec<(SeriesId, i64, u64)> = Vec::with_capacity(batch.len());
        let mut logged = Vec::with_capacity(batch.len());
        let mut closed = Vec::new();
        for (s, &id) in batch.iter().zip(&ids) {
            let (t, v) = (s.sample.timestamp_ms, s.sample.value.to_bits());
            let in_group = group.scratch.contains_key(&id) || group.direct.contains_key(&id);
            let current = head.series.get(&id);
            let simple = !in_group
                && seen.get(&id) == Some(&1)
                && current.is_none_or(|hs| !hs.closes_before(t, policy));
            let admission = if simple {
                current.map_or(Admission::Append, |hs| hs.admit(t, v))
            } else {
                scratch
                    .entry(id)
                    .or_insert_with(|| group.current(head, id, policy).unwrap_or_default())
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
                    return Err(StorageError::Rejected(format!(
                        "out-of-order sample for {}: timestamp {t} is not after the newest stored sample at {newest}",
                        s.labels
                    )));
                }
            }
        }
        // Accepted: it joins the group.
        for id in scratch.keys() {
            group.direct.remove(id);
        }
        group.scratch.extend(scratch);
        group
            .direct
            .extend(direct.into_iter().map(|(id, t, v)| (id, (t, v))));
        group
            .created
            .extend(created.into_iter().map(|(l, id)| (l.clone(), id)));
        group.logged.extend(logged);
        group.closed.extend(closed);
        Ok(ids)
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
        let read = self.read_selection(matchers, (mint, maxt), limit, false)?;
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
        self.read_selection(matchers, (mint, maxt), limit, summarize)
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
            SqliteStorage::read_rollups(conn, &self.inner.decoded, matched, mint, maxt)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_cache_size_is_read_with_a_default_and_a_clear_error() {
        let config = |yaml: &str| -> StorageConfig { serde_yaml_ng::from_str(yaml).unwrap() };
        let bytes =
            |yaml: &str| StorageOptions::from_config(&config(yaml)).map(|o| o.decoded_cache_bytes);
        assert_eq!(bytes("{}").unwrap(), 64 << 20);
        assert_eq!(bytes("decoded_cache_size: 0").unwrap(), 0);
        assert_eq!(
            bytes("decoded_cache_size: 1GB").unwrap(),
            crate::util::parse_bytes("1GB").unwrap()
        );
        let err = bytes("decoded_cache_size: lots").unwrap_err().to_string();
        assert!(
            err.contains("storage.decoded_cache_size") && err.contains("lots"),
            "{err}"
        );
    }

    fn sample(labels: &Labels, t: i64, v: f64) -> AppendSample {
        AppendSample {
            labels: labels.clone(),
            sample: Sample {
                timestamp_ms: t,
                value: v,
            },
        }
    }

    fn count(store: &SqliteStorage, sql: &str) -> i64 {
        lock(&store.inner.writer)
            .conn
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    /// Batches queued while the writer is busy are committed together, in
    /// one transaction and one WAL row; the refused one fails alone and
    /// leaves neither samples nor the series it would have created.
    #[test]
    fn queued_batches_share_one_commit_and_a_refused_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(
            dir.path(),
            StorageOptions {
                min_free_disk: 0,
                commit_interval: Duration::ZERO,
                ..StorageOptions::default()
            },
        )
        .unwrap();
        let old = Labels::new([("__name__", "old")]);
        store.append(&[sample(&old, 5_000, 1.0)]).unwrap();
        let rows_before = count(&store, "SELECT seq FROM sqlite_sequence WHERE name = 'wal'");

        // Hold the writer so that every batch below queues.
        let busy = lock(&store.inner.writer);
        let mut threads = Vec::new();
        for i in 0..6 {
            let store = store.clone();
            let old = old.clone();
            threads.push(std::thread::spawn(move || {
                let mine = Labels::new([("__name__", "m"), ("i", &i.to_string())]);
                let batch = if i == 3 {
                    // A new series, then a sample older than `old`'s newest.
                    vec![
                        sample(&Labels::new([("__name__", "refused_new")]), 1_000, 1.0),
                        sample(&old, 1_000, 2.0),
                    ]
                } else {
                    // The same series twice, and the same new sample of
                    // `old` from each: the first batch in the group appends
                    // it, the later ones see it as a duplicate.
                    vec![
                        sample(&mine, 10_000, 1.0),
                        sample(&mine, 11_000, 2.0),
                        sample(&old, 6_000, 3.0),
                    ]
                };
                let mut refs = vec![None; batch.len()];
                let r = store.append_with_refs(&batch, &mut refs);
                (i, r, refs)
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&store.inner.queue).len() < 6 {
            assert!(Instant::now() < deadline, "appenders did not queue");
            std::thread::yield_now();
        }
        drop(busy);
        let mut oks = 0;
        for t in threads {
            let (i, r, refs) = t.join().unwrap();
            if i == 3 {
                assert!(matches!(r, Err(StorageError::Rejected(_))), "{r:?}");
                assert!(refs.iter().all(Option::is_none));
            } else {
                r.unwrap();
                assert!(refs.iter().all(Option::is_some));
                assert_eq!(refs[0], refs[1]);
                oks += 1;
            }
        }
        assert_eq!(oks, 5);
        let rows_after = count(&store, "SELECT seq FROM sqlite_sequence WHERE name = 'wal'");
        assert!(
            rows_after - rows_before <= 2,
            "5 batches took {} commits",
            rows_after - rows_before
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM series WHERE labels LIKE '%refused_new%'"
            ),
            0
        );
        drop(store);
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        let all = store
            .select(
                &[
                    crate::model::Matcher::new("__name__", crate::model::MatchOp::Regex, ".+")
                        .unwrap(),
                ],
                0,
                i64::MAX,
            )
            .unwrap();
        let old_samples = &all.iter().find(|s| s.labels == old).unwrap().samples;
        // 5_000 and 6_000, each once.
        let times: Vec<i64> = old_samples.iter().map(|s| s.timestamp_ms).collect();
        assert_eq!(times, vec![5_000, 6_000]);
        assert_eq!(
            all.len(),
            6,
            "old + 5 accepted series, no refused_new: {all:?}"
        );
        assert!(
            all.iter()
                .filter(|s| s.labels.metric_name() == Some("m"))
                .all(|s| s.samples.len() == 2)
        );
    }

    /// A ref is a hint: one naming another series is ignored.
    #[test]
    fn a_wrong_ref_does_not_redirect_samples() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        let a = Labels::new([("__name__", "a")]);
        let b = Labels::new([("__name__", "b")]);
        let mut refs = vec![None, None];
        store
            .append_with_refs(&[sample(&a, 1_000, 1.0), sample(&b, 1_000, 2.0)], &mut refs)
            .unwrap();
        let (ra, rb) = (refs[0].unwrap(), refs[1].unwrap());
        assert_ne!(ra, rb);
        assert_eq!(
            store.find_series(&[&[(&b"__name__"[..], &b"b"[..])]])[0]
                .as_ref()
                .map(|x| x.0),
            Some(rb)
        );
        // b's sample with a's ref, and a ref nobody has.
        let mut refs = vec![Some(ra), Some(SeriesRef(999_999))];
        store
            .append_with_refs(&[sample(&b, 2_000, 3.0), sample(&a, 2_000, 4.0)], &mut refs)
            .unwrap();
        assert_eq!(refs, vec![Some(rb), Some(ra)]);
        let got = store
            .select(
                &[
                    crate::model::Matcher::new("__name__", crate::model::MatchOp::Equal, "b")
                        .unwrap(),
                ],
                0,
                i64::MAX,
            )
            .unwrap();
        assert_eq!(got[0].samples.len(), 2);
        assert_eq!(got[0].samples[1].value, 3.0);
    }
}
