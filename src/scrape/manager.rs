//! [`Manager`]: builds one [`ScrapePool`] per `scrape_configs` job (plus the
//! self-scrape job `infermon`) and runs them until shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::ScrapeError;
use super::fetch::{Fetcher, HttpFetcher};
use super::metrics::ScrapeMetrics;
use super::pool::{PoolCarry, PoolStop, ScrapePool, TargetsView};
use super::scrape_loop::ScrapeClock;
use super::target::{JobSettings, TargetGroup};
use crate::config::diff::{Changes, scrape_globals};
use crate::config::{Authorization, Config, GlobalConfig, ScrapeConfig};
use crate::shutdown::Shutdown;
use crate::storage::Appender;

/// Name of the job that scrapes infermon's own `/metrics`.
pub const SELF_JOB: &str = "infermon";

/// All scrape pools. A reload ([`ScrapeReloader`]) restarts only the pools
/// of jobs whose settings changed.
pub struct Manager {
    pools: Vec<(JobKey, ScrapePool)>,
    view: TargetsView,
    reloader: ScrapeReloader,
    commands: mpsc::Receiver<Command>,
}

/// What decides whether a job's pool must restart: its config, the
/// `global` settings jobs read, and the directory file_sd paths are
/// relative to.
#[derive(Clone, Debug, PartialEq)]
struct JobKey {
    job: ScrapeConfig,
    global: GlobalConfig,
    base: PathBuf,
}

/// Pools built from a new config, not running yet: the result of
/// [`ScrapeReloader::prepare`], which checks every job first so a bad one
/// changes nothing.
pub struct PreparedScrape {
    pools: Vec<(JobKey, ScrapePool)>,
}

struct Command {
    prepared: PreparedScrape,
    reply: oneshot::Sender<Changes>,
}

/// Builds and hands new pools to the running [`Manager`].
#[derive(Clone)]
pub struct ScrapeReloader {
    /// Where the self-scrape job points (`None`: no self-scrape, in tests).
    self_addr: Option<SocketAddr>,
    appender: Arc<dyn Appender>,
    metrics: ScrapeMetrics,
    view: TargetsView,
    fetcher: FetcherFactory,
    clock: ScrapeClock,
    commands: mpsc::Sender<Command>,
}

/// Makes a job's fetcher (HTTP, or a fake in tests).
type MakeFetcher = dyn Fn(&ScrapeConfig) -> Result<Arc<dyn Fetcher>, ScrapeError> + Send + Sync;
type FetcherFactory = Arc<MakeFetcher>;

/// The jobs of `config`: its own and the self-scrape of `self_addr`.
fn jobs_of(config: &Config, self_addr: Option<SocketAddr>) -> Vec<ScrapeConfig> {
    config
        .scrape_configs
        .iter()
        .cloned()
        .chain(self_addr.and_then(|a| self_scrape_job(config, a)))
        .collect()
}

impl ScrapeReloader {
    /// Builds a pool for every job of `config` (nothing runs yet); an
    /// unusable job is an error and nothing changes.
    pub fn prepare(&self, config: &Config) -> Result<PreparedScrape, ScrapeError> {
        let jobs = jobs_of(config, self.self_addr);
        let pools = build_pools(
            config,
            &jobs,
            &self.appender,
            &self.metrics,
            &self.view,
            &*self.fetcher,
            self.clock,
        )?;
        Ok(PreparedScrape { pools })
    }

    /// Hands `prepared` to the running manager: pools of new and changed
    /// jobs start (a changed job's targets that stay keep their state),
    /// pools of removed jobs stop (their series marked stale), the others
    /// keep running. Returns the jobs started, changed and stopped (empty
    /// once the manager stopped).
    pub async fn apply(&self, prepared: PreparedScrape) -> Changes {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command { prepared, reply })
            .await
            .is_err()
        {
            return Changes::default();
        }
        answer.await.unwrap_or_default()
    }
}

