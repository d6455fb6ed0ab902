//! The durable outbox: a notification is written to SQLite before it is
//! sent and leaves the outbox only when delivered (or given up after
//! `max_retry_duration`, with the final error recorded). One send loop per
//! integration delivers its notifications in order, within the integration's
//! rate limit, with backoff from [`super::retry`]. A restart, a receiver
//! outage or a burst loses nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use tokio::sync::Notify;

use super::channels::Channel;
use super::metrics::AlertingMetrics;
use super::notification::Notification;
use super::retry::{SendError, backoff};
use super::{AlertingError, NowFn};
use crate::shutdown::Shutdown;
use crate::storage::{DeliveryRecord, OutboxRow, StateStore};

/// A token bucket: `per_minute` messages per minute, bursts up to that many.
struct RateLimit {
    capacity: f64,
    tokens: f64,
    per_ms: f64,
    last: tokio::time::Instant,
}

impl RateLimit {
    fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute.max(1));
        RateLimit {
            capacity,
            tokens: capacity,
            per_ms: capacity / 60_000.0,
            last: tokio::time::Instant::now(),
        }
    }

    /// How long to wait before one message may go (zero: take it now).
    fn wait(&mut self) -> Duration {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_millis() as f64;
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Duration::ZERO
        } else {
            Duration::from_millis(((1.0 - self.tokens) / self.per_ms).ceil() as u64)
        }
    }
}

/// The outbox and its send loops. A reload swaps the channels
/// ([`set_channels`](Outbox::set_channels)): queued notifications stay,
/// loops of new integrations start, those of removed ones stop.
pub struct Outbox {
    store: Arc<StateStore>,
    channels: ArcSwap<BTreeMap<String, Arc<dyn Channel>>>,
    wake: Mutex<BTreeMap<String, Arc<Notify>>>,
    metrics: AlertingMetrics,
    now: NowFn,
    max_retry_ms: AtomicI64,
    loops: Mutex<Loops>,
}

/// The running send loops, once [`Outbox::run`] started them.
#[derive(Default)]
struct Loops {
    shutdown: Option<Shutdown>,
    tasks: BTreeMap<String, (Shutdown, tokio::task::JoinHandle<()>)>,
}

impl Outbox {
    /// An outbox over `store` delivering through `channels` (key → channel).
    pub fn new(
        store: Arc<StateStore>,
        channels: Vec<(String, Arc<dyn Channel>)>,
        metrics: AlertingMetrics,
        now: NowFn,
        max_retry: Duration,
    ) -> Result<Self, AlertingError> {
        let channels: BTreeMap<String, Arc<dyn Channel>> = channels.into_iter().collect();
        let wake = channels
            .keys()
            .map(|k| (k.clone(), Arc::new(Notify::new())))
            .collect();
        for row in store.queued()? {
            metrics.queued.with_label_values(&[&row.integration]).inc();
        }
        Ok(Outbox {
            store,
            channels: ArcSwap::from_pointee(channels),
            wake: Mutex::new(wake),
            metrics,
            now,
            max_retry_ms: AtomicI64::new(max_retry.as_millis() as i64),
            loops: Mutex::default(),
        })
    }

    /// The channel of an integration.
    pub fn channel(&self, key: &str) -> Option<Arc<dyn Channel>> {
        self.channels.load().get(key).cloned()
    }

