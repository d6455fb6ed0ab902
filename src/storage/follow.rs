//! Following the WAL: how remote_write reads every acknowledged batch in
//! order and keeps the rows it has not delivered yet.
//!
//! Every `wal` row has a `seq` that only grows (AUTOINCREMENT), so "rows after
//! seq N" means the same thing before and after a checkpoint. A follower is a
//! row of `wal_followers` (name, seq): a checkpoint deletes only the rows every
//! follower has passed. Held rows are bounded — rows older than the retention
//! time, or beyond [`StorageOptions::wal_hold_max_bytes`] — so a destination
//! that is gone for good cannot fill the disk; rows removed that way move the
//! lagging followers forward and are added to their `dropped_samples`.
//! Replaying held rows at open is harmless: their samples are older than the
//! checkpointed head, so the head admits none of them twice.
//!
//! [`StorageOptions::wal_hold_max_bytes`]: super::StorageOptions::wal_hold_max_bytes

use rusqlite::{OptionalExtension, Transaction, params};

use super::index::SeriesId;
use super::sqlite::{backend, lock, read};
use super::wal::{self, WalSample};
use super::{SqliteStorage, StorageError};
use crate::model::Labels;

/// One appended batch as logged.
#[derive(Clone, Debug, PartialEq)]
pub struct WalRecord {
    /// Position in the log; larger is later.
    pub seq: i64,
    /// Wall-clock time of the append (milliseconds).
    pub appended_ms: i64,
    /// The batch's accepted samples, in append order.
    pub samples: Vec<WalSample>,
}

/// What a follower has not delivered yet.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WalBacklog {
    /// Rows after the position.
    pub rows: u64,
    /// Samples in those rows.
    pub samples: u64,
    /// Append time of the oldest of them.
    pub oldest_appended_ms: Option<i64>,
}

/// A follower's durable state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FollowerState {
    /// Every row up to and including this seq is delivered (or dropped).
    pub seq: i64,
    /// Samples removed by the hold bound before this follower read them.
    pub dropped_samples: u64,
}

/// How far one follower is behind the newest WAL row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FollowerLag {
    /// The follower (a remote_write destination's name).
    pub name: String,
    /// Its durable position.
    pub seq: i64,
    /// The newest seq handed out.
    pub head_seq: i64,
    /// What it has not delivered yet.
    pub backlog: WalBacklog,
    /// Samples removed by the hold bound before it read them.
    pub dropped_samples: u64,
    /// When its position last moved (ms since the epoch).
    pub updated_ms: i64,
}

/// Deletes the WAL rows no follower needs, then enforces the hold bound.
/// Returns the bytes of WAL data left. Runs inside a checkpoint's transaction.
pub(super) fn truncate(
    tx: &Transaction,
    now_ms: i64,
    retention_ms: i64,
    max_bytes: u64,
) -> rusqlite::Result<u64> {
    let floor: Option<i64> =
        tx.query_row("SELECT MIN(seq) FROM wal_followers", [], |r| r.get(0))?;
    let Some(floor) = floor else {
        tx.execute("DELETE FROM wal", [])?;
        return Ok(0);
    };
    tx.execute("DELETE FROM wal WHERE seq <= ?1", [floor])?;
    let too_old: Option<i64> = tx.query_row(
        "SELECT MAX(seq) FROM wal WHERE appended_ms < ?1",
        [now_ms.saturating_sub(retention_ms)],
        |r| r.get(0),
    )?;
    // Walk from the newest row back until the kept bytes exceed the bound.
    let mut too_big = None;
    let mut kept = 0u64;
    {
        let mut stmt = tx.prepare("SELECT seq, length(data) FROM wal ORDER BY seq DESC")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            kept += row.get::<_, i64>(1)?.max(0) as u64;
            if kept > max_bytes {
                too_big = Some(row.get::<_, i64>(0)?);
                break;
            }
        }
    }
    if let Some(cut) = too_old.max(too_big) {
        let lagging: Vec<(String, i64)> = {
            let mut stmt = tx.prepare("SELECT name, seq FROM wal_followers WHERE seq < ?1")?;
            stmt.query_map([cut], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        for (name, seq) in lagging {
            let lost: i64 = tx.query_row(
                "SELECT COALESCE(SUM(samples), 0) FROM wal WHERE seq > ?1 AND seq <= ?2",
                params![seq, cut],
                |r| r.get(0),
            )?;
            tracing::warn!(
                follower = %name,
                samples = lost,
                "remote_write backlog exceeds the local hold bound (retention or size); dropping its oldest samples"
            );
            tx.execute(
                "UPDATE wal_followers SET seq = ?2, dropped_samples = dropped_samples + ?3, updated_ms = ?4 WHERE name = ?1",
                params![name, cut, lost, now_ms],
            )?;
        }
        tx.execute("DELETE FROM wal WHERE seq <= ?1", [cut])?;
    }
    tx.query_row("SELECT COALESCE(SUM(length(data)), 0) FROM wal", [], |r| {
        r.get::<_, i64>(0).map(|b| b.max(0) as u64)
    })
}

/// The largest seq ever handed out (0 for a new store).
pub(super) fn newest_seq(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'wal'), 0)",
        [],
        |r| r.get(0),
    )
}

