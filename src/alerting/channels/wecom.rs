//! WeCom (WeChat Work) group robots: markdown (≤ 4096 bytes) or text with
//! `mentioned_list` / `mentioned_mobile_list` (≤ 2048 bytes).

use futures::future::BoxFuture;

use super::{Channel, ChannelContext, post_json};
use crate::alerting::Language;
use crate::alerting::message::{robot_message, truncate_utf8};
use crate::alerting::notification::Notification;
use crate::alerting::retry::SendError;
use crate::config::RobotConfig;

/// WeCom's markdown content limit in bytes.
pub const MARKDOWN_MAX_BYTES: usize = 4096;
/// WeCom's text content limit in bytes.
pub const TEXT_MAX_BYTES: usize = 2048;

/// A `wecom_configs` entry.
pub struct WeComChannel {
    cfg: RobotConfig,
    ctx: ChannelContext,
}

impl WeComChannel {
    /// A WeCom channel.
    pub fn new(cfg: RobotConfig, ctx: ChannelContext) -> Self {
        WeComChannel { cfg, ctx }
    }

    /// The JSON body for `n`.
    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        let (title, text) = robot_message(
            n,
            self.ctx.language,
            self.cfg.title.as_deref(),
            self.cfg.text.as_deref(),
        );
        let note = if self.ctx.language == Language::Zh {
            "\n…（内容过长，已截断）"
        } else {
            "\n… (truncated)"
        };
        let mut users: Vec<String> = self.cfg.at_user_ids.clone();
        let mut mobiles: Vec<String> = self.cfg.at_mobiles.clone();
        for m in &self.cfg.mentions {
            if m.chars().all(|c| c.is_ascii_digit() || c == '+') {
                mobiles.push(m.clone());
            } else {
                users.push(m.clone());
            }
        }
        if self.cfg.at_all {
            users.push("@all".into());
        }
        if self.cfg.message_type.as_deref() == Some("text") {
            let content = truncate_utf8(&format!("{title}\n{text}"), TEXT_MAX_BYTES, note);
            serde_json::json!({"msgtype": "text", "text": {
                "content": content, "mentioned_list": users, "mentioned_mobile_list": mobiles}})
        } else {
            // Markdown mentions are `<@userid>` in the content; mobiles cannot be pinged here.
            let mentions: String = users
                .iter()
                .filter(|u| *u != "@all")
                .map(|u| format!(" <@{u}>"))
                .collect();
            let content =
                truncate_utf8(&text, MARKDOWN_MAX_BYTES - mentions.len(), note) + &mentions;
            serde_json::json!({"msgtype": "markdown", "markdown": {"content": content}})
        }
    }
}

/// The webhook URL; a bare robot key is accepted too.
pub fn robot_url(url_or_key: &str) -> String {
    if url_or_key.starts_with("http://") || url_or_key.starts_with("https://") {
        url_or_key.to_string()
    } else {
        format!("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={url_or_key}")
    }
}

/// Interprets WeCom's `{"errcode": …, "errmsg": …}`: 45009 (API frequency
/// limit) and -1 (busy) back off; 93000 (invalid webhook URL) and other
/// request errors cannot succeed.
pub fn classify(body: &str) -> Result<(), SendError> {
    super::robot_reply("WeCom", body, &["errcode"], &["errmsg"], &[45009, -1])
}

impl Channel for WeComChannel {
    fn kind(&self) -> &'static str {
        "wecom"
    }

    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    fn rate_limit_per_minute(&self) -> Option<u32> {
        Some(self.cfg.rate_limit_per_minute.unwrap_or(20))
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let body = post_json(
                &self.ctx.http,
                &robot_url(self.cfg.url.expose()),
                &self.payload(n),
            )
            .await?;
            classify(&body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::Alert;
    use crate::model::Labels;

    #[test]
    fn text_message_mentions_people() {
        let cfg: RobotConfig = serde_yaml_ng::from_str(
            "url: http://x\nmessage_type: text\nat_mobiles: ['13800000000']\nat_user_ids: [zhangsan]\nat_all: true\n",
        )
        .unwrap();
        let ctx = ChannelContext::new(Language::En, std::sync::Arc::new(|| 0)).unwrap();
        let ch = WeComChannel::new(cfg, ctx);
        let alert = Alert {
            labels: Labels::new([("alertname", "X")]),
            annotations: Default::default(),
            starts_at_ms: 0,
            ends_at_ms: i64::MAX,
            generator_url: String::new(),
        };
        let n = Notification::new("r", "k", &Labels::default(), &[alert], 1, "");
        let p = ch.payload(&n);
        assert_eq!(p["msgtype"], "text");
        assert_eq!(
            p["text"]["mentioned_list"],
            serde_json::json!(["zhangsan", "@all"])
        );
        assert_eq!(
            p["text"]["mentioned_mobile_list"],
            serde_json::json!(["13800000000"])
        );
        assert!(
            p["text"]["content"]
                .as_str()
                .unwrap()
                .starts_with("[FIRING:1] X")
        );
    }

    #[test]
    fn bare_key_becomes_url() {
        assert_eq!(
            robot_url("abc-123"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123"
        );
        assert_eq!(
            robot_url("http://127.0.0.1:1/x?key=k"),
            "http://127.0.0.1:1/x?key=k"
        );
    }

    #[test]
    fn errcodes() {
        assert!(classify(r#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(matches!(
            classify(r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#),
            Err(SendError::Fatal(_))
        ));
        assert!(matches!(
            classify(r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#),
            Err(SendError::Retry { .. })
        ));
    }
}
