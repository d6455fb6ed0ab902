//! The rule manager: loads the built-in rules and the config's `rule_files`,
//! builds the groups, restores alert state saved before a restart, and runs
//! every group until shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::alerting_rule::{ActiveAlert, AlertingRule, EvalContext};
use super::file::{RuleGroup, RuleSpec};
use super::group::{Clock, Group, GroupDeps, Rule};
use super::recording::RecordingRule;
use super::{AlertSink, QueryFn, RuleFile, RulesError, parse_rule_text, resolve_rule_files};
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::model::{Labels, Sample, stale_nan};
use crate::shutdown::Shutdown;
use crate::storage::{AppendSample, Appender, StateStore};

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
#[derive(Clone, Debug, PartialEq)]
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

/// Runs the rule groups. A reload ([`apply`](Self::apply)) swaps in new
/// groups while they run: an unchanged group keeps running untouched; a
/// changed one is stopped and replaced by its successor, which takes over
/// the alerts (and `for` timers) of every rule whose definition stayed the
/// same, as Prometheus copies state from the old group to the new by rule
/// identity.
pub struct RuleManager {
    groups: ArcSwap<Vec<Arc<Group>>>,
    deps: ArcSwap<GroupDeps>,
    options: ArcSwap<ManagerOptions>,
    clock: Clock,
    running: tokio::sync::Mutex<Running>,
}

/// The group tasks, once [`RuleManager::run`] started them.
#[derive(Default)]
struct Running {
    /// The manager's stop signal; `None` until `run`.
    shutdown: Option<Shutdown>,
    /// One task per group, with its own stop signal.
    tasks: Vec<GroupTask>,
}

struct GroupTask {
    group: Arc<Group>,
    stop: Shutdown,
    handle: tokio::task::JoinHandle<()>,
}

/// What a reload changed in the rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesApplied {
    /// Groups left running untouched.
    pub kept: usize,
    /// Groups started (new or changed).
    pub started: usize,
    /// Groups stopped without a successor.
    pub stopped: usize,
    /// Alerting rules whose alerts carried over into a changed group.
    pub carried_rules: usize,
}

/// Builds the groups of `files`.
fn build_groups(files: Vec<(String, RuleFile)>, options: &ManagerOptions) -> Vec<Arc<Group>> {
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
    groups
}

