//! Inhibition: a firing source alert mutes target alerts that agree on the
//! `equal` labels (Alertmanager's `inhibit_rules`).

use super::{Alert, AlertingError};
use crate::config::InhibitRule;
use crate::model::Matcher;

struct Rule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

/// The inhibit rules.
pub struct Inhibitor {
    rules: Vec<Rule>,
}

fn parse(ms: &[String]) -> Result<Vec<Matcher>, AlertingError> {
    ms.iter()
        .map(|m| Matcher::parse(m).map_err(|e| AlertingError::Config(e.to_string())))
        .collect()
}

impl Inhibitor {
    /// Builds the rules from the config.
    pub fn new(rules: &[InhibitRule]) -> Result<Self, AlertingError> {
        let rules = rules
            .iter()
            .map(|r| {
                Ok(Rule {
                    source: parse(&r.source_matchers)?,
                    target: parse(&r.target_matchers)?,
                    equal: r.equal.clone(),
                })
            })
            .collect::<Result<Vec<_>, AlertingError>>()?;
        Ok(Inhibitor { rules })
    }

    /// Whether `target` is muted by a firing alert of `alerts` at `now`.
    pub fn inhibited(&self, target: &Alert, alerts: &[Alert], now_ms: i64) -> bool {
        let fp = target.fingerprint();
        self.rules.iter().any(|r| {
            r.target.iter().all(|m| m.matches_labels(&target.labels))
                && alerts.iter().any(|source| {
                    !source.resolved(now_ms)
                        && r.source.iter().all(|m| m.matches_labels(&source.labels))
                        && r.equal.iter().all(|l| source.labels.get(l) == target.labels.get(l))
                        // An alert matching both sides does not mute itself.
                        && source.fingerprint() != fp
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn alert(pairs: &[(&str, &str)], ends: i64) -> Alert {
        Alert {
            labels: Labels::new(pairs.iter().copied()),
            annotations: Default::default(),
            starts_at_ms: 0,
            ends_at_ms: ends,
            generator_url: String::new(),
        }
    }

    #[test]
    fn critical_mutes_warning_of_same_model() {
        let inh = Inhibitor::new(&[InhibitRule {
            source_matchers: vec!["severity=critical".into()],
            target_matchers: vec!["severity=warning".into()],
            equal: vec!["model".into()],
        }])
        .unwrap();
        let crit = alert(
            &[
                ("alertname", "Errors"),
                ("severity", "critical"),
                ("model", "a"),
            ],
            1000,
        );
        let warn_a = alert(
            &[
                ("alertname", "Slow"),
                ("severity", "warning"),
                ("model", "a"),
            ],
            1000,
        );
        let warn_b = alert(
            &[
                ("alertname", "Slow"),
                ("severity", "warning"),
                ("model", "b"),
            ],
            1000,
        );
        let all = vec![crit.clone(), warn_a.clone(), warn_b.clone()];
        assert!(inh.inhibited(&warn_a, &all, 10));
        assert!(!inh.inhibited(&warn_b, &all, 10));
        assert!(!inh.inhibited(&crit, &all, 10));
        // A resolved source mutes nothing.
        assert!(!inh.inhibited(&warn_a, &all, 2000));
    }
}
