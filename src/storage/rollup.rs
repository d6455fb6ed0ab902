//! Rollups: each series' UTC day is reduced to one point per 5-minute bucket
//! that keeps what `rate`, `increase` and the `*_over_time` functions need
//! over windows of 10 minutes or more (last sample and its time, first, min,
//! max, sum, count, reset-adjusted increase). A day is summarised block by
//! block (the blocks compaction cuts) as each block ended
//! `storage.rollup_after` ago, so coarse queries over today read rollups
//! too. The points live in the `rollups` table (one pco-encoded row per series and day, `FORMAT.md`) until
//! `storage.rollup_retention`, long after raw retention removed the samples.

use std::sync::atomic::Ordering;

use pco::ChunkConfig;
use pco::standalone::simple_compress;
use rusqlite::{Connection, OptionalExtension, params};

use super::compaction::{DAY_MS, SCAN_ROWS, day_range, walk_index};
use super::index::SeriesId;
use super::page_pack::{self, RightEdge};
use super::pco_chunk::{self, Encoding};
use super::sqlite::{SqliteStorage, backend, lock, normalize};
use super::{Series, StorageError};
use crate::model::{Labels, Sample, is_stale_nan};

/// Width of one rollup bucket: 5 minutes.
pub const BUCKET_MS: i64 = 5 * 60 * 1000;

/// Series-days rolled up per transaction, so appends wait at most for one batch.
const GROUPS_PER_BATCH: i64 = 200;

/// One 5-minute bucket of a series' raw samples (stale markers left out).
///
/// `first` is kept beside `last` because a counter can reset inside a
/// bucket: the increase across buckets is `cross(prev.last, first) + inc`,
/// where `inc` is the reset-adjusted increase from `first` to `last` inside
/// the bucket — with `last` alone, what a counter gained before a reset
/// in the bucket would be lost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RollupPoint {
    /// Timestamp (ms) of the bucket's last sample; the point's time.
    pub t: i64,
    /// Value of the bucket's last sample.
    pub last: f64,
    /// Timestamp (ms) of the bucket's first sample.
    pub first_t: i64,
    /// Value of the bucket's first sample.
    pub first: f64,
    /// Smallest value in the bucket.
    pub min: f64,
    /// Largest value in the bucket.
    pub max: f64,
    /// Sum of the bucket's values.
    pub sum: f64,
    /// Number of samples in the bucket.
    pub count: u64,
    /// Counter increase from `first` to `last` with resets counted as
    /// Prometheus does (a drop restarts from zero).
    pub inc: f64,
}

impl RollupPoint {
    /// The point standing for one raw sample, so raw and rolled-up data
    /// can be mixed in one window.
    pub fn from_sample(t: i64, v: f64) -> Self {
        RollupPoint {
            t,
            last: v,
            first_t: t,
            first: v,
            min: v,
            max: v,
            sum: v,
            count: 1,
            inc: 0.0,
        }
    }

    /// Start of the bucket this point summarises.
    pub fn bucket(&self) -> i64 {
        self.t.div_euclid(BUCKET_MS) * BUCKET_MS
    }
}

/// One series' rollup points in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct RollupSeries {
    /// Labels, including `__name__`.
    pub labels: Labels,
    /// Points sorted by `t`.
    pub points: Vec<RollupPoint>,
}

/// Where the rollup row of the day starting at `day_from`, whose newest
/// time is `max_t`, stops standing for its series' raw samples: the end of
/// the 5-minute bucket holding `max_t`, within the day.
fn covered_to(day_from: i64, max_t: i64) -> i64 {
    max_t
        .div_euclid(BUCKET_MS)
        .saturating_add(1)
        .saturating_mul(BUCKET_MS)
        .min(day_from.saturating_add(DAY_MS))
}

/// Counter increase from `prev` to `next`: a drop means the counter
/// restarted from zero.
pub fn counter_step(prev: f64, next: f64) -> f64 {
    if next < prev { next } else { next - prev }
}

