//! A small durable store for alerting state, kept apart from the samples:
//! rule alert state (so a `for: 5m` alert survives a restart), silences, the
//! notification log (dedup across restarts), the notification outbox and the
//! delivery history. One SQLite file (`<storage.path>/state.db`), WAL mode,
//! one connection behind a mutex, so every write goes through one writer.
//!
//! Values are opaque JSON text: the parts that own them (rules, alerting)
//! decide their shape, this file only keeps them safe.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::StorageError;

/// One queued notification.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    /// Row id; also the delivery order within an integration.
    pub id: i64,
    /// Which integration sends it (`receiver/kind/index`).
    pub integration: String,
    /// The rendered message (JSON owned by the alerting part).
    pub payload_json: String,
    /// When it was queued (ms since the epoch).
    pub created_ms: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not before this time (ms since the epoch).
    pub next_attempt_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// One finished delivery (sent, or given up).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeliveryRecord {
    /// The outbox id it had.
    pub id: i64,
    /// Integration (`receiver/kind/index`).
    pub integration: String,
    /// `sent` or `failed`.
    pub status: String,
    /// A one-line description of the message.
    pub summary: String,
    /// Queued at (ms since the epoch).
    pub created_ms: i64,
    /// Finished at (ms since the epoch).
    pub finished_ms: i64,
    /// Attempts it took.
    pub attempts: u32,
    /// Final error, for failed deliveries.
    pub error: Option<String>,
}

/// The alert state store.
pub struct StateStore {
    conn: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> StorageError {
    StorageError::Backend(format!("state.db: {e}"))
}

impl StateStore {
    /// Opens (creating when missing) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(db_err)?;
        // Before the pragmas below write to the file.
        super::schema::check_not_newer(&conn, path, &super::schema::STATE)?;
        Self::init(conn, path)
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> Result<Self, StorageError> {
        Self::init(
            Connection::open_in_memory().map_err(db_err)?,
            Path::new(":memory:"),
        )
    }

    fn init(conn: Connection, path: &Path) -> Result<Self, StorageError> {
        // WAL + NORMAL: a committed transaction survives a process kill; only
        // a power cut may lose the last moments, which is acceptable here.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db_err)?;
        super::schema::migrate(&conn, path, &super::schema::STATE)?;
        Ok(StateStore {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StorageError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(db_err)
    }

    // ---- rule state ----

    /// Replaces the saved state of several rules at once (one transaction).
    pub fn save_rule_states(
        &self,
        states: &[(String, String)],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO rule_state (rule_key, state_json, saved_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(rule_key) DO UPDATE SET state_json = excluded.state_json, saved_ms = excluded.saved_ms",
                )?;
                for (key, json) in states {
                    put.execute(params![key, json, now_ms])?;
                }
            }
            tx.commit()
        })
    }

