//! Where notifications go: one [`Channel`] per configured integration
//! (`webhook_configs`, `dingtalk_configs`, …), named `receiver/kind/index`.
//! A channel renders a [`Notification`] and sends it once; retries, rate
//! limits and bookkeeping live in the outbox.

pub mod alertmanager;
pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod log;
pub mod webhook;
pub mod wecom;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::message::Language;
use super::notification::Notification;
use super::retry::{SendError, classify_status, classify_transport};
use super::{AlertingError, NowFn};
use crate::config::AlertingConfig;

/// Sends notifications of one integration.
pub trait Channel: Send + Sync {
    /// Kind (`webhook`, `dingtalk`, …).
    fn kind(&self) -> &'static str;
    /// Whether resolved alerts are sent.
    fn send_resolved(&self) -> bool;
    /// Most messages per minute, if the receiver limits them.
    fn rate_limit_per_minute(&self) -> Option<u32> {
        None
    }
    /// Sends once.
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SendError>>;
}

/// What channels share.
#[derive(Clone)]
pub struct ChannelContext {
    /// HTTP client (timeouts set).
    pub http: reqwest::Client,
    /// Template language.
    pub language: Language,
    /// Clock (signatures carry timestamps).
    pub now: NowFn,
}

impl ChannelContext {
    /// A context with a 10 s request timeout.
    pub fn new(language: Language, now: NowFn) -> Result<Self, AlertingError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("infermon/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertingError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(ChannelContext {
            http,
            language,
            now,
        })
    }
}

/// POSTs JSON and returns the body of a 2xx answer. Errors never carry the
/// URL's credentials (robot tokens live in the URL).
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<String, SendError> {
    let resp = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| redact_error(classify_transport(&e)))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    classify_status(status, &text).map_err(redact_error)?;
    Ok(text)
}

/// `e` with URLs and `token=value` pairs in its reason redacted
/// ([`crate::util::redact::text`]), before it is logged or stored.
pub fn redact_error(e: SendError) -> SendError {
    use crate::util::redact::text;
    match e {
        SendError::Retry {
            reason,
            after,
            maybe_delivered,
        } => SendError::Retry {
            reason: text(&reason),
            after,
            maybe_delivered,
        },
        SendError::Fatal(reason) => SendError::Fatal(text(&reason)),
    }
}

/// The integration key of `kind` number `index` of `receiver`.
pub fn integration_key(receiver: &str, kind: &str, index: usize) -> String {
    format!("{receiver}/{kind}/{index}")
}

/// An integration: (key, receiver name, channel).
pub type Integration = (String, String, Arc<dyn Channel>);

/// Builds every integration of every receiver: (key, receiver name, channel).
pub fn build_integrations(
    cfg: &AlertingConfig,
    ctx: &ChannelContext,
) -> Result<Vec<Integration>, AlertingError> {
    let mut out: Vec<Integration> = Vec::new();
    for r in &cfg.receivers {
        let mut add = |kind: &str, i: usize, ch: Arc<dyn Channel>| {
            out.push((integration_key(&r.name, kind, i), r.name.clone(), ch))
        };
        for (i, c) in r.webhook_configs.iter().enumerate() {
            add(
                "webhook",
                i,
                Arc::new(webhook::WebhookChannel::new(c.clone(), ctx.clone())),
            );
        }
        for (i, c) in r.dingtalk_configs.iter().enumerate() {
            add(
                "dingtalk",
                i,
                Arc::new(dingtalk::DingTalkChannel::new(c.clone(), ctx.clone())),
            );
        }
        for (i, c) in r.wecom_configs.iter().enumerate() {
            add(
                "wecom",
                i,
                Arc::new(wecom::WeComChannel::new(c.clone(), ctx.clone())),
            );
        }
        for (i, c) in r.feishu_configs.iter().enumerate() {
            add(
                "feishu",
                i,
                Arc::new(feishu::FeishuChannel::new(c.clone(), ctx.clone())),
            );
        }
        for (i, c) in r.email_configs.iter().enumerate() {
            add(
                "email",
                i,
                Arc::new(email::EmailChannel::new(c.clone(), ctx.clone())?),
            );
        }
        for (i, c) in r.alertmanager_configs.iter().enumerate() {
            add(
                "alertmanager",
                i,
                Arc::new(alertmanager::AlertmanagerChannel::new(
                    c.url.expose(),
                    c.send_resolved,
                    ctx.clone(),
                )),
            );
        }
    }
    Ok(out)
}

/// Interprets a chat robot's JSON reply: code 0 (or no code) is success,
/// a code in `rate_limited` backs off for a minute, any other cannot succeed
/// on retry. `code_keys`/`msg_keys` name the fields, first present wins.
pub(crate) fn robot_reply(
    service: &str,
    body: &str,
    code_keys: &[&str],
    msg_keys: &[&str],
    rate_limited: &[i64],
) -> Result<(), SendError> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let code = code_keys
        .iter()
        .find_map(|k| v.get(*k))
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    let msg = msg_keys
        .iter()
        .find_map(|k| v.get(*k))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    if code == 0 {
        Ok(())
    } else if rate_limited.contains(&code) {
        Err(SendError::rate_limited(
            format!("{service} code {code}: {msg}"),
            std::time::Duration::from_secs(60),
        ))
    } else {
        Err(SendError::Fatal(format!("{service} code {code}: {msg}")))
    }
}