/// Reduces time-ordered samples to one point per 5-minute bucket.
pub fn summarize(samples: &[Sample]) -> Vec<RollupPoint> {
    let mut out: Vec<RollupPoint> = Vec::new();
    let mut bucket = i64::MIN;
    for s in samples.iter().filter(|s| !is_stale_nan(s.value)) {
        let (t, v) = (s.timestamp_ms, s.value);
        let b = t.div_euclid(BUCKET_MS);
        match out.last_mut() {
            Some(p) if b == bucket => {
                p.inc += counter_step(p.last, v);
                p.t = t;
                p.last = v;
                // NaN-aware as min_over_time/max_over_time: a NaN is
                // replaced by any number.
                if v < p.min || p.min.is_nan() {
                    p.min = v;
                }
                if v > p.max || p.max.is_nan() {
                    p.max = v;
                }
                p.sum += v;
                p.count += 1;
            }
            _ => {
                bucket = b;
                out.push(RollupPoint::from_sample(t, v));
            }
        }
    }
    out
}

fn put_stream(out: &mut Vec<u8>, stream: &[u8]) {
    let mut n = stream.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(stream);
}

fn take_stream<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], StorageError> {
    let bad = || StorageError::Backend("truncated rollup row".to_string());
    let (mut len, mut shift, mut pos) = (0u64, 0u32, 0usize);
    loop {
        let b = *bytes.get(pos).ok_or_else(bad)?;
        pos += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err(bad());
        }
    }
    let end = pos
        .checked_add(usize::try_from(len).map_err(|_| bad())?)
        .filter(|e| *e <= bytes.len())
        .ok_or_else(bad)?;
    let stream = &bytes[pos..end];
    *bytes = &bytes[end..];
    Ok(stream)
}

/// Encodes points as two pco streams (layout in `FORMAT.md`): the integer
/// fields, then the float fields, each field's column after the other.
/// Two streams rather than one per field because a pco stream has a fixed
/// decoding cost of tens of microseconds, which dominated reading a row of
/// 288 points.
pub fn encode(points: &[RollupPoint]) -> Result<Vec<u8>, StorageError> {
    let cfg = ChunkConfig::default();
    let fail = |_| StorageError::Backend("pco cannot encode a rollup".to_string());
    let n = points.len();
    let mut ints: Vec<i64> = Vec::with_capacity(3 * n);
    // Point times as deltas, so all integer columns are small numbers.
    let mut prev = 0i64;
    for p in points {
        ints.push(p.t.wrapping_sub(prev));
        prev = p.t;
    }
    // The first sample's time as its distance to the last: small, and
    // nearly constant for a regular scrape.
    ints.extend(points.iter().map(|p| p.t.wrapping_sub(p.first_t)));
    ints.extend(points.iter().map(|p| p.count as i64));
    let fields: [fn(&RollupPoint) -> f64; 6] = [
        |p| p.last,
        |p| p.first,
        |p| p.min,
        |p| p.max,
        |p| p.sum,
        |p| p.inc,
    ];
    let mut floats: Vec<f64> = Vec::with_capacity(6 * n);
    for f in fields {
        floats.extend(points.iter().map(f));
    }
    let mut out = Vec::new();
    put_stream(&mut out, &simple_compress(&ints, &cfg).map_err(fail)?);
    put_stream(&mut out, &simple_compress(&floats, &cfg).map_err(fail)?);
    Ok(out)
}

/// Decodes the points whose `t` lies in `[mint, maxt]` and appends them to `out`.
pub fn decode_into(
    mut bytes: &[u8],
    mint: i64,
    maxt: i64,
    out: &mut Vec<RollupPoint>,
) -> Result<(), StorageError> {
    let bad = |_| StorageError::Backend("unreadable rollup row".to_string());
    let ints: Vec<i64> = super::pco_chunk::decompress(take_stream(&mut bytes)?).map_err(bad)?;
    let floats: Vec<f64> = super::pco_chunk::decompress(take_stream(&mut bytes)?).map_err(bad)?;
    let n = ints.len() / 3;
    if ints.len() != 3 * n || floats.len() != 6 * n || !bytes.is_empty() {
        return Err(StorageError::Backend(
            "rollup row columns differ in length".to_string(),
        ));
    }
    let mut t = 0i64;
    for i in 0..n {
        t = t.wrapping_add(ints[i]);
        if t < mint {
            continue;
        }
        if t > maxt {
            break;
        }
        out.push(RollupPoint {
            t,
            first_t: t.wrapping_sub(ints[n + i]),
            count: u64::try_from(ints[2 * n + i])
                .map_err(|_| StorageError::Backend("unreadable rollup row".to_string()))?,
            last: floats[i],
            first: floats[n + i],
            min: floats[2 * n + i],
            max: floats[3 * n + i],
            sum: floats[4 * n + i],
            inc: floats[5 * n + i],
        });
    }
    Ok(())
}

