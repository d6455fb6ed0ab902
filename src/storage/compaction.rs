//! Compaction, in two tiers. A series' closed Gorilla chunks of one block
//! (the chunk policy's window, 2 h by default) are merged into one pco chunk
//! once the block has ended [`BLOCK_GRACE_MS`] ago, so only the newest hours
//! stay in the appendable encoding; once a UTC day has ended 2 hours ago its
//! blocks are merged into one day chunk, which compresses best. Blocks and
//! days are final by then: appends refuse older samples, and what a backfill
//! or an out-of-order write adds later is a new Gorilla chunk that the next
//! pass merges in.

use std::sync::atomic::Ordering;

use rusqlite::params;

use super::StorageError;
use super::chunk_ids::{self, Lifetime};
use super::index::SeriesId;
use super::page_pack::{self, RightEdge};
use super::pco_chunk::{self, Encoding};
use super::sqlite::{SqliteStorage, backend, lock};
use crate::model::Sample;

/// The compaction window.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// How long after a block ends its chunks are compacted: longer than
/// `storage.out_of_order_time_window`'s default (10 minutes) and a scrape
/// interval, so late samples rarely make a block be rewritten twice.
pub const BLOCK_GRACE_MS: i64 = 15 * 60 * 1000;

/// How long after a UTC day ends its blocks are merged into one chunk.
pub const DAY_GRACE_MS: i64 = 2 * 3600 * 1000;

/// The time range `[from, to)` of day number `day` (saturating at the ends
/// of the `i64` range, where a whole day does not fit).
pub fn day_range(day: i64) -> (i64, i64) {
    group_range(day, DAY_MS)
}

/// The time range `[from, to)` of group number `n` of `size` milliseconds.
fn group_range(n: i64, size: i64) -> (i64, i64) {
    (
        n.saturating_mul(size),
        n.saturating_add(1).saturating_mul(size),
    )
}

/// Groups merged per transaction, so appends wait at most for one batch.
const GROUPS_PER_BATCH: i64 = 200;

/// Which chunks of a (series, group) a pass merges.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// Groups holding a Gorilla chunk (closed head chunks, backfills),
    /// except those of days that ended by `days_merged_by`: the day merge
    /// of the same pass takes their chunks straight into the day's chunk,
    /// so they are not encoded twice.
    Block { days_merged_by: i64 },
    /// Groups of more than one chunk, or a Gorilla chunk.
    Day,
}

/// What one compaction call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Chunks read and replaced by block compaction.
    pub block_chunks: usize,
    /// Chunks read and replaced by the daily merge.
    pub day_chunks: usize,
}

impl SqliteStorage {
    /// The block size: the chunk policy's window when whole windows tile a
    /// day (the default 2 h does), else a day (then only days are merged).
    pub fn block_ms(&self) -> i64 {
        let w = self.inner.opts.chunk.window_ms;
        if w > 0 && DAY_MS % w == 0 { w } else { DAY_MS }
    }

    /// Compacts every block that ended at least [`BLOCK_GRACE_MS`] before
    /// `now_ms` and merges every day that ended at least [`DAY_GRACE_MS`]
    /// before it (with `force`, every day including the current one, into
    /// one chunk per series). Returns the number of chunks rewritten.
    pub fn compact(&self, now_ms: i64, force: bool) -> Result<usize, StorageError> {
        let r = self.compact_tiers(now_ms, force)?;
        Ok(r.block_chunks + r.day_chunks)
    }

    /// [`compact`](Self::compact), reporting each tier.
    pub fn compact_tiers(
        &self,
        now_ms: i64,
        force: bool,
    ) -> Result<CompactionReport, StorageError> {
        let mut report = CompactionReport::default();
        if force {
            report.day_chunks = self.merge_groups(DAY_MS, i64::MAX, Tier::Day)?;
            return Ok(report);
        }
        let days_merged_by = now_ms.saturating_sub(DAY_GRACE_MS);
        report.block_chunks = self.merge_groups(
            self.block_ms(),
            now_ms.saturating_sub(BLOCK_GRACE_MS),
            Tier::Block { days_merged_by },
        )?;
        report.day_chunks = self.merge_groups(DAY_MS, days_merged_by, Tier::Day)?;
        Ok(report)
    }

