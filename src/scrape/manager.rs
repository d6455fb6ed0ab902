//! [`Manager`]: builds one [`ScrapePool`] per `scrape_configs` job (plus the
//! self-scrape job `infermon`) and runs them until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use super::ScrapeError;
use super::fetch::{Fetcher, HttpFetcher};
use super::metrics::ScrapeMetrics;
use super::pool::{ScrapePool, TargetsView};
use super::target::{JobSettings, TargetGroup};
use crate::config::{Authorization, Config, ScrapeConfig};
use crate::shutdown::Shutdown;
use crate::storage::Appender;

/// Name of the job that scrapes infermon's own `/metrics`.
pub const SELF_JOB: &str = "infermon";

/// All scrape pools.
pub struct Manager {
    pools: Vec<ScrapePool>,
    view: TargetsView,
}

/// The self-scrape job for a server bound at `addr`, unless the config
/// already has a job named `infermon` (then that one is used as written).
pub fn self_scrape_job(config: &Config, addr: SocketAddr) -> Option<ScrapeConfig> {
    if config.scrape_configs.iter().any(|j| j.job_name == SELF_JOB) {
        return None;
    }
    let mut job: ScrapeConfig = serde_yaml_ng::from_str(&format!("job_name: {SELF_JOB}"))
        .expect("a job with only a name deserializes");
    job.static_configs = vec![crate::config::StaticConfig {
        targets: vec![addr.to_string()],
        labels: Default::default(),
    }];
    // When /metrics needs credentials, scrape with the first API key.
    if let Some(auth) = &config.server.auth
        && auth.protect_metrics
        && let Some(key) = auth.api_keys.first()
    {
        job.authorization = Some(Authorization {
            kind: "Bearer".into(),
            credentials: Some(key.clone()),
            credentials_file: None,
        });
    }
    Some(job)
}

impl Manager {
    /// Pools for every job of `config` and the self-scrape of `self_addr`,
    /// fetching over HTTP.
    pub fn new(
        config: &Config,
        self_addr: SocketAddr,
        appender: Arc<dyn Appender>,
        metrics: ScrapeMetrics,
    ) -> Result<Self, ScrapeError> {
        let jobs: Vec<ScrapeConfig> = config
            .scrape_configs
            .iter()
            .cloned()
            .chain(self_scrape_job(config, self_addr))
            .collect();
        Self::with_fetchers(config, &jobs, appender, metrics, |job| {
            HttpFetcher::new(job).map(|f| Arc::new(f) as Arc<dyn Fetcher>)
        })
    }

    /// Pools for `jobs` with fetchers from `fetcher` (tests pass fakes).
    pub fn with_fetchers(
        config: &Config,
        jobs: &[ScrapeConfig],
        appender: Arc<dyn Appender>,
        metrics: ScrapeMetrics,
        fetcher: impl Fn(&ScrapeConfig) -> Result<Arc<dyn Fetcher>, ScrapeError>,
    ) -> Result<Self, ScrapeError> {
        let view = TargetsView::default();
        let base = config.source.base_dir();
        let mut pools = Vec::new();
        for job in jobs {
            let settings = JobSettings::new(job, &config.global)?;
            let groups = job
                .static_configs
                .iter()
                .map(|s| TargetGroup {
                    targets: s.targets.clone(),
                    labels: s.labels.clone(),
                    source: None,
                })
                .collect();
            pools.push(ScrapePool::new(
                settings,
                groups,
                job.file_sd_configs.clone(),
                base.clone(),
                fetcher(job)?,
                appender.clone(),
                view.clone(),
                metrics.clone(),
            ));
        }
        Ok(Manager { pools, view })
    }

    /// The targets of every job, live.
    pub fn targets(&self) -> TargetsView {
        self.view.clone()
    }

    /// Runs every pool until `shutdown`; returns once every loop stopped.
    pub async fn run(self, shutdown: Shutdown) {
        let handles: Vec<_> = self
            .pools
            .into_iter()
            .map(|p| tokio::spawn(p.run(shutdown.clone())))
            .collect();
        for h in handles {
            let _ = h.await;
        }
        tracing::info!("scrape manager stopped");
    }
}
