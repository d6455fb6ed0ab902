//! The rule manager: loads the built-in rules and the config's `rule_files`,
//! builds the groups, restores alert state saved before a restart, and runs
//! every group until shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::alerting_rule::{ActiveAlert, AlertingRule, EvalContext};
use super::group::{Clock, Group, GroupDeps, Rule};
use super::recording::RecordingRule;
use super::{AlertSink, QueryFn, RuleFile, RulesError, parse_rule_text, resolve_rule_files};
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::shutdown::Shutdown;
use crate::storage::{Appender, StateStore};

/// The built-in rule files (`config/rules/*.yml`), embedded: (name, text).
pub const BUILTIN_RULE_FILES: &[(&str, &str)] = &[
    (
        "<builtin>/rules/inference.yml",
        include_str!("../../config/rules/inference.yml"),
    ),
    (
        "<builtin>/rules/gpu.yml",
        include_str!("../../config/rules/gpu.yml"),
    ),
    (
        "<builtin>/rules/host.yml",
        include_str!("../../config/rules/host.yml"),
    ),
    (
        "<builtin>/rules/self.yml",
        include_str!("../../config/rules/self.yml"),
    ),
];

/// Saved state older than this is not restored: after a long outage the
/// condition must prove itself again (Prometheus' `for-outage-tolerance`, 1h).
const OUTAGE_TOLERANCE_MS: i64 = 3600 * 1000;

/// Loads the built-in rules (unless `alerting.builtin_rules: false`) and
/// every file matched by `rule_files`: (file name, parsed file). Each file is
/// checked like `promtool check rules`; the error lists every problem of every
/// file. `infermon check` and start-up both load rules through here.
pub fn load_rule_files(config: &Config) -> Result<Vec<(String, RuleFile)>, RulesError> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let mut entry_problems = Vec::new();
    let mut add = |name: String, parsed: Result<RuleFile, RulesError>| match parsed {
        Ok(file) => files.push((name, file)),
        Err(RulesError::Invalid(d)) => problems.extend(d),
        Err(e) => problems.push(Diagnostic {
            file: name,
            line: 1,
            column: 1,
            message: e.to_string(),
        }),
    };
    if config.alerting.builtin_rules_enabled() {
        for (name, text) in BUILTIN_RULE_FILES {
            add(name.to_string(), parse_rule_text(text, name));
        }
    }
    let base = config.source.base_dir();
    for pattern in &config.rule_files {
        match resolve_rule_files(&base, pattern) {
            Ok(paths) => {
                for path in paths {
                    add(path.display().to_string(), super::parse_rule_file(&path));
                }
            }
            // A bad entry is a problem of the config file, at the entry.
            Err(e) => {
                let (line, column) = crate::diag::locate(&config.source.text, pattern);
                entry_problems.push(Diagnostic {
                    file: config.source.name(),
                    line,
                    column,
                    message: format!("rule_files: {e}"),
                });
            }
        }
    }
    // The config file's own problems first, then those inside rule files.
    entry_problems.extend(problems);
    if entry_problems.is_empty() {
        Ok(files)
    } else {
        Err(RulesError::Invalid(entry_problems))
    }
}

/// Settings of the manager.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// Interval of groups without one (`global.evaluation_interval`).
    pub default_interval: Duration,
    /// Query offset of groups without one (`global.rule_query_offset`).
    pub default_query_offset: Duration,
    /// `global.external_labels`.
    pub external_labels: BTreeMap<String, String>,
    /// URL infermon is reached at.
    pub external_url: String,
    /// How often firing alerts are re-sent (Prometheus' 1m).
    pub resend_delay: Duration,
}

impl ManagerOptions {
    /// Options from the config.
    pub fn from_config(config: &Config) -> Self {
        ManagerOptions {
            default_interval: config.global.evaluation_interval.as_duration(),
            default_query_offset: config.global.rule_query_offset.as_duration(),
            external_labels: config.global.external_labels.clone(),
            external_url: config
                .alerting
                .external_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.server.listen)),
            resend_delay: Duration::from_secs(60),
        }
    }
}

/// Runs the rule groups.
pub struct RuleManager {
    groups: Vec<Arc<Group>>,
    deps: GroupDeps,
    clock: Clock,
}

