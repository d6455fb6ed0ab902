//! Reloading the configuration while serving: SIGHUP, `POST /-/reload` and
//! `infermon reload` all end in [`Reloader::reload`].
//!
//! A reload re-reads the config file and every rule and dashboard file it
//! names, and checks everything (config, rules, dashboards, scrape jobs,
//! receivers, remote_write destinations) before anything changes: a bad
//! file changes nothing, is logged with its `file:line:col` and reported in
//! `infermon_config_last_reload_successful` and the answer of `/-/reload`.
//! A good one is compared with the running one ([`ReloadDiff`], the same
//! comparison `infermon check --diff` prints) and only what changed is
//! applied: changed, added and removed models (config entry or folder
//! contents) load in the background and switch at once while the old ones
//! serve and drain — a model that fails to load fails the reload before
//! anything else changes; changed scrape jobs restart, rule groups keep the state of
//! unchanged rules, alerting swaps routing and receivers under its alerts,
//! remote_write restarts only changed destinations, dashboards and the
//! pages' config swap at once. Settings read only at
//! start are listed as requiring a restart (logged as a warning); the rest
//! is applied.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::alerting::{AlertManager, NowFn};
use crate::config::diff::{self, Changes, ConfigDiff};
use crate::config::{Config, ConfigError};
use crate::diag::Diagnostic;
use crate::remote::RemoteReloader;
use crate::rules::{ManagerOptions, RuleFile, RuleManager, RulesError};
use crate::scrape::ScrapeReloader;
use crate::web::pages::{Dashboard, Pages};
use crate::web::{Authenticator, BodyLimit, ReloadFailure, ReloadReport};

/// A config with everything it names, read and checked: what a reload
/// compares and applies.
#[derive(Clone, Debug)]
pub struct ConfigSet {
    /// The config file.
    pub config: Config,
    /// Its rule files (built-in ones included): (name, parsed file).
    pub rule_files: Vec<(String, RuleFile)>,
    /// Its dashboard files: (path, text), what a reload compares.
    pub dashboards: Vec<(String, String)>,
    /// The dashboards the pages serve (built-in ones first), parsed once
    /// when the set is read.
    pub boards: Arc<Vec<(String, Dashboard)>>,
}

impl ConfigSet {
    /// Reads and checks the config at `path` (the embedded default when
    /// `None`) and every rule and dashboard file it names, by the same code
    /// start-up uses. Returns the set and the config's warnings.
    pub fn load(path: Option<&Path>) -> Result<(Self, Vec<Diagnostic>), ReloadFailure> {
        let loaded = match path {
            Some(p) => Config::load_file(p),
            None => Config::load_default(),
        }
        .map_err(|e| match e {
            ConfigError::Invalid(d) => failure(d),
            other => ReloadFailure {
                message: other.to_string(),
                diagnostics: Vec::new(),
            },
        })?;
        let set = Self::from_config(loaded.config)?;
        Ok((set, loaded.warnings))
    }

    /// Reads the rule and dashboard files `config` names.
    pub fn from_config(config: Config) -> Result<Self, ReloadFailure> {
        let rule_files = crate::rules::load_rule_files(&config).map_err(|e| match e {
            RulesError::Invalid(d) => failure(d),
            other => ReloadFailure {
                message: other.to_string(),
                diagnostics: Vec::new(),
            },
        })?;
        let paths = config.dashboard_files();
        let boards = Pages::load_dashboards(&paths).map_err(|e| ReloadFailure {
            message: e.to_string(),
            diagnostics: Vec::new(),
        })?;
        let mut dashboards = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| ReloadFailure {
                message: format!("dashboard {}: {e}", p.display()),
                diagnostics: Vec::new(),
            })?;
            dashboards.push((p.display().to_string(), text));
        }
        Ok(ConfigSet {
            config,
            rule_files,
            dashboards,
            boards: Arc::new(boards),
        })
    }
}

