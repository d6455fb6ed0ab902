//! Compaction: merges a series' closed Gorilla chunks of one UTC day into a
//! single pco chunk once the day is over — the day's data is final then
//! (older samples are refused), and whole days compress best.

use std::sync::atomic::Ordering;

use rusqlite::params;

use super::StorageError;
use super::pco_chunk::{self, Encoding};
use super::sqlite::{SqliteStorage, backend, lock};
use crate::model::Sample;

/// The compaction window.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// Days merged per transaction, so appends wait at most for one batch.
const GROUPS_PER_BATCH: i64 = 200;

impl SqliteStorage {
    /// Compacts every day that ended at least 2 hours before `now_ms` (with
    /// `force`, every day including the current one). Returns the number of
    /// chunks rewritten.
    pub fn compact(&self, now_ms: i64, force: bool) -> Result<usize, StorageError> {
        let limit = if force {
            i64::MAX
        } else {
            now_ms.saturating_sub(2 * 3600 * 1000)
        };
        let mut removed = 0usize;
        loop {
            let w = lock(&self.inner.writer);
            let groups: Vec<(i64, i64)> = {
                let mut stmt = w
                    .conn
                    .prepare(
                        "SELECT series_id, min_t / ?1 AS day FROM chunks GROUP BY series_id, day
                         HAVING SUM(encoding = 0) > 0 AND (COUNT(*) > 1 OR ?3) AND (day + 1) * ?1 <= ?2 LIMIT ?4",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![DAY_MS, limit, force, GROUPS_PER_BATCH], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)?
            };
            if groups.is_empty() {
                return Ok(removed);
            }
            let tx = w.conn.unchecked_transaction().map_err(backend)?;
            {
                let mut read = tx
                    .prepare_cached(
                        "SELECT data, encoding FROM chunks WHERE series_id = ?1 AND min_t >= ?2 AND min_t < ?3 ORDER BY min_t",
                    )
                    .map_err(backend)?;
                let mut delete = tx
                    .prepare_cached(
                        "DELETE FROM chunks WHERE series_id = ?1 AND min_t >= ?2 AND min_t < ?3",
                    )
                    .map_err(backend)?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO chunks (series_id, min_t, max_t, samples, data, encoding) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(backend)?;
                for (series, day) in groups {
                    let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
                    let mut samples: Vec<Sample> = Vec::new();
                    let mut count = 0usize;
                    let mut rows = read.query(params![series, from, to]).map_err(backend)?;
                    while let Some(row) = rows.next().map_err(backend)? {
                        let data: Vec<u8> = row.get(0).map_err(backend)?;
                        let enc =
                            Encoding::from_code(row.get(1).map_err(backend)?).map_err(backend)?;
                        pco_chunk::decode_any(enc, &data, i64::MIN, i64::MAX, &mut samples)
                            .map_err(backend)?;
                        count += 1;
                    }
                    drop(rows);
                    super::sqlite::normalize(&mut samples);
                    let (Some(first), Some(last)) =
                        (samples.first().copied(), samples.last().copied())
                    else {
                        continue;
                    };
                    let (encoding, data) = pco_chunk::encode(&samples).map_err(backend)?;
                    delete.execute(params![series, from, to]).map_err(backend)?;
                    insert
                        .execute(params![
                            series,
                            first.timestamp_ms,
                            last.timestamp_ms,
                            samples.len() as i64,
                            data,
                            encoding as i64
                        ])
                        .map_err(backend)?;
                    removed += count;
                    self.inner
                        .counters
                        .chunks
                        .fetch_sub(count as u64 - 1, Ordering::Relaxed);
                }
            }
            tx.commit().map_err(backend)?;
        }
    }
}
