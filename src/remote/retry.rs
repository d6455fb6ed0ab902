//! How remote_write retries: the shared [`RetryPolicy`] configured from
//! `queue_config` (`min_backoff` 30ms, `max_backoff` 5s, no jitter, 429 only
//! with `retry_on_http_429`, as in Prometheus). Transport errors, 408 and 5xx
//! are retried; every other answer drops the batch with its reason.

use crate::config::QueueConfig;
use crate::util::retry::{RetryPolicy, Verdict};

/// The policy of one destination.
pub fn policy(q: &QueueConfig) -> RetryPolicy {
    RetryPolicy {
        min_backoff: q.min_backoff.as_duration(),
        max_backoff: q.max_backoff.as_duration(),
        jitter: 0.0,
        retry_on_429: q.retry_on_http_429,
        rate_limit_wait: None,
    }
}

/// How one request ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The remote stored the batch.
    Sent,
    /// Temporary failure: send the same batch again after a backoff.
    Retry(String),
    /// The remote refused the batch for good: count it and move on.
    Drop(String),
}

/// Classifies an HTTP status and the start of the answer's body.
pub fn classify_status(status: u16, body: &str, policy: &RetryPolicy) -> Outcome {
    let snippet: String = body.trim().chars().take(300).collect();
    match policy.classify(status) {
        Verdict::Success => Outcome::Sent,
        Verdict::Retry { .. } => Outcome::Retry(format!("HTTP {status}: {snippet}")),
        Verdict::Fatal => Outcome::Drop(format!("HTTP {status}: {snippet}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_429(retry_on_http_429: bool) -> RetryPolicy {
        let q: QueueConfig =
            serde_yaml_ng::from_str(&format!("{{retry_on_http_429: {retry_on_http_429}}}"))
                .unwrap();
        policy(&q)
    }

    #[test]
    fn statuses() {
        let p = policy_429(false);
        assert_eq!(classify_status(204, "", &p), Outcome::Sent);
        assert!(matches!(
            classify_status(503, "busy", &p),
            Outcome::Retry(_)
        ));
        assert!(matches!(classify_status(408, "", &p), Outcome::Retry(_)));
        assert!(matches!(classify_status(429, "", &p), Outcome::Drop(_)));
        assert!(matches!(
            classify_status(429, "", &policy_429(true)),
            Outcome::Retry(_)
        ));
        assert_eq!(
            classify_status(400, " out of order sample\n", &p),
            Outcome::Drop("HTTP 400: out of order sample".to_string())
        );
    }

    #[test]
    fn queue_config_defaults_are_prometheus_backoff() {
        let mut b = policy_429(false).backoff();
        let got: Vec<u128> = (0..10).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [30, 60, 120, 240, 480, 960, 1920, 3840, 5000, 5000]);
    }
}