fn deps_for(
    options: &ManagerOptions,
    query: QueryFn,
    appender: Arc<dyn Appender>,
    sink: Arc<dyn AlertSink>,
    store: Option<Arc<StateStore>>,
) -> GroupDeps {
    GroupDeps {
        query,
        appender,
        sink,
        store,
        context: EvalContext {
            external_labels: options.external_labels.clone(),
            external_url: options.external_url.clone(),
            limit: 0,
        },
        resend_delay: options.resend_delay,
    }
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
        let groups = build_groups(files, &options);
        let deps = deps_for(&options, query, appender, sink, store.clone());
        let manager = RuleManager {
            groups: ArcSwap::from_pointee(groups),
            deps: ArcSwap::from_pointee(deps),
            options: ArcSwap::from_pointee(options),
            clock,
            running: tokio::sync::Mutex::default(),
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
        for g in self.groups.load().iter() {
            g.restore(&by_key).await;
        }
        if restored > 0 {
            tracing::info!(
                alerts = restored,
                "restored pending and firing alerts saved before the restart"
            );
        }
    }

    /// The groups, in file order (a reload swaps the whole list at once).
    pub fn groups(&self) -> Arc<Vec<Arc<Group>>> {
        self.groups.load_full()
    }

    /// Evaluates every group once now (tests and `/-/reload`-style triggers).
    pub async fn eval_all(&self) {
        let now = self.clock.now_ms();
        let deps = self.deps.load_full();
        for g in self.groups.load().iter() {
            g.eval(now, &deps).await;
        }
    }

    fn spawn(&self, group: Arc<Group>, shutdown: &Shutdown) -> GroupTask {
        let stop = shutdown.child();
        let handle = tokio::spawn(group.clone().run(
            (**self.deps.load()).clone(),
            self.clock.clone(),
            stop.clone(),
        ));
        GroupTask {
            group,
            stop,
            handle,
        }
    }

    /// Runs every group until `shutdown`; returns when all stopped.
    pub async fn run(&self, shutdown: Shutdown) {
        {
            let mut running = self.running.lock().await;
            running.shutdown = Some(shutdown.clone());
            let groups = self.groups.load_full();
            running.tasks = groups
                .iter()
                .map(|g| self.spawn(g.clone(), &shutdown))
                .collect();
        }
        shutdown.wait().await;
        let tasks = std::mem::take(&mut self.running.lock().await.tasks);
        for t in tasks {
            let _ = t.handle.await;
        }
        tracing::info!("rule manager stopped");
    }

    /// Replaces the rules with those of `files` (already checked by
    /// [`load_rule_files`]) and `options`: unchanged groups keep running,
    /// changed ones restart with the state of their unchanged rules, removed
    /// ones stop and mark their recorded series stale.
    pub async fn apply(
        &self,
        files: Vec<(String, RuleFile)>,
        options: ManagerOptions,
    ) -> RulesApplied {
        let mut running = self.running.lock().await;
        let same_options = **self.options.load() == options;
        let new_groups = build_groups(files, &options);
        let old_groups = self.groups.load_full();
        let old_deps = self.deps.load_full();
        let find_old = |g: &Group| {
            old_groups
                .iter()
                .find(|o| o.file == g.file && o.name == g.name)
                .cloned()
        };
        let mut applied = RulesApplied::default();
        // Each new group: the old one itself when nothing changed, else the
        // new one with its predecessor (if any) to take state from.
        let mut next = Vec::new();
        let mut successors = Vec::new();
        for g in new_groups {
            match find_old(&g) {
                Some(old) if same_options && old.same_definition(&g).await => {
                    applied.kept += 1;
                    next.push(old);
                }
                old => {
                    applied.started += 1;
                    successors.push((g.clone(), old));
                    next.push(g);
                }
            }
        }
        // Kept groups by address (usize, so the future stays Send).
        let kept: Vec<usize> = next.iter().map(|g| Arc::as_ptr(g) as usize).collect();
        // Stop every old group not kept before its state is taken, so no
        // evaluation runs meanwhile.
        let (stay, stop): (Vec<GroupTask>, Vec<GroupTask>) = std::mem::take(&mut running.tasks)
            .into_iter()
            .partition(|t| kept.contains(&(Arc::as_ptr(&t.group) as usize)));
        for t in &stop {
            t.stop.trigger();
        }
        for t in stop {
            let _ = t.handle.await;
        }
        for (g, old) in &successors {
            if let Some(old) = old {
                let (carried, gone) = g.take_state_from(old).await;
                applied.carried_rules += carried;
                mark_stale(&gone, g.query_offset, &self.clock, &old_deps);
            }
        }
        for old in old_groups.iter() {
            let replaced = next
                .iter()
                .any(|g| g.file == old.file && g.name == old.name);
            if !replaced {
                applied.stopped += 1;
                let gone = old.written_series().await;
                mark_stale(&gone, old.query_offset, &self.clock, &old_deps);
            }
        }
        if !same_options {
            let d = &old_deps;
            let deps = deps_for(
                &options,
                d.query.clone(),
                d.appender.clone(),
                d.sink.clone(),
                d.store.clone(),
            );
            self.deps.store(Arc::new(deps));
            self.options.store(Arc::new(options));
        }
        self.groups.store(Arc::new(next));
        running.tasks = stay;
        if let Some(shutdown) = running.shutdown.clone()
            && !shutdown.is_triggered()
        {
            for (g, _) in successors {
                let task = self.spawn(g, &shutdown);
                running.tasks.push(task);
            }
        }
        applied
    }
}

/// Writes staleness markers for series a stopped rule recorded, so queries
/// stop seeing them at once (as Prometheus does for removed groups).
fn mark_stale(series: &[Labels], offset: Duration, clock: &Clock, deps: &GroupDeps) {
    if series.is_empty() {
        return;
    }
    let ts = clock.now_ms() - offset.as_millis() as i64;
    let batch: Vec<AppendSample> = series
        .iter()
        .map(|labels| AppendSample {
            labels: labels.clone(),
            sample: Sample {
                timestamp_ms: ts,
                value: stale_nan(),
            },
        })
        .collect();
    if let Err(e) = deps.appender.append(&batch) {
        tracing::warn!(error = %e, "cannot mark the series of removed rules stale");
    }
}

