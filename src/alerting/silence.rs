//! Silences, in Alertmanager's v2 API shape: matchers plus a time window.
//! Kept in memory for matching and in the state store so they survive restarts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{AlertingError, NowFn, parse_rfc3339, rfc3339};
use crate::model::{Labels, MatchOp, Matcher};
use crate::storage::StateStore;

/// Expired silences are kept this long (Alertmanager's `data.retention`, 120h).
const EXPIRED_RETENTION_MS: i64 = 120 * 3600 * 1000;

/// One matcher of a silence (Alertmanager's JSON shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    /// Label name.
    pub name: String,
    /// Value or regex.
    pub value: String,
    /// Regex match.
    pub is_regex: bool,
    /// Equality (false = negated), default true.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// `name="value"` with the matcher's operator (`=`, `!=`, `=~`, `!~`), as
/// the dashboard lists a silence. The value is written as given.
impl std::fmt::Display for SilenceMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        write!(f, "{}{op}\"{}\"", self.name, self.value)
    }
}

impl SilenceMatcher {
    fn to_matcher(&self) -> Result<Matcher, AlertingError> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(&self.name, op, &self.value)
            .map_err(|e| AlertingError::BadSilence(e.to_string()))
    }
}

/// State of a silence at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    /// In force.
    Active,
    /// Over.
    Expired,
}

/// A silence as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Id (random hex).
    pub id: String,
    /// All must match an alert.
    pub matchers: Vec<SilenceMatcher>,
    /// Start (ms).
    pub starts_at_ms: i64,
    /// End (ms).
    pub ends_at_ms: i64,
    /// Last change (ms).
    pub updated_at_ms: i64,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// The state at `now`.
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else if now_ms < self.ends_at_ms {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Alertmanager's `GettableSilence` JSON.
    pub fn to_api(&self, now_ms: i64) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "status": {"state": self.state(now_ms)},
            "updatedAt": rfc3339(self.updated_at_ms),
            "matchers": self.matchers,
            "startsAt": rfc3339(self.starts_at_ms),
            "endsAt": rfc3339(self.ends_at_ms),
            "createdBy": self.created_by,
            "comment": self.comment,
        })
    }
}

/// Alertmanager's `PostableSilence` (an `id` updates that silence).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    /// Existing silence to replace.
    #[serde(default)]
    pub id: Option<String>,
    /// Matchers.
    pub matchers: Vec<SilenceMatcher>,
    /// Start (RFC 3339).
    pub starts_at: String,
    /// End (RFC 3339).
    pub ends_at: String,
    /// Author.
    #[serde(default)]
    pub created_by: String,
    /// Reason.
    #[serde(default)]
    pub comment: String,
}

struct Compiled {
    silence: Silence,
    matchers: Vec<Matcher>,
}

/// Every silence, matched against alerts.
pub struct Silences {
    items: Mutex<BTreeMap<String, Compiled>>,
    store: Arc<StateStore>,
    now: NowFn,
}

impl Silences {
    /// Loads the stored silences.
    pub fn load(store: Arc<StateStore>, now: NowFn) -> Result<Self, AlertingError> {
        let mut items = BTreeMap::new();
        for json in store.load_silences()? {
            match serde_json::from_str::<Silence>(&json) {
                Ok(s) => match compile(&s.matchers) {
                    Ok(matchers) => {
                        items.insert(
                            s.id.clone(),
                            Compiled {
                                silence: s,
                                matchers,
                            },
                        );
                    }
                    Err(e) => tracing::warn!(error = %e, "ignoring stored silence"),
                },
                Err(e) => tracing::warn!(error = %e, "ignoring unreadable stored silence"),
            }
        }
        Ok(Silences {
            items: Mutex::new(items),
            store,
            now,
        })
    }

