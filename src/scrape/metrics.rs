//! `infermon_scrape_*`: what the scraper itself does, per job.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The scraper's metrics, defined once.
#[derive(Clone)]
pub struct ScrapeMetrics {
    scrapes: IntCounterVec,
    failures: IntCounterVec,
    samples: IntCounterVec,
    rejected: IntCounterVec,
    duration: HistogramVec,
    /// Active targets per job.
    pub targets: IntGaugeVec,
}

impl ScrapeMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered()?;
        registry.register(Box::new(m.scrapes.clone()))?;
        registry.register(Box::new(m.failures.clone()))?;
        registry.register(Box::new(m.samples.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.targets.clone()))?;
        Ok(m)
    }

    /// Metrics that are not exposed anywhere (tests).
    pub fn unregistered() -> prometheus::Result<Self> {
        Ok(ScrapeMetrics {
            scrapes: IntCounterVec::new(
                Opts::new("infermon_scrape_scrapes_total", "Scrapes done, per job."),
                &["job"],
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "infermon_scrape_failures_total",
                    "Scrapes that failed (target down, parse error, limit, storage), per job.",
                ),
                &["job"],
            )?,
            samples: IntCounterVec::new(
                Opts::new(
                    "infermon_scrape_samples_appended_total",
                    "Samples (and staleness markers) stored by scrapes, per job.",
                ),
                &["job"],
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "infermon_scrape_rejected_samples_total",
                    "Scraped samples dropped while the scrape itself succeeded, per job and reason.",
                ),
                &["job", "reason"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "infermon_scrape_duration_seconds",
                    "Time one scrape took (fetch, parse, store), per job.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["job"],
            )?,
            targets: IntGaugeVec::new(
                Opts::new("infermon_scrape_targets", "Active targets, per job."),
                &["job"],
            )?,
        })
    }

    /// Counts scraped samples dropped for `reason`.
    pub fn rejected(&self, job: &str, reason: &str, n: u64) {
        if n > 0 {
            self.rejected.with_label_values(&[job, reason]).inc_by(n);
        }
    }

    /// Scraped samples dropped for `reason` so far.
    pub fn rejected_samples(&self, job: &str, reason: &str) -> u64 {
        self.rejected.with_label_values(&[job, reason]).get()
    }

    /// Records one scrape.
    pub fn observe(&self, job: &str, d: Duration, failed: bool, samples: u64) {
        self.scrapes.with_label_values(&[job]).inc();
        if failed {
            self.failures.with_label_values(&[job]).inc();
        }
        self.samples.with_label_values(&[job]).inc_by(samples);
        self.duration
            .with_label_values(&[job])
            .observe(d.as_secs_f64());
    }
}
