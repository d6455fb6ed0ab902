//! The alerting part's own metrics, defined once.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Delivery and alert counts, labelled by integration (`receiver/kind/index`).
#[derive(Clone)]
pub struct AlertingMetrics {
    /// Notifications delivered.
    pub sent: IntCounterVec,
    /// Delivery attempts that failed (each retry counts).
    pub failed: IntCounterVec,
    /// Notifications given up on after `max_retry_duration` or a permanent error.
    pub given_up: IntCounterVec,
    /// Retries after a timeout that may have reached the receiver (possible duplicates).
    pub possible_duplicates: IntCounterVec,
    /// Notifications waiting in the outbox.
    pub queued: IntGaugeVec,
    /// Alerts known, by state (`active`, `suppressed`, `resolved`).
    pub alerts: IntGaugeVec,
    /// Aggregation groups.
    pub groups: IntGauge,
    /// Aggregation-group flushes.
    pub flushes: IntCounter,
}

impl AlertingMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), &["integration"])?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let m = AlertingMetrics {
            sent: counter(
                "infermon_alerting_notifications_sent_total",
                "Notifications delivered.",
            )?,
            failed: counter(
                "infermon_alerting_notifications_failed_total",
                "Notification delivery attempts that failed; the notification stays queued and is retried.",
            )?,
            given_up: counter(
                "infermon_alerting_notifications_given_up_total",
                "Notifications recorded as failed after max_retry_duration or a permanent error.",
            )?,
            possible_duplicates: counter(
                "infermon_alerting_notifications_possible_duplicates_total",
                "Retries after a timeout that may already have reached the receiver.",
            )?,
            queued: IntGaugeVec::new(
                Opts::new(
                    "infermon_alerting_notifications_queued",
                    "Notifications waiting in the outbox.",
                ),
                &["integration"],
            )?,
            alerts: IntGaugeVec::new(
                Opts::new("infermon_alerting_alerts", "Alerts known, by state."),
                &["state"],
            )?,
            groups: IntGauge::new(
                "infermon_alerting_aggregation_groups",
                "Aggregation groups.",
            )?,
            flushes: IntCounter::new(
                "infermon_alerting_group_flushes_total",
                "Aggregation-group flushes; each decides whether the group's receivers need a notification.",
            )?,
        };
        registry.register(Box::new(m.queued.clone()))?;
        registry.register(Box::new(m.alerts.clone()))?;
        registry.register(Box::new(m.groups.clone()))?;
        registry.register(Box::new(m.flushes.clone()))?;
        Ok(m)
    }
}
