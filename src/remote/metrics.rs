//! `infermon_remote_write_*`, per destination with Prometheus' labels
//! (`remote_name`, `url`).

use prometheus::{
    Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::config::SecretUrl;

/// The sender's metric families, defined once.
#[derive(Clone)]
pub struct RemoteMetrics {
    sent: IntCounterVec,
    failed: IntCounterVec,
    dropped: IntCounterVec,
    retries: IntCounterVec,
    pending: IntGaugeVec,
    lag: GaugeVec,
    shards: IntGaugeVec,
}

/// One destination's children of every family.
#[derive(Clone)]
pub struct QueueMetrics {
    /// Samples the remote accepted.
    pub sent: IntCounter,
    /// Samples that never reached the remote: batches refused with a 4xx,
    /// rows the WAL hold bound removed before they were sent.
    pub failed: IntCounter,
    /// Samples left out on purpose (write_relabel_configs).
    pub dropped: IntCounter,
    /// Requests sent again after a temporary failure.
    pub retries: IntCounter,
    /// Samples in the WAL not yet delivered.
    pub pending: IntGauge,
    /// Age of the oldest undelivered batch.
    pub lag: Gauge,
    /// Shards used for the last batch.
    pub shards: IntGauge,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

const LABELS: &[&str] = &["remote_name", "url"];

impl RemoteMetrics {
    /// Registers the families in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = RemoteMetrics {
            sent: IntCounterVec::new(
                opts(
                    "infermon_remote_write_samples_sent_total",
                    "Samples the remote_write destination accepted.",
                ),
                LABELS,
            )?,
            failed: IntCounterVec::new(
                opts(
                    "infermon_remote_write_samples_failed_total",
                    "Samples that will not reach the destination: refused with a 4xx, or dropped from the local backlog by its size/retention bound.",
                ),
                LABELS,
            )?,
            dropped: IntCounterVec::new(
                opts(
                    "infermon_remote_write_samples_dropped_total",
                    "Samples left out by write_relabel_configs or whose series retention removed.",
                ),
                LABELS,
            )?,
            retries: IntCounterVec::new(
                opts(
                    "infermon_remote_write_retries_total",
                    "Requests sent again after a network error, 5xx or (with retry_on_http_429) 429.",
                ),
                LABELS,
            )?,
            pending: IntGaugeVec::new(
                opts(
                    "infermon_remote_write_samples_pending",
                    "Samples in the local WAL not yet delivered to the destination.",
                ),
                LABELS,
            )?,
            lag: GaugeVec::new(
                opts(
                    "infermon_remote_write_lag_seconds",
                    "How long the oldest undelivered batch has waited (0 when caught up).",
                ),
                LABELS,
            )?,
            shards: IntGaugeVec::new(
                opts(
                    "infermon_remote_write_shards",
                    "Parallel senders used for the last batch.",
                ),
                LABELS,
            )?,
        };
        registry.register(Box::new(m.sent.clone()))?;
        registry.register(Box::new(m.failed.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        registry.register(Box::new(m.pending.clone()))?;
        registry.register(Box::new(m.lag.clone()))?;
        registry.register(Box::new(m.shards.clone()))?;
        Ok(m)
    }

    /// The children for one destination (they exist, at 0, from the start).
    /// The `url` label is the redacted URL: `/metrics` is public.
    pub fn for_queue(&self, name: &str, url: &SecretUrl) -> QueueMetrics {
        let url = url.redacted();
        let l = &[name, url.as_str()];
        QueueMetrics {
            sent: self.sent.with_label_values(l),
            failed: self.failed.with_label_values(l),
            dropped: self.dropped.with_label_values(l),
            retries: self.retries.with_label_values(l),
            pending: self.pending.with_label_values(l),
            lag: self.lag.with_label_values(l),
            shards: self.shards.with_label_values(l),
        }
    }
}
