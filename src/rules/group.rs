//! A rule group: its rules evaluated in order at the group's interval, at
//! `now - query_offset`, with results written to the store (stale markers for
//! series that went away) and alerts handed to the sink.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::alerting_rule::{ActiveAlert, AlertingRule, EvalContext};
use super::recording::RecordingRule;
use super::{AlertSink, QueryFn};
use crate::model::{Labels, Sample, stale_nan};
use crate::shutdown::Shutdown;
use crate::storage::{AppendSample, Appender, StateStore};

/// Wall-clock milliseconds that follow tokio's clock, so rule timing can be
/// tested with a paused clock: `base_ms` + time elapsed on tokio's clock
/// (+ any [`Clock::advance`], which lets tests that talk to real servers
/// skip a `for: 5m` without pausing tokio).
#[derive(Clone, Debug)]
pub struct Clock {
    base_ms: i64,
    base: tokio::time::Instant,
    skipped_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    /// A clock that reads `now_ms` now.
    pub fn starting_at(now_ms: i64) -> Self {
        Clock {
            base_ms: now_ms,
            base: tokio::time::Instant::now(),
            skipped_ms: Arc::default(),
        }
    }

    /// Moves this clock (and its clones) forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.skipped_ms
            .fetch_add(d.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }

    /// The system clock.
    pub fn system() -> Self {
        Self::starting_at(crate::util::now_ms())
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.base_ms
            + self.base.elapsed().as_millis() as i64
            + self.skipped_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A rule of a group.
#[derive(Clone, Debug)]
pub enum Rule {
    /// `alert:`
    Alerting(AlertingRule),
    /// `record:`
    Recording(RecordingRule),
}

impl Rule {
    /// Whether both rules are defined alike (kind, name, expression,
    /// durations, labels, annotations), whatever their state.
    pub fn same_definition(&self, other: &Rule) -> bool {
        match (self, other) {
            (Rule::Alerting(a), Rule::Alerting(b)) => {
                a.name == b.name
                    && a.expr == b.expr
                    && a.hold_ms == b.hold_ms
                    && a.keep_firing_for_ms == b.keep_firing_for_ms
                    && a.labels == b.labels
                    && a.annotations == b.annotations
            }
            (Rule::Recording(a), Rule::Recording(b)) => {
                a.name == b.name && a.expr == b.expr && a.labels == b.labels
            }
            _ => false,
        }
    }

    /// The rule's expression.
    pub fn expr(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.expr,
            Rule::Recording(r) => &r.expr,
        }
    }
}

/// A rule's evaluation status, for the API.
#[derive(Clone, Debug, Default)]
pub struct RuleStatus {
    /// Last evaluation time (ms), 0 when never.
    pub last_eval_ms: i64,
    /// How long the last evaluation took.
    pub eval_seconds: f64,
}

/// Mutable state of a group.
#[derive(Debug)]
pub struct GroupState {
    /// The rules with their alerts.
    pub rules: Vec<Rule>,
    /// Per-rule evaluation status.
    pub status: Vec<RuleStatus>,
    /// Last evaluation of the whole group (ms).
    pub last_eval_ms: i64,
    /// Duration of the last whole-group evaluation.
    pub eval_seconds: f64,
    written: Vec<HashSet<Labels>>,
}

/// What every group needs from outside.
#[derive(Clone)]
pub struct GroupDeps {
    /// Evaluates expressions.
    pub query: QueryFn,
    /// Where recording results and `ALERTS` go.
    pub appender: Arc<dyn Appender>,
    /// Where alerts go.
    pub sink: Arc<dyn AlertSink>,
    /// Where alert state is saved (so it survives restarts).
    pub store: Option<Arc<StateStore>>,
    /// Labels/URL used in templates and added to alerts.
    pub context: EvalContext,
    /// How often firing alerts are re-sent (Prometheus' 1m).
    pub resend_delay: Duration,
}

/// A rule group.
pub struct Group {
    /// Name (unique within its file).
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// Evaluation interval.
    pub interval: Duration,
    /// Queries look this far back.
    pub query_offset: Duration,
    /// Most alerts/series per rule (0 = none).
    pub limit: u64,
    /// Rules and their state.
    pub state: Mutex<GroupState>,
}

/// The key a rule's alerts are saved under.
pub(crate) fn rule_key(file: &str, group: &str, name: &str, occurrence: usize) -> String {
    format!("{file}\u{1f}{group}\u{1f}{name}\u{1f}{occurrence}")
}

impl Group {
    /// A group of `rules`.
    pub fn new(
        name: &str,
        file: &str,
        interval: Duration,
        query_offset: Duration,
        limit: u64,
        rules: Vec<Rule>,
    ) -> Self {
        let n = rules.len();
        Group {
            name: name.to_string(),
            file: file.to_string(),
            interval,
            query_offset,
            limit,
            state: Mutex::new(GroupState {
                rules,
                status: vec![RuleStatus::default(); n],
                last_eval_ms: 0,
                eval_seconds: 0.0,
                written: vec![HashSet::new(); n],
            }),
        }
    }