impl SqliteStorage {
    /// Watches the newest WAL seq: it changes after every committed append.
    pub fn wal_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.wal_seq.subscribe()
    }

    /// Registers follower `name` (a new one starts at the newest row: it gets
    /// what is appended from now on) and returns its durable state.
    pub fn follow_wal(&self, name: &str) -> Result<FollowerState, StorageError> {
        let w = lock(&self.inner.writer);
        let newest = newest_seq(&w.conn).map_err(backend)?;
        w.conn
            .execute(
                "INSERT OR IGNORE INTO wal_followers (name, seq, updated_ms) VALUES (?1, ?2, ?3)",
                params![name, newest, crate::util::now_ms()],
            )
            .map_err(backend)?;
        follower_state(&w.conn, name)
    }

    /// Records that follower `name` delivered every row up to `seq` (it never
    /// moves backwards) and returns its state, which shows rows the hold
    /// bound dropped meanwhile.
    pub fn advance_follower(&self, name: &str, seq: i64) -> Result<FollowerState, StorageError> {
        let w = lock(&self.inner.writer);
        w.conn
            .execute(
                "UPDATE wal_followers SET seq = MAX(seq, ?2), updated_ms = ?3 WHERE name = ?1",
                params![name, seq, crate::util::now_ms()],
            )
            .map_err(backend)?;
        follower_state(&w.conn, name)
    }

    /// Forgets every follower not in `names` (a remote removed from the
    /// config must not hold the WAL).
    pub fn retain_followers(&self, names: &[String]) -> Result<(), StorageError> {
        let w = lock(&self.inner.writer);
        let existing: Vec<String> = {
            let mut stmt = w
                .conn
                .prepare("SELECT name FROM wal_followers")
                .map_err(backend)?;
            stmt.query_map([], |r| r.get(0))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?
        };
        for name in existing.iter().filter(|n| !names.contains(n)) {
            tracing::info!(follower = %name, "remote_write destination no longer configured; releasing its WAL hold");
            w.conn
                .execute("DELETE FROM wal_followers WHERE name = ?1", [name])
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Rows after `after`, oldest first, stopping once `max_samples` are
    /// collected (at least one row when any exists). Unreadable rows are
    /// returned empty so a follower can pass them.
    pub fn read_wal(&self, after: i64, max_samples: usize) -> Result<Vec<WalRecord>, StorageError> {
        let reader = self.reader()?;
        let mut stmt = reader
            .conn()
            .prepare_cached(
                "SELECT seq, appended_ms, data FROM wal WHERE seq > ?1 ORDER BY seq LIMIT 4096",
            )
            .map_err(backend)?;
        let mut rows = stmt.query([after]).map_err(backend)?;
        let mut out = Vec::new();
        let mut total = 0usize;
        while let Some(row) = rows.next().map_err(backend)? {
            let seq: i64 = row.get(0).map_err(backend)?;
            let data: Vec<u8> = row.get(2).map_err(backend)?;
            let samples = wal::decode(&data).unwrap_or_else(|e| {
                tracing::error!(seq, error = %e, "unreadable WAL record; followers skip it");
                Vec::new()
            });
            total += samples.len();
            out.push(WalRecord {
                seq,
                appended_ms: row.get(1).map_err(backend)?,
                samples,
            });
            if total >= max_samples {
                break;
            }
        }
        Ok(out)
    }

    /// Every follower's position against the newest row, by name. Reads
    /// SQLite: call off the async threads.
    pub fn follower_lags(&self) -> Result<Vec<FollowerLag>, StorageError> {
        let head_seq = *self.inner.wal_seq.borrow();
        let rows: Vec<(String, i64, i64, i64)> = {
            let reader = self.reader()?;
            let mut stmt = reader
                .conn()
                .prepare(
                    "SELECT name, seq, dropped_samples, updated_ms FROM wal_followers ORDER BY name",
                )
                .map_err(backend)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .and_then(|rows| rows.collect())
                .map_err(backend)?
        };
        rows.into_iter()
            .map(|(name, seq, dropped, updated_ms)| {
                Ok(FollowerLag {
                    backlog: self.wal_backlog(seq)?,
                    name,
                    seq,
                    head_seq: head_seq.max(seq),
                    dropped_samples: dropped.max(0) as u64,
                    updated_ms,
                })
            })
            .collect()
    }

    /// What is left after `after`.
    pub fn wal_backlog(&self, after: i64) -> Result<WalBacklog, StorageError> {
        let reader = self.reader()?;
        reader
            .conn()
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(samples), 0), MIN(appended_ms) FROM wal WHERE seq > ?1",
                [after],
                |r| {
                    Ok(WalBacklog {
                        rows: r.get::<_, i64>(0)?.max(0) as u64,
                        samples: r.get::<_, i64>(1)?.max(0) as u64,
                        oldest_appended_ms: r.get(2)?,
                    })
                },
            )
            .map_err(backend)
    }

    /// The labels of a series, `None` once retention removed it. A series
    /// whose WAL row a follower read is committed, so it is looked up in the
    /// table when the in-memory index has not caught up yet.
    pub fn series_labels(&self, id: SeriesId) -> Result<Option<Labels>, StorageError> {
        if let Some(l) = read(&self.inner.index).labels(id) {
            return Ok(Some(l.clone()));
        }
        let reader = self.reader()?;
        let text: Option<String> = reader
            .conn()
            .query_row("SELECT labels FROM series WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?;
        text.map(|t| serde_json::from_str(&t).map_err(backend))
            .transpose()
    }
}

