//! Feishu / Lark custom bots: an interactive card (default) or a post
//! message, signed when the bot has a secret (string to sign
//! `timestamp + "\n" + secret` used as the HMAC-SHA256 key of an empty
//! message, base64).

use base64::Engine as _;
use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Channel, ChannelContext, post_json};
use crate::alerting::Language;
use crate::alerting::message::{robot_message, truncate_utf8};
use crate::alerting::notification::Notification;
use crate::alerting::retry::SendError;
use crate::config::RobotConfig;

/// Feishu's request body limit is 20 KB; keep the text well under it.
const MAX_TEXT_BYTES: usize = 18_000;

/// The `sign` field for `timestamp_s` (seconds).
pub fn signature(secret: &str, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC takes any key length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A `feishu_configs` entry.
pub struct FeishuChannel {
    cfg: RobotConfig,
    ctx: ChannelContext,
}

impl FeishuChannel {
    /// A Feishu channel.
    pub fn new(cfg: RobotConfig, ctx: ChannelContext) -> Self {
        FeishuChannel { cfg, ctx }
    }

    /// The JSON body for `n` at `now_ms`.
    pub fn payload(&self, n: &Notification, now_ms: i64) -> serde_json::Value {
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
        let mut text = truncate_utf8(&text, MAX_TEXT_BYTES, note);
        if self.cfg.at_all {
            text.push_str("\n<at id=all></at>");
        }
        for u in self.cfg.at_user_ids.iter().chain(&self.cfg.mentions) {
            text.push_str(&format!(" <at id={u}></at>"));
        }
        let mut body = if self.cfg.message_type.as_deref() == Some("post") {
            let lang = if self.ctx.language == Language::Zh {
                "zh_cn"
            } else {
                "en_us"
            };
            serde_json::json!({"msg_type": "post", "content": {"post": {lang: {
                "title": title, "content": [[{"tag": "text", "text": text}]]}}}})
        } else {
            let color = if n.status == "firing" { "red" } else { "green" };
            serde_json::json!({"msg_type": "interactive", "card": {
                "config": {"wide_screen_mode": true},
                "header": {"title": {"tag": "plain_text", "content": title}, "template": color},
                "elements": [{"tag": "markdown", "content": text}]}})
        };
        if let (Some(secret), Some(obj)) = (&self.cfg.secret, body.as_object_mut()) {
            let ts = now_ms / 1000;
            obj.insert(
                "timestamp".into(),
                serde_json::Value::String(ts.to_string()),
            );
            obj.insert(
                "sign".into(),
                serde_json::Value::String(signature(secret.expose(), ts)),
            );
        }
        body
    }
}

/// Interprets Feishu's `{"code": …, "msg": …}` (older bots: `StatusCode`,
/// `StatusMessage`): 9499 and 11232 (too many requests) back off; 19021 (bad
/// signature), 19022 (IP not allowed), 19024 (keyword missing)… cannot succeed.
pub fn classify(body: &str) -> Result<(), SendError> {
    super::robot_reply(
        "Feishu",
        body,
        &["code", "StatusCode"],
        &["msg", "StatusMessage"],
        &[9499, 11232],
    )
}

impl Channel for FeishuChannel {
    fn kind(&self) -> &'static str {
        "feishu"
    }

    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    fn rate_limit_per_minute(&self) -> Option<u32> {
        // Feishu allows 100/min and 5/s per bot.
        Some(self.cfg.rate_limit_per_minute.unwrap_or(100))
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let body = post_json(
                &self.ctx.http,
                self.cfg.url.expose(),
                &self.payload(n, (self.ctx.now)()),
            )
            .await?;
            classify(&body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_reference() {
        // Python: base64(hmac.new(b"1700000000\nfsec", b"", sha256).digest()).
        assert_eq!(
            signature("fsec", 1_700_000_000),
            "Qaw2yCfYwKE3tOCKyW8Be13dXTl5lWKoEYaPP5nwvMk="
        );
        assert!(matches!(
            classify(r#"{"code":19021,"msg":"sign match fail"}"#),
            Err(SendError::Fatal(_))
        ));
        assert!(classify(r#"{"StatusCode":0,"StatusMessage":"success"}"#).is_ok());
    }
}
