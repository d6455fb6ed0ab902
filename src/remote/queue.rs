//! One destination's sender: tails the WAL from its durable position, cuts
//! what it read into requests, sends them on parallel shards, and moves the
//! position only once every request of the batch is settled.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::RemoteError;
use super::client::WriteClient;
use super::metrics::QueueMetrics;
use super::position::Position;
use super::proto::{RequestBuilder, compress};
use super::retry::Outcome;
use super::series::{Resolved, SeriesCache};
use crate::config::QueueConfig;
use crate::shutdown::Shutdown;
use crate::storage::{SeriesId, SqliteStorage, WalRecord};
use crate::util::retry::RetryPolicy;

/// Settings of one queue, from `queue_config`.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// Samples per request.
    pub max_samples_per_send: usize,
    /// Fewest parallel senders.
    pub min_shards: usize,
    /// Most parallel senders.
    pub max_shards: usize,
    /// A partial request goes out once its oldest batch is this old.
    pub batch_send_deadline: Duration,
    /// Backoff between tries of one request.
    pub retry: RetryPolicy,
}

impl QueueSettings {
    /// Reads `queue_config` (zeros become 1: a queue always sends).
    pub fn from_config(q: &QueueConfig) -> Self {
        let min_shards = q.min_shards.max(1);
        QueueSettings {
            max_samples_per_send: q.max_samples_per_send.max(1),
            min_shards,
            max_shards: q.max_shards.max(min_shards),
            batch_send_deadline: q.batch_send_deadline.as_duration(),
            retry: super::retry::policy(q),
        }
    }
}

/// One destination's sender.
pub struct Queue {
    /// `remote_name` in metrics and logs.
    pub name: String,
    /// Where the position and the WAL come from.
    pub storage: SqliteStorage,
    /// The HTTP side.
    pub client: Arc<WriteClient>,
    /// Labels as the destination sees them.
    pub series: SeriesCache,
    /// Metric children of this destination.
    pub metrics: QueueMetrics,
    /// Batching and retries.
    pub settings: QueueSettings,
}

/// How a batch ended.
enum Settled {
    /// Every request was accepted or dropped.
    Done,
    /// Shutdown came first; the position stays where it was.
    Stopped,
}

/// How often the backlog gauges are refreshed (also while a send retries).
const GAUGE_EVERY: Duration = Duration::from_secs(1);

impl Queue {
    /// Runs until `shutdown`. What is not acknowledged at that point stays in
    /// the WAL and goes out at the next start.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<(), RemoteError> {
        let mut position = Position::open(self.storage.clone(), &self.name).await?;
        tracing::info!(remote = %self.name, seq = position.seq(), "remote_write starting from its saved WAL position");
        let gauges = tokio::spawn(report_backlog(
            self.storage.clone(),
            position.shared(),
            self.metrics.clone(),
            shutdown.clone(),
        ));
        let mut watch = self.storage.wal_watch();
        let mut buffer: Vec<WalRecord> = Vec::new();
        let mut buffered = 0usize;
        let mut read_upto = position.seq();
        let s = self.settings.clone();
        let limit = s.max_samples_per_send * s.max_shards;
        loop {
            if shutdown.is_triggered() {
                break;
            }
            watch.borrow_and_update();
            if buffered < limit {
                let storage = self.storage.clone();
                let want = limit - buffered;
                let read = tokio::task::spawn_blocking(move || storage.read_wal(read_upto, want))
                    .await
                    .map_err(|e| crate::storage::StorageError::Backend(e.to_string()));
                match read {
                    Ok(Ok(records)) => {
                        for r in records {
                            read_upto = r.seq;
                            buffered += r.samples.len();
                            buffer.push(r);
                        }
                    }
                    Ok(Err(e)) | Err(e) => {
                        tracing::error!(remote = %self.name, error = %e, "cannot read the WAL; retrying");
                        sleep_or_stop(Duration::from_secs(1), &shutdown).await;
                        continue;
                    }
                }
            }
            let now = crate::util::now_ms();
            let due = buffer.first().map(|r| {
                let age = Duration::from_millis((now - r.appended_ms).max(0) as u64);
                s.batch_send_deadline.saturating_sub(age)
            });
            let ready = match due {
                None => false,
                Some(wait) => buffered >= s.max_samples_per_send || wait.is_zero(),
            };
            if !ready {
                // Nothing to send yet: wait for an append, the deadline of
                // what is buffered, or shutdown.
                let wait = due.unwrap_or(Duration::from_secs(3600));
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = watch.changed() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let last = buffer.last().map(|r| r.seq).unwrap_or(read_upto);
            match self.send_batch(&buffer, buffered, &shutdown).await {
                Ok(Settled::Stopped) => break,
                Ok(Settled::Done) => {}
                Err(e) => {
                    // Nothing was skipped: the same rows are tried again.
                    tracing::error!(remote = %self.name, error = %e, "cannot build a remote_write batch; retrying");
                    sleep_or_stop(Duration::from_secs(1), &shutdown).await;
                    continue;
                }
            }
            buffer.clear();
            buffered = 0;
            match position.advance(last).await {
                Ok(lost) => self.metrics.failed.inc_by(lost),
                // Delivered but not saved: the next save covers it; a crash
                // before that resends this batch.
                Err(e) => {
                    tracing::warn!(remote = %self.name, error = %e, "cannot save the remote_write position")
                }
            }
            // The hold bound may have moved the position past what was read.
            read_upto = read_upto.max(position.seq());
        }
        let _ = gauges.await;
        tracing::info!(remote = %self.name, seq = position.seq(), "remote_write stopped");
        Ok(())
    }