fn follower_state(conn: &rusqlite::Connection, name: &str) -> Result<FollowerState, StorageError> {
    conn.query_row(
        "SELECT seq, dropped_samples FROM wal_followers WHERE name = ?1",
        [name],
        |r| {
            Ok(FollowerState {
                seq: r.get(0)?,
                dropped_samples: r.get::<_, i64>(1)?.max(0) as u64,
            })
        },
    )
    .map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;
    use crate::storage::{AppendSample, Appender, Querier, StorageOptions};

    fn opts(max_bytes: u64) -> StorageOptions {
        StorageOptions {
            min_free_disk: 0,
            wal_hold_max_bytes: max_bytes,
            ..StorageOptions::default()
        }
    }

    fn append(s: &SqliteStorage, t: i64) {
        let labels = Labels::new([("__name__", "up"), ("job", "a")]);
        s.append(&[AppendSample {
            labels,
            sample: Sample {
                timestamp_ms: t,
                value: t as f64,
            },
        }])
        .unwrap();
    }

    #[test]
    fn checkpoints_keep_what_followers_have_not_passed_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStorage::open(dir.path(), opts(1 << 30)).unwrap();
        assert_eq!(s.follow_wal("vm").unwrap().seq, 0);
        for t in 1..=3 {
            append(&s, t * 1000);
        }
        s.checkpoint().unwrap();
        let rows = s.read_wal(0, 100).unwrap();
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let id = rows[0].samples[0].series;
        assert_eq!(s.series_labels(id).unwrap().unwrap().get("job"), Some("a"));
        s.advance_follower("vm", 2).unwrap();
        s.checkpoint().unwrap();
        assert_eq!(s.wal_backlog(2).unwrap().samples, 1);
        drop(s);

        // Reopen: the position and the held row survive, and replaying the
        // held row adds no sample twice.
        let s = SqliteStorage::open(dir.path(), opts(1 << 30)).unwrap();
        assert_eq!(s.follow_wal("vm").unwrap().seq, 2);
        assert_eq!(s.read_wal(2, 100).unwrap()[0].samples[0].t, 3000);
        let got = s.select(&[], 0, i64::MAX).unwrap();
        assert_eq!(got[0].samples.len(), 3);
        // A removed follower releases the rows; seqs keep growing.
        s.retain_followers(&[]).unwrap();
        s.checkpoint().unwrap();
        assert!(s.read_wal(0, 100).unwrap().is_empty());
        append(&s, 4000);
        assert_eq!(s.read_wal(0, 100).unwrap()[0].seq, 4);
        assert_eq!(*s.wal_watch().borrow(), 4);
    }

    #[test]
    fn the_hold_bound_drops_the_oldest_rows_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        // Each record here takes 12 bytes: room for one.
        let s = SqliteStorage::open(dir.path(), opts(20)).unwrap();
        s.follow_wal("dead").unwrap();
        for t in 1..=5 {
            append(&s, t * 1000);
        }
        s.checkpoint().unwrap();
        let left = s.read_wal(0, 100).unwrap();
        assert_eq!(left.iter().map(|r| r.seq).collect::<Vec<_>>(), [5]);
        let state = s.advance_follower("dead", 0).unwrap();
        assert_eq!(
            state,
            FollowerState {
                seq: 4,
                dropped_samples: 4
            }
        );
    }
}
