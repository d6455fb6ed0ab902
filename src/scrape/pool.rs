//! [`ScrapePool`]: one job's targets. It keeps one [`ScrapeLoop`] per target,
//! starting loops for new targets and stopping (with staleness markers) the
//! loops of targets that left discovery.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::task::JoinHandle;

use super::fetch::Fetcher;
use super::file_sd;
use super::metrics::ScrapeMetrics;
use super::scrape_loop::{LoopCarry, LoopStop, ScrapeClock, ScrapeLoop, TargetHealth};
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

    /// Forgets a job that was removed from the config.
    pub(super) fn remove(&self, job: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job);
    }
}

struct Running {
    stop: LoopStop,
    handle: JoinHandle<Option<LoopCarry>>,
    state: Arc<RwLock<TargetHealth>>,
}

/// A target's key within its job: its URL and labels.
pub type TargetKey = (String, Labels);

/// Why a pool stops, besides shutdown: its loops get the same reason.
pub type PoolStop = LoopStop;

/// What a replaced pool hands to its successor, by target.
pub type PoolCarry = HashMap<TargetKey, LoopCarry>;

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
    /// State of the predecessor's loops (a reloaded job), taken by the
    /// first sync.
    carry: std::sync::Mutex<PoolCarry>,
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
            carry: Default::default(),
        }
    }

    /// Timestamps scrapes with `clock` (one clock for every pool, so a
    /// reloaded job's samples continue its predecessor's in tests' paused
    /// time too).
    pub fn with_clock(mut self, clock: ScrapeClock) -> Self {
        self.clock = clock;
        self
    }

    /// The job's name.
    pub fn job_name(&self) -> &str {
        &self.settings.job_name
    }

    /// Continues from a replaced pool of the same job: targets that stay
    /// keep their health and staleness state; those that left get their
    /// staleness markers at the first sync.
    pub fn with_carry(self, carry: PoolCarry) -> Self {
        *self.carry.lock().unwrap_or_else(|p| p.into_inner()) = carry;
        self
    }

    /// Discovers and scrapes until `shutdown` or `stop`; returns once every
    /// loop stopped, with their state when the pool was replaced.
    pub async fn run(self, stop: PoolStop, shutdown: Shutdown) -> PoolCarry {
        let mut running: HashMap<TargetKey, Running> = HashMap::new();
        let mut finishing: Vec<JoinHandle<Option<LoopCarry>>> = Vec::new();
        let mut file_groups: Vec<Vec<TargetGroup>> = vec![Vec::new(); self.file_sd.len()];
        let mut fingerprints: Vec<Option<file_sd::Fingerprint>> = vec![None; self.file_sd.len()];
        let mut last_read: Vec<Option<tokio::time::Instant>> = vec![None; self.file_sd.len()];
        let mut previous: Option<Vec<TargetGroup>> = None;
        let stopped = async {
            tokio::select! {
                _ = shutdown.wait() => {}
                _ = stop.removed.cancelled() => {}
                _ = stop.replaced.cancelled() => {}
            }
        };
        tokio::pin!(stopped);
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
                self.sync(&groups, &mut running, &mut finishing, &stop, &shutdown);
                previous = Some(groups);
            }
            finishing.retain(|h| !h.is_finished());
            if self.file_sd.is_empty() {
                (&mut stopped).await;
                break;
            }
            tokio::select! {
                _ = &mut stopped => break,
                _ = tokio::time::sleep(file_sd::CHANGE_CHECK) => {}
            }
        }
        let mut carry = PoolCarry::new();
        for (key, r) in running.drain() {
            if let Ok(Some(c)) = r.handle.await {
                carry.insert(key, c);
            }
        }
        for h in finishing {
            let _ = h.await;
        }
        if stop.removed.is_cancelled() {
            self.view.remove(&self.settings.job_name);
            self.metrics
                .targets
                .with_label_values(&[self.settings.job_name.as_str()])
                .set(0);
        }
        tracing::debug!(job = %self.settings.job_name, "scrape pool stopped");
        carry
    }

    fn sync(
        &self,
        groups: &[TargetGroup],
        running: &mut HashMap<TargetKey, Running>,
        finishing: &mut Vec<JoinHandle<Option<LoopCarry>>>,
        stop: &PoolStop,
        shutdown: &Shutdown,
    ) {
        let (active, dropped) = build_targets(groups, &self.settings);
        let keys: Vec<TargetKey> = active
            .iter()
            .map(|t| (t.url.clone(), t.labels.clone()))
            .collect();
        running.retain(|key, r| {
            let keep = keys.contains(key);
            if !keep {
                r.stop.removed.cancel();
                finishing.push(std::mem::replace(
                    &mut r.handle,
                    tokio::spawn(async { None }),
                ));
            }
            keep
        });
        let mut carry = std::mem::take(&mut *self.carry.lock().unwrap_or_else(|p| p.into_inner()));
        let spawn = |target: Target, carried: Option<LoopCarry>| {
            let loop_stop = LoopStop {
                removed: stop.removed.child_token(),
                replaced: stop.replaced.child_token(),
            };
            let mut sl = ScrapeLoop::new(
                target,
                self.settings.clone(),
                self.fetcher.clone(),
                self.appender.clone(),
                Arc::new(RwLock::new(TargetHealth::default())),
                self.metrics.clone(),
                self.clock,
            );
            if let Some(c) = carried {
                sl = sl.with_carry(c);
            }
            let state = sl.state();
            let handle = tokio::spawn(sl.run(loop_stop.clone(), shutdown.clone()));
            Running {
                stop: loop_stop,
                handle,
                state,
            }
        };
        let mut view = PoolView {
            interval: self.settings.interval,
            timeout: self.settings.timeout,
            active: Vec::new(),
            dropped,
        };
        for (target, key) in active.into_iter().zip(keys) {
            let r = match running.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let carried = carry.remove(e.key());
                    e.insert(spawn(target.clone(), carried))
                }
            };
            view.active.push(ActiveTarget {
                target,
                state: r.state.clone(),
            });
        }
        // Targets of the predecessor this job no longer has: their series
        // end now, as for any target that leaves discovery.
        for ((url, labels), c) in carry {
            let target = Target {
                discovered: labels.clone(),
                labels,
                url,
            };
            let r = spawn(target, Some(c));
            r.stop.removed.cancel();
            finishing.push(r.handle);
        }
        self.metrics
            .targets
            .with_label_values(&[self.settings.job_name.as_str()])
            .set(view.active.len() as i64);
        tracing::info!(job = %self.settings.job_name, targets = view.active.len(), dropped = view.dropped.len(), "scrape targets updated");
        self.view.set(&self.settings.job_name, view);
    }
}
