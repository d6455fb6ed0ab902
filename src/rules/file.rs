//! The Prometheus rule file format, read and checked like `promtool check rules`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RulesError;
use crate::config::PromDuration;
use crate::diag::Diagnostic;

/// A rule file: a list of groups.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Rule groups.
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

/// A group of rules evaluated together at one interval.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    /// Group name, unique in the file.
    pub name: String,
    /// Evaluation interval (default `global.evaluation_interval`).
    #[serde(default)]
    pub interval: Option<PromDuration>,
    /// Evaluate this far in the past, so late samples are in.
    #[serde(default)]
    pub query_offset: Option<PromDuration>,
    /// Most alerts or series one rule may produce (0 = no limit).
    #[serde(default)]
    pub limit: u64,
    /// Labels added to every rule of the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// An alerting rule (`alert`) or a recording rule (`record`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Name of the series a recording rule writes.
    #[serde(default)]
    pub record: Option<String>,
    /// Name of the alert an alerting rule raises.
    #[serde(default)]
    pub alert: Option<String>,
    /// PromQL expression.
    #[serde(default)]
    pub expr: String,
    /// How long the condition must hold before firing.
    #[serde(default, rename = "for")]
    pub for_: Option<PromDuration>,
    /// How long to keep firing after the condition clears.
    #[serde(default)]
    pub keep_firing_for: Option<PromDuration>,
    /// Labels added to the alert or series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (templated) of the alert.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Expands one `rule_files` entry (a path or glob, relative to `base`).