    /// Rewrites, per series, the chunks whose `min_t` lies in one group of
    /// `size` ms that ended by `limit` as one pco chunk, for the groups
    /// `tier` selects. Each batch of groups is one transaction, so a crash
    /// leaves every group either as it was or merged.
    fn merge_groups(&self, size: i64, limit: i64, tier: Tier) -> Result<usize, StorageError> {
        let mut removed = 0usize;
        // Groups are found by walking the (series_id, min_t) index from a
        // cursor, so each batch reads only the rows after the previous one
        // (a GROUP BY over the whole table per batch made a pass quadratic
        // in the number of chunks), and the pass ends even when a group
        // cannot be rewritten (it is tried again next pass).
        let mut scan: (i64, i64) = (i64::MIN, i64::MIN);
        loop {
            let mut w = lock(&self.inner.writer);
            let (groups, done) = next_groups(&w.conn, size, limit, tier, &mut scan, SCAN_ROWS)?;
            if groups.is_empty() {
                if done {
                    return Ok(removed);
                }
                // Nothing to merge in this read: let appends in before the next.
                continue;
            }
            let mut edge = w.chunk_edge.take();
            let tx = w.conn.unchecked_transaction().map_err(backend)?;
            {
                let mut read = tx
                    .prepare_cached(
                        "SELECT data, encoding, samples FROM chunks WHERE series_id = ?1 AND min_t >= ?2 AND min_t < ?3 ORDER BY min_t",
                    )
                    .map_err(backend)?;
                let mut delete = tx
                    .prepare_cached(
                        "DELETE FROM chunks WHERE series_id = ?1 AND min_t >= ?2 AND min_t < ?3",
                    )
                    .map_err(backend)?;
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO chunks (id, series_id, min_t, max_t, samples, data, encoding) VALUES ({}, ?1, ?2, ?3, ?4, ?5, ?6)",
                        chunk_ids::next_id_sql(7, 8)
                    ))
                    .map_err(backend)?;
                let (ids_from, ids_to) = Lifetime::Compacted.ids();
                let mut write = |m: &Merged| {
                    insert
                        .execute(params![
                            m.series, m.min_t, m.max_t, m.samples, m.data, m.encoding, ids_from,
                            ids_to
                        ])
                        .map(drop)
                        .map_err(backend)
                };
                // Appended in the order that fills the table's last pages,
                // a few MiB at a time.
                let mut merged: Vec<Merged> = Vec::new();
                let mut held = 0usize;
                let mut flush = |merged: &mut Vec<Merged>| {
                    RightEdge::insert_packed(
                        &mut edge,
                        &tx,
                        merged,
                        |m, page_size| m.leaf_bytes(page_size, ids_from),
                        &mut write,
                    )?;
                    merged.clear();
                    Ok::<(), StorageError>(())
                };
                for (series, group) in groups {
                    let (from, to) = group_range(group, size);
                    let mut samples: Vec<Sample> = Vec::new();
                    let (mut count, mut stored) = (0usize, 0u64);
                    let mut rows = read.query(params![series, from, to]).map_err(backend)?;
                    while let Some(row) = rows.next().map_err(backend)? {
                        let data: Vec<u8> = row.get(0).map_err(backend)?;
                        let enc =
                            Encoding::from_code(row.get(1).map_err(backend)?).map_err(backend)?;
                        pco_chunk::decode_any(enc, &data, i64::MIN, i64::MAX, &mut samples)
                            .map_err(backend)?;
                        stored += row.get::<_, i64>(2).map_err(backend)?.max(0) as u64;
                        count += 1;
                    }
                    drop(rows);
                    // Overlapping chunks (backfills) come back in time order,
                    // a repeated timestamp once (the earlier chunk's sample).
                    super::sqlite::normalize(&mut samples);
                    let (Some(first), Some(last)) =
                        (samples.first().copied(), samples.last().copied())
                    else {
                        continue;
                    };
                    let (encoding, data) = pco_chunk::encode(&samples).map_err(backend)?;
                    delete.execute(params![series, from, to]).map_err(backend)?;
                    held += data.len();
                    merged.push(Merged {
                        series,
                        min_t: first.timestamp_ms,
                        max_t: last.timestamp_ms,
                        samples: samples.len() as i64,
                        encoding: encoding as i64,
                        data,
                    });
                    removed += count;
                    let c = &self.inner.counters;
                    c.chunks.fetch_sub(count as u64 - 1, Ordering::Relaxed);
                    c.chunk_samples.fetch_sub(
                        stored.saturating_sub(samples.len() as u64),
                        Ordering::Relaxed,
                    );
                    if held >= page_pack::HELD_BYTES {
                        flush(&mut merged)?;
                        held = 0;
                    }
                }
                flush(&mut merged)?;
            }
            tx.commit().map_err(backend)?;
            w.chunk_edge = edge;
        }
    }
}

