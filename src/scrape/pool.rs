//! [`ScrapePool`]: one job's targets. It keeps one [`ScrapeLoop`] per target,
//! starting loops for new targets and stopping (with staleness markers) the
//! loops of targets that left discovery.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fetch::Fetcher;
use super::file_sd;
use super::metrics::ScrapeMetrics;
use super::scrape_loop::{ScrapeClock, ScrapeLoop, TargetHealth};
use super::target::{JobSettings, Target, TargetGroup, build_targets};
use crate::config::FileSdConfig;
use crate::model::Labels;
use crate::shutdown::Shutdown;
use crate::storage::Appender;

/// A target being scraped, with its live state.
#[derive(Clone, Debug)]
pub struct ActiveTarget {
    /// The target.
    pub target: Target,
    /// Health, last scrape, last error.
    pub state: Arc<RwLock<TargetHealth>>,
}

/// One job as the targets page shows it.
#[derive(Clone, Debug, Default)]
pub struct PoolView {
    /// Scrape interval.
    pub interval: std::time::Duration,
    /// Scrape timeout.
    pub timeout: std::time::Duration,
    /// Targets being scraped.
    pub active: Vec<ActiveTarget>,
    /// Discovered labels of targets relabelling dropped.
    pub dropped: Vec<Labels>,
}

/// Every job's targets, shared with the API and the dashboard.
#[derive(Clone, Default)]
pub struct TargetsView(Arc<RwLock<BTreeMap<String, PoolView>>>);

impl TargetsView {
    /// A copy of every pool's view, by job name.
    pub fn snapshot(&self) -> BTreeMap<String, PoolView> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, job: &str, view: PoolView) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.to_string(), view);
    }
}

struct Running {
    removed: CancellationToken,
    handle: JoinHandle<()>,
    state: Arc<RwLock<TargetHealth>>,
}

/// One scrape job.
pub struct ScrapePool {
    settings: Arc<JobSettings>,
    static_groups: Vec<TargetGroup>,
    file_sd: Vec<FileSdConfig>,
    base_dir: PathBuf,
    fetcher: Arc<dyn Fetcher>,
    appender: Arc<dyn Appender>,
    view: TargetsView,
    metrics: ScrapeMetrics,
    clock: ScrapeClock,
}

impl ScrapePool {
    /// A pool; nothing runs until [`run`](Self::run).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: JobSettings,
        static_groups: Vec<TargetGroup>,
        file_sd: Vec<FileSdConfig>,
        base_dir: PathBuf,
        fetcher: Arc<dyn Fetcher>,
        appender: Arc<dyn Appender>,
        view: TargetsView,
        metrics: ScrapeMetrics,
    ) -> Self {
        ScrapePool {
            settings: Arc::new(settings),
            static_groups,
            file_sd,
            base_dir,
            fetcher,
            appender,
            view,
            metrics,
            clock: ScrapeClock::new(),
        }
    }

    /// Discovers and scrapes until `shutdown`; returns once every loop stopped.
    pub async fn run(self, shutdown: Shutdown) {
        let mut running: HashMap<(String, Labels), Running> = HashMap::new();
        let mut finishing: Vec<JoinHandle<()>> = Vec::new();
        let mut file_groups: Vec<Vec<TargetGroup>> = vec![Vec::new(); self.file_sd.len()];
        let mut fingerprints: Vec<Option<file_sd::Fingerprint>> = vec![None; self.file_sd.len()];
        let mut last_read: Vec<Option<tokio::time::Instant>> = vec![None; self.file_sd.len()];
        let mut previous: Option<Vec<TargetGroup>> = None;
        loop {
            for (i, cfg) in self.file_sd.iter().enumerate() {
                let files = file_sd::matched_files(cfg, &self.base_dir);
                let fp = file_sd::fingerprint(&files);
                let due =
                    last_read[i].is_none_or(|t| t.elapsed() >= cfg.refresh_interval.as_duration());
                if due || fingerprints[i].as_ref() != Some(&fp) {
                    file_groups[i] = file_sd::read_groups(&files);
                    fingerprints[i] = Some(fp);
                    last_read[i] = Some(tokio::time::Instant::now());
                }
            }
            let groups: Vec<TargetGroup> = self
                .static_groups
                .iter()
                .cloned()
                .chain(file_groups.iter().flatten().cloned())
                .collect();
            if previous.as_ref() != Some(&groups) {
                self.sync(&groups, &mut running, &mut finishing, &shutdown);
                previous = Some(groups);
            }
            finishing.retain(|h| !h.is_finished());
            if self.file_sd.is_empty() {
                shutdown.wait().await;
                break;
            }
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(file_sd::CHANGE_CHECK) => {}
            }
        }
        for (_, r) in running.drain() {
            let _ = r.handle.await;
        }
        for h in finishing {
            let _ = h.await;
        }
        tracing::debug!(job = %self.settings.job_name, "scrape pool stopped");
    }

    fn sync(
        &self,
        groups: &[TargetGroup],
        running: &mut HashMap<(String, Labels), Running>,
        finishing: &mut Vec<JoinHandle<()>>,
        shutdown: &Shutdown,
    ) {
        let (active, dropped) = build_targets(groups, &self.settings);
        let keys: Vec<(String, Labels)> = active
            .iter()
            .map(|t| (t.url.clone(), t.labels.clone()))
            .collect();
        running.retain(|key, r| {
            let keep = keys.contains(key);
            if !keep {
                r.removed.cancel();
                finishing.push(std::mem::replace(&mut r.handle, tokio::spawn(async {})));
            }
            keep
        });
        let mut view = PoolView {
            interval: self.settings.interval,
            timeout: self.settings.timeout,
            active: Vec::new(),
            dropped,
        };
        for (target, key) in active.into_iter().zip(keys) {
            let r = running.entry(key).or_insert_with(|| {
                let state = Arc::new(RwLock::new(TargetHealth::default()));
                let removed = CancellationToken::new();
                let sl = ScrapeLoop::new(
                    target.clone(),
                    self.settings.clone(),
                    self.fetcher.clone(),
                    self.appender.clone(),
                    state.clone(),
                    self.metrics.clone(),
                    self.clock,
                );
                let handle = tokio::spawn(sl.run(removed.clone(), shutdown.clone()));
                Running {
                    removed,
                    handle,
                    state,
                }
            });
            view.active.push(ActiveTarget {
                target,
                state: r.state.clone(),
            });
        }
        self.metrics
            .targets
            .with_label_values(&[self.settings.job_name.as_str()])
            .set(view.active.len() as i64);
        tracing::info!(job = %self.settings.job_name, targets = view.active.len(), dropped = view.dropped.len(), "scrape targets updated");
        self.view.set(&self.settings.job_name, view);
    }
}
