//! remote_write: forwards every stored sample to VictoriaMetrics, Mimir,
//! Thanos receive or Prometheus with the Prometheus remote_write 1.0
//! protocol, losing nothing while the destination is down; and the other
//! direction, [`receive`]: `POST /api/v1/write` into infermon's store.
//!
//! # Design
//!
//! The sender does not sit in the append path; it *follows the store's WAL*.
//! Every acknowledged append is one row of the `wal` table with a `seq` that
//! only grows (`storage/follow.rs`). Each destination has a durable position
//! in the same database (`wal_followers`: every row up to `seq` is
//! delivered). The loop ([`queue::Queue`]) reads the rows after its position,
//! groups their samples per series (time order within a series is the WAL's
//! order), cuts them into requests of `max_samples_per_send` on
//! `min_shards..=max_shards` shards (a series always on the same shard, each
//! shard sending in order), and moves the position only when every request
//! of the batch is settled: accepted (2xx), or refused for good (4xx other
//! than 408 and a retried 429 — counted in `samples_failed_total`, logged with the
//! answer, and passed so it never blocks the queue). Network errors, 408, 5xx
//! and (with `retry_on_http_429`) 429 are retried forever with exponential
//! backoff between `min_backoff` and `max_backoff` ([`crate::util::retry`]).
//!
//! Durability comes from the store: a checkpoint deletes only the WAL rows
//! that every destination has passed, so an outage, a restart or `kill -9`
//! resumes from the saved position and sends what is missing. The position is
//! saved after each settled batch, so a crash between the destination's
//! answer and that save resends at most one batch (at-least-once, like
//! Prometheus). The held rows are bounded by the storage retention time and
//! `storage`'s WAL hold size (1 GiB): past that, the oldest rows are removed,
//! the lagging positions jump forward and the lost samples are counted in
//! `samples_failed_total`, so a destination that is gone for good cannot fill
//! the disk. A new destination starts at the newest row (what is stored from
//! now on); a destination removed from the config releases its hold.
//!
//! Labels: the stored series plus `global.external_labels` (the series' own
//! value wins), then `write_relabel_configs`, sorted by name; stale markers
//! are sent as the exact NaN bit pattern they are stored as.

mod borrowed;
mod client;
mod error;
mod metrics;
mod position;
pub mod proto;
mod queue;
pub mod receive;
mod retry;
mod series;
pub mod series_cache;

pub use error::RemoteError;
pub use metrics::RemoteMetrics;
pub use queue::{Queue, QueueSettings};

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::config::diff::Changes;
use crate::config::{Config, RemoteWriteConfig};
use crate::model::Labels;
use crate::model::relabel::Relabel;
use crate::shutdown::Shutdown;
use crate::storage::SqliteStorage;

/// Every configured destination, ready to run. A reload
/// ([`RemoteReloader`]) restarts only destinations whose settings changed;
/// a restarted queue resumes from its saved WAL position.
pub struct RemoteWrite {
    queues: Vec<(QueueKey, Queue)>,
    reloader: RemoteReloader,
    commands: mpsc::Receiver<Command>,
}

/// What decides whether a destination's queue restarts: its settings and
/// the external labels added to its series.
#[derive(Clone, Debug, PartialEq)]
struct QueueKey {
    name: String,
    config: RemoteWriteConfig,
    external_labels: std::collections::BTreeMap<String, String>,
}

/// Queues built from a new config, checked and not running: the result of
/// [`RemoteReloader::prepare`].
pub struct PreparedRemote {
    queues: Vec<(QueueKey, Queue)>,
}

struct Command {
    prepared: PreparedRemote,
    reply: oneshot::Sender<Result<Changes, RemoteError>>,
}

/// Builds and hands new queues to the running [`RemoteWrite`].
#[derive(Clone)]
pub struct RemoteReloader {
    storage: SqliteStorage,
    metrics: RemoteMetrics,
    commands: mpsc::Sender<Command>,
}