/// A group's merged chunk, waiting to be inserted.
struct Merged {
    series: SeriesId,
    min_t: i64,
    max_t: i64,
    samples: i64,
    encoding: i64,
    data: Vec<u8>,
}

impl Merged {
    /// Bytes its row takes on a leaf page of `chunks` (columns in table
    /// order after the id).
    fn leaf_bytes(&self, page_size: usize, rowid: i64) -> usize {
        let ints = [
            self.series,
            self.min_t,
            self.max_t,
            self.samples,
            self.encoding,
        ];
        page_pack::rowid_row_bytes(page_size, rowid, &ints, self.data.len())
    }
}

/// Chunk rows read per index step while looking for groups (here and in
/// the rollup pass).
pub(super) const SCAN_ROWS: i64 = 8192;

/// One chunk row as [`walk_index`] reads it.
#[derive(Clone, Copy)]
pub(super) struct IndexRow {
    series: SeriesId,
    pub min_t: i64,
    /// Newest sample time.
    pub max_t: i64,
    /// Sample count.
    pub samples: i64,
    /// Still a Gorilla chunk (not compacted).
    pub gorilla: bool,
}

/// Walks the chunks' `(series_id, min_t)` index from `scan` in one read of
/// at most `scan_rows` rows, and offers `pick` each (series, group of
/// `size` ms) with its rows, until `max` groups were picked; `scan` moves
/// past every group offered. A group cut off by the row limit is read again
/// from its start next call, unless it alone fills the read: then it is
/// offered with `whole_read` set (its rows may be incomplete). Returns the
/// picked values, and `true` once the read reached the end of the table.
/// One read per call, so a caller holds the writer for one read at a time.
pub(super) fn walk_index<T>(
    conn: &rusqlite::Connection,
    scan: &mut (SeriesId, i64),
    scan_rows: i64,
    size: i64,
    max: i64,
    mut pick: impl FnMut(SeriesId, i64, &[IndexRow], bool) -> Result<Option<T>, StorageError>,
) -> Result<(Vec<T>, bool), StorageError> {
    let rows: Vec<IndexRow> = conn
        .prepare_cached(
            "SELECT series_id, min_t, max_t, samples, encoding = 0 FROM chunks
             WHERE (series_id, min_t) >= (?1, ?2) ORDER BY series_id, min_t LIMIT ?3",
        )
        .map_err(backend)?
        .query_map(params![scan.0, scan.1, scan_rows], |r| {
            Ok(IndexRow {
                series: r.get(0)?,
                min_t: r.get(1)?,
                max_t: r.get(2)?,
                samples: r.get(3)?,
                gorilla: r.get(4)?,
            })
        })
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    let full = rows.len() as i64 == scan_rows;
    let mut picked = Vec::new();
    let mut i = 0;
    while i < rows.len() && (picked.len() as i64) < max {
        let series = rows[i].series;
        let group = rows[i].min_t.div_euclid(size);
        let j = i + rows[i..]
            .iter()
            .take_while(|r| r.series == series && r.min_t.div_euclid(size) == group)
            .count();
        let cut = j == rows.len() && full;
        if cut && i > 0 {
            break;
        }
        picked.extend(pick(series, group, &rows[i..j], cut)?);
        let (_, to) = group_range(group, size);
        *scan = if to == i64::MAX {
            (series.saturating_add(1), i64::MIN)
        } else {
            (series, to)
        };
        i = j;
    }
    Ok((picked, !full && i == rows.len()))
}

