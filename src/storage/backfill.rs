//! Backfill: writes whole series of past samples (an import of an export)
//! straight into closed chunks, beside whatever the store already holds.
//!
//! Appends refuse samples older than a series' newest one, so imports take
//! this path instead. Samples whose timestamp the series already has are
//! skipped, which makes importing the same file twice a no-op; the read path
//! and compaction put overlapping chunks back in time order.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::chunk::ChunkEncoder;
use super::head::ClosedChunk;
use super::sqlite::{backend, insert_chunks, labels_json, lock, read, write};
use super::{Querier, Series, SqliteStorage, StorageError};
use crate::model::{Labels, MatchOp, Matcher, Sample};

/// What one backfill did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackfillReport {
    /// Series in the input.
    pub series: u64,
    /// Series the store did not have before.
    pub series_created: u64,
    /// Samples written.
    pub samples_added: u64,
    /// Samples skipped because the series already has their timestamp.
    pub samples_existing: u64,
    /// Samples skipped because their timestamp is outside the accepted
    /// window ([`SampleBounds`](super::SampleBounds)).
    pub samples_out_of_bounds: u64,
}

impl BackfillReport {
    /// Adds another report's counts to this one.
    pub fn add(&mut self, other: &BackfillReport) {
        self.series += other.series;
        self.series_created += other.series_created;
        self.samples_added += other.samples_added;
        self.samples_existing += other.samples_existing;
        self.samples_out_of_bounds += other.samples_out_of_bounds;
    }
}

/// A store that takes past samples in any order relative to what it holds.
pub trait Backfill: Send + Sync {
    /// Stores the samples of `series` whose timestamps each series does not
    /// have yet; the whole call is one transaction.
    fn backfill(&self, series: &[Series]) -> Result<BackfillReport, StorageError>;

    /// The sample times this store takes; others are skipped and counted.
    fn sample_bounds(&self) -> super::SampleBounds {
        super::SampleBounds::default()
    }
}

/// Matchers that select exactly the series with these labels (and maybe
/// series with more labels, which the caller filters out).
fn exact(labels: &Labels) -> Result<Vec<Matcher>, StorageError> {
    labels
        .iter()
        .map(|l| {
            Matcher::new(&l.name, MatchOp::Equal, &l.value)
                .map_err(|e| StorageError::Rejected(e.to_string()))
        })
        .collect()
}

impl Backfill for SqliteStorage {
    fn sample_bounds(&self) -> super::SampleBounds {
        self.inner.opts.bounds
    }

    fn backfill(&self, series: &[Series]) -> Result<BackfillReport, StorageError> {
        let mut report = BackfillReport {
            series: series.len() as u64,
            ..BackfillReport::default()
        };
        let bounds = self.inner.opts.bounds;
        let now = crate::util::now_ms();
        // What is new, decided before the write lock is taken.
        let mut fresh: Vec<(&Labels, Vec<Sample>)> = Vec::with_capacity(series.len());
        for s in series {
            if s.labels.is_empty() || s.labels.metric_name().is_none() {
                return Err(StorageError::Rejected(format!(
                    "series {} has no metric name",
                    s.labels
                )));
            }
            let mut samples = s.samples.clone();
            let given = samples.len();
            samples.retain(|x| bounds.contains(x.timestamp_ms, now));
            report.samples_out_of_bounds += (given - samples.len()) as u64;
            super::sqlite::normalize(&mut samples);
            let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
                continue;
            };
            let existing: Vec<i64> = self
                .select(&exact(&s.labels)?, first.timestamp_ms, last.timestamp_ms)?
                .into_iter()
                .filter(|e| e.labels == s.labels)
                .flat_map(|e| e.samples.into_iter().map(|x| x.timestamp_ms))
                .collect();
            let before = samples.len();
            if !existing.is_empty() {
                // Both lists are sorted.
                let mut i = 0;
                samples.retain(|x| {
                    while i < existing.len() && existing[i] < x.timestamp_ms {
                        i += 1;
                    }
                    !(i < existing.len() && existing[i] == x.timestamp_ms)
                });
            }
            report.samples_existing += (before - samples.len()) as u64;
            if !samples.is_empty() {
                fresh.push((&s.labels, samples));
            }
        }
        self.inner
            .counters
            .backfill_out_of_bounds
            .fetch_add(report.samples_out_of_bounds, Ordering::Relaxed);
        if fresh.is_empty() {
            return Ok(report);
        }
        if let Some(reason) = lock(&self.inner.blocked).clone() {
            return Err(StorageError::Backend(reason));
        }
        let policy = self.inner.opts.chunk;
        let mut w = lock(&self.inner.writer);
        if w.closed {
            return Err(StorageError::Backend("storage is closed".to_string()));
        }
        let tx = w.conn.transaction().map_err(backend)?;
        let mut created: HashMap<&Labels, i64> = HashMap::new();
        let mut chunks = Vec::new();
        {
            let index = read(&self.inner.index);
            let mut insert = tx
                .prepare_cached("INSERT INTO series (labels) VALUES (?1)")
                .map_err(backend)?;
            for (labels, samples) in &fresh {
                let id = match index.get(labels).or_else(|| created.get(labels).copied()) {
                    Some(id) => id,
                    None => {
                        insert.execute([labels_json(labels)]).map_err(backend)?;
                        let id = tx.last_insert_rowid();
                        created.insert(labels, id);
                        id
                    }
                };
                encode_chunks(id, samples, policy, &mut chunks);
                report.samples_added += samples.len() as u64;
            }
        }
        insert_chunks(&tx, &chunks, false)?;
        tx.commit().map_err(backend)?;
        report.series_created = created.len() as u64;
        if !created.is_empty() {
            let mut index = write(&self.inner.index);
            for (labels, id) in created {
                index.insert(id, labels.clone());
            }
        }
        let c = &self.inner.counters;
        c.chunks.fetch_add(chunks.len() as u64, Ordering::Relaxed);
        c.chunk_samples
            .fetch_add(report.samples_added, Ordering::Relaxed);
        Ok(report)
    }
}

/// Cuts sorted samples into chunks the way the head would: never across a
/// window boundary, never over the sample limit.
fn encode_chunks(
    id: i64,
    samples: &[Sample],
    policy: super::ChunkPolicy,
    out: &mut Vec<ClosedChunk>,
) {
    let window = |t: i64| t.div_euclid(policy.window_ms.max(1));
    let mut start = 0;
    while start < samples.len() {
        let w = window(samples[start].timestamp_ms);
        let mut end = start;
        let mut enc = ChunkEncoder::new();
        while end < samples.len()
            && end - start < policy.max_samples.max(1)
            && window(samples[end].timestamp_ms) == w
        {
            enc.append(samples[end].timestamp_ms, samples[end].value);
            end += 1;
        }
        out.push(ClosedChunk {
            series: id,
            min_t: samples[start].timestamp_ms,
            max_t: samples[end - 1].timestamp_ms,
            samples: end - start,
            data: enc.bytes().to_vec(),
        });
        start = end;
    }
}