/// The text of every dashboard file `config` names (unreadable ones are
/// left out: start-up has just loaded them).
pub fn dashboard_texts(config: &Config) -> Vec<(String, String)> {
    config
        .dashboard_files()
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.display().to_string(), text))
        })
        .collect()
}

fn failure(diagnostics: Vec<Diagnostic>) -> ReloadFailure {
    ReloadFailure {
        message: diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        diagnostics,
    }
}

/// What a reload from one [`ConfigSet`] to another changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadDiff {
    /// The config file's sections.
    pub config: ConfigDiff,
    /// Rule groups by `file:group`.
    pub rule_groups: Changes,
    /// Rules by `file:group/name`.
    pub rules: Changes,
    /// Dashboard files by path.
    pub dashboards: Changes,
}

impl ReloadDiff {
    /// Compares `old` with `new`.
    pub fn between(old: &ConfigSet, new: &ConfigSet) -> Self {
        let (rule_groups, rules) = crate::rules::diff_rule_files(&old.rule_files, &new.rule_files);
        ReloadDiff {
            config: diff::diff(&old.config, &new.config),
            rule_groups,
            rules,
            dashboards: Changes::by_name(&old.dashboards, &new.dashboards, |d| d.0.clone()),
        }
    }

    /// Nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == ReloadDiff::default()
    }

    /// The changes a running infermon applies, one line per part
    /// (`scrape jobs: +new ~changed -gone`).
    pub fn applied(&self) -> Vec<String> {
        let c = &self.config;
        let mut out = Vec::new();
        let mut list = |what: &str, ch: &Changes| {
            if !ch.is_empty() {
                out.push(format!("{what}: {}", ch.summary()));
            }
        };
        list("scrape jobs", &c.scrape_jobs);
        list("rule groups", &self.rule_groups);
        list("rules", &self.rules);
        list("receivers", &c.receivers);
        list("remote_write", &c.remote_write);
        list("dashboards", &self.dashboards);
        if c.scrape_globals {
            out.push("global scrape settings: every scrape job restarts".into());
        }
        if c.auth {
            out.push("server.auth: keys and users".into());
        }
        if c.limits {
            out.push("server.limits".into());
        }
        if c.routes {
            out.push("alerting.route".into());
        }
        if c.inhibit_rules {
            out.push("alerting.inhibit_rules".into());
        }
        if c.alerting_other {
            out.push("alerting settings".into());
        }
        out
    }

    /// Changed settings a running infermon leaves as they are until the
    /// next restart.
    pub fn restart_required(&self) -> Vec<String> {
        self.config.restart_required.clone()
    }
}

/// The report of `infermon check --diff`: every part, then what needs a restart.
impl fmt::Display for ReloadDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        let c = &self.config;
        let sections: [(&str, &Changes); 7] = [
            ("scrape jobs", &c.scrape_jobs),
            ("rule groups", &self.rule_groups),
            ("rules", &self.rules),
            ("receivers", &c.receivers),
            ("remote_write", &c.remote_write),
            ("models", &c.models),
            ("dashboards", &self.dashboards),
        ];
        for (name, ch) in sections {
            if !ch.is_empty() {
                writeln!(f, "{name}:")?;
                ch.write_lines(f)?;
            }
        }
        if c.scrape_globals {
            writeln!(
                f,
                "global scrape settings: changed (every scrape job restarts)"
            )?;
        }
        for (name, changed) in [
            ("server.auth keys and users", c.auth),
            ("server.limits", c.limits),
            ("alerting.route", c.routes),
            ("alerting.inhibit_rules", c.inhibit_rules),
            ("other alerting settings", c.alerting_other),
        ] {
            if changed {
                writeln!(f, "{name}: changed")?;
            }
        }
        let restart = self.restart_required();
        if !restart.is_empty() {
            writeln!(f, "requires a restart:")?;
            for r in restart {
                writeln!(f, "  {r}")?;
            }
        }
        Ok(())
    }
}

