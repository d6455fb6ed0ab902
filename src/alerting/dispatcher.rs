//! The alert manager: takes alerts, routes them into aggregation groups,
//! and when a group is due (group_wait, then every group_interval) decides
//! with the notification log whether its receiver must hear about it
//! (Alertmanager's dedup: new firing alerts, resolutions, or repeat_interval
//! passed), leaving out silenced and inhibited alerts. What must be sent goes
//! to the outbox together with the log entry, so a restart neither loses
//! nor repeats a notification.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::channels::{self, Channel, ChannelContext, integration_key};
use super::inhibit::Inhibitor;
use super::message::Language;
use super::metrics::AlertingMetrics;
use super::notification::Notification;
use super::outbox::Outbox;
use super::relabel::AlertRelabeler;
use super::route::RouteNode;
use super::silence::Silences;
use super::{Alert, AlertingError, NowFn};
use crate::config::Config;
use crate::model::Labels;
use crate::shutdown::Shutdown;
use crate::storage::StateStore;

/// Resolved alerts are forgotten this long after they ended.
const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;
/// Notification-log entries live this long (Alertmanager's 120h).
const LOG_RETENTION_MS: i64 = 120 * 3600 * 1000;
/// Name of the receiver used when no route is configured.
pub const LOG_RECEIVER: &str = "log";

/// What was last notified for one group and integration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct LogEntry {
    firing: BTreeSet<String>,
    resolved: BTreeSet<String>,
    ts_ms: i64,
}

/// Alertmanager's `DedupStage.needsUpdate`.
fn needs_update(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    send_resolved: bool,
    repeat_ms: i64,
    now_ms: i64,
) -> bool {
    let Some(entry) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&entry.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: tell the receiver if it knew of firing alerts.
        return !entry.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return true;
    }
    entry.ts_ms < now_ms - repeat_ms
}

struct AggrGroup {
    route_receiver: String,
    group_interval_ms: i64,
    repeat_ms: i64,
    labels: Labels,
    alerts: BTreeMap<String, Alert>,
    next_flush_ms: i64,
}

#[derive(Default)]
struct State {
    alerts: HashMap<String, Alert>,
    groups: BTreeMap<String, AggrGroup>,
}

/// The alert manager. Routing, receivers and inhibition sit behind one
/// swappable [`Routing`], so a reload replaces them at once while the
/// alerts, their aggregation groups, the silences and the outbox stay.
pub struct AlertManager {
    routing: ArcSwap<Routing>,
    outbox: Arc<Outbox>,
    silences: Arc<Silences>,
    store: Arc<StateStore>,
    state: Mutex<State>,
    wake: Notify,
    now: NowFn,
    metrics: AlertingMetrics,
}

/// What the alerting config decides: the routing tree, the receivers'
/// integrations, inhibition and relabelling.
struct Routing {
    route: RouteNode,
    receivers: BTreeMap<String, Vec<String>>,
    forward: Vec<String>,
    relabel: AlertRelabeler,
    inhibitor: Inhibitor,
    external_url: String,
    history_retention_ms: i64,
}

/// Routing and channels built from a new config, checked and not yet in
/// use: the result of [`AlertManager::prepare`].
pub struct PreparedAlerting {
    routing: Routing,
    channels: Vec<(String, Arc<dyn Channel>)>,
    max_retry: Duration,
}

impl AlertManager {
    /// Builds routing, receivers, silences and the outbox from the config.
    pub fn new(
        config: &Config,
        store: Arc<StateStore>,
        registry: &prometheus::Registry,
        now: NowFn,
    ) -> Result<Self, AlertingError> {
        let prepared = Self::prepare(config, now.clone())?;
        let metrics = AlertingMetrics::new(registry)?;
        let outbox = Arc::new(Outbox::new(
            store.clone(),
            prepared.channels,
            metrics.clone(),
            now.clone(),
            prepared.max_retry,
        )?);
        let silences = Arc::new(Silences::load(store.clone(), now.clone())?);
        Ok(AlertManager {
            routing: ArcSwap::from_pointee(prepared.routing),
            outbox,
            silences,
            store,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            now,
            metrics,
        })
    }