    /// Save keys of the alerting rules, by rule index.
    fn keys(&self, rules: &[Rule]) -> Vec<Option<String>> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        rules
            .iter()
            .map(|r| match r {
                Rule::Alerting(a) => {
                    let n = seen.entry(a.name.as_str()).or_default();
                    *n += 1;
                    Some(rule_key(&self.file, &self.name, &a.name, *n))
                }
                Rule::Recording(_) => None,
            })
            .collect()
    }

    /// Puts back saved alerts (by save key).
    pub async fn restore(&self, saved: &BTreeMap<String, Vec<ActiveAlert>>) {
        let mut st = self.state.lock().await;
        let keys = self.keys(&st.rules);
        for (rule, key) in st.rules.iter_mut().zip(keys) {
            if let (Rule::Alerting(a), Some(key)) = (rule, key)
                && let Some(alerts) = saved.get(&key)
            {
                a.restore(alerts.clone());
            }
        }
    }

    /// Whether `other` has the same settings and rules (by definition, not
    /// state): a reload leaves such a group running.
    pub async fn same_definition(&self, other: &Group) -> bool {
        if self.interval != other.interval
            || self.query_offset != other.query_offset
            || self.limit != other.limit
        {
            return false;
        }
        let (a, b) = (self.state.lock().await, other.state.lock().await);
        a.rules.len() == b.rules.len()
            && a.rules
                .iter()
                .zip(&b.rules)
                .all(|(x, y)| x.same_definition(y))
    }

    /// Takes over the state of `old`'s rules whose definition is unchanged
    /// (their alerts with `for` timers, evaluation status, recorded
    /// series): each rule of this group takes the first unused equal rule
    /// of `old`. Returns how many alerting rules carried state, and the
    /// series recorded by `old`'s rules that have no successor (to be
    /// marked stale). `old` must no longer be evaluating.
    pub async fn take_state_from(&self, old: &Group) -> (usize, Vec<Labels>) {
        let mut old_st = old.state.lock().await;
        let mut st = self.state.lock().await;
        let mut used = vec![false; old_st.rules.len()];
        let mut carried = 0;
        for i in 0..st.rules.len() {
            let Some(j) = (0..old_st.rules.len())
                .find(|&j| !used[j] && old_st.rules[j].same_definition(&st.rules[i]))
            else {
                continue;
            };
            used[j] = true;
            if let (Rule::Alerting(new), Rule::Alerting(prev)) =
                (&mut st.rules[i], &mut old_st.rules[j])
            {
                new.active = std::mem::take(&mut prev.active);
                new.last_error = prev.last_error.take();
                carried += 1;
            }
            if let (Rule::Recording(new), Rule::Recording(prev)) =
                (&mut st.rules[i], &mut old_st.rules[j])
            {
                new.last_error = prev.last_error.take();
            }
            st.status[i] = old_st.status[j].clone();
            st.written[i] = std::mem::take(&mut old_st.written[j]);
        }
        st.last_eval_ms = old_st.last_eval_ms;
        st.eval_seconds = old_st.eval_seconds;
        let gone = used
            .iter()
            .enumerate()
            .filter(|(_, u)| !**u)
            .flat_map(|(j, _)| old_st.written[j].iter().cloned())
            .collect();
        (carried, gone)
    }

