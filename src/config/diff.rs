//! What a reload from one config to another would change, section by
//! section: the one place both `infermon check --diff` and the reload path
//! compute it, so the log line of a reload lists what the check showed.
//!
//! Lists of named things (scrape jobs, receivers, remote_write destinations,
//! models) are compared by name: added, removed, or changed when any field
//! differs (secrets included — they are compared, never shown). Settings
//! the running process cannot change are listed by their dotted key in
//! [`ConfigDiff::restart_required`].

use std::fmt;

use super::{Config, GlobalConfig, ModelConfig, PromDuration, RemoteWriteConfig};

/// Names added, removed and changed in one list of named things.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// In the new list only.
    pub added: Vec<String>,
    /// In the old list only.
    pub removed: Vec<String>,
    /// In both, with different settings.
    pub changed: Vec<String>,
}

impl Changes {
    /// Compares `old` and `new` by `name`; the first entry of a name counts.
    pub fn by_name<T: PartialEq>(old: &[T], new: &[T], name: impl Fn(&T) -> String) -> Self {
        let find = |list: &[T], n: &str| list.iter().find(|x| name(x) == n).map(|_| ());
        let mut c = Changes::default();
        for n in new.iter().map(&name) {
            let (Some(a), Some(b)) = (
                old.iter().find(|x| name(x) == n),
                new.iter().find(|x| name(x) == n),
            ) else {
                if !c.added.contains(&n) {
                    c.added.push(n);
                }
                continue;
            };
            if a != b && !c.changed.contains(&n) {
                c.changed.push(n);
            }
        }
        for n in old.iter().map(&name) {
            if find(new, &n).is_none() && !c.removed.contains(&n) {
                c.removed.push(n);
            }
        }
        c
    }

    /// Nothing added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Names added or changed (what has to be (re)started).
    pub fn started(&self) -> impl Iterator<Item = &String> {
        self.added.iter().chain(&self.changed)
    }

    /// `+a ~b -c`, the compact form of log lines.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        parts.extend(self.added.iter().map(|n| format!("+{n}")));
        parts.extend(self.changed.iter().map(|n| format!("~{n}")));
        parts.extend(self.removed.iter().map(|n| format!("-{n}")));
        parts.join(" ")
    }

    /// One line per name: `  + name`, `  ~ name`, `  - name`.
    pub fn write_lines(&self, out: &mut impl fmt::Write) -> fmt::Result {
        for (mark, names) in [
            ("+", &self.added),
            ("~", &self.changed),
            ("-", &self.removed),
        ] {
            for n in names {
                writeln!(out, "  {mark} {n}")?;
            }
        }
        Ok(())
    }
}

/// What differs between two configs, before rule and dashboard files are read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// `scrape_configs` by `job_name`.
    pub scrape_jobs: Changes,
    /// `global` scrape settings changed (every job restarts).
    pub scrape_globals: bool,
    /// `alerting.receivers` by name.
    pub receivers: Changes,
    /// `alerting.route` changed.
    pub routes: bool,
    /// `alerting.inhibit_rules` changed.
    pub inhibit_rules: bool,
    /// Other alerting settings changed (alertmanagers, relabelling, language,
    /// external URL, retry and history durations).
    pub alerting_other: bool,
    /// `remote_write` by name (see [`remote_write_name`]).
    pub remote_write: Changes,
    /// `models` by name.
    pub models: Changes,
    /// API keys, users, roles or `protect_metrics` changed (applied while
    /// running; turning auth on or off needs a restart instead).
    pub auth: bool,
    /// `server.limits` changed (applied to requests from then on).
    pub limits: bool,
    /// Settings read only at start: their dotted keys.
    pub restart_required: Vec<String>,
}

impl ConfigDiff {
    /// Whether the alerting part gets new receivers, routes or settings.
    pub fn alerting_changed(&self) -> bool {
        !self.receivers.is_empty() || self.routes || self.inhibit_rules || self.alerting_other
    }
}

/// A model's name: `name`, or its directory's last component (as the model
/// server names it).
pub fn model_name(m: &ModelConfig) -> String {
    m.name.clone().unwrap_or_else(|| {
        std::path::Path::new(&m.path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| m.path.clone())
    })
}

/// A remote_write destination's name: `name`, or the redacted URL (the
/// remote part names unnamed queues by a hash of the URL; the URL is what
/// a person recognises).
pub fn remote_write_name(r: &RemoteWriteConfig) -> String {
    match &r.name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => r.url.redacted(),
    }
}

