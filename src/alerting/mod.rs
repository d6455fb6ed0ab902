//! Alert delivery with Alertmanager's semantics: routing tree, aggregation
//! groups (group_wait / group_interval / repeat_interval), silences,
//! inhibition, a notification log that deduplicates across restarts, and a
//! durable outbox that retries every notification until it is delivered.
//!
//! Prometheus' `alert_relabel_configs` apply to the alerts the rules raise.
//!
//! This part delivers; `rules` decides. It receives [`Alert`]s (the composition
//! root converts what rules emit) and never names the rules' types.

pub mod channels;
mod dispatcher;
mod inhibit;
mod message;
mod metrics;
mod notification;
mod outbox;
mod relabel;
mod retry;
mod route;
mod silence;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use dispatcher::{AlertManager, PreparedAlerting};
pub use inhibit::Inhibitor;
pub use message::{Language, Message, render_message};
pub use metrics::AlertingMetrics;
pub use notification::{Notification, NotifiedAlert};
pub use outbox::Outbox;
pub use retry::{SendError, backoff};
pub use route::{GroupBy, RouteNode};
pub use silence::{PostableSilence, Silence, SilenceMatcher, SilenceState, Silences};

use crate::model::Labels;

/// Milliseconds since the epoch, now (injected so tests can run on tokio's paused clock).
pub type NowFn = Arc<dyn Fn() -> i64 + Send + Sync>;

/// An alert as the alert manager keeps it (Alertmanager's `types.Alert`).
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Identifying labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started (ms).
    pub starts_at_ms: i64,
    /// When it ended or stops being valid without a refresh (ms).
    pub ends_at_ms: i64,
    /// Link back to its source.
    pub generator_url: String,
}

impl Alert {
    /// A stable 64-bit fingerprint of the labels (the same across restarts
    /// and builds, unlike `std`'s hasher), as 16 hex digits.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.labels)
    }

    /// Whether it is resolved at `now_ms`.
    pub fn resolved(&self, now_ms: i64) -> bool {
        self.ends_at_ms <= now_ms
    }
}

/// The fingerprint of a label set.
pub fn fingerprint(labels: &Labels) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for l in labels.iter() {
        h.update(l.name.as_bytes());
        h.update([0xff]);
        h.update(l.value.as_bytes());
        h.update([0xff]);
    }
    let d = h.finalize();
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Errors of the alerting part.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    /// The state store failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The alerting config cannot be used.
    #[error("alerting config: {0}")]
    Config(String),
    /// A metric could not be registered.
    #[error("cannot register alerting metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A silence is invalid.
    #[error("invalid silence: {0}")]
    BadSilence(String),
    /// No such silence.
    #[error("silence {0} not found")]
    NoSilence(String),
}

/// RFC 3339 text of a ms timestamp (UTC), as Alertmanager's API writes times.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Parses RFC 3339 text into ms.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|d| d.timestamp_millis())
}
