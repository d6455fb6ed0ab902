//! The receiver used when no route is configured: notifications go to the log.

use futures::future::BoxFuture;

use super::{Channel, ChannelContext};
use crate::alerting::message::render_message;
use crate::alerting::notification::Notification;
use crate::alerting::retry::SendError;

/// Writes each notification as a warning line.
pub struct LogChannel {
    ctx: ChannelContext,
}

impl LogChannel {
    /// A log channel.
    pub fn new(ctx: ChannelContext) -> Self {
        LogChannel { ctx }
    }
}

impl Channel for LogChannel {
    fn kind(&self) -> &'static str {
        "log"
    }

    fn send_resolved(&self) -> bool {
        true
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let m = render_message(n, self.ctx.language);
            tracing::warn!(receiver = %n.receiver, group = %n.group_key, "alert notification: {}\n{}", m.title, m.text);
            Ok(())
        })
    }
}