    /// Every series the group's rules wrote at their last evaluation.
    pub async fn written_series(&self) -> Vec<Labels> {
        let st = self.state.lock().await;
        st.written.iter().flatten().cloned().collect()
    }

    /// Evaluates every rule once at `ts_ms`.
    pub async fn eval(&self, ts_ms: i64, deps: &GroupDeps) {
        let started = tokio::time::Instant::now();
        let mut st = self.state.lock().await;
        let eval_ts = ts_ms - self.query_offset.as_millis() as i64;
        let mut ctx = deps.context.clone();
        ctx.limit = self.limit;
        let mut to_send = Vec::new();
        let mut batch = Vec::new();
        for i in 0..st.rules.len() {
            let rule_started = tokio::time::Instant::now();
            let expr = st.rules[i].expr().to_string();
            let result = (deps.query)(expr.clone(), eval_ts).await;
            let series = match (&mut st.rules[i], result) {
                (Rule::Alerting(r), Ok(v)) => r.eval(ts_ms, v, &ctx),
                (Rule::Recording(r), Ok(v)) => r.eval(v, self.limit),
                (Rule::Alerting(r), Err(e)) => {
                    r.last_error = Some(e.to_string());
                    Err(super::RulesError::Eval(e.to_string()))
                }
                (Rule::Recording(r), Err(e)) => {
                    r.last_error = Some(e.to_string());
                    Err(super::RulesError::Eval(e.to_string()))
                }
            };
            match series {
                Ok(series) => {
                    let now: HashSet<Labels> = series.iter().map(|(l, _)| l.clone()).collect();
                    for gone in st.written[i].difference(&now) {
                        batch.push(AppendSample {
                            labels: gone.clone(),
                            sample: Sample {
                                timestamp_ms: eval_ts,
                                value: stale_nan(),
                            },
                        });
                    }
                    batch.extend(series.into_iter().map(|(labels, value)| AppendSample {
                        labels,
                        sample: Sample {
                            timestamp_ms: eval_ts,
                            value,
                        },
                    }));
                    st.written[i] = now;
                }
                Err(e) => {
                    tracing::warn!(group = %self.name, file = %self.file, expr = %expr, error = %e, "rule evaluation failed");
                }
            }
            if let Rule::Alerting(r) = &mut st.rules[i] {
                let url = format!("{}/alerts", ctx.external_url.trim_end_matches('/'));
                to_send.extend(r.alerts_to_send(
                    ts_ms,
                    deps.resend_delay.as_millis() as i64,
                    self.interval.as_millis() as i64,
                    &ctx.external_labels,
                    &url,
                ));
            }
            st.status[i] = RuleStatus {
                last_eval_ms: ts_ms,
                eval_seconds: rule_started.elapsed().as_secs_f64(),
            };
        }
        if !batch.is_empty()
            && let Err(e) = deps.appender.append(&batch)
        {
            tracing::warn!(group = %self.name, error = %e, "cannot write rule results");
        }
        if let Some(store) = &deps.store {
            let keys = self.keys(&st.rules);
            let mut saved = Vec::new();
            for (rule, key) in st.rules.iter().zip(keys) {
                if let (Rule::Alerting(a), Some(key)) = (rule, key) {
                    match serde_json::to_string(&a.alerts()) {
                        Ok(json) => saved.push((key, json)),
                        Err(e) => tracing::warn!(error = %e, "cannot encode alert state"),
                    }
                }
            }
            if let Err(e) = store.save_rule_states(&saved, ts_ms) {
                tracing::warn!(group = %self.name, error = %e, "cannot save alert state");
            }
        }
        st.last_eval_ms = ts_ms;
        st.eval_seconds = started.elapsed().as_secs_f64();
        drop(st);
        if !to_send.is_empty() {
            deps.sink.send(to_send);
        }
    }

    /// Evaluates at every interval until `shutdown`.
    pub async fn run(self: Arc<Self>, deps: GroupDeps, clock: Clock, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tick.tick() => {}
            }
            self.eval(clock.now_ms(), &deps).await;
        }
        tracing::debug!(group = %self.name, "rule group stopped");
    }
}