    /// Builds the routing and channels of `config` without using them: a
    /// bad receiver or route is an error here, before anything changes.
    pub fn prepare(config: &Config, now: NowFn) -> Result<PreparedAlerting, AlertingError> {
        let a = &config.alerting;
        let language = if a.chinese() {
            Language::Zh
        } else {
            Language::En
        };
        let ctx = ChannelContext::new(language, now.clone())?;
        let mut integrations = channels::build_integrations(a, &ctx)?;
        let route = match &a.route {
            Some(r) => RouteNode::build(r)?,
            None => {
                integrations.push((
                    integration_key(LOG_RECEIVER, "log", 0),
                    LOG_RECEIVER.to_string(),
                    Arc::new(channels::log::LogChannel::new(ctx.clone())),
                ));
                RouteNode::single(LOG_RECEIVER)
            }
        };
        // Prometheus' `alerting.alertmanagers`: every alert is forwarded as
        // rules send it (re-sent every minute while firing), outside routing.
        let mut forward = Vec::new();
        for (i, am) in a.alertmanagers.iter().enumerate() {
            let scheme = am.scheme.as_deref().unwrap_or("http");
            let prefix = am
                .path_prefix
                .as_deref()
                .unwrap_or("")
                .trim_end_matches('/');
            for (j, target) in am
                .static_configs
                .iter()
                .flat_map(|s| s.targets.iter())
                .enumerate()
            {
                let key = integration_key("alertmanagers", "alertmanager", i * 100 + j);
                let url = format!("{scheme}://{target}{prefix}");
                integrations.push((
                    key.clone(),
                    "alertmanagers".into(),
                    Arc::new(channels::alertmanager::AlertmanagerChannel::new(
                        &url,
                        true,
                        ctx.clone(),
                    )),
                ));
                forward.push(key);
            }
        }
        let mut receivers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, receiver, _) in &integrations {
            receivers
                .entry(receiver.clone())
                .or_default()
                .push(key.clone());
        }
        for name in route.receivers() {
            if !receivers.contains_key(&name) && !a.receivers.iter().any(|r| r.name == name) {
                return Err(AlertingError::Config(format!(
                    "route names receiver {name:?}, which is not defined"
                )));
            }
        }
        let channels: Vec<(String, Arc<dyn Channel>)> =
            integrations.into_iter().map(|(k, _, c)| (k, c)).collect();
        let max_retry = a
            .max_retry_duration
            .map(|d| d.as_duration())
            .unwrap_or(Duration::from_secs(24 * 3600));
        Ok(PreparedAlerting {
            routing: Routing {
                route,
                receivers,
                forward,
                relabel: AlertRelabeler::new(&a.alert_relabel_configs)?,
                inhibitor: Inhibitor::new(&a.inhibit_rules)?,
                external_url: a
                    .external_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", config.server.listen)),
                history_retention_ms: a
                    .history_retention
                    .map(|d| d.as_millis())
                    .unwrap_or(7 * 24 * 3600 * 1000),
            },
            channels,
            max_retry,
        })
    }

    /// Switches to `prepared`'s routing and channels. Every alert stays;
    /// each aggregation group whose route and grouping still exist keeps
    /// its timers (so the notification log still knows what it sent and
    /// nothing is repeated), taking its route's new receiver and
    /// intervals; alerts of other groups are filed again through the new
    /// routes. Queued notifications stay in the outbox.
    pub fn apply(&self, prepared: PreparedAlerting) {
        self.outbox
            .set_channels(prepared.channels, prepared.max_retry);
        let routing = Arc::new(prepared.routing);
        self.routing.store(routing.clone());
        let now = (self.now)();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let old = std::mem::take(&mut st.groups);
        let mut alerts: BTreeMap<String, Alert> = BTreeMap::new();
        for g in old.values() {
            alerts.extend(g.alerts.iter().map(|(fp, a)| (fp.clone(), a.clone())));
        }
        for (fp, alert) in alerts {
            for route in routing.route.matching(&alert.labels) {
                let labels = route.group_labels(&alert.labels);
                let key = format!("{}:{}", route.id, labels);
                let group = st.groups.entry(key.clone()).or_insert_with(|| AggrGroup {
                    route_receiver: route.receiver.clone(),
                    group_interval_ms: route.group_interval.as_millis() as i64,
                    repeat_ms: route.repeat_interval.as_millis() as i64,
                    labels,
                    alerts: BTreeMap::new(),
                    next_flush_ms: old
                        .get(&key)
                        .map(|g| g.next_flush_ms)
                        .unwrap_or(now + route.group_wait.as_millis() as i64),
                });
                group.alerts.insert(fp.clone(), alert.clone());
            }
        }
        drop(st);
        self.wake.notify_one();
    }

    /// The silences.
    pub fn silences(&self) -> &Arc<Silences> {
        &self.silences
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Current time (ms).
    pub fn now_ms(&self) -> i64 {
        (self.now)()
    }

    /// Takes the alerts infermon's own rules raise: `alert_relabel_configs`
    /// apply first (as in Prometheus' notifier), then [`put_alerts`](Self::put_alerts).
    pub fn put_rule_alerts(&self, alerts: Vec<Alert>) {
        let relabelled = self.routing.load().relabel.apply(alerts);
        self.put_alerts(relabelled);
    }

    /// Takes alerts (new, refreshed or resolved) and files them into groups.
    pub fn put_alerts(&self, alerts: Vec<Alert>) {
        let now = (self.now)();
        let routing = self.routing.load();
        if !routing.forward.is_empty() && !alerts.is_empty() {
            let n = Notification::forwarded(&alerts, now, &routing.external_url);
            for key in &routing.forward {
                if let Err(e) = self.outbox.enqueue(key, &n, None) {
                    tracing::error!(error = %e, "cannot queue alerts for the Alertmanager");
                }
            }
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for mut alert in alerts {
            let fp = alert.fingerprint();
            if let Some(old) = st.alerts.get(&fp)
                && old.ends_at_ms >= alert.starts_at_ms
                && old.starts_at_ms < alert.starts_at_ms
            {
                // The same occurrence refreshed: keep when it started.
                alert.starts_at_ms = old.starts_at_ms;
            }
            st.alerts.insert(fp.clone(), alert.clone());
            for route in routing.route.matching(&alert.labels) {
                let labels = route.group_labels(&alert.labels);
                let key = format!("{}:{}", route.id, labels);
                let group = st.groups.entry(key).or_insert_with(|| AggrGroup {
                    route_receiver: route.receiver.clone(),
                    group_interval_ms: route.group_interval.as_millis() as i64,
                    repeat_ms: route.repeat_interval.as_millis() as i64,
                    labels,
                    alerts: BTreeMap::new(),
                    next_flush_ms: now + route.group_wait.as_millis() as i64,
                });
                group.alerts.insert(fp.clone(), alert.clone());
            }
        }
        drop(st);
        self.wake.notify_one();
    }

    /// Every known alert with the silences and inhibitions muting it.
    pub fn alerts(&self) -> Vec<(Alert, Vec<String>, bool, Vec<String>)> {
        let now = (self.now)();
        let routing = self.routing.load();
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let all: Vec<Alert> = st.alerts.values().cloned().collect();
        let mut out: Vec<_> = all
            .iter()
            .map(|a| {
                let silenced = self.silences.silenced_by(&a.labels, now);
                let inhibited = routing.inhibitor.inhibited(a, &all, now);
                let receivers = routing
                    .route
                    .matching(&a.labels)
                    .iter()
                    .map(|r| r.receiver.clone())
                    .collect();
                (a.clone(), silenced, inhibited, receivers)
            })
            .collect();
        out.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
        out
    }

    /// Flushes the groups that are due at `now`.
    fn flush_due(&self, now: i64) {
        let routing = self.routing.load();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let all: Vec<Alert> = st.alerts.values().cloned().collect();
        let due: Vec<String> = st
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush_ms <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(group) = st.groups.get_mut(&key) else {
                continue;
            };
            let unmuted: Vec<Alert> = group
                .alerts
                .values()
                .filter(|a| {
                    self.silences.silenced_by(&a.labels, now).is_empty()
                        && !routing.inhibitor.inhibited(a, &all, now)
                })
                .cloned()
                .collect();
            if !unmuted.is_empty() {
                self.notify_group(&routing, &key, group, &unmuted, now);
            }
            // Resolved alerts have been told (or were never worth telling).
            group.alerts.retain(|_, a| !a.resolved(now));
            group.next_flush_ms = now + group.group_interval_ms;
            if group.alerts.is_empty() {
                st.groups.remove(&key);
            }
            self.metrics.flushes.inc();
        }
        // Forget alerts resolved long ago.
        st.alerts
            .retain(|_, a| a.ends_at_ms > now - RESOLVED_RETENTION_MS);
        let active = st.alerts.values().filter(|a| !a.resolved(now)).count() as i64;
        self.metrics
            .alerts
            .with_label_values(&["active"])
            .set(active);
        self.metrics
            .alerts
            .with_label_values(&["resolved"])
            .set(st.alerts.len() as i64 - active);
        self.metrics.groups.set(st.groups.len() as i64);
    }

    fn notify_group(
        &self,
        routing: &Routing,
        group_key: &str,
        group: &AggrGroup,
        alerts: &[Alert],
        now: i64,
    ) {
        let firing: BTreeSet<String> = alerts
            .iter()
            .filter(|a| !a.resolved(now))
            .map(Alert::fingerprint)
            .collect();
        let resolved: BTreeSet<String> = alerts
            .iter()
            .filter(|a| a.resolved(now))
            .map(Alert::fingerprint)
            .collect();
        let Some(keys) = routing.receivers.get(&group.route_receiver) else {
            return;
        };
        for key in keys {
            let Some(channel) = self.outbox.channel(key) else {
                continue;
            };
            let log_key = format!("{key}\u{1f}{group_key}");
            let entry = match self.store.log_entry(&log_key) {
                Ok(e) => e.and_then(|j| serde_json::from_str::<LogEntry>(&j).ok()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the notification log; not notifying now");
                    continue;
                }
            };
            if !needs_update(
                entry.as_ref(),
                &firing,
                &resolved,
                channel.send_resolved(),
                group.repeat_ms,
                now,
            ) {
                continue;
            }
            let new_entry = LogEntry {
                firing: firing.clone(),
                resolved: resolved.clone(),
                ts_ms: now,
            };
            let Ok(entry_json) = serde_json::to_string(&new_entry) else {
                continue;
            };
            let log = (
                log_key.as_str(),
                entry_json.as_str(),
                now + LOG_RETENTION_MS,
            );
            let n = Notification::new(
                &group.route_receiver,
                group_key,
                &group.labels,
                alerts,
                now,
                &routing.external_url,
            );
            let n = if channel.send_resolved() {
                Some(n)
            } else {
                n.without_resolved()
            };
            let result = match n {
                Some(n) => self.outbox.enqueue(key, &n, Some(log)).map(|_| ()),
                None => self
                    .store
                    .put_log_entry(log.0, log.1, log.2)
                    .map_err(AlertingError::from),
            };
            if let Err(e) = result {
                tracing::error!(error = %e, integration = %key, "cannot queue notification; will retry at the next group interval");
            }
        }
    }

    /// Runs the dispatcher and the outbox until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let outbox = tokio::spawn(self.outbox.clone().run(shutdown.clone()));
        let mut last_gc: Option<i64> = None;
        loop {
            let now = (self.now)();
            let next = {
                let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.groups
                    .values()
                    .map(|g| g.next_flush_ms)
                    .min()
                    .unwrap_or(now + 60_000)
                    .min(now + 60_000)
            };
            let wait = Duration::from_millis((next - now).max(0) as u64);
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            let now = (self.now)();
            self.flush_due(now);
            if last_gc.is_none_or(|t| now - t > 3_600_000) {
                last_gc = Some(now);
                self.silences.gc(now);
                if let Err(e) = self.store.gc_log(now) {
                    tracing::warn!(error = %e, "cannot trim the notification log");
                }
                let retention = self.routing.load().history_retention_ms;
                if let Err(e) = self.store.gc_history(now - retention) {
                    tracing::warn!(error = %e, "cannot trim the delivery history");
                }
            }
        }
        // The rules stage stopped first: queue what its last evaluation made
        // due, then let in-flight sends finish (everything queued is durable).
        self.flush_due((self.now)());
        let _ = outbox.await;
        tracing::info!("alert manager stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(group_by: &str, url: &str) -> Config {
        Config::load_str(
            &format!(
                "alerting:\n  route:\n    receiver: hook\n    group_by: [{group_by}]\n    group_wait: 30s\n  receivers:\n  - name: hook\n    webhook_configs: [{{url: '{url}'}}]\n"
            ),
            None,
        )
        .unwrap()
        .config
    }

    /// A reload keeps the alerts and the timers of groups whose route and
    /// grouping stay; a new grouping files the alerts into new groups; the
    /// receiver's channel is replaced under the same integration key.
    #[test]
    fn a_reload_keeps_groups_and_swaps_receivers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(&dir.path().join("state.db")).unwrap());
        let clock = Arc::new(std::sync::atomic::AtomicI64::new(1_000_000));
        let c2 = clock.clone();
        let now: NowFn = Arc::new(move || c2.load(std::sync::atomic::Ordering::SeqCst));
        let registry = prometheus::Registry::new();
        let am = AlertManager::new(
            &config("alertname", "http://127.0.0.1:1/a"),
            store,
            &registry,
            now.clone(),
        )
        .unwrap();
        let alert = Alert {
            labels: Labels::new([("alertname", "A"), ("model", "m")]),
            annotations: BTreeMap::new(),
            starts_at_ms: 1_000_000,
            ends_at_ms: 2_000_000,
            generator_url: String::new(),
        };
        am.put_alerts(vec![alert]);
        let groups = |am: &AlertManager| -> Vec<(String, i64)> {
            let st = am.state.lock().unwrap();
            st.groups
                .iter()
                .map(|(k, g)| (k.clone(), g.next_flush_ms))
                .collect()
        };
        let before = groups(&am);
        assert_eq!(before.len(), 1);
        let channel = am.outbox.channel("hook/webhook/0").unwrap();

        clock.store(1_010_000, std::sync::atomic::Ordering::SeqCst);
        let prepared =
            AlertManager::prepare(&config("alertname", "http://127.0.0.1:1/b"), now.clone())
                .unwrap();
        am.apply(prepared);
        assert_eq!(groups(&am), before, "same group, same timer");
        let swapped = am.outbox.channel("hook/webhook/0").unwrap();
        assert!(!Arc::ptr_eq(&channel, &swapped), "the new URL's channel");
        assert_eq!(am.alerts().len(), 1);

        let prepared =
            AlertManager::prepare(&config("model", "http://127.0.0.1:1/b"), now).unwrap();
        am.apply(prepared);
        let after = groups(&am);
        assert_eq!(after.len(), 1);
        assert_ne!(after[0].0, before[0].0, "grouped by the new labels");
        assert_eq!(
            after[0].1,
            1_010_000 + 30_000,
            "a new group waits group_wait"
        );
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dedup_like_alertmanager() {
        let e = LogEntry {
            firing: set(&["a"]),
            resolved: set(&[]),
            ts_ms: 0,
        };
        assert!(needs_update(None, &set(&["a"]), &set(&[]), true, 1000, 10));
        assert!(
            !needs_update(None, &set(&[]), &set(&["a"]), true, 1000, 10),
            "only resolved, never told"
        );
        assert!(
            !needs_update(Some(&e), &set(&["a"]), &set(&[]), true, 1000, 10),
            "nothing new"
        );
        assert!(
            needs_update(Some(&e), &set(&["a", "b"]), &set(&[]), true, 1000, 10),
            "new firing"
        );
        assert!(
            needs_update(Some(&e), &set(&["a"]), &set(&[]), true, 1000, 1001),
            "repeat interval"
        );
        assert!(
            needs_update(Some(&e), &set(&[]), &set(&["a"]), false, 1000, 10),
            "all resolved"
        );
        let e2 = LogEntry {
            firing: set(&["a", "b"]),
            resolved: set(&[]),
            ts_ms: 0,
        };
        assert!(
            needs_update(Some(&e2), &set(&["a"]), &set(&["b"]), true, 1000, 10),
            "one resolved"
        );
        assert!(
            !needs_update(Some(&e2), &set(&["a"]), &set(&["b"]), false, 1000, 10),
            "send_resolved off"
        );
    }
}
