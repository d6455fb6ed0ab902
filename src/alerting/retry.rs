//! How alert channels retry: the shared [`RetryPolicy`] with the
//! notification defaults, and the error a channel's send returns.

use std::time::Duration;

use crate::util::retry::{RetryPolicy, Verdict};

/// Notification delivery: waits start at 1 s and double up to 5 minutes, with
/// ±20 % jitter; a 429 waits at least 30 s. The outbox gives up after the
/// receiver's `max_retry_duration`.
pub const POLICY: RetryPolicy = RetryPolicy {
    min_backoff: Duration::from_secs(1),
    max_backoff: Duration::from_secs(300),
    jitter: 0.2,
    retry_on_429: true,
    rate_limit_wait: Some(Duration::from_secs(30)),
};

/// Why a send failed, and whether to try again.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Temporary (5xx, timeout, network, rate limit): retry, after `after` when the receiver said so.
    #[error("{reason}")]
    Retry {
        /// What happened.
        reason: String,
        /// Wait at least this long (rate limits).
        after: Option<Duration>,
        /// The request may have arrived (timeout after sending): a retry may duplicate it.
        maybe_delivered: bool,
    },
    /// Permanent (bad URL, bad signature, 4xx): retrying cannot help.
    #[error("{0}")]
    Fatal(String),
}

impl SendError {
    /// A temporary failure.
    pub fn retry(reason: impl Into<String>) -> Self {
        SendError::Retry {
            reason: reason.into(),
            after: None,
            maybe_delivered: false,
        }
    }

    /// A rate-limit answer: wait at least `after`.
    pub fn rate_limited(reason: impl Into<String>, after: Duration) -> Self {
        SendError::Retry {
            reason: reason.into(),
            after: Some(after),
            maybe_delivered: false,
        }
    }
}

/// Classifies an HTTP answer by status with [`POLICY`]: 2xx ok; 408, 429 and
/// 5xx retry; other statuses are permanent.
pub fn classify_status(status: u16, body: &str) -> Result<(), SendError> {
    let snippet: String = body.chars().take(300).collect();
    let reason = || format!("HTTP {status}: {snippet}");
    match POLICY.classify(status) {
        Verdict::Success => Ok(()),
        Verdict::Retry { after: Some(after) } => Err(SendError::rate_limited(reason(), after)),
        Verdict::Retry { after: None } => Err(SendError::retry(reason())),
        Verdict::Fatal => Err(SendError::Fatal(reason())),
    }
}

/// Classifies a transport error (no answer).
pub fn classify_transport(e: &reqwest::Error) -> SendError {
    SendError::Retry {
        reason: format!("request failed: {e}"),
        after: None,
        // A timeout after the request was written may still have been delivered.
        maybe_delivered: e.is_timeout() && !e.is_connect(),
    }
}

/// The wait after failed try number `attempt` (0 = the first) under [`POLICY`].
pub fn backoff(attempt: u32) -> Duration {
    POLICY.delay(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_backoff() {
        assert!(classify_status(200, "").is_ok());
        assert!(matches!(
            classify_status(503, "busy"),
            Err(SendError::Retry { .. })
        ));
        assert!(matches!(
            classify_status(429, ""),
            Err(SendError::Retry { after: Some(_), .. })
        ));
        assert!(matches!(classify_status(404, ""), Err(SendError::Fatal(_))));
        assert_eq!(
            classify_status(408, "slow"),
            Err(SendError::retry("HTTP 408: slow"))
        );
        for attempt in 0..30 {
            let d = backoff(attempt).as_millis();
            let nominal = (1000u128 << attempt.min(20)).min(300_000);
            assert!(
                d >= nominal * 8 / 10 && d <= nominal * 12 / 10,
                "{attempt}: {d}"
            );
        }
    }
}