/// The parts a reload changes, and the configuration now in effect.
pub struct Reloader {
    path: Option<PathBuf>,
    current: tokio::sync::Mutex<ConfigSet>,
    scrape: ScrapeReloader,
    rules: Arc<RuleManager>,
    alerting: Arc<AlertManager>,
    alerting_now: NowFn,
    remote: RemoteReloader,
    auth: Option<Arc<Authenticator>>,
    pages: Arc<Pages>,
    config_yaml: Arc<ArcSwap<String>>,
    body_limit: BodyLimit,
    models: crate::inference::Inference,
    status: Arc<crate::web::ReloadStatus>,
}

/// What the composition root hands the [`Reloader`].
pub struct ReloadParts {
    /// What the process started with.
    pub current: ConfigSet,
    /// Scrape pools.
    pub scrape: ScrapeReloader,
    /// Rule groups.
    pub rules: Arc<RuleManager>,
    /// Routing and receivers.
    pub alerting: Arc<AlertManager>,
    /// The alert manager's clock.
    pub alerting_now: NowFn,
    /// remote_write queues.
    pub remote: RemoteReloader,
    /// API keys and users, when `server.auth` is on.
    pub auth: Option<Arc<Authenticator>>,
    /// The dashboards and the config the pages show.
    pub pages: Arc<Pages>,
    /// The config `/api/v1/status/config` shows.
    pub config_yaml: Arc<ArcSwap<String>>,
    /// `server.limits.max_body_bytes` as the server applies it.
    pub body_limit: BodyLimit,
    /// The served models (swapped by [`crate::inference::Inference::apply`]).
    pub models: crate::inference::Inference,
    /// The last load as `/api/v1/status/runtimeinfo` reports it.
    pub status: Arc<crate::web::ReloadStatus>,
}

impl Reloader {
    /// A reloader of the config file the process started from.
    pub fn new(parts: ReloadParts) -> Self {
        Reloader {
            path: parts.current.config.source.path.clone(),
            current: tokio::sync::Mutex::new(parts.current),
            scrape: parts.scrape,
            rules: parts.rules,
            alerting: parts.alerting,
            alerting_now: parts.alerting_now,
            remote: parts.remote,
            auth: parts.auth,
            pages: parts.pages,
            config_yaml: parts.config_yaml,
            body_limit: parts.body_limit,
            models: parts.models,
            status: parts.status,
        }
    }

