//! What the Targets and Alerts pages show, as plain rows. The composition
//! root fills them from the scraper, the rule manager and the alert manager,
//! so the pages name none of them.

use futures::future::BoxFuture;

/// One scrape target.
#[derive(Clone, Debug, Default)]
pub struct TargetRow {
    /// Job.
    pub job: String,
    /// Scrape URL.
    pub url: String,
    /// Target labels, `a="b", …`.
    pub labels: String,
    /// `up`, `down` or `unknown`.
    pub health: String,
    /// Last scrape, ms (0 = never).
    pub last_scrape_ms: i64,
    /// Last scrape duration, seconds.
    pub duration_seconds: f64,
    /// Last error.
    pub error: String,
}

/// One pending or firing alert.
#[derive(Clone, Debug, Default)]
pub struct AlertRow {
    /// Alert name.
    pub name: String,
    /// `pending` or `firing`.
    pub state: String,
    /// Labels as `name="value"` strings.
    pub labels: Vec<String>,
    /// Annotations (name, text).
    pub annotations: Vec<(String, String)>,
    /// Active since, ms.
    pub since_ms: i64,
    /// Value of the expression.
    pub value: f64,
    /// Matchers that would silence exactly this alert (for the pre-filled form).
    pub silence_matchers: String,
}

/// One rule.
#[derive(Clone, Debug, Default)]
pub struct RuleRow {
    /// Group.
    pub group: String,
    /// Alert or record name.
    pub name: String,
    /// `alerting` or `recording`.
    pub kind: String,
    /// State (`inactive`, `pending`, `firing`; `ok`/`err` for recording rules).
    pub state: String,
    /// Expression.
    pub expr: String,
    /// Last evaluation, ms (0 = never).
    pub last_eval_ms: i64,
    /// Last error.
    pub error: String,
}

/// One silence.
#[derive(Clone, Debug, Default)]
pub struct SilenceRow {
    /// Id.
    pub id: String,
    /// Matchers, `a="b", …`.
    pub matchers: String,
    /// `active`, `pending`, `expired`.
    pub state: String,
    /// Ends, ms.
    pub ends_ms: i64,
    /// Author.
    pub created_by: String,
    /// Reason.
    pub comment: String,
}

/// One delivery attempt in the notification log.
#[derive(Clone, Debug, Default)]
pub struct NotificationRow {
    /// When it finished (or was queued), ms.
    pub when_ms: i64,
    /// Receiver/integration.
    pub receiver: String,
    /// `sent`, `failed`, `queued`…
    pub status: String,
    /// Attempts.
    pub attempts: u32,
    /// What was sent.
    pub summary: String,
    /// Last error.
    pub error: String,
}

/// Everything the Alerts page shows.
#[derive(Clone, Debug, Default)]
pub struct AlertsView {
    /// Pending and firing alerts.
    pub alerts: Vec<AlertRow>,
    /// Rules.
    pub rules: Vec<RuleRow>,
    /// Silences.
    pub silences: Vec<SilenceRow>,
    /// Recent deliveries.
    pub notifications: Vec<NotificationRow>,
}

/// The operations behind the Targets and Alerts pages.
pub trait Operations: Send + Sync {
    /// Every scrape target.
    fn targets(&self) -> Vec<TargetRow>;
    /// Alerts, rules, silences, notification log.
    fn alerts(&self) -> BoxFuture<'static, AlertsView>;
    /// Creates a silence from `name="value"` matchers for `hours`; returns its id.
    fn create_silence(
        &self,
        matchers: Vec<String>,
        hours: f64,
        created_by: String,
        comment: String,
    ) -> Result<String, SilenceFormError>;
    /// Expires a silence.
    fn expire_silence(&self, id: &str) -> Result<(), SilenceFormError>;
}

/// Why the Alerts page could not create or expire a silence (shown on the page).
#[derive(Debug, thiserror::Error)]
pub enum SilenceFormError {
    /// A matcher does not parse.
    #[error(transparent)]
    Matcher(#[from] crate::model::MatcherError),
    /// The form had no matcher.
    #[error("give at least one matcher, e.g. alertname=\"HighLatency\"")]
    NoMatchers,
    /// The alert manager refused or failed.
    #[error(transparent)]
    Alerting(#[from] crate::alerting::AlertingError),
    /// No alert manager is wired.
    #[error("alerting is not running")]
    NotRunning,
}

/// No scraper or alerting wired (unit tests of other pages).
pub struct NoOperations;

impl Operations for NoOperations {
    fn targets(&self) -> Vec<TargetRow> {
        Vec::new()
    }
    fn alerts(&self) -> BoxFuture<'static, AlertsView> {
        Box::pin(async { AlertsView::default() })
    }
    fn create_silence(
        &self,
        _: Vec<String>,
        _: f64,
        _: String,
        _: String,
    ) -> Result<String, SilenceFormError> {
        Err(SilenceFormError::NotRunning)
    }
    fn expire_silence(&self, _: &str) -> Result<(), SilenceFormError> {
        Err(SilenceFormError::NotRunning)
    }
}
