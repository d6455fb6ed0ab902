//! DingTalk custom robots: markdown messages, @-mentions, and the "加签"
//! signature (`timestamp` ms + "\n" + secret, HMAC-SHA256 keyed by the
//! secret, base64, URL-encoded once, appended as `&timestamp=&sign=`).

use base64::Engine as _;
use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Channel, ChannelContext, post_json};
use crate::alerting::message::{robot_message, truncate_utf8};
use crate::alerting::notification::Notification;
use crate::alerting::retry::SendError;
use crate::config::RobotConfig;

/// DingTalk refuses messages over 20,000 bytes.
pub const MAX_BYTES: usize = 20_000;

/// The `sign` value for `timestamp_ms` (before URL encoding).
pub fn signature(secret: &str, timestamp_ms: i64) -> String {
    let to_sign = format!("{timestamp_ms}\n{secret}");
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `url` with `&timestamp=…&sign=…` appended.
pub fn signed_url(url: &str, secret: &str, timestamp_ms: i64) -> String {
    let raw = signature(secret, timestamp_ms);
    let sign = percent_encoding::utf8_percent_encode(&raw, percent_encoding::NON_ALPHANUMERIC);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}timestamp={timestamp_ms}&sign={sign}")
}

/// A `dingtalk_configs` entry.
pub struct DingTalkChannel {
    cfg: RobotConfig,
    ctx: ChannelContext,
}

impl DingTalkChannel {
    /// A DingTalk channel.
    pub fn new(cfg: RobotConfig, ctx: ChannelContext) -> Self {
        DingTalkChannel { cfg, ctx }
    }

    fn mobiles(&self) -> Vec<String> {
        self.cfg
            .at_mobiles
            .iter()
            .chain(
                self.cfg
                    .mentions
                    .iter()
                    .filter(|m| m.chars().all(|c| c.is_ascii_digit() || c == '+')),
            )
            .cloned()
            .collect()
    }

    /// The JSON body for `n`.
    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        let (title, text) = robot_message(
            n,
            self.ctx.language,
            self.cfg.title.as_deref(),
            self.cfg.text.as_deref(),
        );
        let mobiles = self.mobiles();
        let user_ids: Vec<String> = self
            .cfg
            .at_user_ids
            .iter()
            .chain(
                self.cfg
                    .mentions
                    .iter()
                    .filter(|m| !m.chars().all(|c| c.is_ascii_digit() || c == '+')),
            )
            .cloned()
            .collect();
        // DingTalk only pings people whose @mobile / @userid appears in the text.
        let mut tail = String::new();
        for m in mobiles.iter().chain(&user_ids) {
            tail.push_str(&format!(" @{m}"));
        }
        let note = if self.ctx.language == crate::alerting::Language::Zh {
            "\n\n…（内容过长，已截断）"
        } else {
            "\n\n… (truncated)"
        };
        let body = truncate_utf8(&text, MAX_BYTES - tail.len() - 200, note) + &tail;
        let at = serde_json::json!({"atMobiles": mobiles, "atUserIds": user_ids, "isAtAll": self.cfg.at_all});
        if self.cfg.message_type.as_deref() == Some("text") {
            serde_json::json!({"msgtype": "text", "text": {"content": format!("{title}\n{body}")}, "at": at})
        } else {
            serde_json::json!({"msgtype": "markdown", "markdown": {"title": title, "text": body}, "at": at})
        }
    }
}

/// Interprets DingTalk's `{"errcode": …, "errmsg": …}`: 130101, 410100,
/// 660026 and -1 mean sent too fast or busy (back off); 310000 (keyword,
/// signature or IP check) and 300001/300005 (bad token) cannot succeed.
pub fn classify(body: &str) -> Result<(), SendError> {
    super::robot_reply(
        "DingTalk",
        body,
        &["errcode"],
        &["errmsg"],
        &[130101, 410100, 660026, -1],
    )
}

impl Channel for DingTalkChannel {
    fn kind(&self) -> &'static str {
        "dingtalk"
    }

    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    fn rate_limit_per_minute(&self) -> Option<u32> {
        Some(self.cfg.rate_limit_per_minute.unwrap_or(20))
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let url = match &self.cfg.secret {
                Some(secret) => {
                    signed_url(self.cfg.url.expose(), secret.expose(), (self.ctx.now)())
                }
                None => self.cfg.url.expose().to_string(),
            };
            let body = post_json(&self.ctx.http, &url, &self.payload(n)).await?;
            classify(&body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_reference() {
        // Reference computed with Python: base64(hmac.new(b"SECabc", b"1700000000000\nSECabc", sha256).digest()).
        assert_eq!(
            signature("SECabc", 1_700_000_000_000),
            "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM="
        );
        let url = signed_url(
            "https://oapi.dingtalk.com/robot/send?access_token=t",
            "SECabc",
            1_700_000_000_000,
        );
        assert_eq!(
            url,
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1700000000000&sign=jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM%3D"
        );
    }

    #[test]
    fn errcodes() {
        assert!(classify(r#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(matches!(
            classify(r#"{"errcode":310000,"errmsg":"sign not match"}"#),
            Err(SendError::Fatal(_))
        ));
        assert!(matches!(
            classify(r#"{"errcode":130101,"errmsg":"send too fast"}"#),
            Err(SendError::Retry { after: Some(_), .. })
        ));
    }
}