    /// Runs one reload (reloads never overlap): reads and checks every
    /// file, then applies what changed. SIGHUP, `POST /-/reload` and
    /// `infermon reload` all come here.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadFailure> {
        let mut current = self.current.lock().await;
        // systemd shows "reloading" until READY=1 comes again, also after a
        // failed reload (the old configuration serves on).
        crate::util::systemd::notify_reloading();
        let result = self.reload_locked(&mut current).await;
        crate::util::systemd::notify_ready();
        match &result {
            Ok(report) => {
                self.status.record(true, crate::util::now_ms());
                let changes = if report.changes.is_empty() {
                    "nothing to apply".to_string()
                } else {
                    report.changes.join("; ")
                };
                tracing::info!(file = %current.config.source.name(), "configuration reloaded: {changes}");
                if !report.restart_required.is_empty() {
                    tracing::warn!(
                        "configuration reloaded, but these changes take effect only after a restart: {}",
                        report.restart_required.join("; ")
                    );
                }
            }
            Err(failure) => {
                self.status.record(false, crate::util::now_ms());
                tracing::error!(
                    "configuration not reloaded; the running one stays in effect:\n{}",
                    failure.message
                );
            }
        }
        result
    }

    async fn reload_locked(&self, current: &mut ConfigSet) -> Result<ReloadReport, ReloadFailure> {
        let path = self.path.clone();
        let (new, warnings) = tokio::task::spawn_blocking(move || ConfigSet::load(path.as_deref()))
            .await
            .map_err(|e| ReloadFailure {
                message: format!("reading the configuration failed: {e}"),
                diagnostics: Vec::new(),
            })??;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let diff = ReloadDiff::between(current, &new);
        // Everything is built and checked before anything changes.
        let file = new.config.source.name();
        let apply_error = |e: &dyn fmt::Display| ReloadFailure {
            message: format!("{file}: {e}"),
            diagnostics: Vec::new(),
        };
        let scrape = self
            .scrape
            .prepare(&new.config)
            .map_err(|e| apply_error(&e))?;
        let remote = self
            .remote
            .prepare(&new.config)
            .map_err(|e| apply_error(&e))?;
        let alerting = if diff.config.alerting_changed() {
            Some(
                AlertManager::prepare(&new.config, self.alerting_now.clone())
                    .map_err(|e| apply_error(&e))?,
            )
        } else {
            None
        };
        // Models first: changed and added ones load in the background while
        // the old ones serve, then the set switches at once. A model that
        // fails to load leaves every model and every other part as it was.
        // Folders are compared too, so a model folder replaced in place is
        // picked up even when its config entry did not change.
        let models = self
            .models
            .apply(&new.config.models, &new.config.source.base_dir())
            .await
            .map_err(|e| apply_error(&e))?;

        let scrape_changes = self.scrape.apply(scrape).await;
        let options = ManagerOptions::from_config(&new.config);
        let rules_changed =
            !diff.rule_groups.is_empty() || ManagerOptions::from_config(&current.config) != options;
        if rules_changed {
            let applied = self.rules.apply(new.rule_files.clone(), options).await;
            tracing::debug!(?applied, "rule groups reloaded");
        }
        if let Some(prepared) = alerting {
            self.alerting.apply(prepared);
        }
        if diff.config.auth
            && let (Some(auth), Some(config)) = (&self.auth, &new.config.server.auth)
        {
            auth.update(config);
        }
        // A destination's WAL position could not be registered: the queues
        // stay as they were, the other parts have changed; a later reload
        // tries the queues again (they compare with what runs).
        let remote_changes = match self.remote.apply(remote).await {
            Ok(c) => c,
            Err(e) => {
                *current = new;
                return Err(apply_error(&format!(
                    "remote_write was not reloaded ({e}); the other changes were applied"
                )));
            }
        };
        if !diff.dashboards.is_empty() {
            self.pages.dashboards.store(new.boards.clone());
        }
        self.body_limit.set(new.config.server.limits.max_body_bytes);
        self.pages.config.store(Arc::new(new.config.clone()));
        self.config_yaml.store(Arc::new(new.config.redacted_yaml()));
        let restart_required = diff.restart_required();
        let mut changes = diff.applied();
        if !models.is_empty() {
            changes.push(format!("models: {}", model_summary(&models)));
        }
        // What the parts saw (the self-scrape job, derived settings) can
        // differ from the file's own comparison; say so when it does.
        if scrape_changes != diff.config.scrape_jobs && !scrape_changes.is_empty() {
            changes.push(format!(
                "scrape pools restarted: {}",
                scrape_changes.summary()
            ));
        }
        if remote_changes != Changes::default()
            && remote_changes.summary() != diff.config.remote_write.summary()
        {
            changes.push(format!("remote_write queues: {}", remote_changes.summary()));
        }
        *current = new;
        Ok(ReloadReport {
            changes,
            restart_required,
        })
    }
}

/// The models a reload swapped, worded as [`Changes::summary`] words the
/// other parts (`+added ~replaced -removed`).
fn model_summary(m: &crate::inference::ModelChanges) -> String {
    Changes {
        added: m.added.clone(),
        removed: m.removed.clone(),
        changed: m.replaced.clone(),
    }
    .summary()
}