impl RuleManager {
    /// Builds the groups of `files` and restores saved alert state from `store`.
    pub async fn new(
        files: Vec<(String, RuleFile)>,
        options: ManagerOptions,
        query: QueryFn,
        appender: Arc<dyn Appender>,
        sink: Arc<dyn AlertSink>,
        store: Option<Arc<StateStore>>,
        clock: Clock,
    ) -> Self {
        let mut groups = Vec::new();
        for (file, rf) in files {
            for g in rf.groups {
                let rules = g
                    .rules
                    .iter()
                    .map(|spec| {
                        let mut labels = g.labels.clone();
                        labels.extend(spec.labels.clone());
                        match (&spec.alert, &spec.record) {
                            (Some(alert), _) => Rule::Alerting(AlertingRule::new(
                                alert,
                                &spec.expr,
                                spec.for_.map(|d| d.as_millis()).unwrap_or(0),
                                spec.keep_firing_for.map(|d| d.as_millis()).unwrap_or(0),
                                labels,
                                spec.annotations.clone(),
                            )),
                            (None, record) => Rule::Recording(RecordingRule::new(
                                record.as_deref().unwrap_or_default(),
                                &spec.expr,
                                labels,
                            )),
                        }
                    })
                    .collect();
                groups.push(Arc::new(Group::new(
                    &g.name,
                    &file,
                    g.interval
                        .map(|d| d.as_duration())
                        .unwrap_or(options.default_interval),
                    g.query_offset
                        .map(|d| d.as_duration())
                        .unwrap_or(options.default_query_offset),
                    g.limit,
                    rules,
                )));
            }
        }
        let deps = GroupDeps {
            query,
            appender,
            sink,
            store: store.clone(),
            context: EvalContext {
                external_labels: options.external_labels.clone(),
                external_url: options.external_url.clone(),
                limit: 0,
            },
            resend_delay: options.resend_delay,
        };
        let manager = RuleManager {
            groups,
            deps,
            clock,
        };
        if let Some(store) = store {
            manager.restore(&store).await;
        }
        manager
    }

    async fn restore(&self, store: &StateStore) {
        let saved = match store.load_rule_states() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read saved alert state; alerts start fresh");
                return;
            }
        };
        let now = self.clock.now_ms();
        let mut by_key = BTreeMap::new();
        for (key, json, saved_ms) in saved {
            if now - saved_ms > OUTAGE_TOLERANCE_MS {
                continue;
            }
            match serde_json::from_str::<Vec<ActiveAlert>>(&json) {
                Ok(alerts) if !alerts.is_empty() => {
                    by_key.insert(key, alerts);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring unreadable saved alert state"),
            }
        }
        let restored: usize = by_key.values().map(Vec::len).sum();
        for g in &self.groups {
            g.restore(&by_key).await;
        }
        if restored > 0 {
            tracing::info!(
                alerts = restored,
                "restored pending and firing alerts saved before the restart"
            );
        }
    }

    /// The groups, in file order.
    pub fn groups(&self) -> &[Arc<Group>] {
        &self.groups
    }

    /// Evaluates every group once now (tests and `/-/reload`-style triggers).
    pub async fn eval_all(&self) {
        let now = self.clock.now_ms();
        for g in &self.groups {
            g.eval(now, &self.deps).await;
        }
    }

    /// Runs every group until `shutdown`; returns when all stopped.
    pub async fn run(&self, shutdown: Shutdown) {
        let mut tasks = tokio::task::JoinSet::new();
        for g in &self.groups {
            tasks.spawn(
                g.clone()
                    .run(self.deps.clone(), self.clock.clone(), shutdown.clone()),
            );
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!("rule manager stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config names rule files but does not read them: loading it
    /// succeeds, and the one rule loader reports every problem of every
    /// entry, the config's own first (at the entry), then those inside files.
    #[test]
    fn config_loads_without_reading_rule_files_and_the_loader_reports_them_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.yml"),
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(up\n",
        )
        .unwrap();
        let path = dir.path().join("infermon.yml");
        let text = "rule_files:\n  - missing.yml\n  - bad.yml\n";
        std::fs::write(&path, text).unwrap();
        let loaded = Config::load_file(&path).expect("rule files are not the config's to read");
        let Err(RulesError::Invalid(problems)) = load_rule_files(&loaded.config) else {
            panic!("both entries are broken")
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].file, path.display().to_string());
        assert_eq!((problems[0].line, problems[0].column), (2, 5));
        assert!(problems[0].message.starts_with("rule_files: rule file"));
        assert!(problems[1].file.ends_with("bad.yml"));
        assert_eq!(problems[1].line, 5);
        assert!(problems[1].message.contains("could not parse expression"));
    }
}
