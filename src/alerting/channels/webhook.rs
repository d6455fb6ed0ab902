//! Generic webhooks with Alertmanager's payload (version 4), so receivers
//! written for Alertmanager work unchanged.

use futures::future::BoxFuture;

use super::{Channel, ChannelContext, post_json};
use crate::alerting::notification::Notification;
use crate::alerting::retry::SendError;
use crate::config::WebhookConfig;

/// A `webhook_configs` entry.
pub struct WebhookChannel {
    cfg: WebhookConfig,
    ctx: ChannelContext,
}

impl WebhookChannel {
    /// A webhook channel.
    pub fn new(cfg: WebhookConfig, ctx: ChannelContext) -> Self {
        WebhookChannel { cfg, ctx }
    }
}

impl Channel for WebhookChannel {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            post_json(
                &self.ctx.http,
                self.cfg.url.expose(),
                &n.webhook_payload(self.cfg.max_alerts),
            )
            .await
            .map(|_| ())
        })
    }
}
