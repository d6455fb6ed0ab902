//! What one notification carries: Alertmanager's webhook data (status,
//! group labels, common labels and annotations, the alerts). It is what the
//! outbox stores; each channel renders it at send time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Alert, rfc3339};
use crate::model::Labels;

/// One alert in a notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Start (RFC 3339).
    pub starts_at: String,
    /// End (RFC 3339; Go's zero time while firing, as Alertmanager sends).
    pub ends_at: String,
    /// Link to the source.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Label fingerprint.
    pub fingerprint: String,
}

/// One notification to one receiver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Receiver name.
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The alerts.
    pub alerts: Vec<NotifiedAlert>,
    /// Labels that define the group.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert shares.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert shares.
    pub common_annotations: BTreeMap<String, String>,
    /// Link to infermon.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The group's key.
    pub group_key: String,
}

const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Notification {
    /// Builds a notification from alerts (firing first, then resolved).
    pub fn new(
        receiver: &str,
        group_key: &str,
        group_labels: &Labels,
        alerts: &[Alert],
        now_ms: i64,
        external_url: &str,
    ) -> Self {
        let mut sorted: Vec<&Alert> = alerts.iter().collect();
        sorted.sort_by_key(|a| (a.resolved(now_ms), a.labels.clone()));
        let notified: Vec<NotifiedAlert> = sorted
            .iter()
            .map(|a| {
                let resolved = a.resolved(now_ms);
                NotifiedAlert {
                    status: if resolved { "resolved" } else { "firing" }.into(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at: rfc3339(a.starts_at_ms),
                    ends_at: if resolved {
                        rfc3339(a.ends_at_ms)
                    } else {
                        GO_ZERO_TIME.into()
                    },
                    generator_url: a.generator_url.clone(),
                    fingerprint: a.fingerprint(),
                }
            })
            .collect();
        let common =
            |get: &dyn Fn(&Alert) -> BTreeMap<String, String>| -> BTreeMap<String, String> {
                let mut it = alerts.iter();
                let Some(first) = it.next() else {
                    return BTreeMap::new();
                };
                let mut c = get(first);
                for a in it {
                    let other = get(a);
                    c.retain(|k, v| other.get(k) == Some(v));
                }
                c
            };
        let status = if notified.iter().any(|a| a.status == "firing") {
            "firing"
        } else {
            "resolved"
        };
        Notification {
            receiver: receiver.to_string(),
            status: status.to_string(),
            alerts: notified,
            group_labels: group_labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            common_labels: common(&|a| {
                a.labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect()
            }),
            common_annotations: common(&|a| a.annotations.clone()),
            external_url: external_url.to_string(),
            group_key: group_key.to_string(),
        }
    }

    /// Alerts forwarded to an Alertmanager as rules sent them: every alert
    /// keeps its real `endsAt` (its validity while firing), as Prometheus sends.
    pub fn forwarded(alerts: &[Alert], now_ms: i64, external_url: &str) -> Self {
        let mut n = Self::new(
            "alertmanagers",
            "",
            &Labels::default(),
            alerts,
            now_ms,
            external_url,
        );
        for notified in n.alerts.iter_mut() {
            if let Some(src) = alerts
                .iter()
                .find(|a| a.fingerprint() == notified.fingerprint)
            {
                notified.ends_at = rfc3339(src.ends_at_ms);
            }
        }
        n
    }

    /// The firing alerts.
    pub fn firing(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts.iter().filter(|a| a.status == "firing")
    }

    /// The resolved alerts.
    pub fn resolved(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts.iter().filter(|a| a.status == "resolved")
    }

    /// A one-line description for the delivery history.
    pub fn summary(&self) -> String {
        let name = self
            .group_labels
            .get("alertname")
            .or_else(|| self.common_labels.get("alertname"))
            .cloned()
            .unwrap_or_else(|| format!("{} alerts", self.alerts.len()));
        format!(
            "[{}:{}] {name}",
            self.status.to_uppercase(),
            self.firing().count()
        )
    }

    /// Without resolved alerts (for receivers with `send_resolved: false`);
    /// `None` when nothing is left to send.
    pub fn without_resolved(&self) -> Option<Notification> {
        let mut n = self.clone();
        n.alerts.retain(|a| a.status == "firing");
        (!n.alerts.is_empty()).then_some(n)
    }

    /// Alertmanager's webhook payload (version 4), at most `max_alerts` alerts (0 = all).
    pub fn webhook_payload(&self, max_alerts: usize) -> serde_json::Value {
        let (alerts, truncated) = if max_alerts > 0 && self.alerts.len() > max_alerts {
            (&self.alerts[..max_alerts], self.alerts.len() - max_alerts)
        } else {
            (&self.alerts[..], 0)
        };
        serde_json::json!({
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": truncated,
            "status": self.status,
            "receiver": self.receiver,
            "groupLabels": self.group_labels,
            "commonLabels": self.common_labels,
            "commonAnnotations": self.common_annotations,
            "externalURL": self.external_url,
            "alerts": alerts,
        })
    }
}
