//! Compaction: merges a series' closed Gorilla chunks of one UTC day into a
//! single pco chunk once the day is over — the day's data is final then
//! (older samples are refused), and whole days compress best.

use std::sync::atomic::Ordering;

use rusqlite::params;

use super::StorageError;
use super::bounds::sql_floor_div;
use super::pco_chunk::{self, Encoding};
use super::sqlite::{SqliteStorage, backend, lock};
use crate::model::Sample;

/// The compaction window.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// The time range `[from, to)` of day number `day` (saturating at the ends
/// of the `i64` range, where a whole day does not fit).
pub fn day_range(day: i64) -> (i64, i64) {
    (
        day.saturating_mul(DAY_MS),
        day.saturating_add(1).saturating_mul(DAY_MS),
    )
}

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
        // Groups are visited in (series, day) order after a cursor, so every
        // batch moves past what it read: the pass ends even when a group
        // cannot be rewritten (it is tried again next pass).
        let mut after: (i64, i64) = (i64::MIN, i64::MIN);
        let sql = format!(
            "SELECT series_id, {} AS day FROM chunks GROUP BY series_id, day
             HAVING SUM(encoding = 0) > 0 AND (COUNT(*) > 1 OR ?3) AND (day + 1) * ?1 <= ?2
                AND (series_id, day) > (?5, ?6)
             ORDER BY series_id, day LIMIT ?4",
            sql_floor_div("min_t", "?1")
        );
        loop {
            let w = lock(&self.inner.writer);
            let groups: Vec<(i64, i64)> = {
                let mut stmt = w.conn.prepare_cached(&sql).map_err(backend)?;
                let rows = stmt
                    .query_map(
                        params![DAY_MS, limit, force, GROUPS_PER_BATCH, after.0, after.1],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)?
            };
            let Some(&last) = groups.last() else {
                return Ok(removed);
            };
            after = last;
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
                    let (from, to) = day_range(day);
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::model::{Labels, MatchOp, Matcher};
    use crate::storage::chunk::ChunkEncoder;
    use crate::storage::head::ClosedChunk;
    use crate::storage::sqlite::{insert_chunks, labels_json};
    use crate::storage::{AppendSample, Appender, Querier, StorageOptions};

    /// Writes a chunk straight into the table, past every ingest check, as
    /// an older version or a damaged file could have left it.
    fn store_raw_chunk(store: &SqliteStorage, labels: &Labels, samples: &[(i64, f64)]) {
        let mut enc = ChunkEncoder::new();
        for &(t, v) in samples {
            enc.append(t, v);
        }
        let w = lock(&store.inner.writer);
        let tx = w.conn.unchecked_transaction().unwrap();
        tx.execute(
            "INSERT OR IGNORE INTO series (labels) VALUES (?1)",
            [labels_json(labels)],
        )
        .unwrap();
        let id: i64 = tx
            .query_row(
                "SELECT id FROM series WHERE labels = ?1",
                [labels_json(labels)],
                |r| r.get(0),
            )
            .unwrap();
        let chunk = ClosedChunk {
            series: id,
            min_t: samples[0].0,
            max_t: samples[samples.len() - 1].0,
            samples: samples.len(),
            data: enc.bytes().to_vec(),
        };
        insert_chunks(&tx, &[chunk], false).unwrap();
        tx.commit().unwrap();
        crate::storage::sqlite::write(&store.inner.index).insert(id, labels.clone());
    }

    /// Runs `f` on a thread and fails the test if it has not finished in 60 s
    /// (a spinning maintenance loop never finishes).
    fn finishes<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("maintenance did not finish: a loop makes no progress")
    }

    #[test]
    fn chunks_before_1970_do_not_stall_maintenance() {
        let dir = tempfile::tempdir().unwrap();
        // Rollups kept long enough to still hold 1969.
        let opts = StorageOptions {
            rollup_retention_ms: 200 * 365 * DAY_MS,
            ..StorageOptions::default()
        };
        let store = SqliteStorage::open(dir.path(), opts).unwrap();
        // -1 ms lies in day -1; truncating division put it in day 0, whose
        // range does not contain it, so the same group came back forever.
        let before = Labels::new([("__name__", "before_epoch")]);
        store_raw_chunk(&store, &before, &[(-1, 1.0)]);
        let two = Labels::new([("__name__", "two_chunks")]);
        store_raw_chunk(&store, &two, &[(-DAY_MS - 5, 1.0), (-DAY_MS + 5, 2.0)]);
        store_raw_chunk(&store, &two, &[(-DAY_MS + 10, 3.0)]);
        let now = crate::util::now_ms();
        // Compaction with force visits every day, the negative ones too.
        let s = store.clone();
        let rewritten = finishes(move || s.compact(now, true).unwrap());
        assert_eq!(rewritten, 3);
        let s = store.clone();
        let report = finishes(move || s.maintain(now).unwrap());
        // -DAY_MS - 5 lies in day -2, the other samples in day -1.
        assert_eq!(report.days_rolled_up, 3, "{report:?}");
        // Both before-1970 series were rolled up into their real days.
        let rolled = store
            .select_rollups(
                &[Matcher::new("__name__", MatchOp::Regex, ".+").unwrap()],
                i64::MIN,
                i64::MAX,
            )
            .unwrap();
        let names: Vec<_> = rolled.iter().map(|r| r.labels.to_string()).collect();
        assert_eq!(names, ["before_epoch{}", "two_chunks{}"], "{rolled:?}");
        assert_eq!(rolled[0].points[0].t, -1);
        // A second pass has nothing left to do and ends too.
        let s = store.clone();
        finishes(move || s.maintain(now).unwrap());
    }

    #[test]
    fn out_of_bounds_samples_are_refused_at_append_and_skipped_by_backfill() {
        use crate::storage::{Backfill, Series};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        let labels = Labels::new([("__name__", "m")]);
        let now = crate::util::now_ms();
        for t in [-1, now + 3_600_000] {
            let e = store
                .append(&[AppendSample {
                    labels: labels.clone(),
                    sample: crate::model::Sample {
                        timestamp_ms: t,
                        value: 1.0,
                    },
                }])
                .unwrap_err();
            assert!(matches!(e, StorageError::Rejected(_)), "{e}");
        }
        let report = store
            .backfill(&[Series {
                labels: labels.clone(),
                samples: vec![
                    crate::model::Sample {
                        timestamp_ms: -1,
                        value: 1.0,
                    },
                    crate::model::Sample {
                        timestamp_ms: 1_000,
                        value: 2.0,
                    },
                ],
            }])
            .unwrap();
        assert_eq!((report.samples_added, report.samples_out_of_bounds), (1, 1));
        assert_eq!(store.stats().backfill_out_of_bounds_total, 1);
    }
}
