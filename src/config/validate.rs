//! Checks that need the whole parsed config: cross references, limits,
//! cron schedules, and warnings for Prometheus keys infermon does not act on.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::{Config, Diagnostic, scrape::is_known_unimplemented_scrape_key};
use crate::diag::locate;

/// Returns (warnings, errors).
pub(super) fn validate(config: &Config) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut v = Validator {
        config,
        warnings: Vec::new(),
        errors: Vec::new(),
    };
    v.top_level();
    v.scrape();
    v.server();
    v.models();
    v.alerting();
    v.snapshots();
    (v.warnings, v.errors)
}

struct Validator<'a> {
    config: &'a Config,
    warnings: Vec<Diagnostic>,
    errors: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn at(&self, needle: &str, message: String) -> Diagnostic {
        let (line, column) = locate(&self.config.source.text, needle);
        Diagnostic {
            file: self.config.source.name(),
            line,
            column,
            message,
        }
    }

    fn warn(&mut self, needle: &str, message: String) {
        let d = self.at(needle, message);
        self.warnings.push(d);
    }

    fn error(&mut self, needle: &str, message: String) {
        let d = self.at(needle, message);
        self.errors.push(d);
    }

    fn top_level(&mut self) {
        let c = self.config;
        let unimplemented = [
            ("remote_read", c.remote_read.is_some()),
            ("tracing", c.tracing.is_some()),
            ("scrape_config_files", c.scrape_config_files.is_some()),
            ("otlp", c.otlp.is_some()),
            ("runtime", c.runtime.is_some()),
            ("query_log_file", c.global.query_log_file.is_some()),
            ("scrape_protocols", c.global.scrape_protocols.is_some()),
            ("tsdb", c.storage.tsdb.is_some()),
            ("exemplars", c.storage.exemplars.is_some()),
        ];
        for (key, present) in unimplemented {
            if present {
                self.warn(
                    &format!("{key}:"),
                    format!("{key}: not implemented by infermon; ignored"),
                );
            }
        }
        for rw in &c.remote_write {
            for (key, present) in [
                ("metadata_config", rw.metadata_config.is_some()),
                ("send_exemplars", rw.send_exemplars.is_some()),
                (
                    "send_native_histograms",
                    rw.send_native_histograms.is_some(),
                ),
            ] {
                if present {
                    self.warn(
                        &format!("{key}:"),
                        format!("remote_write.{key}: not implemented by infermon; ignored"),
                    );
                }
            }
        }
    }

    fn scrape(&mut self) {
        let global = &self.config.global;
        let mut names = HashSet::new();
        for (i, job) in self.config.scrape_configs.iter().enumerate() {
            let here = format!("job_name: {}", job.job_name);
            let where_ = format!("scrape_configs[{i}] ({})", job.job_name);
            if job.job_name.is_empty() {
                self.error("job_name:", format!("{where_}: job_name must not be empty"));
            }
            if !names.insert(job.job_name.clone()) {
                self.error(
                    &job.job_name,
                    format!(
                        "{where_}: found multiple scrape configs with job name {:?}",
                        job.job_name
                    ),
                );
            }
            let interval = job.scrape_interval.unwrap_or(global.scrape_interval);
            let timeout = job
                .scrape_timeout
                .unwrap_or(global.scrape_timeout.min(interval));
            if timeout > interval {
                self.error(
                    "scrape_timeout:",
                    format!(
                        "{where_}: scrape timeout {timeout} greater than scrape interval {interval}"
                    ),
                );
            }
            if job.scheme != "http" && job.scheme != "https" {
                self.error(
                    "scheme:",
                    format!(
                        "{where_}: scheme must be http or https, not {:?}",
                        job.scheme
                    ),
                );
            }
            if job.basic_auth.is_some()
                && (job.authorization.is_some() || job.bearer_token.is_some())
            {
                self.error(&here, format!("{where_}: at most one of basic_auth, authorization, bearer_token may be set"));
            }
            for relabel in job
                .relabel_configs
                .iter()
                .chain(&job.metric_relabel_configs)
            {
                if let Err(e) = relabel.validate() {
                    self.error(&relabel.regex, format!("{where_}: {e}"));
                }
            }
            if let Some(limit) = &job.body_size_limit
                && crate::util::parse_bytes(limit).is_none()
            {
                self.error(
                    "body_size_limit:",
                    format!("{where_}: body_size_limit {limit:?} is not a size like 10MB"),
                );
            }
            for sc in &job.static_configs {
                for target in &sc.targets {
                    if !target.contains(':') || target.contains('/') {
                        self.error(
                            target,
                            format!("{where_}: target {target:?} must be host:port"),
                        );
                    }
                }
            }
            for key in job.other.keys() {
                if is_known_unimplemented_scrape_key(key) {
                    self.warn(
                        &format!("{key}:"),
                        format!("{where_}: {key}: not implemented by infermon; ignored"),
                    );
                } else {
                    self.error(
                        &format!("{key}:"),
                        format!("scrape_configs[{i}]: unknown field `{key}`"),
                    );
                }
            }
        }
    }

    fn server(&mut self) {
        let listen = &self.config.server.listen;
        if listen.parse::<SocketAddr>().is_err() {
            self.error(
                "listen:",
                format!("server.listen: {listen:?} is not an address like 127.0.0.1:8080"),
            );
        }
        if let Some(auth) = &self.config.server.auth {
            for (user, entry) in &auth.basic_auth_users {
                if !entry.password_hash().expose().starts_with("$2") {
                    self.error(
                        user,
                        format!("server.auth.basic_auth_users.{user}: not a bcrypt hash; make one with `infermon hash-password`"),
                    );
                }
            }
        }
    }

    fn models(&mut self) {
        let mut names = HashSet::new();
        for (i, m) in self.config.models.iter().enumerate() {
            let name = m
                .name
                .clone()
                .unwrap_or_else(|| crate::util::dir_name(&m.path));
            if !names.insert(name.clone()) {
                self.error(
                    &m.path,
                    format!("models[{i}]: model name {name:?} is used twice; set `name:`"),
                );
            }
            if let Some(task) = &m.task
                && task != "embed"
                && task != "rerank"
            {
                self.error(
                    "task:",
                    format!("models[{i}].task: {task:?} is not embed or rerank"),
                );
            }
            if m.device != "cpu" && !m.device.starts_with("cuda") {
                self.error(
                    "device:",
                    format!("models[{i}].device: {:?} is not cpu or cuda:N", m.device),
                );
            }
            if let Some(dtype) = &m.dtype
                && !matches!(dtype.as_str(), "f32" | "f16" | "bf16")
            {
                self.error(
                    "dtype:",
                    format!("models[{i}].dtype: {dtype:?} is not f32, f16 or bf16"),
                );
            }
            if m.max_batch_requests == 0
                || m.max_batch_tokens == 0
                || m.max_concurrent_requests == 0
            {
                self.error(
                    &m.path,
                    format!("models[{i}]: batch and concurrency limits must be at least 1"),
                );
            }
        }
    }

    fn alerting(&mut self) {
        let a = &self.config.alerting;
        for relabel in &a.alert_relabel_configs {
            if let Err(e) = relabel.validate() {
                self.error(
                    &relabel.regex,
                    format!("alerting.alert_relabel_configs: {e}"),
                );
            }
        }
        let mut names = HashSet::new();
        for r in &a.receivers {
            if !names.insert(r.name.as_str()) {
                self.error(
                    &r.name,
                    format!("alerting.receivers: receiver {:?} is defined twice", r.name),
                );
            }
            for e in &r.email_configs {
                if e.smarthost.as_deref().is_none_or(|h| !h.contains(':')) {
                    self.error(
                        "email_configs:",
                        format!(
                            "alerting.receivers.{}: email_configs needs smarthost: host:port",
                            r.name
                        ),
                    );
                }
                if e.from.is_none() {
                    self.error(
                        "email_configs:",
                        format!("alerting.receivers.{}: email_configs needs from:", r.name),
                    );
                }
            }
            for robot in r
                .dingtalk_configs
                .iter()
                .chain(&r.wecom_configs)
                .chain(&r.feishu_configs)
            {
                if let Some(kind) = &robot.message_type
                    && !matches!(kind.as_str(), "markdown" | "text" | "interactive" | "post")
                {
                    self.error(
                        "message_type:",
                        format!("alerting.receivers.{}: message_type {kind:?} is not markdown, text, interactive or post", r.name),
                    );
                }
            }
        }
        if let Some(route) = &a.route {
            if route.receiver.is_none() {
                self.error(
                    "route:",
                    "alerting.route: the root route must name a receiver".to_string(),
                );
            }
            let mut stack = vec![route];
            while let Some(r) = stack.pop() {
                if let Some(name) = &r.receiver
                    && !names.contains(name.as_str())
                {
                    self.error(
                        name,
                        format!(
                            "alerting.route: receiver {name:?} is not defined in alerting.receivers"
                        ),
                    );
                }
                for m in &r.matchers {
                    if let Err(e) = crate::model::Matcher::parse(m) {
                        self.error(m, format!("alerting.route.matchers: {e}"));
                    }
                }
                stack.extend(&r.routes);
            }
        }
        for rule in &a.inhibit_rules {
            for m in rule.source_matchers.iter().chain(&rule.target_matchers) {
                if let Err(e) = crate::model::Matcher::parse(m) {
                    self.error(m, format!("alerting.inhibit_rules: {e}"));
                }
            }
        }
        if let Some(lang) = &a.language
            && !matches!(lang.as_str(), "en" | "zh" | "zh-CN")
        {
            self.error(
                "language:",
                format!("alerting.language: {lang:?} is not en or zh-CN"),
            );
        }
    }

    fn snapshots(&mut self) {
        let s = &self.config.snapshots;
        for (key, schedule) in [
            ("schedule", &s.schedule),
            ("backup_schedule", &s.backup_schedule),
        ] {
            if super::snapshots::validate_schedule(schedule).is_err() {
                self.error(&format!("{key}:"), format!("snapshots.{key}: {schedule:?} is not a cron schedule with seconds (sec min hour day month weekday)"));
            }
        }
        if let Some(tz) = &s.timezone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            self.error(
                "timezone:",
                format!("snapshots.timezone: {tz:?} is not an IANA time zone like Asia/Shanghai"),
            );
        }
    }
}