    /// Cuts `records` into requests per shard and sends them; a series
    /// always lands on the same shard and each shard sends in order, so
    /// every series' samples arrive in time order.
    async fn send_batch(
        &mut self,
        records: &[WalRecord],
        total: usize,
        shutdown: &Shutdown,
    ) -> Result<Settled, RemoteError> {
        let s = &self.settings;
        let shards = total
            .div_ceil(s.max_samples_per_send)
            .clamp(s.min_shards, s.max_shards);
        self.metrics.shards.set(shards as i64);

        // Samples per series, in WAL order (time order per series).
        let mut order: Vec<SeriesId> = Vec::new();
        let mut by_series: HashMap<SeriesId, Vec<(i64, f64)>> = HashMap::new();
        for r in records {
            for smp in &r.samples {
                by_series
                    .entry(smp.series)
                    .or_insert_with(|| {
                        order.push(smp.series);
                        Vec::new()
                    })
                    .push((smp.t, f64::from_bits(smp.v)));
            }
        }
        let mut requests: Vec<Vec<(Bytes, usize)>> = vec![Vec::new(); shards];
        let mut builders: Vec<RequestBuilder> =
            (0..shards).map(|_| RequestBuilder::default()).collect();
        let mut left_out = 0u64;
        for id in order {
            let samples = by_series.remove(&id).unwrap_or_default();
            let labels = match self.series.resolve(&self.storage, id)? {
                Resolved::Send(l) => l,
                Resolved::Relabeled | Resolved::Gone => {
                    left_out += samples.len() as u64;
                    continue;
                }
            };
            let shard = (xxhash_rust::xxh64::xxh64(&id.to_le_bytes(), 0) % shards as u64) as usize;
            let mut rest: &[(i64, f64)] = &samples;
            while !rest.is_empty() {
                let room = s.max_samples_per_send - builders[shard].samples();
                let (now, later) = rest.split_at(room.min(rest.len()));
                builders[shard].push(&labels, now);
                rest = later;
                if builders[shard].samples() >= s.max_samples_per_send {
                    let full = std::mem::take(&mut builders[shard]);
                    requests[shard].push(finish(full)?);
                }
            }
        }
        for (shard, b) in builders.into_iter().enumerate() {
            if b.samples() > 0 {
                requests[shard].push(finish(b)?);
            }
        }
        self.metrics.dropped.inc_by(left_out);

        let sends = requests.into_iter().map(|reqs| {
            let (client, metrics, name, s) = (
                self.client.clone(),
                self.metrics.clone(),
                self.name.clone(),
                self.settings.clone(),
            );
            async move {
                for (body, n) in reqs {
                    send_with_retry(&client, &metrics, &name, &s, body, n).await;
                }
            }
        });
        tokio::select! {
            _ = futures::future::join_all(sends) => Ok(Settled::Done),
            _ = shutdown.wait() => Ok(Settled::Stopped),
        }
    }
}

fn finish(b: RequestBuilder) -> Result<(Bytes, usize), RemoteError> {
    let n = b.samples();
    Ok((Bytes::from(compress(&b.finish())?), n))
}

/// Sends one request until it is accepted or refused for good.
async fn send_with_retry(
    client: &WriteClient,
    metrics: &QueueMetrics,
    name: &str,
    s: &QueueSettings,
    body: Bytes,
    samples: usize,
) {
    let mut backoff = s.retry.backoff();
    let mut attempt = 0u64;
    loop {
        match client.send(body.clone()).await {
            Outcome::Sent => {
                metrics.sent.inc_by(samples as u64);
                if attempt > 0 {
                    tracing::info!(remote = %name, attempts = attempt + 1, "remote_write request delivered after retries");
                }
                return;
            }
            Outcome::Drop(reason) => {
                metrics.failed.inc_by(samples as u64);
                tracing::error!(remote = %name, samples, %reason, "remote_write destination refused a batch; dropping it");
                return;
            }
            Outcome::Retry(reason) => {
                attempt += 1;
                metrics.retries.inc();
                // The first failure and then every tenth: an outage of
                // minutes should not flood the log.
                if attempt == 1 || attempt.is_multiple_of(10) {
                    tracing::warn!(remote = %name, attempt, %reason, "remote_write request failed; retrying (samples stay in the WAL)");
                }
                backoff.wait().await;
            }
        }
    }
}

async fn sleep_or_stop(d: Duration, shutdown: &Shutdown) {
    tokio::select! {
        _ = shutdown.wait() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Keeps `samples_pending` and `lag_seconds` current, also while a send is
/// stuck retrying (that is when they matter).
async fn report_backlog(
    storage: SqliteStorage,
    position: Arc<AtomicI64>,
    metrics: QueueMetrics,
    shutdown: Shutdown,
) {
    loop {
        let s = storage.clone();
        let after = position.load(Ordering::Relaxed);
        if let Ok(Ok(b)) = tokio::task::spawn_blocking(move || s.wal_backlog(after)).await {
            metrics.pending.set(b.samples as i64);
            let lag = b
                .oldest_appended_ms
                .map(|t| (crate::util::now_ms() - t).max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            metrics.lag.set(lag);
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(GAUGE_EVERY) => {}
        }
    }
}
