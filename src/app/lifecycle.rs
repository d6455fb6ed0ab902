//! The staged stop: every long-running task belongs to one stage, and stages
//! stop one after another, each under what is left of one overall deadline.
//!
//! A stage is asked to stop through its own signal (a child of the root
//! signal, which fires only when the overall deadline is spent), then its
//! tasks are awaited. A stage that does not finish in time is named in the
//! log and its tasks are aborted, so one hung part can delay the exit but
//! never prevent it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::shutdown::Shutdown;

/// The stages, in stop order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Scrape loops: their last append lands before rules run their last time.
    Scrape,
    /// Rule groups: a last evaluation, alerts handed to alerting.
    Rules,
    /// The alert manager: what is due is flushed, in-flight sends finish.
    Alerting,
    /// remote_write queues: an in-flight request finishes; the rest stays in the WAL.
    Remote,
    /// Snapshot and backup schedules: a running job finishes or is cancelled.
    Snapshots,
    /// Storage maintenance (retention, compaction, rollups).
    Maintenance,
}

impl Stage {
    /// Every stage, in stop order.
    pub const ORDER: [Stage; 6] = [
        Stage::Scrape,
        Stage::Rules,
        Stage::Alerting,
        Stage::Remote,
        Stage::Snapshots,
        Stage::Maintenance,
    ];

    /// The name used in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Scrape => "scrape",
            Stage::Rules => "rules",
            Stage::Alerting => "alerting",
            Stage::Remote => "remote_write",
            Stage::Snapshots => "snapshots",
            Stage::Maintenance => "storage maintenance",
        }
    }
}

/// Every task of the process in one `JoinSet`, with one stop signal per stage.
pub struct Lifecycle {
    root: Shutdown,
    signals: HashMap<Stage, Shutdown>,
    tasks: JoinSet<Stage>,
    running: HashMap<Stage, Vec<AbortHandle>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// No tasks yet; every stage's signal is unfired.
    pub fn new() -> Self {
        let root = Shutdown::new();
        let signals = Stage::ORDER.iter().map(|s| (*s, root.child())).collect();
        Lifecycle {
            root,
            signals,
            tasks: JoinSet::new(),
            running: HashMap::new(),
        }
    }

    /// The stop signal of `stage`, for the tasks of that stage.
    pub fn signal(&self, stage: Stage) -> Shutdown {
        self.signals[&stage].clone()
    }

    /// Runs `task` as part of `stage`.
    pub fn spawn<F>(&mut self, stage: Stage, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = self.tasks.spawn(async move {
            task.await;
            stage
        });
        self.running.entry(stage).or_default().push(handle);
    }

    /// Stops the stages in order, each within what is left until `deadline`.
    /// Returns the stages that had to be abandoned.
    pub async fn stop(mut self, deadline: Instant) -> Vec<Stage> {
        let mut abandoned = Vec::new();
        for stage in Stage::ORDER {
            let started = Instant::now();
            self.signals[&stage].trigger();
            // A stage after a hung one still gets a moment to stop cleanly.
            let stage_deadline = deadline.max(started + MIN_STAGE_GRACE);
            if !self.join_stage(stage, stage_deadline).await {
                tracing::warn!(
                    stage = stage.name(),
                    "shutdown stage '{}' did not finish within the shutdown deadline; abandoning it",
                    stage.name()
                );
                for handle in self.running.remove(&stage).unwrap_or_default() {
                    handle.abort();
                }
                abandoned.push(stage);
            } else {
                tracing::debug!(stage = stage.name(), elapsed = ?started.elapsed(), "shutdown stage finished");
            }
        }
        self.root.trigger();
        self.tasks.abort_all();
        abandoned
    }

    /// Waits until every task of `stage` ended (tasks of later stages that
    /// end meanwhile are noted); false when `deadline` came first.
    async fn join_stage(&mut self, stage: Stage, deadline: Instant) -> bool {
        loop {
            let left = self.running.get(&stage).map_or(0, Vec::len);
            if left == 0 {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Err(_) => return false,
                Ok(None) => return true,
                Ok(Some(result)) => {
                    let ended = match result {
                        Ok(s) => s,
                        Err(e) => {
                            if e.is_panic() {
                                tracing::error!(error = %e, "a task panicked");
                            }
                            // Its stage is unknown from a JoinError; find it by id.
                            let id = e.id();
                            match self
                                .running
                                .iter()
                                .find(|(_, hs)| hs.iter().any(|h| h.id() == id))
                            {
                                Some((s, _)) => *s,
                                None => continue,
                            }
                        }
                    };
                    // One task of `ended` finished; the finished handles are the ones to drop.
                    if let Some(handles) = self.running.get_mut(&ended) {
                        handles.retain(|h| !h.is_finished());
                    }
                }
            }
        }
    }
}

/// How long the stages after HTTP may take together, beyond the HTTP drain.
pub const STAGES_BUDGET: Duration = Duration::from_secs(5);

/// The least time each stage gets, even when an earlier one spent the budget.
const MIN_STAGE_GRACE: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test(start_paused = true)]
    async fn stages_stop_in_order_and_a_hung_stage_is_abandoned() {
        let mut life = Lifecycle::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        for stage in [Stage::Maintenance, Stage::Rules, Stage::Scrape] {
            let (signal, order) = (life.signal(stage), order.clone());
            life.spawn(stage, async move {
                signal.wait().await;
                order.lock().unwrap().push(stage);
            });
        }
        // Remote ignores its signal: it must be abandoned, and later stages still stop.
        life.spawn(Stage::Remote, std::future::pending());
        let start = Instant::now();
        let abandoned = life.stop(start + Duration::from_secs(3)).await;
        assert_eq!(abandoned, vec![Stage::Remote]);
        assert_eq!(
            *order.lock().unwrap(),
            vec![Stage::Scrape, Stage::Rules, Stage::Maintenance]
        );
        assert!(start.elapsed() <= Duration::from_secs(3) + 2 * MIN_STAGE_GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_stage_does_not_stop_before_an_earlier_one() {
        let mut life = Lifecycle::new();
        let scrape = life.signal(Stage::Scrape);
        let rules = life.signal(Stage::Rules);
        let saw_rules_early = Arc::new(Mutex::new(false));
        let flag = saw_rules_early.clone();
        life.spawn(Stage::Scrape, async move {
            scrape.wait().await;
            // The last scrape takes a while; rules must not be stopped meanwhile.
            tokio::time::sleep(Duration::from_millis(500)).await;
            *flag.lock().unwrap() = rules.is_triggered();
        });
        let rules = life.signal(Stage::Rules);
        life.spawn(Stage::Rules, async move { rules.wait().await });
        let abandoned = life.stop(Instant::now() + Duration::from_secs(5)).await;
        assert!(abandoned.is_empty());
        assert!(!*saw_rules_early.lock().unwrap());
    }
}
