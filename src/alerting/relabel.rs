//! Prometheus' `alerting.alert_relabel_configs`: the alerts infermon's own
//! rules raise are relabelled (after external labels were added) before
//! routing and before forwarding to external Alertmanagers; an alert a step
//! drops is neither notified nor forwarded. Alerts other Prometheus servers
//! post to `/api/v2/alerts` were relabelled by their senders and pass as
//! they are, as in Alertmanager.

use super::{Alert, AlertingError};
use crate::config::RelabelConfig;
use crate::model::relabel::{Relabel, process};

/// The compiled relabel steps for alerts.
#[derive(Clone, Debug, Default)]
pub struct AlertRelabeler {
    steps: Vec<Relabel>,
}

impl AlertRelabeler {
    /// Compiles `alert_relabel_configs`.
    pub fn new(configs: &[RelabelConfig]) -> Result<Self, AlertingError> {
        let steps = Relabel::compile(configs)
            .map_err(|e| AlertingError::Config(format!("alert_relabel_configs: {e}")))?;
        Ok(AlertRelabeler { steps })
    }

    /// The alerts that survive relabelling, with their new labels. The same
    /// labels always relabel the same way, so a dropped alert's resolution
    /// is dropped too and a relabelled one resolves under its new labels.
    pub fn apply(&self, alerts: Vec<Alert>) -> Vec<Alert> {
        if self.steps.is_empty() {
            return alerts;
        }
        alerts
            .into_iter()
            .filter_map(|mut alert| {
                let labels = process(alert.labels, &self.steps)?;
                alert.labels = labels;
                Some(alert)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn alert(pairs: &[(&str, &str)]) -> Alert {
        Alert {
            labels: Labels::new(pairs.iter().copied()),
            annotations: Default::default(),
            starts_at_ms: 0,
            ends_at_ms: 1,
            generator_url: String::new(),
        }
    }

    fn relabeler(yaml: &str) -> AlertRelabeler {
        let configs: Vec<RelabelConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        AlertRelabeler::new(&configs).unwrap()
    }

    #[test]
    fn drops_by_label_and_adds_a_label() {
        let r = relabeler(
            "- source_labels: [severity]\n  regex: info\n  action: drop\n\
             - target_label: team\n  replacement: ml-platform\n",
        );
        let out = r.apply(vec![
            alert(&[("alertname", "A"), ("severity", "info")]),
            alert(&[("alertname", "B"), ("severity", "critical")]),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels.get("alertname"), Some("B"));
        assert_eq!(out[0].labels.get("team"), Some("ml-platform"));
    }

    #[test]
    fn no_steps_passes_everything_unchanged() {
        let a = alert(&[("alertname", "A")]);
        assert_eq!(AlertRelabeler::default().apply(vec![a.clone()]), vec![a]);
    }

    #[test]
    fn a_bad_regex_is_a_config_error() {
        let configs: Vec<RelabelConfig> =
            serde_yaml_ng::from_str("- source_labels: [a]\n  regex: '('\n  action: drop\n")
                .unwrap();
        assert!(matches!(
            AlertRelabeler::new(&configs),
            Err(AlertingError::Config(_))
        ));
    }
}
