//! Forwarding to an existing Alertmanager (`POST /api/v2/alerts`), for
//! teams that already run one: it then does its own routing.

use futures::future::BoxFuture;

use super::{Channel, ChannelContext, post_json};
use crate::alerting::notification::Notification;
use crate::alerting::retry::SendError;

/// Alertmanager's zero time: a firing alert is sent without `endsAt`.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One Alertmanager.
pub struct AlertmanagerChannel {
    url: String,
    send_resolved: bool,
    ctx: ChannelContext,
}

impl AlertmanagerChannel {
    /// A channel posting to `base_url` + `/api/v2/alerts`.
    pub fn new(base_url: &str, send_resolved: bool, ctx: ChannelContext) -> Self {
        let base = base_url.trim_end_matches('/');
        let url = if base.ends_with("/api/v2/alerts") {
            base.to_string()
        } else {
            format!("{base}/api/v2/alerts")
        };
        AlertmanagerChannel {
            url,
            send_resolved,
            ctx,
        }
    }

    /// Alertmanager's `PostableAlerts` for `n`.
    pub fn payload(n: &Notification) -> serde_json::Value {
        let alerts: Vec<serde_json::Value> = n
            .alerts
            .iter()
            .map(|a| {
                let mut v = serde_json::json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": a.starts_at,
                    "generatorURL": a.generator_url,
                });
                if a.ends_at != GO_ZERO_TIME
                    && let Some(obj) = v.as_object_mut()
                {
                    obj.insert(
                        "endsAt".into(),
                        serde_json::Value::String(a.ends_at.clone()),
                    );
                }
                v
            })
            .collect();
        serde_json::Value::Array(alerts)
    }
}

impl Channel for AlertmanagerChannel {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            post_json(&self.ctx.http, &self.url, &Self::payload(n))
                .await
                .map(|_| ())
        })
    }
}
