//! One alerting rule and the state of its alerts: Inactive → Pending (the
//! condition holds) → Firing (it held for `for`) → Inactive (resolved, kept
//! 15 minutes so the resolution is sent), with `keep_firing_for`, exactly as
//! Prometheus' `rules/alerting.go`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{InstantSample, OutgoingAlert, RulesError};
use crate::model::{Labels, METRIC_NAME};
use crate::template::expand_alert_text;

/// Resolved alerts are kept this long so the resolution is sent (Prometheus' value).
const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Where an alert is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Not active (resolved).
    Inactive,
    /// The condition holds, but not yet for `for`.
    Pending,
    /// The condition held for `for`.
    Firing,
}

impl AlertState {
    /// Prometheus' name (`inactive`, `pending`, `firing`).
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule (one label set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// Labels (series labels without `__name__`, rule labels, `alertname`).
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// The expression's value at the last evaluation.
    pub value: f64,
    /// State.
    pub state: AlertState,
    /// When the condition started holding (ms).
    pub active_at_ms: i64,
    /// When it started firing (ms).
    pub fired_at_ms: Option<i64>,
    /// When it resolved (ms).
    pub resolved_at_ms: Option<i64>,
    /// When it was last handed to the sink (ms).
    pub last_sent_ms: Option<i64>,
    /// Since when the condition is gone while `keep_firing_for` keeps it firing.
    pub keep_firing_since_ms: Option<i64>,
}

/// Whether an alert must be (re)sent at `ts`: Prometheus' `needsSending`.
/// Pending alerts are never sent; a resolution is sent once; firing alerts
/// are re-sent every `resend_delay` so the receiver's copy does not expire.
pub fn needs_sending(a: &ActiveAlert, ts_ms: i64, resend_delay_ms: i64) -> bool {
    if a.state == AlertState::Pending {
        return false;
    }
    let last_sent = a.last_sent_ms.unwrap_or(i64::MIN);
    if a.resolved_at_ms.is_some_and(|r| r > last_sent) {
        return true;
    }
    a.last_sent_ms
        .is_none_or(|sent| sent + resend_delay_ms < ts_ms)
}

/// An alerting rule with its alerts.
#[derive(Clone, Debug)]
pub struct AlertingRule {
    /// Alert name.
    pub name: String,
    /// PromQL expression.
    pub expr: String,
    /// `for` in ms.
    pub hold_ms: i64,
    /// `keep_firing_for` in ms.
    pub keep_firing_for_ms: i64,
    /// Labels (templated).
    pub labels: BTreeMap<String, String>,
    /// Annotations (templated).
    pub annotations: BTreeMap<String, String>,
    /// Alerts by label set.
    pub active: HashMap<Labels, ActiveAlert>,
    /// Error of the last evaluation.
    pub last_error: Option<String>,
}

/// What a rule needs from its group to expand templates and label alerts.
#[derive(Clone, Debug, Default)]
pub struct EvalContext {
    /// `global.external_labels`.
    pub external_labels: BTreeMap<String, String>,
    /// URL infermon is reached at.
    pub external_url: String,
    /// Group `limit` (0 = none).
    pub limit: u64,
}

impl AlertingRule {
    /// A rule with no alerts yet.
    pub fn new(
        name: &str,
        expr: &str,
        hold_ms: i64,
        keep_firing_for_ms: i64,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Self {
        AlertingRule {
            name: name.to_string(),
            expr: expr.to_string(),
            hold_ms,
            keep_firing_for_ms,
            labels,
            annotations,
            active: HashMap::new(),
            last_error: None,
        }
    }

    fn expand(text: &str, labels: &Labels, value: f64, ctx: &EvalContext) -> String {
        expand_alert_text(text, labels, &ctx.external_labels, &ctx.external_url, value)
            .unwrap_or_else(|e| format!("<error expanding template: {e}>"))
    }

    /// Applies one evaluation's query result at `ts`; returns the `ALERTS`
    /// and `ALERTS_FOR_STATE` samples to write (labels, value).
    pub fn eval(
        &mut self,
        ts_ms: i64,
        result: Vec<InstantSample>,
        ctx: &EvalContext,
    ) -> Result<Vec<(Labels, f64)>, RulesError> {
        let mut seen: HashSet<Labels> = HashSet::new();
        let mut fresh: Vec<ActiveAlert> = Vec::new();
        for sample in result {
            let mut template_labels = sample.labels.clone();
            template_labels.remove(METRIC_NAME);
            let mut labels = template_labels.clone();
            for (k, v) in &self.labels {
                labels.set(k, &Self::expand(v, &template_labels, sample.value, ctx));
            }
            labels.set("alertname", &self.name);
            let annotations = self
                .annotations
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Self::expand(v, &template_labels, sample.value, ctx),
                    )
                })
                .collect();
            if !seen.insert(labels.clone()) {
                let err =
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string();
                self.last_error = Some(err.clone());
                return Err(RulesError::Eval(err));
            }
            fresh.push(ActiveAlert {
                labels,
                annotations,
                value: sample.value,
                state: AlertState::Pending,
                active_at_ms: ts_ms,
                fired_at_ms: None,
                resolved_at_ms: None,
                last_sent_ms: None,
                keep_firing_since_ms: None,
            });
        }
        for alert in fresh {
            match self.active.get_mut(&alert.labels) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = alert.value;
                    existing.annotations = alert.annotations;
                }
                _ => {
                    self.active.insert(alert.labels.clone(), alert);
                }
            }
        }

        let mut out = Vec::new();
        let mut active_count = 0u64;
        let mut remove = Vec::new();
        for (key, a) in self.active.iter_mut() {
            if !seen.contains(key) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(ts_ms);
                    keep_firing = ts_ms - since < self.keep_firing_for_ms;
                }
                if a.state == AlertState::Pending
                    || a.resolved_at_ms
                        .is_some_and(|r| ts_ms - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(key.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at_ms = Some(ts_ms);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since_ms = None;
            }
            active_count += 1;
            if a.state == AlertState::Pending && ts_ms - a.active_at_ms >= self.hold_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts_ms);
            }
            let mut series = a.labels.clone();
            series.set(METRIC_NAME, "ALERTS");
            series.set("alertstate", a.state.as_str());
            out.push((series, 1.0));
            let mut for_state = a.labels.clone();
            for_state.set(METRIC_NAME, "ALERTS_FOR_STATE");
            out.push((for_state, (a.active_at_ms / 1000) as f64));
        }
        for key in remove {
            self.active.remove(&key);
        }
        if ctx.limit > 0 && active_count > ctx.limit {
            self.active.clear();
            let err = format!("exceeded limit of {} with {active_count} alerts", ctx.limit);
            self.last_error = Some(err.clone());
            return Err(RulesError::Eval(err));
        }
        self.last_error = None;
        Ok(out)
    }

    /// The alerts that need sending at `ts`, marked as sent. Firing alerts
    /// are valid until `ts + 4 × max(resend_delay, interval)`, as in Prometheus.
    pub fn alerts_to_send(
        &mut self,
        ts_ms: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
        external_labels: &BTreeMap<String, String>,
        generator_url: &str,
    ) -> Vec<OutgoingAlert> {
        let valid_for = 4 * resend_delay_ms.max(interval_ms);
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if !needs_sending(a, ts_ms, resend_delay_ms) {
                continue;
            }
            a.last_sent_ms = Some(ts_ms);
            let mut labels = a.labels.clone();
            for (k, v) in external_labels {
                if labels.get(k).is_none() {
                    labels.set(k, v);
                }
            }
            let ends_at_ms = match (a.state, a.resolved_at_ms) {
                (AlertState::Inactive, Some(r)) => r,
                _ => ts_ms + valid_for,
            };
            out.push(OutgoingAlert {
                labels,
                annotations: a.annotations.clone(),
                starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                ends_at_ms,
                generator_url: generator_url.to_string(),
            });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Puts back alerts saved before a restart (pending and firing keep their
    /// `active_at`, so `for` does not start over).
    pub fn restore(&mut self, alerts: Vec<ActiveAlert>) {
        for a in alerts {
            self.active.insert(a.labels.clone(), a);
        }
    }

    /// The alerts, sorted by labels (for the API and for saving).
    pub fn alerts(&self) -> Vec<ActiveAlert> {
        let mut v: Vec<ActiveAlert> = self.active.values().cloned().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// The most severe state of its alerts.
    pub fn state(&self) -> AlertState {
        let mut state = AlertState::Inactive;
        for a in self.active.values() {
            match a.state {
                AlertState::Firing => return AlertState::Firing,
                AlertState::Pending => state = AlertState::Pending,
                AlertState::Inactive => {}
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(hold_s: i64, keep_s: i64) -> AlertingRule {
        AlertingRule::new(
            "HighLatency",
            "x > 2",
            hold_s * 1000,
            keep_s * 1000,
            [("severity".to_string(), "warning".to_string())].into(),
            [(
                "summary".to_string(),
                "{{ $labels.model }} at {{ $value }}".to_string(),
            )]
            .into(),
        )
    }

    fn sample(v: f64) -> Vec<InstantSample> {
        vec![InstantSample {
            labels: Labels::new([("__name__", "x"), ("model", "m")]),
            value: v,
        }]
    }

    fn state(r: &AlertingRule) -> AlertState {
        r.alerts()
            .first()
            .map(|a| a.state)
            .unwrap_or(AlertState::Inactive)
    }

    #[test]
    fn pending_firing_resolved() {
        let ctx = EvalContext::default();
        let mut r = rule(60, 0);
        let series = r.eval(0, sample(3.0), &ctx).unwrap();
        assert_eq!(state(&r), AlertState::Pending);
        assert_eq!(series[0].0.get("alertstate"), Some("pending"));
        assert_eq!(series[0].0.get("severity"), Some("warning"));
        assert!(
            r.alerts_to_send(0, 60_000, 15_000, &BTreeMap::new(), "")
                .is_empty()
        );
        r.eval(30_000, sample(3.0), &ctx).unwrap();
        assert_eq!(state(&r), AlertState::Pending);
        r.eval(60_000, sample(4.0), &ctx).unwrap();
        assert_eq!(state(&r), AlertState::Firing);
        let sent = r.alerts_to_send(60_000, 60_000, 15_000, &BTreeMap::new(), "");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].annotations["summary"], "m at 4");
        assert_eq!(sent[0].ends_at_ms, 60_000 + 240_000);
        // Not re-sent before the resend delay.
        r.eval(75_000, sample(4.0), &ctx).unwrap();
        assert!(
            r.alerts_to_send(75_000, 60_000, 15_000, &BTreeMap::new(), "")
                .is_empty()
        );
        let series = r.eval(90_000, vec![], &ctx).unwrap();
        assert!(series.is_empty());
        assert_eq!(state(&r), AlertState::Inactive);
        let sent = r.alerts_to_send(90_000, 60_000, 15_000, &BTreeMap::new(), "");
        assert_eq!(
            sent[0].ends_at_ms, 90_000,
            "resolution sent once with its end"
        );
        assert!(
            r.alerts_to_send(91_000, 60_000, 15_000, &BTreeMap::new(), "")
                .is_empty()
        );
        // Dropped after the resolved retention.
        r.eval(90_000 + RESOLVED_RETENTION_MS + 1, vec![], &ctx)
            .unwrap();
        assert!(r.alerts().is_empty());
    }

    #[test]
    fn pending_that_clears_is_forgotten() {
        let ctx = EvalContext::default();
        let mut r = rule(60, 0);
        r.eval(0, sample(3.0), &ctx).unwrap();
        r.eval(15_000, vec![], &ctx).unwrap();
        assert!(r.alerts().is_empty());
        r.eval(30_000, sample(3.0), &ctx).unwrap();
        assert_eq!(r.alerts()[0].active_at_ms, 30_000, "for starts over");
    }

    #[test]
    fn keep_firing_for_holds_then_resolves() {
        let ctx = EvalContext::default();
        let mut r = rule(0, 60);
        r.eval(0, sample(3.0), &ctx).unwrap();
        assert_eq!(state(&r), AlertState::Firing, "for: 0 fires at once");
        r.eval(15_000, vec![], &ctx).unwrap();
        assert_eq!(state(&r), AlertState::Firing);
        r.eval(60_000, vec![], &ctx).unwrap();
        assert_eq!(state(&r), AlertState::Firing);
        r.eval(75_000, vec![], &ctx).unwrap();
        assert_eq!(state(&r), AlertState::Inactive);
    }

    #[test]
    fn duplicate_labelsets_and_limit_are_errors() {
        let mut r = rule(0, 0);
        let two = vec![
            InstantSample {
                labels: Labels::new([("__name__", "a"), ("model", "m")]),
                value: 1.0,
            },
            InstantSample {
                labels: Labels::new([("__name__", "b"), ("model", "m")]),
                value: 1.0,
            },
        ];
        assert!(r.eval(0, two, &EvalContext::default()).is_err());
        let ctx = EvalContext {
            limit: 1,
            ..Default::default()
        };
        let two = vec![
            InstantSample {
                labels: Labels::new([("model", "a")]),
                value: 1.0,
            },
            InstantSample {
                labels: Labels::new([("model", "b")]),
                value: 1.0,
            },
        ];
        assert!(
            r.eval(0, two, &ctx)
                .unwrap_err()
                .to_string()
                .contains("exceeded limit of 1")
        );
        assert!(r.alerts().is_empty());
    }
}
