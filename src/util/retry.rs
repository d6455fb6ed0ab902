//! One retry policy for every part that sends over HTTP (alert channels,
//! remote_write): which answers are worth retrying, and how long to wait.
//!
//! Classification is the same for every user: 2xx succeeded; 408 (request
//! timeout) and 5xx are temporary; 429 is temporary when the policy says so,
//! with at least `rate_limit_wait` before the next try; every other status is
//! permanent. Each user configures the bounds of its backoff.

use std::time::Duration;

/// How one sender retries.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Wait before the first retry; each failure doubles it.
    pub min_backoff: Duration,
    /// Longest wait between tries.
    pub max_backoff: Duration,
    /// Each wait is scaled by a random factor in `[1 - jitter, 1 + jitter]`
    /// (0 = exact), so many senders failing together do not retry together.
    pub jitter: f64,
    /// Whether HTTP 429 is retried (otherwise it is permanent, like other 4xx).
    pub retry_on_429: bool,
    /// Least wait after a 429 (the receiver asked to slow down); `None` = the
    /// normal backoff.
    pub rate_limit_wait: Option<Duration>,
}

/// What an HTTP status means for the request that got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver accepted it.
    Success,
    /// Temporary: send it again after the backoff, and at least `after`.
    Retry {
        /// Least wait the receiver asked for (rate limits).
        after: Option<Duration>,
    },
    /// Permanent: retrying cannot help.
    Fatal,
}

impl RetryPolicy {
    /// What `status` means under this policy.
    pub fn classify(&self, status: u16) -> Verdict {
        match status {
            200..=299 => Verdict::Success,
            429 if self.retry_on_429 => Verdict::Retry {
                after: self.rate_limit_wait,
            },
            408 | 500..=599 => Verdict::Retry { after: None },
            _ => Verdict::Fatal,
        }
    }

    /// The wait after failed try number `attempt` (0 = the first failure):
    /// `min_backoff · 2^attempt`, at most `max_backoff`, with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let max = self.max_backoff.max(self.min_backoff);
        let nominal = self
            .min_backoff
            .checked_mul(1u32 << attempt.min(31))
            .unwrap_or(max)
            .min(max);
        if self.jitter <= 0.0 {
            return nominal;
        }
        let factor = 1.0 - self.jitter + fastrand::f64() * 2.0 * self.jitter;
        nominal.mul_f64(factor.max(0.0))
    }

    /// A backoff that counts failures itself, starting at `min_backoff`.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: self.clone(),
            attempt: 0,
        }
    }
}

/// Successive waits of one request's retries.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
}

impl Backoff {
    /// The wait before the next try; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.policy.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Waits [`Self::next_delay`] on the tokio clock; returns how long.
    pub async fn wait(&mut self) -> Duration {
        let d = self.next_delay();
        tokio::time::sleep(d).await;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retry_on_429: bool, rate_limit_wait: Option<Duration>) -> RetryPolicy {
        RetryPolicy {
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_millis(100),
            jitter: 0.0,
            retry_on_429,
            rate_limit_wait,
        }
    }

    #[test]
    fn every_status_class() {
        let p = policy(false, None);
        assert_eq!(p.classify(200), Verdict::Success);
        assert_eq!(p.classify(204), Verdict::Success);
        for status in [408, 500, 502, 503, 599] {
            assert_eq!(
                p.classify(status),
                Verdict::Retry { after: None },
                "{status}"
            );
        }
        for status in [301, 400, 401, 403, 404, 413, 429, 600] {
            assert_eq!(p.classify(status), Verdict::Fatal, "{status}");
        }
        let wait = Some(Duration::from_secs(30));
        assert_eq!(
            policy(true, wait).classify(429),
            Verdict::Retry { after: wait }
        );
        assert_eq!(
            policy(true, None).classify(429),
            Verdict::Retry { after: None }
        );
    }

    #[test]
    fn backoff_doubles_up_to_max() {
        let mut b = policy(false, None).backoff();
        let got: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [30, 60, 100, 100, 100]);
        // A huge attempt number neither overflows nor passes the cap.
        assert_eq!(policy(false, None).delay(u32::MAX).as_millis(), 100);
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = RetryPolicy {
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            jitter: 0.2,
            retry_on_429: true,
            rate_limit_wait: None,
        };
        for attempt in 0..40 {
            let d = p.delay(attempt).as_millis();
            let nominal = (1000u128 << attempt.min(20)).min(300_000);
            assert!(
                d >= nominal * 8 / 10 && d <= nominal * 12 / 10,
                "{attempt}: {d}"
            );
        }
    }

    /// The waits happen on the tokio clock: with the clock paused, three
    /// retries take exactly 30 + 60 + 100 ms of virtual time.
    #[tokio::test(start_paused = true)]
    async fn waits_follow_the_clock() {
        let start = tokio::time::Instant::now();
        let mut b = policy(false, None).backoff();
        let mut waited = Vec::new();
        for _ in 0..3 {
            waited.push(b.wait().await.as_millis());
        }
        assert_eq!(waited, [30, 60, 100]);
        assert_eq!(start.elapsed(), Duration::from_millis(190));
    }
}
