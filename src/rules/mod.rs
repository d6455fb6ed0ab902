//! Rule groups: Prometheus rule files, alerting and recording rules.
//!
//! This part decides (which alerts are pending or firing); `alerting` delivers.

mod file;

pub use file::{
    RuleFile, RuleGroup, RuleSpec, check_rule_file, parse_rule_file, resolve_rule_files,
};

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
    Invalid(Vec<crate::config::Diagnostic>),
}
