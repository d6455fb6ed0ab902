//! The SQLite store's read path: a selection's compressed chunks and rollup
//! rows are fetched in one read transaction, then decoded — across series on
//! a few threads when there is much to decode, since decoding is most of a
//! long range query's time.
//!
//! The decoding threads are scoped to the read and started by the thread
//! that reads, so they inherit its nice value and scheduling policy (Linux
//! threads do): a query pool thread's decoders run at the pool's low priority.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, params};

use super::chunk;
use super::decoded_cache::DecodedCache;
use super::index::SeriesId;
use super::pco_chunk::Encoding;
use super::rollup::RollupPoint;
use super::sqlite::{SqliteStorage, backend, normalize};
use super::{ReadLimit, Series, StorageError};
use crate::model::{Labels, Sample};

/// Most threads one selection decodes on, the reading thread included.
pub const DECODE_THREADS: usize = 4;

/// Compressed bytes below which a batch is decoded on the reading thread
/// alone: starting threads costs more than it saves.
const PARALLEL_MIN_BYTES: usize = 128 << 10;

/// Compressed bytes fetched per batch; the read limit sees each batch's
/// samples before the next batch is decoded.
const BATCH_BYTES: usize = 1 << 20;

/// One series decoded: its samples and the rollup points that lead them.
type Decoded = Result<(Series, Vec<RollupPoint>), StorageError>;

/// One series' compressed data in the asked range.
struct Job {
    labels: Labels,
    /// Rollup rows of the days that stand for the series' first samples.
    rollups: Vec<Vec<u8>>,
    /// Raw chunks from `from` on, in time order.
    chunks: Vec<(Encoding, Vec<u8>)>,
    /// The open head chunk's samples in `[from, maxt]`.
    head: Vec<Sample>,
    /// Where raw samples start (the end of the rollup days, or `mint`).
    from: i64,
}

impl Job {
    fn bytes(&self) -> usize {
        self.rollups.iter().map(Vec::len).sum::<usize>()
            + self.chunks.iter().map(|(_, d)| d.len()).sum::<usize>()
    }

    /// The series' rollup points and samples (the points' `last` values
    /// leading the raw samples).
    fn decode(&self, cache: &DecodedCache, mint: i64, maxt: i64) -> Decoded {
        let labels = &self.labels;
        let fail =
            |e: &dyn std::fmt::Display| StorageError::Backend(format!("series {labels}: {e}"));
        let mut points = Vec::new();
        for data in &self.rollups {
            cache
                .rollups(data, mint, maxt, &mut points)
                .map_err(|e| fail(&e))?;
        }
        let mut samples: Vec<Sample> = points
            .iter()
            .map(|p| Sample {
                timestamp_ms: p.t,
                value: p.last,
            })
            .collect();
        let start = samples.len();
        for (enc, data) in &self.chunks {
            cache
                .samples(*enc, data, self.from, maxt, &mut samples)
                .map_err(|e| fail(&e))?;
        }
        samples.extend_from_slice(&self.head);
        if !samples[start..]
            .windows(2)
            .all(|w| w[0].timestamp_ms < w[1].timestamp_ms)
        {
            let mut raw = samples.split_off(start);
            normalize(&mut raw);
            samples.append(&mut raw);
        }
        let series = Series {
            labels: self.labels.clone(),
            samples,
        };
        Ok((series, points))
    }
}

/// Decodes every job, on up to [`DECODE_THREADS`] threads when they hold
/// enough bytes; results in job order.
fn decode_all(
    jobs: &[Job],
    cache: &DecodedCache,
    (mint, maxt): (i64, i64),
    min_bytes: usize,
) -> Vec<Decoded> {
    let bytes: usize = jobs.iter().map(Job::bytes).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(DECODE_THREADS)
        .min(jobs.len());
    if threads <= 1 || bytes < min_bytes {
        return jobs.iter().map(|j| j.decode(cache, mint, maxt)).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else {
                return done;
            };
            done.push((i, job.decode(cache, mint, maxt)));
        }
    };
    let mut out: Vec<Option<Decoded>> = (0..jobs.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        // A thread that cannot start leaves its share to the others.
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("query-decode".into())
                    .spawn_scoped(s, work)
                    .ok()
            })
            .collect();
        let mut done = work();
        for h in helpers {
            done.extend(h.join().unwrap_or_default());
        }
        for (i, r) in done {
            out[i] = Some(r);
        }
    });
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StorageError::Backend("a decoding thread failed".into()))))
        .collect()
}

/// Fails with `ReadStopped` once `limit` refuses more.
fn taken(limit: &dyn ReadLimit, series: usize, samples: usize) -> Result<(), StorageError> {
    if limit.take(series, samples) {
        Ok(())
    } else {
        Err(StorageError::ReadStopped)
    }
}