/// What differs between two sets of rule files: groups by `file:group`,
/// rules by `file:group/name` (a repeated name gets `#2`, `#3`…).
pub fn diff_rule_files(
    old: &[(String, RuleFile)],
    new: &[(String, RuleFile)],
) -> (crate::config::diff::Changes, crate::config::diff::Changes) {
    use crate::config::diff::Changes;
    let groups = |files: &[(String, RuleFile)]| -> Vec<(String, RuleGroup)> {
        files
            .iter()
            .flat_map(|(f, rf)| {
                rf.groups
                    .iter()
                    .map(move |g| (format!("{f}:{}", g.name), g.clone()))
            })
            .collect()
    };
    // A rule's identity includes the labels its group gives it; the group's
    // interval is not the rule's (its state carries over a new interval).
    type RuleId = (String, RuleSpec, BTreeMap<String, String>);
    let rules = |files: &[(String, RuleFile)]| -> Vec<RuleId> {
        let mut out = Vec::new();
        for (key, g) in groups(files) {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for r in &g.rules {
                let name = r.alert.clone().or(r.record.clone()).unwrap_or_default();
                let n = seen.entry(name.clone()).or_default();
                *n += 1;
                let id = if *n > 1 {
                    format!("{key}/{name}#{n}")
                } else {
                    format!("{key}/{name}")
                };
                out.push((id, r.clone(), g.labels.clone()));
            }
        }
        out
    };
    let (og, ng) = (groups(old), groups(new));
    let (or, nr) = (rules(old), rules(new));
    (
        Changes::by_name(&og, &ng, |x| x.0.clone()),
        Changes::by_name(&or, &nr, |x| x.0.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{AlertState, InstantSample};

    const BEFORE: &str = "groups:\n- name: g\n  interval: 1s\n  rules:\n  - alert: Kept\n    expr: up\n    for: 10m\n  - alert: Edited\n    expr: up\n    for: 10m\n  - record: rec\n    expr: up\n- name: gone\n  rules:\n  - record: gone_rec\n    expr: up\n";
    const AFTER: &str = "groups:\n- name: g\n  interval: 1s\n  rules:\n  - alert: Kept\n    expr: up\n    for: 10m\n  - alert: Edited\n    expr: up > 0\n    for: 10m\n  - record: rec\n    expr: up\n";

    fn files(text: &str) -> Vec<(String, RuleFile)> {
        vec![("r.yml".into(), parse_rule_text(text, "r.yml").unwrap())]
    }

    fn options() -> ManagerOptions {
        ManagerOptions {
            default_interval: Duration::from_secs(60),
            default_query_offset: Duration::ZERO,
            external_labels: BTreeMap::new(),
            external_url: "http://x".into(),
            resend_delay: Duration::from_secs(60),
        }
    }

    async fn state_of(m: &RuleManager, name: &str) -> Option<(AlertState, i64)> {
        for g in m.groups().iter() {
            let st = g.state.lock().await;
            for r in &st.rules {
                if let Rule::Alerting(a) = r
                    && a.name == name
                {
                    return a.alerts().first().map(|x| (x.state, x.active_at_ms));
                }
            }
        }
        None
    }

    /// A reload keeps unchanged groups running as they are, carries the
    /// pending alert (and its `for` timer) of an unchanged rule into the
    /// changed group, starts the changed rule afresh, and marks the series
    /// of the removed group stale.
    #[tokio::test(start_paused = true)]
    async fn a_reload_carries_the_state_of_unchanged_rules() {
        let storage = Arc::new(crate::storage::MemoryStorage::new());
        let query: QueryFn = Arc::new(|_, _| {
            Box::pin(async {
                Ok(vec![InstantSample {
                    labels: Labels::new([("__name__", "up")]),
                    value: 1.0,
                }])
            })
        });
        let clock = Clock::starting_at(1_000_000);
        let m = Arc::new(
            RuleManager::new(
                files(BEFORE),
                options(),
                query,
                storage.clone(),
                Arc::new(|_: Vec<crate::rules::OutgoingAlert>| {}),
                None,
                clock.clone(),
            )
            .await,
        );
        let shutdown = Shutdown::new();
        let run = tokio::spawn({
            let (m, s) = (m.clone(), shutdown.clone());
            async move { m.run(s).await }
        });
        m.eval_all().await;
        let kept = state_of(&m, "Kept").await.unwrap();
        assert_eq!(kept.0, AlertState::Pending);
        tokio::time::advance(Duration::from_secs(5)).await;

        let applied = m.apply(files(AFTER), options()).await;
        assert_eq!(
            applied,
            RulesApplied {
                kept: 0,
                started: 1,
                stopped: 1,
                carried_rules: 1,
            }
        );
        m.eval_all().await;
        assert_eq!(
            state_of(&m, "Kept").await,
            Some(kept),
            "same alert, same timer"
        );
        let edited = state_of(&m, "Edited").await.unwrap();
        assert_eq!(edited.0, AlertState::Pending);
        assert!(edited.1 > kept.1, "the changed rule started afresh");
        // The removed group's recorded series got a staleness marker.
        use crate::storage::Querier;
        let gone =
            storage
                .select(
                    &[crate::model::Matcher::new(
                        "__name__",
                        crate::model::MatchOp::Equal,
                        "gone_rec",
                    )
                    .unwrap()],
                    i64::MIN,
                    i64::MAX,
                )
                .unwrap();
        assert!(crate::model::is_stale_nan(
            gone[0].samples.last().unwrap().value
        ));
        // The same rules again: the group keeps running untouched.
        let again = m.apply(files(AFTER), options()).await;
        assert_eq!(again.kept, 1);
        assert_eq!(again.started, 0);
        shutdown.trigger();
        run.await.unwrap();
    }

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