/// Merges raw samples and rollup points of one series for the engine: the
/// rollup points before the first raw sample (where raw retention removed
/// the samples), then the raw samples. Returns the series with the rollup
/// points' `last` values in front, and how many points came from rollups.
pub fn merge(mut raw: Series, rollups: &[RollupPoint]) -> (Series, usize) {
    let raw_from = raw.samples.first().map_or(i64::MAX, |s| s.timestamp_ms);
    let used = rollups.partition_point(|p| p.t < raw_from);
    if used == 0 {
        return (raw, 0);
    }
    let mut samples: Vec<Sample> = rollups[..used]
        .iter()
        .map(|p| Sample {
            timestamp_ms: p.t,
            value: p.last,
        })
        .collect();
    samples.append(&mut raw.samples);
    raw.samples = samples;
    (raw, used)
}

/// [`merge`] for every series of a selection: raw series and rollup series
/// (each sorted by labels) joined by labels, sorted by labels.
pub fn merge_all(raw: Vec<Series>, rollups: Vec<RollupSeries>) -> Vec<(Series, Vec<RollupPoint>)> {
    let mut by_labels: std::collections::BTreeMap<Labels, (Series, Vec<RollupPoint>)> = raw
        .into_iter()
        .map(|s| (s.labels.clone(), (s, Vec::new())))
        .collect();
    for r in rollups {
        let entry = by_labels.entry(r.labels.clone()).or_insert_with(|| {
            let empty = Series {
                labels: r.labels,
                samples: Vec::new(),
            };
            (empty, Vec::new())
        });
        entry.1 = r.points;
    }
    by_labels
        .into_values()
        .map(|(raw, mut points)| {
            let (merged, used) = merge(raw, &points);
            points.truncate(used);
            (merged, points)
        })
        .collect()
}

/// What one rollup pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Series-days summarised into rollup rows.
    pub days_rolled_up: usize,
    /// Rollup rows deleted by `storage.rollup_retention`.
    pub expired_rows: usize,
}

/// One series-day's rollup row, waiting to be inserted.
struct RollupRow {
    series: SeriesId,
    min_t: i64,
    max_t: i64,
    points: i64,
    raw_samples: i64,
    data: Vec<u8>,
}

impl RollupRow {
    /// Bytes its row takes on a leaf page of `rollups` (columns in table
    /// order after the id).
    fn leaf_bytes(&self, page_size: usize, rowid: i64) -> usize {
        let ints = [
            self.series,
            self.min_t,
            self.max_t,
            self.points,
            self.raw_samples,
        ];
        page_pack::rowid_row_bytes(page_size, rowid, &ints, self.data.len())
    }
}

