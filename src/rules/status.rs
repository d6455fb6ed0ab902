//! What every rule looks like right now, as plain rows: the dashboard's
//! Alerts page reads these instead of locking groups itself.

use super::alerting_rule::{ActiveAlert, AlertState};
use super::group::Rule;
use super::manager::RuleManager;

/// One rule's state after its last evaluation.
#[derive(Clone, Debug)]
pub struct RuleStatus {
    /// The group's name.
    pub group: String,
    /// Alert or record name.
    pub name: String,
    /// `alerting` or `recording`.
    pub kind: &'static str,
    /// `inactive`, `pending` or `firing` for alerting rules; `ok` or `err` for recording rules.
    pub state: &'static str,
    /// The expression.
    pub expr: String,
    /// Last evaluation, ms (0 = never).
    pub last_eval_ms: i64,
    /// Why the last evaluation failed.
    pub last_error: Option<String>,
    /// The rule's pending and firing alerts (none for recording rules).
    pub alerts: Vec<ActiveAlert>,
}

impl RuleManager {
    /// Every rule of every group, in file order.
    pub async fn status(&self) -> Vec<RuleStatus> {
        let mut out = Vec::new();
        for g in self.groups().iter() {
            let st = g.state.lock().await;
            for (rule, status) in st.rules.iter().zip(&st.status) {
                out.push(match rule {
                    Rule::Alerting(r) => RuleStatus {
                        group: g.name.clone(),
                        name: r.name.clone(),
                        kind: "alerting",
                        state: r.state().as_str(),
                        expr: r.expr.clone(),
                        last_eval_ms: status.last_eval_ms,
                        last_error: r.last_error.clone(),
                        alerts: r
                            .alerts()
                            .into_iter()
                            .filter(|a| a.state != AlertState::Inactive)
                            .collect(),
                    },
                    Rule::Recording(r) => RuleStatus {
                        group: g.name.clone(),
                        name: r.name.clone(),
                        kind: "recording",
                        state: if r.last_error.is_some() { "err" } else { "ok" },
                        expr: r.expr.clone(),
                        last_eval_ms: status.last_eval_ms,
                        last_error: r.last_error.clone(),
                        alerts: Vec::new(),
                    },
                });
            }
        }
        out
    }
}