/// Reloads on every SIGHUP until `shutdown`. The handler is installed
/// before this returns, so a SIGHUP after start-up never kills the process.
pub fn on_sighup(
    reloader: Arc<Reloader>,
    shutdown: crate::shutdown::Shutdown,
) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.wait() => break,
                    got = hup.recv() => {
                        if got.is_none() {
                            break;
                        }
                        tracing::info!("SIGHUP received; reloading the configuration");
                        let _ = reloader.reload().await;
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (reloader, shutdown);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(dir: &Path, config: &str, rules: &str) -> ConfigSet {
        std::fs::write(dir.join("rules.yml"), rules).unwrap();
        let path = dir.join("infermon.yml");
        std::fs::write(&path, config).unwrap();
        ConfigSet::load(Some(&path)).unwrap().0
    }

    #[test]
    fn a_diff_lists_jobs_rules_and_settings_needing_a_restart() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let base = "alerting: {builtin_rules: false}\nrule_files: [rules.yml]\n";
        let old = set(
            a.path(),
            &format!(
                "{base}scrape_configs:\n- job_name: node\n  static_configs: [{{targets: ['h:1']}}]\n"
            ),
            "groups:\n- name: g\n  rules:\n  - alert: Kept\n    expr: up == 0\n  - alert: Edited\n    expr: up == 0\n",
        );
        let new = set(
            b.path(),
            &format!(
                "{base}storage: {{path: elsewhere}}\nscrape_configs:\n- job_name: node\n  static_configs: [{{targets: ['h:1']}}]\n- job_name: gpu\n  static_configs: [{{targets: ['h:2']}}]\n"
            ),
            "groups:\n- name: g\n  rules:\n  - alert: Kept\n    expr: up == 0\n  - alert: Edited\n    expr: up == 1\n",
        );
        let d = ReloadDiff::between(&old, &new);
        assert_eq!(d.config.scrape_jobs.added, ["gpu"]);
        // Rule files are named by path: different directories, different groups.
        assert_eq!(d.rule_groups.added.len(), 1);
        assert_eq!(d.rule_groups.removed.len(), 1);
        assert_eq!(d.config.restart_required, ["storage"]);
        let text = d.to_string();
        assert!(text.contains("scrape jobs:\n  + gpu\n"), "{text}");
        assert!(text.contains("requires a restart:\n  storage\n"), "{text}");
        assert_eq!(ReloadDiff::between(&new, &new).to_string(), "no changes\n");
    }

    #[test]
    fn a_rule_edit_in_place_is_one_changed_rule() {
        let dir = tempfile::tempdir().unwrap();
        let config = "alerting: {builtin_rules: false}\nrule_files: [rules.yml]\n";
        let old = set(
            dir.path(),
            config,
            "groups:\n- name: g\n  rules:\n  - alert: Kept\n    expr: up == 0\n  - alert: Edited\n    expr: up == 0\n",
        );
        let new = set(
            dir.path(),
            config,
            "groups:\n- name: g\n  rules:\n  - alert: Kept\n    expr: up == 0\n  - alert: Edited\n    expr: up == 1\n",
        );
        let d = ReloadDiff::between(&old, &new);
        assert_eq!(d.rule_groups.changed.len(), 1);
        assert_eq!(d.rules.changed.len(), 1);
        assert!(d.rules.changed[0].ends_with(":g/Edited"), "{:?}", d.rules);
        assert_eq!(d.applied().len(), 2, "{:?}", d.applied());
        assert!(d.restart_required().is_empty());
    }

    #[test]
    fn a_bad_rule_file_is_reported_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.yml"),
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(up\n",
        )
        .unwrap();
        let path = dir.path().join("infermon.yml");
        std::fs::write(&path, "rule_files: [rules.yml]\n").unwrap();
        let err = ConfigSet::load(Some(&path)).unwrap_err();
        assert_eq!(err.diagnostics.len(), 1);
        assert_eq!(err.diagnostics[0].line, 5);
        assert!(err.message.contains("rules.yml:5:"), "{}", err.message);
    }
}
