//! The scraper: `Manager` → `ScrapePool` (per job) → `ScrapeLoop` (per
//! target), with Prometheus' semantics for target labels, relabelling,
//! limits, synthetic series and staleness.
//!
//! The exposition parser ([`crate::model::textparse`]) and relabel engine
//! ([`crate::model::relabel`]) are pure; the HTTP fetch sits behind [`Fetcher`] so tests can fake it.

mod fetch;
pub mod file_sd;
mod manager;
mod metrics;
mod pool;
mod scrape_loop;
mod target;

pub use fetch::{ACCEPT, BodyEncoding, FetchRequest, FetchResponse, Fetcher, HttpFetcher};
pub use manager::{Manager, PreparedScrape, SELF_JOB, ScrapeReloader, self_scrape_job};
pub use metrics::ScrapeMetrics;
pub use pool::{ActiveTarget, PoolCarry, PoolStop, PoolView, ScrapePool, TargetKey, TargetsView};
pub use scrape_loop::{Health, LoopCarry, LoopStop, ScrapeClock, ScrapeLoop, TargetHealth};
pub use target::{JobSettings, Limits, Target, TargetGroup, build_targets};

/// Errors of the scrape part (set-up only: a failing scrape is target state).
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// A job's settings cannot be used.
    #[error("scrape config: {0}")]
    Config(String),
    /// A relabel step cannot be used.
    #[error("scrape config: {0}")]
    Relabel(#[from] crate::model::relabel::RelabelError),
    /// Metrics could not be registered.
    #[error("scrape metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

#[cfg(test)]
mod tests;