    fn wake_of(&self, key: &str) -> Arc<Notify> {
        self.wake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Replaces the channels (a reload): an integration whose key stays
    /// sends its queued notifications through its new channel, a new one
    /// gets a send loop, a removed one's loop stops after its current send
    /// and what it had queued is recorded as failed, as at start.
    pub fn set_channels(
        self: &Arc<Self>,
        channels: Vec<(String, Arc<dyn Channel>)>,
        max_retry: Duration,
    ) {
        let channels: BTreeMap<String, Arc<dyn Channel>> = channels.into_iter().collect();
        self.max_retry_ms
            .store(max_retry.as_millis() as i64, Ordering::Relaxed);
        self.channels.store(Arc::new(channels.clone()));
        let mut loops = self.loops.lock().unwrap_or_else(|p| p.into_inner());
        let removed: Vec<String> = loops
            .tasks
            .keys()
            .filter(|k| !channels.contains_key(*k))
            .cloned()
            .collect();
        for key in removed {
            if let Some((stop, _)) = loops.tasks.remove(&key) {
                stop.trigger();
            }
        }
        if let Some(shutdown) = loops.shutdown.clone()
            && !shutdown.is_triggered()
        {
            for key in channels.keys() {
                if !loops.tasks.contains_key(key) {
                    let stop = shutdown.child();
                    let handle = tokio::spawn(self.clone().send_loop(key.clone(), stop.clone()));
                    loops.tasks.insert(key.clone(), (stop, handle));
                }
            }
        }
        drop(loops);
        // Changed channels: wake their loops so they pick up the new one.
        for key in channels.keys() {
            self.wake_of(key).notify_one();
        }
        self.fail_orphans();
    }

    /// Records queued notifications of integrations no longer configured
    /// as failed.
    fn fail_orphans(&self) {
        let channels = self.channels.load();
        match self.store.queued() {
            Ok(rows) => {
                for row in rows
                    .iter()
                    .filter(|r| !channels.contains_key(&r.integration))
                {
                    self.metrics
                        .given_up
                        .with_label_values(&[&row.integration])
                        .inc();
                    self.finish(
                        row,
                        row.attempts,
                        Some("integration no longer configured".into()),
                        String::new(),
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
        }
    }

    /// Queues `n` for `key`, recording `log` (the notification-log entry
    /// that says it was sent) in the same transaction.
    pub fn enqueue(
        &self,
        key: &str,
        n: &Notification,
        log: Option<(&str, &str, i64)>,
    ) -> Result<i64, AlertingError> {
        let json = serde_json::to_string(n)
            .map_err(|e| AlertingError::Config(format!("cannot encode notification: {e}")))?;
        let id = self.store.enqueue(key, &json, (self.now)(), log)?;
        self.metrics.queued.with_label_values(&[key]).inc();
        self.wake_of(key).notify_one();
        Ok(id)
    }

    /// Notifications waiting, oldest first.
    pub fn queued(&self) -> Result<Vec<OutboxRow>, AlertingError> {
        Ok(self.store.queued()?)
    }

    /// Finished deliveries, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<DeliveryRecord>, AlertingError> {
        Ok(self.store.history(limit)?)
    }

    fn finish(&self, row: &OutboxRow, attempts: u32, error: Option<String>, summary: String) {
        let record = DeliveryRecord {
            id: row.id,
            integration: row.integration.clone(),
            status: if error.is_some() { "failed" } else { "sent" }.to_string(),
            summary,
            created_ms: row.created_ms,
            finished_ms: (self.now)(),
            attempts,
            error,
        };
        match self.store.finish(row, &record) {
            Ok(()) => self
                .metrics
                .queued
                .with_label_values(&[&row.integration])
                .dec(),
            Err(e) => tracing::error!(error = %e, "cannot record delivery; it will be retried"),
        }
    }

    /// Runs one send loop per integration until `shutdown`. Notifications
    /// queued for integrations that are no longer configured are recorded
    /// as failed. A send in progress at shutdown is allowed to finish.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        self.fail_orphans();
        {
            let mut loops = self.loops.lock().unwrap_or_else(|p| p.into_inner());
            loops.shutdown = Some(shutdown.clone());
            for key in self.channels.load().keys() {
                let stop = shutdown.child();
                let handle = tokio::spawn(self.clone().send_loop(key.clone(), stop.clone()));
                loops.tasks.insert(key.clone(), (stop, handle));
            }
        }
        shutdown.wait().await;
        let tasks = std::mem::take(&mut self.loops.lock().unwrap_or_else(|p| p.into_inner()).tasks);
        for (_, (_, handle)) in tasks {
            let _ = handle.await;
        }
        tracing::info!("alert outbox stopped");
    }

    async fn send_loop(self: Arc<Self>, key: String, shutdown: Shutdown) {
        let wake = self.wake_of(&key);
        let mut current: Option<Arc<dyn Channel>> = None;
        let mut limit = None;
        loop {
            if shutdown.is_triggered() {
                return;
            }
            // The channel is looked up each time: a reload may replace it
            // (a new rate limit starts with it) or remove it (the loop ends).
            let Some(channel) = self.channel(&key) else {
                return;
            };
            if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &channel)) {
                limit = channel.rate_limit_per_minute().map(RateLimit::new);
                current = Some(channel.clone());
            }
            let row = match self.store.next_queued(&key) {
                Ok(Some(row)) => row,
                Ok(None) => {
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = wake.notified() => continue,
                        _ = tokio::time::sleep(Duration::from_secs(60)) => continue,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, integration = %key, "cannot read the outbox");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            };
            let wait_ms = row.next_attempt_ms - (self.now)();
            if wait_ms > 0 {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => continue,
                }
            }
            if let Some(limit) = &mut limit {
                let wait = limit.wait();
                if !wait.is_zero() {
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
            self.attempt(&row, channel.as_ref()).await;
        }
    }

    async fn attempt(&self, row: &OutboxRow, channel: &dyn Channel) {
        let key = &row.integration;
        let attempts = row.attempts + 1;
        let notification: Notification = match serde_json::from_str(&row.payload_json) {
            Ok(n) => n,
            Err(e) => {
                self.metrics.given_up.with_label_values(&[key]).inc();
                self.finish(
                    row,
                    attempts,
                    Some(format!("unreadable queued notification: {e}")),
                    String::new(),
                );
                return;
            }
        };
        let summary = notification.summary();
        // Bound every attempt, whatever the channel's own timeouts are.
        let result = match tokio::time::timeout(
            Duration::from_secs(30),
            channel.send(&notification),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(SendError::Retry {
                reason: "send timed out after 30s".into(),
                after: None,
                maybe_delivered: true,
            }),
        }
        // Whatever the channel, no credential reaches the log or the history.
        .map_err(super::channels::redact_error);
        match result {
            Ok(()) => {
                self.metrics.sent.with_label_values(&[key]).inc();
                tracing::info!(integration = %key, attempts, "notification delivered: {summary}");
                self.finish(row, attempts, None, summary);
            }
            Err(SendError::Fatal(reason)) => {
                self.metrics.failed.with_label_values(&[key]).inc();
                self.metrics.given_up.with_label_values(&[key]).inc();
                tracing::error!(integration = %key, error = %reason, "notification failed permanently: {summary}");
                self.finish(row, attempts, Some(reason), summary);
            }
            Err(SendError::Retry {
                reason,
                after,
                maybe_delivered,
            }) => {
                self.metrics.failed.with_label_values(&[key]).inc();
                if maybe_delivered {
                    self.metrics
                        .possible_duplicates
                        .with_label_values(&[key])
                        .inc();
                }
                let now = (self.now)();
                if now - row.created_ms >= self.max_retry_ms.load(Ordering::Relaxed) {
                    self.metrics.given_up.with_label_values(&[key]).inc();
                    tracing::error!(integration = %key, error = %reason, attempts, "giving up on notification after max_retry_duration: {summary}");
                    self.finish(
                        row,
                        attempts,
                        Some(format!("gave up after {attempts} attempts: {reason}")),
                        summary,
                    );
                    return;
                }
                let delay = backoff(attempts - 1).max(after.unwrap_or_default());
                tracing::warn!(integration = %key, error = %reason, attempts, retry_in = ?delay, "notification delivery failed; will retry");
                if let Err(e) =
                    self.store
                        .reschedule(row.id, attempts, now + delay.as_millis() as i64, &reason)
                {
                    tracing::error!(error = %e, "cannot reschedule notification");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_limit_allows_a_burst_then_spaces_messages() {
        let mut limit = RateLimit::new(20);
        for _ in 0..20 {
            assert_eq!(limit.wait(), Duration::ZERO);
        }
        assert_eq!(
            limit.wait(),
            Duration::from_secs(3),
            "20 per minute: one every 3 s"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(limit.wait(), Duration::ZERO);
    }
}