fn build_pools(
    config: &Config,
    jobs: &[ScrapeConfig],
    appender: &Arc<dyn Appender>,
    metrics: &ScrapeMetrics,
    view: &TargetsView,
    fetcher: &MakeFetcher,
    clock: ScrapeClock,
) -> Result<Vec<(JobKey, ScrapePool)>, ScrapeError> {
    let base = config.source.base_dir();
    let global = scrape_globals(&config.global);
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
        let key = JobKey {
            job: job.clone(),
            global: global.clone(),
            base: base.clone(),
        };
        let pool = ScrapePool::new(
            settings,
            groups,
            job.file_sd_configs.clone(),
            base.clone(),
            fetcher(job)?,
            appender.clone(),
            view.clone(),
            metrics.clone(),
        )
        .with_clock(clock);
        pools.push((key, pool));
    }
    Ok(pools)
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
        let jobs = jobs_of(config, Some(self_addr));
        Self::build(
            config,
            &jobs,
            Some(self_addr),
            appender,
            metrics,
            Arc::new(|job: &ScrapeConfig| {
                HttpFetcher::new(job).map(|f| Arc::new(f) as Arc<dyn Fetcher>)
            }),
        )
    }

    /// Pools for `jobs` with fetchers from `fetcher` (tests pass fakes);
    /// no self-scrape job, also after a reload.
    pub fn with_fetchers(
        config: &Config,
        jobs: &[ScrapeConfig],
        appender: Arc<dyn Appender>,
        metrics: ScrapeMetrics,
        fetcher: impl Fn(&ScrapeConfig) -> Result<Arc<dyn Fetcher>, ScrapeError> + Send + Sync + 'static,
    ) -> Result<Self, ScrapeError> {
        Self::build(config, jobs, None, appender, metrics, Arc::new(fetcher))
    }

    fn build(
        config: &Config,
        jobs: &[ScrapeConfig],
        self_addr: Option<SocketAddr>,
        appender: Arc<dyn Appender>,
        metrics: ScrapeMetrics,
        fetcher: FetcherFactory,
    ) -> Result<Self, ScrapeError> {
        let view = TargetsView::default();
        let clock = ScrapeClock::new();
        let pools = build_pools(config, jobs, &appender, &metrics, &view, &*fetcher, clock)?;
        let (tx, commands) = mpsc::channel(1);
        Ok(Manager {
            pools,
            view: view.clone(),
            reloader: ScrapeReloader {
                self_addr,
                appender,
                metrics,
                view,
                fetcher,
                clock,
                commands: tx,
            },
            commands,
        })
    }

    /// The targets of every job, live.
    pub fn targets(&self) -> TargetsView {
        self.view.clone()
    }

    /// What reloads the pools while [`run`](Self::run) runs.
    pub fn reloader(&self) -> ScrapeReloader {
        self.reloader.clone()
    }

    /// Runs every pool until `shutdown`, applying reloads as they come;
    /// returns once every loop stopped.
    pub async fn run(mut self, shutdown: Shutdown) {
        let mut running: Vec<RunningPool> = std::mem::take(&mut self.pools)
            .into_iter()
            .map(|(key, pool)| RunningPool::start(key, pool, &shutdown))
            .collect();
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                Some(cmd) = self.commands.recv() => {
                    let changes = apply(&mut running, cmd.prepared, &shutdown).await;
                    let _ = cmd.reply.send(changes);
                }
            }
        }
        for p in running {
            let _ = p.handle.await;
        }
        tracing::info!("scrape manager stopped");
    }
}

struct RunningPool {
    key: JobKey,
    stop: PoolStop,
    handle: JoinHandle<PoolCarry>,
}

impl RunningPool {
    fn start(key: JobKey, pool: ScrapePool, shutdown: &Shutdown) -> Self {
        let stop = PoolStop::default();
        let handle = tokio::spawn(pool.run(stop.clone(), shutdown.clone()));
        RunningPool { key, stop, handle }
    }
}

/// Swaps the running pools for `prepared`'s, by job name.
async fn apply(
    running: &mut Vec<RunningPool>,
    prepared: PreparedScrape,
    shutdown: &Shutdown,
) -> Changes {
    let old_keys: Vec<JobKey> = running.iter().map(|p| p.key.clone()).collect();
    let new_keys: Vec<JobKey> = prepared.pools.iter().map(|(k, _)| k.clone()).collect();
    let changes = Changes::by_name(&old_keys, &new_keys, |k| k.job.job_name.clone());
    let mut kept = Vec::new();
    let mut carried: HashMap<String, PoolCarry> = HashMap::new();
    for p in running.drain(..) {
        let name = &p.key.job.job_name;
        if changes.removed.contains(name) {
            p.stop.removed.cancel();
            let _ = p.handle.await;
        } else if changes.changed.contains(name) {
            p.stop.replaced.cancel();
            let carry = p.handle.await.unwrap_or_default();
            carried.insert(name.clone(), carry);
        } else {
            kept.push(p);
        }
    }
    for (key, pool) in prepared.pools {
        let name = key.job.job_name.clone();
        if changes.added.contains(&name) {
            kept.push(RunningPool::start(key, pool, shutdown));
        } else if let Some(carry) = carried.remove(&name) {
            kept.push(RunningPool::start(key, pool.with_carry(carry), shutdown));
        }
    }
    *running = kept;
    changes
}
