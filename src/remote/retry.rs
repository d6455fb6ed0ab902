//! What is worth retrying, and how long to wait — the one place the sender
//! classifies answers (the alert channels follow the same idea in
//! `alerting/retry.rs`): transport errors and 5xx are retried, 429 only with
//! `retry_on_http_429`, every other 4xx drops the batch with its reason.

use std::time::Duration;

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
pub fn classify_status(status: u16, body: &str, retry_on_429: bool) -> Outcome {
    let snippet: String = body.trim().chars().take(300).collect();
    match status {
        200..=299 => Outcome::Sent,
        429 if retry_on_429 => Outcome::Retry(format!("HTTP 429: {snippet}")),
        500..=599 => Outcome::Retry(format!("HTTP {status}: {snippet}")),
        _ => Outcome::Drop(format!("HTTP {status}: {snippet}")),
    }
}

/// Exponential backoff between `min` and `max`, doubling per failed try
/// (Prometheus' `min_backoff`/`max_backoff`).
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next try; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max).max(self.min);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify_status(204, "", false), Outcome::Sent);
        assert!(matches!(
            classify_status(503, "busy", false),
            Outcome::Retry(_)
        ));
        assert!(matches!(classify_status(429, "", false), Outcome::Drop(_)));
        assert!(matches!(classify_status(429, "", true), Outcome::Retry(_)));
        assert_eq!(
            classify_status(400, " out of order sample\n", false),
            Outcome::Drop("HTTP 400: out of order sample".to_string())
        );
    }

    #[test]
    fn backoff_doubles_up_to_max() {
        let mut b = Backoff::new(Duration::from_millis(30), Duration::from_millis(100));
        let got: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [30, 60, 100, 100]);
    }
}