impl SqliteStorage {
    /// Rolls up the raw samples not yet summarised of every block that
    /// ended `rollup_after` ago, and of every day about to reach raw
    /// retention (whole), then deletes rollup rows older than
    /// `rollup_retention`. Runs in maintenance before raw retention, so raw
    /// samples are always summarised before they are deleted. A
    /// `rollup_retention` of zero turns rollups off (existing rows are deleted).
    pub fn rollup(&self, now_ms: i64) -> Result<RollupReport, StorageError> {
        let opts = &self.inner.opts;
        let mut report = RollupReport::default();
        // A day some of whose chunks raw retention deletes in this pass is
        // summarised first, even if it is younger than rollup_after.
        let expiring_before = now_ms.saturating_sub(opts.retention_ms);
        // Series-days are found by walking the chunks' (series_id, min_t)
        // index from a cursor, one read per writer lock, so a pass reads
        // each chunk row once (a GROUP BY over the whole table per batch
        // made it quadratic in the number of chunks) and ends even when a
        // day yields no point (it is looked at again next pass).
        let mut scan: (SeriesId, i64) = (SeriesId::MIN, i64::MIN);
        // Blocks of whole 5-minute buckets, as compaction cuts them; days
        // that do not split into such blocks are summarised whole only.
        let block = match self.block_ms() {
            b if b % BUCKET_MS == 0 => b,
            _ => DAY_MS,
        };
        let due = Due {
            expiring_before,
            blocks_before: now_ms
                .saturating_sub(opts.rollup_after_ms)
                .div_euclid(block)
                .saturating_mul(block),
        };
        // A rollup retention of zero turns rollups off.
        let mut done = opts.rollup_retention_ms <= 0;
        while !done {
            let mut w = lock(&self.inner.writer);
            let groups;
            (groups, done) = rollup_candidates(&w.conn, &mut scan, SCAN_ROWS, due)?;
            if !groups.is_empty() {
                let mut edge = w.rollup_edge.take();
                let tx = w.conn.unchecked_transaction().map_err(backend)?;
                let mut rows = Vec::with_capacity(groups.len());
                for d in &groups {
                    rows.extend(self.rollup_day(&tx, d.series, d.day, d.upto)?);
                }
                // Appended in the order that fills the table's last pages.
                let next_id: i64 = tx
                    .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM rollups", [], |r| {
                        r.get(0)
                    })
                    .map_err(backend)?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO rollups (series_id, min_t, max_t, points, raw_samples, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(backend)?;
                RightEdge::insert_packed(
                    &mut edge,
                    &tx,
                    &rows,
                    |r, page_size| r.leaf_bytes(page_size, next_id),
                    |r| {
                        insert
                            .execute(params![
                                r.series,
                                r.min_t,
                                r.max_t,
                                r.points,
                                r.raw_samples,
                                r.data
                            ])
                            .map(drop)
                            .map_err(backend)
                    },
                )?;
                drop(insert);
                tx.commit().map_err(backend)?;
                w.rollup_edge = edge;
                report.days_rolled_up += groups.len();
            }
        }
        let w = lock(&self.inner.writer);
        let cutoff = now_ms.saturating_sub(opts.rollup_retention_ms);
        let mut stmt = w
            .conn
            .prepare_cached("DELETE FROM rollups WHERE max_t < ?1 RETURNING points, length(data)")
            .map_err(backend)?;
        let deleted = stmt
            .query_map([cutoff], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        let c = &self.inner.counters;
        for (points, bytes) in &deleted {
            c.rollup_points.fetch_sub(*points as u64, Ordering::Relaxed);
            c.rollup_bytes.fetch_sub(*bytes as u64, Ordering::Relaxed);
        }
        report.expired_rows = deleted.len();
        self.refresh_rollup_series(&w.conn)?;
        Ok(report)
    }

