//! Email over SMTP (lettre, rustls): STARTTLS when `require_tls` (the
//! default), implicit TLS with `implicit_tls`, plain only when neither;
//! HTML and plain-text parts; UTF-8 subjects like `[FIRING:2] HighLatency model=…`.

use std::time::Duration;

use futures::future::BoxFuture;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Channel, ChannelContext};
use crate::alerting::AlertingError;
use crate::alerting::message::{render_custom, render_message};
use crate::alerting::notification::Notification;
use crate::alerting::retry::SendError;
use crate::config::EmailConfig;

/// An `email_configs` entry.
pub struct EmailChannel {
    cfg: EmailConfig,
    ctx: ChannelContext,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

fn config_err(m: String) -> AlertingError {
    AlertingError::Config(format!("email_configs: {m}"))
}

impl EmailChannel {
    /// Checks addresses and builds the SMTP transport (no connection yet).
    pub fn new(cfg: EmailConfig, ctx: ChannelContext) -> Result<Self, AlertingError> {
        let smarthost = cfg
            .smarthost
            .clone()
            .ok_or_else(|| config_err("smarthost (host:port) is required".into()))?;
        let (host, port) = smarthost
            .rsplit_once(':')
            .and_then(|(h, p)| {
                p.parse::<u16>()
                    .ok()
                    .map(|p| (h.trim_matches(['[', ']']).to_string(), p))
            })
            .ok_or_else(|| config_err(format!("smarthost {smarthost:?} is not host:port")))?;
        let from_text = cfg
            .from
            .clone()
            .ok_or_else(|| config_err("from is required".into()))?;
        let from: Mailbox = from_text
            .parse()
            .map_err(|e| config_err(format!("from {from_text:?}: {e}")))?;
        let to = cfg
            .to
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Mailbox>()
                    .map_err(|e| config_err(format!("to {s:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(config_err("to is empty".into()));
        }
        let builder = if cfg.implicit_tls {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|e| config_err(e.to_string()))?
        } else if cfg.require_tls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|e| config_err(e.to_string()))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
        };
        let mut builder = builder.port(port).timeout(Some(Duration::from_secs(15)));
        if let Some(user) = &cfg.auth_username {
            let password = cfg
                .auth_password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(EmailChannel {
            transport: builder.build(),
            cfg,
            ctx,
            from,
            to,
        })
    }

    /// The email for `n`.
    pub fn message(&self, n: &Notification) -> Result<lettre::Message, SendError> {
        let m = render_message(n, self.ctx.language);
        let subject = match self.cfg.headers.get("Subject") {
            Some(t) => render_custom(t, n).unwrap_or_else(|_| m.title.clone()),
            None => m.title.clone(),
        };
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject);
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.multipart(MultiPart::alternative_plain_html(m.text, m.html))
            .map_err(|e| SendError::Fatal(format!("cannot build email: {e}")))
    }
}

impl Channel for EmailChannel {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let msg = self.message(n)?;
            match self.transport.send(msg).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendError::Fatal(format!("SMTP: {e}"))),
                Err(e) => Err(SendError::retry(format!("SMTP: {e}"))),
            }
        })
    }
}