/// The next groups (series, group number) to merge, at most
/// [`GROUPS_PER_BATCH`], from one [`walk_index`] read. A group is merged
/// when it ended by `limit` and, per `tier`, holds a Gorilla chunk (or, for
/// days, more than one chunk); a group filling a whole read counts as read.
fn next_groups(
    conn: &rusqlite::Connection,
    size: i64,
    limit: i64,
    tier: Tier,
    scan: &mut (i64, i64),
    scan_rows: i64,
) -> Result<(Vec<(i64, i64)>, bool), StorageError> {
    walk_index(
        conn,
        scan,
        scan_rows,
        size,
        GROUPS_PER_BATCH,
        |series, group, rows, _| {
            let gorilla = rows.iter().any(|r| r.gorilla);
            let ended = group.saturating_add(1).saturating_mul(size) <= limit;
            let wanted = match tier {
                Tier::Block { days_merged_by } => {
                    let day_end = group_range(group, size)
                        .0
                        .div_euclid(DAY_MS)
                        .saturating_add(1);
                    gorilla && day_end.saturating_mul(DAY_MS) > days_merged_by
                }
                Tier::Day => gorilla || rows.len() > 1,
            };
            Ok((ended && wanted).then_some((series, group)))
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::model::Sample;
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
        let c = &store.inner.counters;
        c.chunks.fetch_add(1, Ordering::Relaxed);
        c.chunk_samples
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        crate::storage::sqlite::write(&store.inner.index).insert(id, labels.clone());
    }

    #[test]
    fn groups_are_found_by_walking_the_index_across_read_limits() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        // Series a: block 0 with three Gorilla chunks, block 1 with one;
        // series b: block 0 with one chunk, block 5 with two.
        let a = Labels::new([("__name__", "a")]);
        let b = Labels::new([("__name__", "b")]);
        for t in [0, 10, 20, 100] {
            store_raw_chunk(&store, &a, &[(t, 1.0), (t + 5, 2.0)]);
        }
        for t in [0, 500, 510] {
            store_raw_chunk(&store, &b, &[(t, 1.0), (t + 5, 2.0)]);
        }
        let w = lock(&store.inner.writer);
        let ids: Vec<i64> = ["a", "b"]
            .iter()
            .map(|n| {
                w.conn
                    .query_row(
                        "SELECT id FROM series WHERE labels = ?1",
                        [format!("{{\"__name__\":\"{n}\"}}")],
                        |r| r.get(0),
                    )
                    .unwrap()
            })
            .collect();
        let (ia, ib) = (ids[0], ids[1]);
        // Every read limit, down to one row (a group cut by the limit is
        // read again; a group filling a whole read counts as it is),
        // finds the same groups in (series, group) order.
        for rows in [1, 2, 3, 4, 100] {
            for (tier, limit, want) in [
                (
                    Tier::Block {
                        days_merged_by: i64::MIN,
                    },
                    i64::MAX,
                    vec![(ia, 0), (ia, 1), (ib, 0), (ib, 5)],
                ),
                (
                    Tier::Block {
                        days_merged_by: i64::MIN,
                    },
                    200,
                    vec![(ia, 0), (ia, 1), (ib, 0)],
                ),
                (
                    Tier::Day,
                    i64::MAX,
                    vec![(ia, 0), (ia, 1), (ib, 0), (ib, 5)],
                ),
            ] {
                let mut scan = (i64::MIN, i64::MIN);
                let mut found = Vec::new();
                for reads in 0.. {
                    assert!(reads < 100, "the scan does not move on");
                    let (batch, done) =
                        next_groups(&w.conn, 100, limit, tier, &mut scan, rows).unwrap();
                    found.extend(batch);
                    if done {
                        break;
                    }
                }
                assert_eq!(found, want, "rows {rows}, limit {limit}");
            }
        }
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

    /// Every row of `chunks`: (min_t, max_t, samples, encoding), by min_t.
    fn rows(store: &SqliteStorage) -> Vec<(i64, i64, i64, i64)> {
        let w = lock(&store.inner.writer);
        let mut stmt = w
            .conn
            .prepare("SELECT min_t, max_t, samples, encoding FROM chunks ORDER BY min_t")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Every sample of the store, as (time, value bits).
    fn all(store: &SqliteStorage) -> Vec<(i64, u64)> {
        let got = store
            .select(
                &[Matcher::new("__name__", MatchOp::Equal, "m").unwrap()],
                i64::MIN,
                i64::MAX,
            )
            .unwrap();
        assert!(got.len() <= 1);
        got.iter()
            .flat_map(|s| {
                s.samples
                    .iter()
                    .map(|x| (x.timestamp_ms, x.value.to_bits()))
            })
            .collect()
    }

    /// The chunk counters agree with the table.
    fn counters_match(store: &SqliteStorage) {
        let (n, samples): (i64, i64) = lock(&store.inner.writer)
            .conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(samples), 0) FROM chunks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let stats = store.stats();
        assert_eq!(stats.chunks, n as u64);
        assert_eq!(stats.samples, samples as u64 + stats.head_samples);
    }

    fn append_every(store: &SqliteStorage, from: i64, to: i64, step: i64) {
        let l = Labels::new([("__name__", "m")]);
        let batch: Vec<AppendSample> = (from..to)
            .step_by(step as usize)
            .map(|t| AppendSample {
                labels: l.clone(),
                sample: Sample {
                    timestamp_ms: t,
                    value: (t as f64 / 7_000.0).sqrt(),
                },
            })
            .collect();
        for b in batch.chunks(500) {
            store.append(b).unwrap();
        }
    }

    /// A batch whose merged chunks hold more than `page_pack::HELD_BYTES`
    /// is written a few MiB at a time, and every sample still comes back
    /// exactly once, in pco chunks.
    #[test]
    fn a_batch_beyond_the_held_bytes_is_written_in_parts_losing_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        let start = 20_000 * DAY_MS;
        // 96 series of random floats at 1 s for a 2 h block: ~7 bytes a
        // sample compacted, ~5 MiB in one batch.
        let names: Vec<Labels> = (0..96)
            .map(|i| Labels::new([("__name__", "m"), ("i", i.to_string().as_str())]))
            .collect();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut want: Vec<Vec<(i64, u64)>> = vec![Vec::new(); names.len()];
        // The last round, at the block's end, closes the block's chunks.
        for t in (start..=start + 7_200_000).step_by(1_000) {
            let batch: Vec<AppendSample> = names
                .iter()
                .zip(&mut want)
                .map(|(l, w)| {
                    let value = (crate::util::xorshift(&mut x) >> 11) as f64 / (1u64 << 53) as f64;
                    w.push((t, value.to_bits()));
                    AppendSample {
                        labels: l.clone(),
                        sample: Sample {
                            timestamp_ms: t,
                            value,
                        },
                    }
                })
                .collect();
            store.append(&batch).unwrap();
        }
        let report = store
            .compact_tiers(start + 7_200_000 + BLOCK_GRACE_MS, false)
            .unwrap();
        assert!(report.block_chunks >= names.len(), "{report:?}");
        let (bytes, gorilla): (i64, i64) = lock(&store.inner.writer)
            .conn
            .query_row(
                "SELECT SUM(length(data)), SUM(encoding = 0) FROM chunks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(bytes as usize > page_pack::HELD_BYTES, "{bytes} bytes");
        assert_eq!(gorilla, 0);
        let got = store
            .select(
                &[Matcher::new("__name__", MatchOp::Equal, "m").unwrap()],
                i64::MIN,
                i64::MAX,
            )
            .unwrap();
        assert_eq!(got.len(), names.len());
        for s in &got {
            let i: usize = s.labels.get("i").unwrap().parse().unwrap();
            let samples: Vec<(i64, u64)> = s
                .samples
                .iter()
                .map(|x| (x.timestamp_ms, x.value.to_bits()))
                .collect();
            assert_eq!(samples, want[i], "series {i}");
        }
        counters_match(&store);
    }

    /// A sender replays a day while maintenance compacts behind it (what
    /// a remote_write client catching up does): compacted chunks must not
    /// share pages with the Gorilla chunks compaction deletes next, or
    /// those pages stay partly empty (SQLite does not merge them).
    #[test]
    fn compacted_chunks_fill_their_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        let start = 20_000 * DAY_MS + 20 * 3_600_000;
        let step = 30_000;
        let names: Vec<Labels> = (0..150)
            .map(|i| Labels::new([("__name__", format!("m{i}").as_str())]))
            .collect();
        let mut t = start;
        let end = start + DAY_MS;
        while t < end {
            let batch: Vec<AppendSample> = names
                .iter()
                .enumerate()
                .map(|(i, l)| AppendSample {
                    labels: l.clone(),
                    sample: Sample {
                        timestamp_ms: t,
                        value: ((t / step) * (i as i64 + 1) % 1_000) as f64,
                    },
                })
                .collect();
            store.append(&batch).unwrap();
            t += step;
            // A pass every 3 simulated hours at a clock far ahead.
            if (t - start) % (3 * 3_600_000) == 0 {
                store.compact_tiers(end + DAY_GRACE_MS, false).unwrap();
            }
        }
        store.maintain(end + DAY_GRACE_MS).unwrap();
        let w = lock(&store.inner.writer);
        let (unused, size): (i64, i64) = w
            .conn
            .query_row(
                "SELECT SUM(unused), SUM(pgsize) FROM dbstat WHERE name = 'chunks' AND pagetype = 'leaf'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let empty = unused as f64 / size as f64;
        // 27 % when both kinds drew ids from one sequence; what is left is
        // mostly the last, partly filled page of each kind.
        assert!(
            empty < 0.15,
            "{:.1} % of the chunk pages ({size} bytes) is empty",
            empty * 100.0
        );
    }

    #[test]
    fn finished_blocks_become_pco_chunks_and_days_merge_them() {
        use crate::storage::{Backfill, Series};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        let block = store.block_ms();
        assert_eq!(block, 2 * 3600 * 1000);
        let day0 = 20_000 * DAY_MS;
        // 5 s steps: block 0 fills three Gorilla chunks of 480; block 1 one
        // closed chunk and the rest in the head.
        append_every(&store, day0, day0 + block + 50 * 60_000, 5_000);
        let gorilla = rows(&store);
        assert_eq!(gorilla.len(), 4, "{gorilla:?}");
        assert!(gorilla.iter().all(|r| r.3 == 0));
        let before = all(&store);
        // Inside the grace: nothing moves.
        let r = store
            .compact_tiers(day0 + block + BLOCK_GRACE_MS - 1, false)
            .unwrap();
        assert_eq!(r, CompactionReport::default());
        // Block 0 ended 15 minutes ago: its three chunks become one pco
        // chunk; block 1 is still open and keeps its Gorilla chunk.
        let r = store
            .compact_tiers(day0 + block + BLOCK_GRACE_MS, false)
            .unwrap();
        assert_eq!((r.block_chunks, r.day_chunks), (3, 0));
        let got = rows(&store);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0..=got[0].1, day0..=day0 + block - 5_000);
        assert_eq!(got[0].2, 1440);
        assert_ne!(got[0].3, 0, "block 0 is pco");
        assert_eq!(got[1], gorilla[3], "the open block is untouched");
        assert_eq!(all(&store), before, "samples identical after compaction");
        counters_match(&store);
        // A second pass has nothing to do.
        assert_eq!(
            store.compact(day0 + block + BLOCK_GRACE_MS, false).unwrap(),
            0
        );

        // A backfill into the compacted block: 100 new samples between the
        // existing ones and 10 the block already holds (skipped).
        let l = Labels::new([("__name__", "m")]);
        let samples: Vec<Sample> = (0..100)
            .map(|k| Sample {
                timestamp_ms: day0 + 2_500 + k * 5_000,
                value: k as f64 + 0.25,
            })
            .chain((0..10).map(|k| Sample {
                timestamp_ms: day0 + k * 5_000,
                value: -1.0,
            }))
            .collect();
        let report = store
            .backfill(&[Series {
                labels: l.clone(),
                samples,
            }])
            .unwrap();
        assert_eq!((report.samples_added, report.samples_existing), (100, 10));
        // And a chunk overlapping the block's last sample, as a damaged or
        // older store could hold: the block's own sample wins, as in reads.
        store_raw_chunk(&store, &l, &[(day0 + block - 5_000, 999.0)]);
        let with_backfill = all(&store);
        assert_eq!(with_backfill.len(), before.len() + 100);
        assert_eq!(rows(&store).len(), 4);
        let r = store
            .compact_tiers(day0 + block + BLOCK_GRACE_MS, false)
            .unwrap();
        assert_eq!(r.block_chunks, 3, "block chunk, backfill and overlap merge");
        let got = rows(&store);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].2, 1540);
        assert_eq!(all(&store), with_backfill);
        counters_match(&store);

        // The rest of the day at 60 s, and 10 minutes of the next: once the
        // day has ended 2 h ago its blocks are merged into one chunk.
        append_every(
            &store,
            day0 + 3 * block,
            day0 + DAY_MS + 10 * 60_000,
            60_000,
        );
        let before = all(&store);
        let r = store
            .compact_tiers(day0 + DAY_MS + DAY_GRACE_MS, false)
            .unwrap();
        // The day ended: block compaction leaves its blocks to the day
        // merge, which takes block 0's pco chunk, block 1's two Gorilla
        // chunks and one each of blocks 3 to 11 (block 2 has no data)
        // straight into one chunk, encoding each sample once.
        assert_eq!((r.block_chunks, r.day_chunks), (0, 12), "{r:?}");
        let got = rows(&store);
        assert_eq!(got.len(), 1, "{got:?}");
        let in_day0 = before.iter().filter(|s| s.0 < day0 + DAY_MS).count();
        assert_eq!((got[0].0, got[0].2), (day0, in_day0 as i64));
        assert_ne!(got[0].3, 0);
        assert_eq!(all(&store), before);
        counters_match(&store);
        // Reopened (what a restart reads), the counters still agree.
        drop(store);
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        assert_eq!(all(&store), before);
        counters_match(&store);
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