/// What a reload from `old` to `new` changes in the config file itself.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let g = (&old.global, &new.global);
    let a = (&old.alerting, &new.alerting);
    let mut restart = Vec::new();
    let mut check = |key: &str, changed: bool| {
        if changed {
            restart.push(key.to_string());
        }
    };
    let (s, t) = (&old.server, &new.server);
    check("server.listen", s.listen != t.listen);
    check(
        "server.allow_unauthenticated",
        s.allow_unauthenticated != t.allow_unauthenticated,
    );
    let auth_shape = |s: &super::ServerConfig| {
        s.auth.as_ref().map(|a| {
            (
                !a.basic_auth_users.is_empty(),
                a.max_concurrent_password_checks,
            )
        })
    };
    let auth_reshaped = auth_shape(s) != auth_shape(t);
    check(
        "server.auth (turned on or off, users where there were none or the reverse, max_concurrent_password_checks)",
        auth_reshaped,
    );
    check(
        "server.shutdown_timeout",
        s.shutdown_timeout != t.shutdown_timeout,
    );
    check("server.allowed_hosts", s.allowed_hosts != t.allowed_hosts);
    check(
        "server.allowed_origins",
        s.allowed_origins != t.allowed_origins,
    );
    check("server.cookie_secure", s.cookie_secure != t.cookie_secure);
    check("storage", old.storage != new.storage);
    check("query", old.query != new.query);
    check(
        "remote_write_receiver",
        old.remote_write_receiver != new.remote_write_receiver,
    );
    check("snapshots", old.snapshots != new.snapshots);
    check("collectors", old.collectors != new.collectors);
    ConfigDiff {
        scrape_jobs: Changes::by_name(&old.scrape_configs, &new.scrape_configs, |j| {
            j.job_name.clone()
        }),
        scrape_globals: scrape_globals(g.0) != scrape_globals(g.1),
        receivers: Changes::by_name(&a.0.receivers, &a.1.receivers, |r| r.name.clone()),
        routes: a.0.route != a.1.route,
        inhibit_rules: a.0.inhibit_rules != a.1.inhibit_rules,
        alerting_other: a.0.alertmanagers != a.1.alertmanagers
            || a.0.alert_relabel_configs != a.1.alert_relabel_configs
            || a.0.language != a.1.language
            || a.0.external_url != a.1.external_url
            || a.0.max_retry_duration != a.1.max_retry_duration
            || a.0.history_retention != a.1.history_retention,
        remote_write: Changes::by_name(&old.remote_write, &new.remote_write, remote_write_name),
        models: Changes::by_name(&old.models, &new.models, model_name),
        auth: s.auth != t.auth && !auth_reshaped,
        limits: s.limits != t.limits,
        restart_required: restart,
    }
}

/// The part of `global` scrape jobs read (intervals, timeouts, limits):
/// `global` without the rule and alert settings. When it differs, every
/// scrape job restarts.
pub fn scrape_globals(g: &GlobalConfig) -> GlobalConfig {
    let mut g = g.clone();
    g.evaluation_interval = PromDuration::default();
    g.rule_query_offset = PromDuration::default();
    g.external_labels.clear();
    g.query_log_file = None;
    g.scrape_protocols = None;
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Config {
        Config::load_str(yaml, None).expect("valid").config
    }

    #[test]
    fn named_lists_compare_by_name_and_content() {
        let c = Changes::by_name(
            &[("a", 1), ("b", 1), ("c", 1)],
            &[("b", 2), ("c", 1), ("d", 1)],
            |x| x.0.to_string(),
        );
        assert_eq!(c.added, ["d"]);
        assert_eq!(c.removed, ["a"]);
        assert_eq!(c.changed, ["b"]);
        assert_eq!(c.summary(), "+d ~b -a");
        assert!(Changes::by_name(&[1], &[1], |x| x.to_string()).is_empty());
    }

    #[test]
    fn a_config_diff_names_jobs_receivers_destinations_and_restart_settings() {
        let old = load(
            "scrape_configs:\n- job_name: a\n  static_configs: [{targets: ['h:1']}]\n\
             - job_name: b\n  static_configs: [{targets: ['h:2']}]\n\
             remote_write:\n- url: http://vm/api/v1/write\n  name: vm\n\
             alerting:\n  route: {receiver: r}\n  receivers:\n  - name: r\n    webhook_configs: [{url: 'http://x/1'}]\n",
        );
        let new = load(
            "server: {listen: '127.0.0.1:9999'}\n\
             scrape_configs:\n- job_name: a\n  static_configs: [{targets: ['h:1']}]\n\
             - job_name: c\n  static_configs: [{targets: ['h:3']}]\n\
             alerting:\n  route: {receiver: r}\n  receivers:\n  - name: r\n    webhook_configs: [{url: 'http://x/2'}]\n",
        );
        let d = diff(&old, &new);
        assert_eq!(d.scrape_jobs.summary(), "+c -b");
        assert!(!d.scrape_globals);
        assert_eq!(d.receivers.changed, ["r"], "a changed secret URL counts");
        assert!(!d.routes && !d.inhibit_rules && !d.alerting_other);
        assert_eq!(d.remote_write.removed, ["vm"]);
        assert!(d.models.is_empty());
        assert_eq!(d.restart_required, ["server.listen"]);
        assert!(d.alerting_changed());
        assert_eq!(diff(&new, &new), ConfigDiff::default());
    }
}