    /// Every saved rule state: (key, json, saved at ms).
    pub fn load_rule_states(&self) -> Result<Vec<(String, String, i64)>, StorageError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT rule_key, state_json, saved_ms FROM rule_state")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
    }

    // ---- silences ----

    /// Inserts or replaces a silence.
    pub fn put_silence(&self, id: &str, json: &str, ends_ms: i64) -> Result<(), StorageError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO silences (id, silence_json, ends_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET silence_json = excluded.silence_json, ends_ms = excluded.ends_ms",
                params![id, json, ends_ms],
            )
            .map(|_| ())
        })
    }

    /// Every stored silence (JSON).
    pub fn load_silences(&self) -> Result<Vec<String>, StorageError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT silence_json FROM silences ORDER BY id")?;
            st.query_map([], |r| r.get(0))?.collect()
        })
    }

    /// Deletes silences that ended before `before_ms` (Alertmanager keeps
    /// expired ones around for a while so they can be looked at).
    pub fn gc_silences(&self, before_ms: i64) -> Result<usize, StorageError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM silences WHERE ends_ms < ?1",
                params![before_ms],
            )
        })
    }

    // ---- notification log ----

    /// Records what was last notified for `key`.
    pub fn put_log_entry(
        &self,
        key: &str,
        json: &str,
        expires_ms: i64,
    ) -> Result<(), StorageError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO notification_log (log_key, entry_json, expires_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(log_key) DO UPDATE SET entry_json = excluded.entry_json, expires_ms = excluded.expires_ms",
                params![key, json, expires_ms],
            )
            .map(|_| ())
        })
    }

    /// What was last notified for `key`.
    pub fn log_entry(&self, key: &str) -> Result<Option<String>, StorageError> {
        self.with(|c| {
            c.query_row(
                "SELECT entry_json FROM notification_log WHERE log_key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Forgets log entries that expired before `now_ms`.
    pub fn gc_log(&self, now_ms: i64) -> Result<usize, StorageError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM notification_log WHERE expires_ms < ?1",
                params![now_ms],
            )
        })
    }

    // ---- outbox ----

    /// Queues a notification and, in the same transaction, records the
    /// notification-log entry that says it was sent: either both are durable
    /// or neither, so a crash can neither lose nor duplicate it.
    pub fn enqueue(
        &self,
        integration: &str,
        payload_json: &str,
        now_ms: i64,
        log: Option<(&str, &str, i64)>,
    ) -> Result<i64, StorageError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO outbox (integration, payload_json, created_ms, next_attempt_ms) VALUES (?1, ?2, ?3, ?3)",
                params![integration, payload_json, now_ms],
            )?;
            let id = tx.last_insert_rowid();
            if let Some((key, json, expires)) = log {
                tx.execute(
                    "INSERT INTO notification_log (log_key, entry_json, expires_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(log_key) DO UPDATE SET entry_json = excluded.entry_json, expires_ms = excluded.expires_ms",
                    params![key, json, expires],
                )?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    /// The oldest queued notification of `integration` (delivery is in order).
    pub fn next_queued(&self, integration: &str) -> Result<Option<OutboxRow>, StorageError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, integration, payload_json, created_ms, attempts, next_attempt_ms, last_error
                 FROM outbox WHERE integration = ?1 ORDER BY id LIMIT 1",
                params![integration],
                row_to_outbox,
            )
            .optional()
        })
    }

    /// Every queued notification, oldest first.
    pub fn queued(&self) -> Result<Vec<OutboxRow>, StorageError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, integration, payload_json, created_ms, attempts, next_attempt_ms, last_error
                 FROM outbox ORDER BY id",
            )?;
            st.query_map([], row_to_outbox)?.collect()
        })
    }

    /// Records a failed attempt and when to try again.
    pub fn reschedule(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<(), StorageError> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4 WHERE id = ?1",
                params![id, attempts, next_attempt_ms, error],
            )
            .map(|_| ())
        })
    }

    /// Moves a notification from the outbox to the history (sent or given up).
    pub fn finish(&self, row: &OutboxRow, record: &DeliveryRecord) -> Result<(), StorageError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![row.id])?;
            tx.execute(
                "INSERT OR REPLACE INTO delivery_history
                 (id, integration, status, summary, created_ms, finished_ms, attempts, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    record.id,
                    record.integration,
                    record.status,
                    record.summary,
                    record.created_ms,
                    record.finished_ms,
                    record.attempts,
                    record.error
                ],
            )?;
            tx.commit()
        })
    }

    /// The newest `limit` finished deliveries, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<DeliveryRecord>, StorageError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, integration, status, summary, created_ms, finished_ms, attempts, error
                 FROM delivery_history ORDER BY finished_ms DESC, id DESC LIMIT ?1",
            )?;
            st.query_map(params![limit as i64], |r| {
                Ok(DeliveryRecord {
                    id: r.get(0)?,
                    integration: r.get(1)?,
                    status: r.get(2)?,
                    summary: r.get(3)?,
                    created_ms: r.get(4)?,
                    finished_ms: r.get(5)?,
                    attempts: r.get(6)?,
                    error: r.get(7)?,
                })
            })?
            .collect()
        })
    }

    /// Deletes history older than `before_ms`.
    pub fn gc_history(&self, before_ms: i64) -> Result<usize, StorageError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM delivery_history WHERE finished_ms < ?1",
                params![before_ms],
            )
        })
    }
}

fn row_to_outbox(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        integration: r.get(1)?,
        payload_json: r.get(2)?,
        created_ms: r.get(3)?,
        attempts: r.get(4)?,
        next_attempt_ms: r.get(5)?,
        last_error: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_survives_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = StateStore::open(&path).unwrap();
            s.enqueue("r/webhook/0", "{\"n\":1}", 10, Some(("k", "{}", 99)))
                .unwrap();
            s.enqueue("r/webhook/0", "{\"n\":2}", 11, None).unwrap();
        }
        let s = StateStore::open(&path).unwrap();
        let first = s.next_queued("r/webhook/0").unwrap().unwrap();
        assert_eq!(first.payload_json, "{\"n\":1}");
        assert_eq!(s.log_entry("k").unwrap().as_deref(), Some("{}"));
        s.reschedule(first.id, 1, 500, "boom").unwrap();
        let again = s.next_queued("r/webhook/0").unwrap().unwrap();
        assert_eq!(
            (again.id, again.attempts, again.next_attempt_ms),
            (first.id, 1, 500)
        );
        let rec = DeliveryRecord {
            id: first.id,
            integration: first.integration.clone(),
            status: "sent".into(),
            summary: "x".into(),
            created_ms: 10,
            finished_ms: 600,
            attempts: 2,
            error: None,
        };
        s.finish(&again, &rec).unwrap();
        assert_eq!(
            s.next_queued("r/webhook/0").unwrap().unwrap().payload_json,
            "{\"n\":2}"
        );
        assert_eq!(s.history(10).unwrap(), vec![rec]);
    }
}
