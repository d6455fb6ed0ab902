//! Rule groups: Prometheus rule files, alerting and recording rules.
//!
//! This part decides (which alerts are pending or firing); `alerting` delivers.
//! It evaluates through a [`QueryFn`] and hands alerts to an [`AlertSink`], so
//! it names neither the PromQL engine nor the alert manager: the composition
//! root plugs them in. Recording-rule results and the `ALERTS` series are
//! written through [`crate::storage::Appender`].

mod alerting_rule;
mod file;
mod group;
mod manager;
mod recording;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

pub use alerting_rule::{ActiveAlert, AlertState, AlertingRule, needs_sending};
pub use file::{
    RuleFile, RuleGroup, RuleSpec, check_rule_file, check_rule_text, parse_rule_file,
    parse_rule_text, resolve_rule_files,
};
pub use group::{Clock, Group, Rule};
pub use manager::{
    BUILTIN_RULE_FILES, ManagerOptions, RuleManager, RulesApplied, diff_rule_files, load_rule_files,
};
pub use recording::RecordingRule;
pub use status::RuleStatus;

use crate::model::Labels;

/// One element of an instant vector, as a query returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    /// Series labels (with `__name__` when the expression keeps it).
    pub labels: Labels,
    /// The value at the evaluation time.
    pub value: f64,
}

/// Evaluates a PromQL expression at a time (ms since the epoch) and returns
/// an instant vector, or why it could not (a scalar result is returned as
/// one sample with no labels, as Prometheus' rule manager does).
pub type QueryFn = Arc<
    dyn Fn(String, i64) -> BoxFuture<'static, Result<Vec<InstantSample>, QueryError>> + Send + Sync,
>;

/// Why a rule's query gave no instant vector.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The engine refused or failed the expression.
    #[error(transparent)]
    Promql(#[from] crate::promql::PromqlError),
    /// The expression gives a range vector or a string.
    #[error("rule expression must give a vector or scalar, not a {0}")]
    NotAVector(&'static str),
}

/// An alert as rules hand it over: Prometheus' `notifier.Alert`.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingAlert {
    /// Identifying labels (with `alertname` and external labels).
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (ms).
    pub starts_at_ms: i64,
    /// When it resolved, or until when it is valid without a refresh (ms).
    pub ends_at_ms: i64,
    /// Link back to the rule.
    pub generator_url: String,
}

/// Where alerts that need sending go (the alert manager, plugged in by the
/// composition root). Called after every group evaluation; must not block.
pub trait AlertSink: Send + Sync {
    /// Accepts alerts to deliver.
    fn send(&self, alerts: Vec<OutgoingAlert>);
}

impl<F: Fn(Vec<OutgoingAlert>) + Send + Sync> AlertSink for F {
    fn send(&self, alerts: Vec<OutgoingAlert>) {
        self(alerts)
    }
}

/// Errors of the rules part.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A `rule_files` entry names a file that does not exist.
    #[error("rule file {0:?} does not exist")]
    Missing(String),
    /// A glob pattern is malformed.
    #[error("bad rule file pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A rule file has problems.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<crate::diag::Diagnostic>),
    /// A rule's query failed or its result could not be used.
    #[error("{0}")]
    Eval(String),
}
