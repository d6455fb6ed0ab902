//! What is worth retrying, and how long to wait: the one place every
//! channel's failures are classified and backoff is computed.

use std::time::Duration;

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

/// Classifies an HTTP answer by status: 2xx ok; 429, 408 and 5xx retry; other 4xx fatal.
pub fn classify_status(status: u16, body: &str) -> Result<(), SendError> {
    let snippet: String = body.chars().take(300).collect();
    match status {
        200..=299 => Ok(()),
        429 => Err(SendError::rate_limited(
            format!("HTTP 429: {snippet}"),
            Duration::from_secs(30),
        )),
        408 | 500..=599 => Err(SendError::retry(format!("HTTP {status}: {snippet}"))),
        _ => Err(SendError::Fatal(format!("HTTP {status}: {snippet}"))),
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

/// Exponential backoff with ±20 % jitter: 1s, 2s, 4s … capped at 5 minutes.
pub fn backoff(attempt: u32) -> Duration {
    let base = 1000u64.saturating_mul(1u64 << attempt.min(20));
    let capped = base.min(300_000) as f64;
    let jitter = 0.8 + fastrand::f64() * 0.4;
    Duration::from_millis((capped * jitter) as u64)
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
