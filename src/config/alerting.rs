//! `alerting:` — Alertmanager's routing shape (route, receivers, inhibit_rules)
//! plus Prometheus' `alertmanagers` for forwarding to an external Alertmanager.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{PromDuration, RelabelConfig, Secret, StaticConfig};

/// Where alerts go and how they are grouped.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// The routing tree (Alertmanager's `route:`); absent: alerts go to the log.
    #[serde(default)]
    pub route: Option<Route>,
    /// Named receivers the routes point at.
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    /// Mute alerts while others fire (Alertmanager's `inhibit_rules`).
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRule>,
    /// Prometheus' external Alertmanagers (also sent to, when given).
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// Relabelling of alerts before they are sent (Prometheus key).
    #[serde(default)]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    /// Language of built-in message templates: `en` (default) or `zh-CN` (`zh`).
    #[serde(default)]
    pub language: Option<String>,
    /// Load the built-in rules of `config/rules/` (default true).
    #[serde(default)]
    pub builtin_rules: Option<bool>,
    /// URL people reach infermon at, used in links of notifications
    /// (default `http://<server.listen>`).
    #[serde(default)]
    pub external_url: Option<String>,
    /// How long a notification is retried before it is recorded as failed (default 24h).
    #[serde(default)]
    pub max_retry_duration: Option<PromDuration>,
    /// How long delivery history is kept (default 7d).
    #[serde(default)]
    pub history_retention: Option<PromDuration>,
}

impl AlertingConfig {
    /// Whether the built-in rules are loaded.
    pub fn builtin_rules_enabled(&self) -> bool {
        self.builtin_rules.unwrap_or(true)
    }

    /// Whether messages use the Chinese templates.
    pub fn chinese(&self) -> bool {
        self.language
            .as_deref()
            .is_some_and(|l| l.starts_with("zh"))
    }
}

/// A node of the routing tree, Alertmanager's defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Receiver name (inherited by children when absent).
    #[serde(default)]
    pub receiver: Option<String>,
    /// Labels to group by; `...` groups by all labels.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Wait before the first notification of a new group (default 30s).
    #[serde(default)]
    pub group_wait: Option<PromDuration>,
    /// Wait before notifying about new alerts in a group (default 5m).
    #[serde(default)]
    pub group_interval: Option<PromDuration>,
    /// Wait before repeating a notification (default 4h).
    #[serde(default)]
    pub repeat_interval: Option<PromDuration>,
    /// Matchers like `severity="critical"`, `alertname=~"Gpu.*"`.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Keep matching siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Child routes.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// A named set of channels.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// Name routes refer to.
    pub name: String,
    /// Generic JSON webhooks (Alertmanager's webhook payload).
    #[serde(default)]
    pub webhook_configs: Vec<WebhookConfig>,
    /// DingTalk custom robots.
    #[serde(default)]
    pub dingtalk_configs: Vec<RobotConfig>,
    /// WeCom (WeChat Work) group robots.
    #[serde(default)]
    pub wecom_configs: Vec<RobotConfig>,
    /// Feishu / Lark custom bots.
    #[serde(default)]
    pub feishu_configs: Vec<RobotConfig>,
    /// Forward to an existing Alertmanager (`POST /api/v2/alerts`).
    #[serde(default)]
    pub alertmanager_configs: Vec<AlertmanagerReceiverConfig>,
    /// Email over SMTP.
    #[serde(default)]
    pub email_configs: Vec<EmailConfig>,
}

/// Alertmanager's webhook_config.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Endpoint to POST to.
    pub url: Secret,
    /// Also notify when alerts resolve (default true).
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// Most alerts in one message (0 = all).
    #[serde(default)]
    pub max_alerts: usize,
}

/// A chat robot (DingTalk, WeCom, Feishu).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RobotConfig {
    /// The robot's webhook URL (it holds the access token: a secret); for
    /// WeCom the bare robot key is accepted too.
    pub url: Secret,
    /// Signing secret (DingTalk "加签", Feishu signature), if the robot has one.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Also notify when alerts resolve (default true).
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// Users to @-mention (phone numbers or user ids).
    #[serde(default)]
    pub mentions: Vec<String>,
    /// DingTalk / WeCom: phone numbers to @-mention.
    #[serde(default)]
    pub at_mobiles: Vec<String>,
    /// DingTalk: user ids to @-mention; WeCom: `mentioned_list` user ids.
    #[serde(default)]
    pub at_user_ids: Vec<String>,
    /// @-mention everyone in the group.
    #[serde(default)]
    pub at_all: bool,
    /// Message kind: DingTalk/WeCom `markdown` (default) or `text`;
    /// Feishu `interactive` (card, default) or `post`.
    #[serde(default)]
    pub message_type: Option<String>,
    /// Most messages per minute (default 20, the DingTalk and WeCom robot limit).
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
    /// Custom message title template.
    #[serde(default)]
    pub title: Option<String>,
    /// Custom message body template.
    #[serde(default)]
    pub text: Option<String>,
}

/// Alertmanager's email_config.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipient(s), comma-separated.
    pub to: String,
    /// Sender address.
    #[serde(default)]
    pub from: Option<String>,
    /// SMTP server `host:port`.
    #[serde(default)]
    pub smarthost: Option<String>,
    /// SMTP user name.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// SMTP password.
    #[serde(default)]
    pub auth_password: Option<Secret>,
    /// Require STARTTLS (default true, as in Alertmanager).
    #[serde(default = "default_true")]
    pub require_tls: bool,
    /// Also notify when alerts resolve (default false, as in Alertmanager).
    #[serde(default)]
    pub send_resolved: bool,
    /// Extra headers (Subject etc.).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Connect with TLS from the start (SMTPS, usually port 465) instead of STARTTLS.
    #[serde(default)]
    pub implicit_tls: bool,
}

/// An Alertmanager that receives this receiver's alerts.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerReceiverConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093`.
    pub url: Secret,
    /// Also forward resolutions (default true: Alertmanager needs them).
    #[serde(default = "default_true")]
    pub send_resolved: bool,
}

/// Alertmanager's inhibit_rule.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Alerts that mute others.
    #[serde(default)]
    pub source_matchers: Vec<String>,
    /// Alerts that get muted.
    #[serde(default)]
    pub target_matchers: Vec<String>,
    /// Labels that must be equal in source and target.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// Prometheus' `alerting.alertmanagers` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager addresses.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// `http` (default) or `https`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Prefix of the API path.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Request timeout (default 10s).
    #[serde(default)]
    pub timeout: Option<PromDuration>,
    /// API version (`v2`).
    #[serde(default)]
    pub api_version: Option<String>,
}

fn default_true() -> bool {
    true
}