/// The selection `matched` in `[mint, maxt]`, read in `conn`'s snapshot
/// (`heads`: the open head chunks of that snapshot), sorted by labels.
/// With `summarize`, complete rollup days that lead a series stand for its
/// raw samples there ([`super::Querier::select_summarized`]); otherwise
/// the rollup point lists are empty. The limit sees every series and batch.
pub(super) fn select(
    conn: &Connection,
    cache: &DecodedCache,
    heads: &HashMap<SeriesId, Vec<u8>>,
    matched: Vec<(SeriesId, Labels)>,
    (mint, maxt): (i64, i64),
    limit: &dyn ReadLimit,
    summarize: bool,
) -> Result<Vec<(Series, Vec<RollupPoint>)>, StorageError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT data, encoding FROM chunks WHERE series_id = ?1 AND min_t <= ?3 AND max_t >= ?2 ORDER BY min_t",
        )
        .map_err(backend)?;
    let mut out = Vec::new();
    let mut batch: Vec<Job> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut matched = matched.into_iter().peekable();
    while let Some((id, labels)) = matched.next() {
        taken(limit, 0, 0)?;
        let mut head = Vec::new();
        if let Some(bytes) = heads.get(&id) {
            chunk::decode_into(bytes, i64::MIN, i64::MAX, &mut head)
                .map_err(|e| StorageError::Backend(format!("series {labels}: {e}")))?;
        }
        let (rollups, cut) = if summarize {
            // The open head chunk's samples are in no rollup yet.
            let head_from = head.first().map_or(i64::MAX, |s| s.timestamp_ms);
            SqliteStorage::leading_rollups(conn, id, mint, maxt, head_from)
                .map_err(|e| StorageError::Backend(format!("series {labels}: {e}")))?
        } else {
            (Vec::new(), i64::MIN)
        };
        let from = cut.max(mint);
        let mut chunks = Vec::new();
        if from <= maxt {
            let mut rows = stmt.query(params![id, from, maxt]).map_err(backend)?;
            while let Some(row) = rows.next().map_err(backend)? {
                let enc = Encoding::from_code(row.get(1).map_err(backend)?)
                    .map_err(|e| StorageError::Backend(format!("series {labels}: {e}")))?;
                chunks.push((enc, row.get(0).map_err(backend)?));
            }
        }
        let lo = head.partition_point(|s| s.timestamp_ms < from);
        let hi = head.partition_point(|s| s.timestamp_ms <= maxt);
        head = head[lo.min(hi)..hi].to_vec();
        let job = Job {
            labels,
            rollups,
            chunks,
            head,
            from,
        };
        batch_bytes += job.bytes();
        batch.push(job);
        if batch_bytes >= BATCH_BYTES || matched.peek().is_none() {
            for r in decode_all(&batch, cache, (mint, maxt), PARALLEL_MIN_BYTES) {
                let (series, points) = r?;
                taken(limit, 0, series.samples.len())?;
                if !series.samples.is_empty() {
                    taken(limit, 1, 0)?;
                    out.push((series, points));
                }
            }
            batch.clear();
            batch_bytes = 0;
        }
    }
    out.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::chunk::ChunkEncoder;

    #[test]
    fn parallel_decoding_gives_what_one_thread_gives_in_order() {
        let jobs: Vec<Job> = (0..13)
            .map(|n| {
                let chunks = (0..4)
                    .map(|c| {
                        let mut enc = ChunkEncoder::new();
                        for i in 0..480 {
                            let t = (c * 480 + i) * 15_000 + n;
                            enc.append(t, (t % 7919) as f64 * 0.5);
                        }
                        (Encoding::Gorilla, enc.bytes().to_vec())
                    })
                    .collect();
                Job {
                    labels: Labels::new([("__name__", "x"), ("n", &n.to_string())]),
                    rollups: Vec::new(),
                    chunks,
                    head: Vec::new(),
                    from: 60_000,
                }
            })
            .collect();
        let range = (60_000, 20_000_000);
        let one: Vec<_> = jobs
            .iter()
            .map(|j| j.decode(&DecodedCache::new(0), range.0, range.1).unwrap())
            .collect();
        let cache = DecodedCache::new(1 << 20);
        let many: Vec<_> = decode_all(&jobs, &cache, range, 0)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(one, many);
        // Served from the cache the second time, the same again.
        let again: Vec<_> = decode_all(&jobs, &cache, range, 0)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(one, again);
        assert_eq!(cache.counts().hits, 13 * 4);
        assert!(one.iter().all(|(s, _)| s.samples.len() > 1000));
        // Damage in one series is that series' error, the others decode.
        let mut bad = jobs;
        bad[5].chunks[1].1.truncate(3);
        let got = decode_all(&bad, &DecodedCache::new(0), range, 0);
        assert!(got[5].is_err());
        assert!(got.iter().enumerate().all(|(i, r)| i == 5 || r.is_ok()));
    }
}