/// The name used in metrics, logs and as the position's key: `name`, or the
/// first 6 hex digits of a hash of the URL (as Prometheus does without one).
pub fn remote_name(c: &RemoteWriteConfig) -> String {
    match &c.name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => format!(
            "{:016x}",
            xxhash_rust::xxh64::xxh64(c.url.expose().as_bytes(), 0)
        )[..6]
            .to_string(),
    }
}

/// One queue per `remote_write` entry, checked, not registered or running.
fn build_queues(
    config: &Config,
    storage: &SqliteStorage,
    metrics: &RemoteMetrics,
) -> Result<Vec<(QueueKey, Queue)>, RemoteError> {
    let external = Labels::new(config.global.external_labels.clone());
    let mut queues = Vec::new();
    let mut names = std::collections::HashSet::new();
    for c in &config.remote_write {
        let name = remote_name(c);
        if !names.insert(name.clone()) {
            return Err(RemoteError::Config {
                remote: name,
                reason: "two remote_write entries have this name; give each a unique `name`".into(),
            });
        }
        match reqwest::Url::parse(c.url.expose()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(RemoteError::Config {
                    remote: name,
                    reason: format!("url {:?} is not an http(s) URL", c.url.redacted()),
                });
            }
        }
        let relabel =
            Relabel::compile(&c.write_relabel_configs).map_err(|e| RemoteError::Config {
                remote: name.clone(),
                reason: e.to_string(),
            })?;
        let key = QueueKey {
            name: name.clone(),
            config: c.clone(),
            external_labels: config.global.external_labels.clone(),
        };
        queues.push((
            key,
            Queue {
                client: Arc::new(client::WriteClient::new(&name, c)?),
                metrics: metrics.for_queue(&name, &c.url),
                series: series::SeriesCache::new(external.clone(), relabel),
                settings: QueueSettings::from_config(&c.queue_config),
                storage: storage.clone(),
                name,
            },
        ));
    }
    Ok(queues)
}

impl RemoteWrite {
    /// Builds one queue per `remote_write` entry, registers each one's WAL
    /// position and releases the hold of destinations no longer configured.
    pub fn new(
        config: &Config,
        storage: SqliteStorage,
        metrics: &RemoteMetrics,
    ) -> Result<Self, RemoteError> {
        let queues = build_queues(config, &storage, metrics)?;
        // Registered now, before the scrapers start: a new destination
        // gets everything stored from this start on.
        for (key, _) in &queues {
            storage.follow_wal(&key.name)?;
        }
        let names: Vec<String> = queues.iter().map(|(k, _)| k.name.clone()).collect();
        storage.retain_followers(&names)?;
        let (tx, commands) = mpsc::channel(1);
        Ok(RemoteWrite {
            queues,
            reloader: RemoteReloader {
                storage,
                metrics: metrics.clone(),
                commands: tx,
            },
            commands,
        })
    }

    /// What reloads the destinations while [`run`](Self::run) runs.
    pub fn reloader(&self) -> RemoteReloader {
        self.reloader.clone()
    }

    /// Runs every queue until `shutdown`, applying reloads as they come.
    pub async fn run(mut self, shutdown: Shutdown) {
        let mut running: Vec<RunningQueue> = std::mem::take(&mut self.queues)
            .into_iter()
            .map(|(key, q)| RunningQueue::start(key, q, &shutdown))
            .collect();
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                Some(cmd) = self.commands.recv() => {
                    let result = self.reloader.swap(&mut running, cmd.prepared, &shutdown).await;
                    let _ = cmd.reply.send(result);
                }
            }
        }
        for q in running {
            let _ = q.handle.await;
        }
    }
}