    /// Summarises one series' UTC day from its chunks that start before
    /// `upto` (the whole day, or the blocks that ended), keeping already
    /// rolled-up points of buckets whose raw samples are gone: the row to
    /// write, if the day has any point (the caller inserts the rows of a
    /// batch together). A row that still summarises every chunk it covers
    /// is extended with the newer chunks only, so a day summarised block by
    /// block decodes each block once.
    fn rollup_day(
        &self,
        conn: &Connection,
        series: SeriesId,
        day: i64,
        upto: i64,
    ) -> Result<Option<RollupRow>, StorageError> {
        let (from, to) = day_range(day);
        let upto = upto.min(to);
        let old: Option<(Vec<u8>, i64, i64, i64)> = conn
            .prepare_cached(
                "SELECT data, points, raw_samples, max_t FROM rollups WHERE series_id = ?1 AND min_t = ?2",
            )
            .map_err(backend)?
            .query_row(params![series, from], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(backend)?;
        let mut points: Vec<RollupPoint> = Vec::new();
        let c = &self.inner.counters;
        // Where chunks are read from, and what the kept points summarise.
        let mut read_from = from;
        let mut raw_count = 0i64;
        let mut raw_max_t = i64::MIN;
        let mut extend = false;
        if let Some((data, n, old_raw, old_max_t)) = &old {
            decode_into(data, i64::MIN, i64::MAX, &mut points)?;
            c.rollup_points.fetch_sub(*n as u64, Ordering::Relaxed);
            c.rollup_bytes
                .fetch_sub(data.len() as u64, Ordering::Relaxed);
            let covered = covered_to(from, *old_max_t);
            let (held, newest) = chunk_totals(conn, series, from, covered)?;
            extend = held == *old_raw && newest <= *old_max_t && covered <= upto;
            if extend {
                read_from = covered;
                raw_count = *old_raw;
                raw_max_t = *old_max_t;
            }
        }
        let mut samples: Vec<Sample> = Vec::new();
        {
            let mut read = conn
                .prepare_cached(
                    "SELECT data, encoding, samples, max_t FROM chunks WHERE series_id = ?1 AND min_t >= ?2 AND min_t < ?3 ORDER BY min_t",
                )
                .map_err(backend)?;
            let mut rows = read
                .query(params![series, read_from, upto])
                .map_err(backend)?;
            while let Some(row) = rows.next().map_err(backend)? {
                let data: Vec<u8> = row.get(0).map_err(backend)?;
                let enc = Encoding::from_code(row.get(1).map_err(backend)?).map_err(backend)?;
                pco_chunk::decode_any(enc, &data, i64::MIN, i64::MAX, &mut samples)
                    .map_err(backend)?;
                raw_count += row.get::<_, i64>(2).map_err(backend)?;
                raw_max_t = raw_max_t.max(row.get::<_, i64>(3).map_err(backend)?);
            }
        }
        normalize(&mut samples);
        let fresh = summarize(&samples);
        if !extend {
            // Rebuilt from the chunks: old points stay only for the buckets
            // before them (their raw samples are gone).
            let raw_from = fresh.first().map_or(i64::MAX, RollupPoint::bucket);
            points.retain(|p| p.bucket() < raw_from);
        }
        points.extend(fresh);
        let Some(last) = points.last().copied() else {
            return Ok(None);
        };
        let data = encode(&points)?;
        c.rollup_points
            .fetch_add(points.len() as u64, Ordering::Relaxed);
        c.rollup_max_t.fetch_max(last.t, Ordering::Relaxed);
        c.rollup_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(Some(RollupRow {
            series,
            min_t: from,
            // The raw chunks' newest time (stale markers included), so a day
            // is summarised again only when newer raw samples turn up.
            max_t: last.t.max(raw_max_t),
            points: points.len() as i64,
            raw_samples: raw_count,
            data,
        }))
    }

    /// Recounts the series that have rollups (for the Status page).
    pub(super) fn refresh_rollup_series(&self, conn: &Connection) -> Result<(), StorageError> {
        let n: i64 = conn
            .query_row("SELECT COUNT(DISTINCT series_id) FROM rollups", [], |r| {
                r.get(0)
            })
            .map_err(backend)?;
        self.inner
            .counters
            .rollup_series
            .store(n as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The rollup rows (still encoded) of the complete rollup days that lead
    /// one series' data in `[mint, maxt]`, and where they end (`i64::MIN`
    /// when none do): raw samples from there on are read from chunks.
    ///
    /// A row covers its day up to the end of the bucket of its newest time
    /// ([`covered_to`]: the whole day once it ended, else the blocks summarised
    /// so far). It counts while it summarises every raw sample the chunks
    /// starting in what it covers still hold (no more and no newer ones than
    /// when it was written: backfill and late samples make it wait for the
    /// next rollup pass) and the open head chunk (first sample `head_from`)
    /// starts after it; no raw sample may lie between one row's cover and the
    /// next, nor in the range before the first.
    pub(super) fn leading_rollups(
        conn: &Connection,
        series: SeriesId,
        mint: i64,
        maxt: i64,
        head_from: i64,
    ) -> Result<(Vec<Vec<u8>>, i64), StorageError> {
        let mut stmt = conn
            .prepare_cached(
                "SELECT r.min_t, r.max_t, r.data,
                   (SELECT COALESCE(SUM(c.samples), 0) <= r.raw_samples
                           AND COALESCE(MAX(c.max_t), r.max_t) <= r.max_t
                      FROM chunks c
                     -- what the row covers, as covered_to computes it
                     WHERE c.series_id = r.series_id AND c.min_t >= r.min_t
                       AND c.min_t < MIN(r.min_t + ?4, r.max_t - ((r.max_t % ?5) + ?5) % ?5 + ?5))
                 FROM rollups r
                WHERE r.series_id = ?1 AND r.min_t <= ?3 AND r.max_t >= ?2
                ORDER BY r.min_t",
            )
            .map_err(backend)?;
        let mut rows = stmt
            .query(params![series, mint, maxt, DAY_MS, BUCKET_MS])
            .map_err(backend)?;
        let mut rollups = Vec::new();
        let mut end = i64::MIN;
        // Whether a raw sample of the range lies in `[since, before)`.
        let raw_between = |since: i64, before: i64| -> Result<bool, StorageError> {
            conn.prepare_cached(
                "SELECT 1 FROM chunks WHERE series_id = ?1 AND min_t < ?2 AND max_t >= ?3 LIMIT 1",
            )
            .map_err(backend)?
            .exists(params![series, before, since])
            .map_err(backend)
        };
        while let Some(row) = rows.next().map_err(backend)? {
            let from: i64 = row.get(0).map_err(backend)?;
            let max_t: i64 = row.get(1).map_err(backend)?;
            let complete: bool = row.get(3).map_err(backend)?;
            let to = covered_to(from, max_t);
            let follows = if end == i64::MIN {
                !raw_between(mint, from)?
            } else {
                from == end || !raw_between(end, from)?
            };
            if !complete || !follows || to > head_from {
                break;
            }
            rollups.push(row.get(2).map_err(backend)?);
            end = to;
        }
        Ok((rollups, end))
    }

    /// Rollup points of the given series in `[mint, maxt]`, read in `conn`'s snapshot.
    pub(super) fn read_rollups(
        conn: &Connection,
        cache: &super::decoded_cache::DecodedCache,
        matched: Vec<(SeriesId, Labels)>,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<RollupSeries>, StorageError> {
        let mut stmt = conn
            .prepare_cached(
                // A day is skipped when a raw chunk in range starts at or
                // before it (or the range): the series' raw samples then
                // begin no later than the day's points, and the engine uses
                // no rollup point after the first raw sample.
                "SELECT data FROM rollups r WHERE series_id = ?1 AND min_t <= ?3 AND max_t >= ?2
                   AND NOT EXISTS (SELECT 1 FROM chunks c
                                    WHERE c.series_id = ?1 AND c.min_t <= MAX(?2, r.min_t) AND c.max_t >= ?2)
                 ORDER BY min_t",
            )
            .map_err(backend)?;
        let mut out = Vec::new();
        for (id, labels) in matched {
            let mut points = Vec::new();
            let mut rows = stmt.query(params![id, mint, maxt]).map_err(backend)?;
            while let Some(row) = rows.next().map_err(backend)? {
                let data: Vec<u8> = row.get(0).map_err(backend)?;
                cache
                    .rollups(&data, mint, maxt, &mut points)
                    .map_err(|e| StorageError::Backend(format!("series {labels}: {e}")))?;
            }
            if !points.is_empty() {
                out.push(RollupSeries { labels, points });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

/// Which series-days a rollup pass summarises: whole, those with a chunk
/// that raw retention is about to delete (`max_t` before `expiring_before`);
/// of the others, the chunks that start before `blocks_before`.
#[derive(Clone, Copy)]
struct Due {
    expiring_before: i64,
    blocks_before: i64,
}

/// One series-day a rollup pass summarises, from its chunks that start
/// before `upto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DueDay {
    series: SeriesId,
    day: i64,
    upto: i64,
}

/// Samples held by one series' chunks that start in `[from, to)`, and the
/// newest time among them (`i64::MIN` when there are none).
fn chunk_totals(
    conn: &Connection,
    series: SeriesId,
    from: i64,
    to: i64,
) -> Result<(i64, i64), StorageError> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(samples), 0), COALESCE(MAX(max_t), ?4) FROM chunks
          WHERE series_id = ?1 AND min_t >= ?2 AND min_t < ?3",
    )
    .map_err(backend)?
    .query_row(params![series, from, to, i64::MIN], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .map_err(backend)
}

/// The next series-days to roll up (series, day number, and the time
/// before which its chunks are summarised), at most [`GROUPS_PER_BATCH`],
/// from one read of at most `scan_rows` rows of the chunks'
/// `(series_id, min_t)` index from `scan`, which moves past every day looked
/// at; `true` once the read reached the end of the table. A day is due per
/// `due` and taken when it has no rollup row yet, or its row summarises
/// fewer raw samples than the due chunks hold, or older ones.
fn rollup_candidates(
    conn: &Connection,
    scan: &mut (SeriesId, i64),
    scan_rows: i64,
    due: Due,
) -> Result<(Vec<DueDay>, bool), StorageError> {
    walk_index(
        conn,
        scan,
        scan_rows,
        DAY_MS,
        GROUPS_PER_BATCH,
        |series, day, rows, whole_read| {
            let (from, to) = day_range(day);
            let oldest = if whole_read {
                // The day fills the whole read: ask SQL.
                conn.prepare_cached(
                    "SELECT MIN(max_t) FROM chunks WHERE series_id = ?1 AND min_t >= ?2 AND min_t < ?3",
                )
                .map_err(backend)?
                .query_row(params![series, from, to], |r| r.get(0))
                .map_err(backend)?
            } else {
                rows.iter().map(|r| r.max_t).min().unwrap_or(i64::MAX)
            };
            let upto = if oldest < due.expiring_before {
                to
            } else {
                due.blocks_before.min(to)
            };
            if upto <= from {
                return Ok(None);
            }
            let (n, newest) = if whole_read {
                chunk_totals(conn, series, from, upto)?
            } else {
                rows.iter()
                    .filter(|r| r.min_t < upto)
                    .fold((0i64, i64::MIN), |(n, hi), r| {
                        (n + r.samples, hi.max(r.max_t))
                    })
            };
            if n == 0 {
                return Ok(None);
            }
            let row: Option<(i64, i64)> = conn
                .prepare_cached(
                    "SELECT raw_samples, max_t FROM rollups WHERE series_id = ?1 AND min_t = ?2",
                )
                .map_err(backend)?
                .query_row(params![series, from], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?;
            Ok(row
                .is_none_or(|(raw, max_t)| raw < n || max_t < newest)
                .then_some(DueDay { series, day, upto }))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stale_nan;

    fn s(t: i64, v: f64) -> Sample {
        Sample {
            timestamp_ms: t,
            value: v,
        }
    }

    #[test]
    fn buckets_keep_increase_across_resets_and_skip_stale_markers() {
        let b = 1_000 * BUCKET_MS;
        let samples = [
            s(b, 100.0),
            s(b + 60_000, 105.0),
            s(b + 120_000, 5.0), // reset: 5 gained from zero
            s(b + 180_000, stale_nan()),
            s(b + 240_000, 20.0),
            s(b + BUCKET_MS, 30.0),
        ];
        let p = summarize(&samples);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].first_t, p[0].t), (b, b + 240_000));
        assert_eq!((p[0].first, p[0].last), (100.0, 20.0));
        assert_eq!(
            (p[0].min, p[0].max, p[0].sum, p[0].count),
            (5.0, 105.0, 230.0, 4)
        );
        assert_eq!(p[0].inc, 5.0 + 5.0 + 15.0);
        assert_eq!(p[1], RollupPoint::from_sample(b + BUCKET_MS, 30.0));
    }

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let samples: Vec<Sample> = (0..5760)
            .map(|i| s(1_700_000_000_000 + i * 15_000, (i * 3 % 1000) as f64))
            .collect();
        let points = summarize(&samples);
        let bytes = encode(&points).unwrap();
        let mut got = Vec::new();
        decode_into(&bytes, i64::MIN, i64::MAX, &mut got).unwrap();
        assert_eq!(got, points);
        let mut window = Vec::new();
        decode_into(&bytes, points[10].t, points[19].t, &mut window).unwrap();
        assert_eq!(window, points[10..20]);
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_into(&bytes[..cut], i64::MIN, i64::MAX, &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn merge_uses_rollups_only_before_raw_data() {
        let rollups: Vec<RollupPoint> = (0..4)
            .map(|i| RollupPoint::from_sample(i * BUCKET_MS + 1, i as f64))
            .collect();
        let raw = Series {
            labels: Labels::default(),
            samples: vec![s(2 * BUCKET_MS + 1, 2.0), s(3 * BUCKET_MS, 3.0)],
        };
        let (merged, used) = merge(raw, &rollups);
        assert_eq!(used, 2);
        let ts: Vec<i64> = merged.samples.iter().map(|x| x.timestamp_ms).collect();
        assert_eq!(ts, [1, BUCKET_MS + 1, 2 * BUCKET_MS + 1, 3 * BUCKET_MS]);
    }

    #[test]
    fn due_days_are_found_by_walking_the_index_across_read_limits() {
        use crate::storage::StorageOptions;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        let w = lock(&store.inner.writer);
        let d = DAY_MS;
        // Series 1: day 0 in three chunks (no rollup), day 1 in one chunk
        // (rolled up, complete), day 2 in two chunks (rolled up before its
        // second chunk arrived). Series 2: day 0 (rollup holds fewer
        // samples), day 5 (not ended). Series 3: day 1 with one chunk
        // whose max_t is newer than its rollup row's.
        let chunks = [
            (1, 0, 10, 5),
            (1, 100, 200, 5),
            (1, 300, 400, 5),
            (1, d, d + 10, 7),
            (1, 2 * d, 2 * d + 10, 3),
            (1, 2 * d + 50, 2 * d + 60, 3),
            (2, 0, 10, 9),
            (2, 5 * d, 5 * d + 10, 1),
            (3, d, d + 500, 4),
        ];
        for (series, min_t, max_t, n) in chunks {
            w.conn
                .execute(
                    "INSERT INTO chunks (series_id, min_t, max_t, samples, data) VALUES (?1, ?2, ?3, ?4, x'00')",
                    params![series, min_t, max_t, n],
                )
                .unwrap();
        }
        for (series, day, max_t, raw) in [
            (1, 1, d + 10, 7),
            (1, 2, 2 * d + 10, 3),
            (2, 0, 10, 8),
            (3, 1, d + 400, 4),
        ] {
            w.conn
                .execute(
                    "INSERT INTO rollups (series_id, min_t, max_t, points, raw_samples, data) VALUES (?1, ?2, ?3, 1, ?4, x'00')",
                    params![series, day * d, max_t, raw],
                )
                .unwrap();
        }
        let ended = Due {
            expiring_before: i64::MIN,
            blocks_before: 5 * d,
        };
        // Day 5 of series 2 is due whole once its chunk is about to expire,
        // and up to the blocks that ended once its chunk starts before them.
        let expiring = Due {
            expiring_before: 5 * d + 11,
            ..ended
        };
        let blocks = Due {
            blocks_before: 5 * d + 5,
            ..ended
        };
        let due_day = |series, day, upto| DueDay { series, day, upto };
        let want: Vec<_> = [(1, 0), (1, 2), (2, 0), (3, 1)]
            .map(|(s, day)| due_day(s, day, (day + 1) * d))
            .to_vec();
        let mut want_expiring = want.clone();
        want_expiring.insert(3, due_day(2, 5, 6 * d));
        let mut want_blocks = want.clone();
        want_blocks.insert(3, due_day(2, 5, 5 * d + 5));
        for rows in [1, 2, 3, 4, 100] {
            for (due, want) in [
                (ended, &want),
                (expiring, &want_expiring),
                (blocks, &want_blocks),
            ] {
                let mut scan = (SeriesId::MIN, i64::MIN);
                let mut found = Vec::new();
                for reads in 0.. {
                    assert!(reads < 100, "the scan does not move on");
                    let (batch, done) = rollup_candidates(&w.conn, &mut scan, rows, due).unwrap();
                    found.extend(batch);
                    if done {
                        break;
                    }
                }
                assert_eq!(&found, want, "rows {rows}");
            }
        }
    }
}