    /// Every silence (newest change first is the caller's choice).
    pub fn list(&self) -> Vec<Silence> {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|c| c.silence.clone())
            .collect()
    }

    /// One silence.
    pub fn get(&self, id: &str) -> Option<Silence> {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|c| c.silence.clone())
    }

    /// Creates or updates a silence; returns its id.
    pub fn upsert(&self, p: PostableSilence) -> Result<String, AlertingError> {
        let now = (self.now)();
        if p.matchers.is_empty() {
            return Err(AlertingError::BadSilence(
                "at least one matcher is required".into(),
            ));
        }
        let starts = parse_rfc3339(&p.starts_at).ok_or_else(|| {
            AlertingError::BadSilence(format!(
                "startsAt {:?} is not an RFC 3339 time",
                p.starts_at
            ))
        })?;
        let ends = parse_rfc3339(&p.ends_at).ok_or_else(|| {
            AlertingError::BadSilence(format!("endsAt {:?} is not an RFC 3339 time", p.ends_at))
        })?;
        if ends <= starts {
            return Err(AlertingError::BadSilence(
                "endsAt must be after startsAt".into(),
            ));
        }
        if ends <= now {
            return Err(AlertingError::BadSilence("endsAt is in the past".into()));
        }
        let matchers = compile(&p.matchers)?;
        if matchers.iter().all(|m| m.matches("")) {
            return Err(AlertingError::BadSilence(
                "at least one matcher must not match the empty string".into(),
            ));
        }
        let id = match &p.id {
            Some(id) if !id.is_empty() => {
                if self.get(id).is_none() {
                    return Err(AlertingError::NoSilence(id.clone()));
                }
                id.clone()
            }
            _ => new_id(),
        };
        let silence = Silence {
            id: id.clone(),
            matchers: p.matchers,
            // A start in the past means "from now", as in Alertmanager.
            starts_at_ms: starts.max(now),
            ends_at_ms: ends,
            updated_at_ms: now,
            created_by: p.created_by,
            comment: p.comment,
        };
        self.save(silence, matchers)?;
        Ok(id)
    }

    /// Ends a silence now.
    pub fn expire(&self, id: &str) -> Result<(), AlertingError> {
        let now = (self.now)();
        let mut s = self
            .get(id)
            .ok_or_else(|| AlertingError::NoSilence(id.to_string()))?;
        if s.state(now) == SilenceState::Expired {
            return Ok(());
        }
        if s.starts_at_ms > now {
            s.starts_at_ms = now;
        }
        s.ends_at_ms = now;
        s.updated_at_ms = now;
        let matchers = compile(&s.matchers)?;
        self.save(s, matchers)
    }

    fn save(&self, silence: Silence, matchers: Vec<Matcher>) -> Result<(), AlertingError> {
        let json = serde_json::to_string(&silence)
            .map_err(|e| AlertingError::BadSilence(e.to_string()))?;
        self.store
            .put_silence(&silence.id, &json, silence.ends_at_ms)?;
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(silence.id.clone(), Compiled { silence, matchers });
        Ok(())
    }

    /// Ids of the active silences that match `labels` at `now`.
    pub fn silenced_by(&self, labels: &Labels, now_ms: i64) -> Vec<String> {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|c| c.silence.state(now_ms) == SilenceState::Active)
            .filter(|c| c.matchers.iter().all(|m| m.matches_labels(labels)))
            .map(|c| c.silence.id.clone())
            .collect()
    }

    /// Forgets silences expired long ago.
    pub fn gc(&self, now_ms: i64) {
        let cutoff = now_ms - EXPIRED_RETENTION_MS;
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, c| c.silence.ends_at_ms >= cutoff);
        if let Err(e) = self.store.gc_silences(cutoff) {
            tracing::warn!(error = %e, "cannot delete old silences");
        }
    }
}

fn compile(ms: &[SilenceMatcher]) -> Result<Vec<Matcher>, AlertingError> {
    ms.iter().map(SilenceMatcher::to_matcher).collect()
}

fn new_id() -> String {
    // 128 random bits in UUID form, as Alertmanager's ids look.
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn post(matchers: Vec<SilenceMatcher>, start: &str, end: &str) -> PostableSilence {
        PostableSilence {
            id: None,
            matchers,
            starts_at: start.into(),
            ends_at: end.into(),
            created_by: "me".into(),
            comment: "maintenance".into(),
        }
    }

    fn m(name: &str, value: &str, is_regex: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal: true,
        }
    }

    #[test]
    fn silence_lifecycle_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(&dir.path().join("state.db")).unwrap());
        let clock = Arc::new(AtomicI64::new(
            parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        ));
        let c = clock.clone();
        let now: NowFn = Arc::new(move || c.load(Ordering::SeqCst));
        let s = Silences::load(store.clone(), now.clone()).unwrap();
        let alert = Labels::new([("alertname", "GpuHot"), ("gpu", "0")]);
        let id = s
            .upsert(post(
                vec![m("alertname", "Gpu.*", true)],
                "2026-01-01T00:00:00Z",
                "2026-01-01T01:00:00Z",
            ))
            .unwrap();
        assert_eq!(s.silenced_by(&alert, now()), vec![id.clone()]);
        assert!(
            s.silenced_by(&Labels::new([("alertname", "Other")]), now())
                .is_empty()
        );
        // Reloaded from the file, still in force.
        let s2 = Silences::load(store, now.clone()).unwrap();
        assert_eq!(s2.silenced_by(&alert, now()), vec![id.clone()]);
        clock.fetch_add(60_000, Ordering::SeqCst);
        s2.expire(&id).unwrap();
        assert!(s2.silenced_by(&alert, now()).is_empty());
        assert_eq!(s2.get(&id).unwrap().state(now()), SilenceState::Expired);
        // Invalid ones are refused.
        assert!(
            s2.upsert(post(vec![], "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z"))
                .is_err()
        );
        assert!(
            s2.upsert(post(
                vec![m("a", ".*", true)],
                "2026-01-01T00:00:00Z",
                "2026-01-01T02:00:00Z"
            ))
            .is_err()
        );
        assert!(
            s2.upsert(post(
                vec![m("a", "b", false)],
                "2026-01-01T00:00:00Z",
                "2025-01-01T00:00:00Z"
            ))
            .is_err()
        );
    }
}