struct RunningQueue {
    key: QueueKey,
    stop: Shutdown,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningQueue {
    fn start(key: QueueKey, q: Queue, shutdown: &Shutdown) -> Self {
        let stop = shutdown.child();
        let (name, signal) = (key.name.clone(), stop.clone());
        let handle = tokio::spawn(async move {
            if let Err(e) = q.run(signal).await {
                tracing::error!(remote = %name, error = %e, "remote_write queue stopped");
            }
        });
        RunningQueue { key, stop, handle }
    }
}

impl RemoteReloader {
    /// Builds the queues of `config` without starting them; a bad entry is
    /// an error and nothing changes.
    pub fn prepare(&self, config: &Config) -> Result<PreparedRemote, RemoteError> {
        Ok(PreparedRemote {
            queues: build_queues(config, &self.storage, &self.metrics)?,
        })
    }

    /// Hands `prepared` to the running sender: queues of unchanged
    /// destinations keep running; changed ones stop (their in-flight
    /// request finishes) and restart from their saved position; new ones
    /// start at the newest WAL row; removed ones stop and release their
    /// hold on the WAL. Returns the destinations (by `remote_name`) started,
    /// changed and stopped.
    pub async fn apply(&self, prepared: PreparedRemote) -> Result<Changes, RemoteError> {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command { prepared, reply })
            .await
            .is_err()
        {
            return Ok(Changes::default());
        }
        answer.await.unwrap_or_else(|_| Ok(Changes::default()))
    }

    async fn swap(
        &self,
        running: &mut Vec<RunningQueue>,
        prepared: PreparedRemote,
        shutdown: &Shutdown,
    ) -> Result<Changes, RemoteError> {
        let old: Vec<QueueKey> = running.iter().map(|q| q.key.clone()).collect();
        let new: Vec<QueueKey> = prepared.queues.iter().map(|(k, _)| k.clone()).collect();
        let changes = Changes::by_name(&old, &new, |k| k.name.clone());
        for (key, _) in &prepared.queues {
            if changes.added.contains(&key.name) {
                self.storage.follow_wal(&key.name)?;
            }
        }
        let mut next = Vec::new();
        let mut stopping = Vec::new();
        for q in running.drain(..) {
            if changes.removed.contains(&q.key.name) || changes.changed.contains(&q.key.name) {
                q.stop.trigger();
                stopping.push(q.handle);
            } else {
                next.push(q);
            }
        }
        // The old queue saves its position before its successor reads it.
        for h in stopping {
            let _ = h.await;
        }
        for (key, q) in prepared.queues {
            if changes.started().any(|n| *n == key.name) {
                next.push(RunningQueue::start(key, q, shutdown));
            }
        }
        let names: Vec<String> = next.iter().map(|q| q.key.name.clone()).collect();
        *running = next;
        self.storage.retain_followers(&names)?;
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_urls_and_bad_entries() {
        let c: RemoteWriteConfig =
            serde_yaml_ng::from_str("url: https://u:pw@vm.example/api/v1/write?t=1").unwrap();
        assert_eq!(remote_name(&c).len(), 6);
        assert_eq!(
            c.url.redacted(),
            "https://<secret>@vm.example/api/v1/write?t=<secret>"
        );
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(dir.path(), Default::default()).unwrap();
        let registry = prometheus::Registry::new();
        let metrics = RemoteMetrics::new(&registry).unwrap();
        // Parsed without the config validation, to reach this layer's checks.
        let config = |yaml: &str| -> Config { serde_yaml_ng::from_str(yaml).unwrap() };
        let err = |yaml: &str| {
            RemoteWrite::new(&config(yaml), storage.clone(), &metrics)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let e = err("remote_write: [{url: 'vm:8428'}]");
        assert!(e.contains("not an http(s) URL"), "{e}");
        assert!(
            err("remote_write: [{url: 'http://a/w', name: x}, {url: 'http://b/w', name: x}]")
                .contains("two remote_write entries")
        );
        assert!(
            err("remote_write: [{url: 'http://a/w', write_relabel_configs: [{regex: '('}]}]")
                .contains("regex")
        );
    }
}