/// A plain path that does not exist is an error; a glob may match nothing.
pub fn resolve_rule_files(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, RulesError> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let full_str = full.to_string_lossy().into_owned();
    let is_glob = pattern.contains(['*', '?', '[']);
    let paths = glob::glob(&full_str).map_err(|e| RulesError::BadPattern {
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() && !is_glob {
        return Err(RulesError::Missing(full_str));
    }
    Ok(files)
}

/// Reads and checks one rule file, returning its parsed form.
pub fn parse_rule_file(path: &Path) -> Result<RuleFile, RulesError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        RulesError::Invalid(vec![Diagnostic {
            file: name.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse_rule_text(&text, &name)
}

/// Checks one rule file; every problem with its position.
pub fn check_rule_file(path: &Path) -> Vec<Diagnostic> {
    match parse_rule_file(path) {
        Ok(_) => Vec::new(),
        Err(RulesError::Invalid(d)) => d,
        Err(e) => vec![Diagnostic {
            file: path.display().to_string(),
            line: 1,
            column: 1,
            message: e.to_string(),
        }],
    }
}

/// Checks rule-file text; every problem with its position.
pub fn check_rule_text(text: &str, name: &str) -> Vec<Diagnostic> {
    match parse_rule_text(text, name) {
        Ok(_) => Vec::new(),
        Err(RulesError::Invalid(d)) => d,
        Err(e) => vec![Diagnostic {
            file: name.to_string(),
            line: 1,
            column: 1,
            message: e.to_string(),
        }],
    }
}

/// Parses rule-file text; `name` is used in messages.
pub fn parse_rule_text(text: &str, name: &str) -> Result<RuleFile, RulesError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let file: RuleFile = serde_path_to_error::deserialize(de)
        .map_err(|err| RulesError::Invalid(vec![crate::diag::yaml_diagnostic(err, text, name)]))?;
    let mut problems = Vec::new();
    let at = |needle: &str, message: String| {
        let (line, column) = crate::diag::locate(text, needle);
        Diagnostic {
            file: name.to_string(),
            line,
            column,
            message,
        }
    };
    let mut groups = HashSet::new();
    for group in &file.groups {
        if group.name.is_empty() {
            problems.push(at("name:", "group name must not be empty".to_string()));
        }
        if !groups.insert(group.name.as_str()) {
            problems.push(at(
                &group.name,
                format!("{:?}: repeated in the same file", group.name),
            ));
        }
        for label in group.labels.keys() {
            if !valid_label_name(label) {
                problems.push(at(
                    label,
                    format!("group {:?}: invalid label name {label:?}", group.name),
                ));
            }
        }
        for (i, rule) in group.rules.iter().enumerate() {
            let what = format!("group {:?}, rule {}", group.name, i + 1);
            let anchor = rule
                .alert
                .as_deref()
                .or(rule.record.as_deref())
                .unwrap_or("expr:");
            match (&rule.alert, &rule.record) {
                (Some(_), Some(_)) => problems.push(at(
                    anchor,
                    format!("{what}: only one of 'record' and 'alert' must be set"),
                )),
                (None, None) => problems.push(at(
                    anchor,
                    format!("{what}: one of 'record' or 'alert' must be set"),
                )),
                _ => {}
            }
            if rule.expr.trim().is_empty() {
                problems.push(at(
                    anchor,
                    format!("{what}: field 'expr' must be set in rule"),
                ));
            } else if let Err(e) = promql_parser::parser::parse(&rule.expr) {
                let first_line = rule.expr.lines().next().unwrap_or("").trim();
                problems.push(at(
                    first_line,
                    format!("{what}: could not parse expression: {e}"),
                ));
            }
            if let Some(record) = &rule.record {
                if !valid_metric_name(record) {
                    problems.push(at(
                        record,
                        format!("{what}: invalid recording rule name: {record}"),
                    ));
                }
                if rule.for_.is_some() || rule.keep_firing_for.is_some() {
                    problems.push(at(
                        record,
                        format!("{what}: invalid field 'for' in recording rule"),
                    ));
                }
                if !rule.annotations.is_empty() {
                    problems.push(at(
                        record,
                        format!("{what}: invalid field 'annotations' in recording rule"),
                    ));
                }
            }
            for label in rule.labels.keys().chain(rule.annotations.keys()) {
                if !valid_label_name(label) {
                    problems.push(at(label, format!("{what}: invalid label name {label:?}")));
                }
            }
            // Like promtool: every label and annotation template must parse.
            if rule.alert.is_some() {
                for (key, value) in rule.labels.iter().chain(&rule.annotations) {
                    if let Err(e) = crate::template::Template::parse(value) {
                        let first_line = value.lines().next().unwrap_or("");
                        problems.push(at(first_line, format!("{what}: {key}: {e}")));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(RulesError::Invalid(problems))
    }
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_file_parses() {
        let text = "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: up == 0\n    for: 5m\n  - record: job:up:sum\n    expr: sum by (job) (up)\n";
        let f = parse_rule_text(text, "r.yml").unwrap();
        assert_eq!(f.groups[0].rules.len(), 2);
    }

    #[test]
    fn bad_expression_has_position() {
        let text = "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: sum(up\n";
        let RulesError::Invalid(d) = parse_rule_text(text, "r.yml").unwrap_err() else {
            panic!()
        };
        assert_eq!((d[0].line, d[0].column), (5, 11), "{}", d[0]);
    }

    #[test]
    fn bad_template_is_an_error() {
        let text = "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: up\n    annotations:\n      summary: '{{ $value | nosuch }}'\n";
        let d = check_rule_text(text, "r.yml");
        assert!(
            d[0].message
                .contains("summary: template: function \"nosuch\" not defined"),
            "{}",
            d[0]
        );
        assert_eq!(d[0].line, 7);
    }

    #[test]
    fn builtin_rules_are_valid() {
        for (name, text) in crate::rules::BUILTIN_RULE_FILES {
            assert_eq!(check_rule_text(text, name), vec![], "{name}");
        }
    }

    #[test]
    fn unknown_field_is_an_error() {
        let text =
            "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: up\n    severity: page\n";
        let RulesError::Invalid(d) = parse_rule_text(text, "r.yml").unwrap_err() else {
            panic!()
        };
        assert!(
            d[0].message.contains("unknown field `severity`"),
            "{}",
            d[0]
        );
        assert_eq!(d[0].line, 6);
    }
}
