//! `snapshots:` — the daily export of yesterday's metrics.

use serde::{Deserialize, Serialize};

/// When and where daily snapshots are written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsConfig {
    /// Turn the daily snapshot on or off (default on).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Directory for `YYYY-MM-DD/` folders (default `<storage.path>/snapshots`).
    #[serde(default)]
    pub dir: Option<String>,
    /// Cron schedule with seconds (default `0 10 0 * * *`: 00:10 every day).
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// IANA time zone the day is counted in (default: the box's local zone).
    #[serde(default)]
    pub timezone: Option<String>,
    /// How many daily snapshots to keep (default 30).
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Cron schedule of the whole-database backup (default Sundays 01:00).
    #[serde(default = "default_backup_schedule")]
    pub backup_schedule: String,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("empty snapshots config deserializes")
    }
}

fn default_enabled() -> bool {
    true
}
fn default_schedule() -> String {
    "0 10 0 * * *".to_string()
}
fn default_keep() -> usize {
    30
}
fn default_backup_schedule() -> String {
    "0 0 1 * * Sun".to_string()
}

/// Checks a cron expression (with seconds) the way the snapshot scheduler
/// will read it.
pub fn validate_schedule(schedule: &str) -> Result<(), String> {
    tokio_cron_scheduler::Job::new_async(schedule, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_checked() {
        assert!(validate_schedule("0 10 0 * * *").is_ok());
        assert!(validate_schedule("every day").is_err());
    }
}
