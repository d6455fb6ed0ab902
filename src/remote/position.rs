//! A destination's durable position in the WAL: every row up to `seq` is
//! delivered. It lives in the store (`wal_followers`), so it survives
//! `kill -9`, and it is what keeps undelivered rows from being truncated.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::RemoteError;
use crate::storage::{FollowerState, SqliteStorage};

/// One destination's position.
pub struct Position {
    name: String,
    storage: SqliteStorage,
    /// Shared with the gauge task, which reports the backlog after it.
    seq: Arc<AtomicI64>,
    dropped_seen: u64,
}

impl Position {
    /// Loads (or, for a new destination, starts at the newest row) the
    /// position of `name`.
    pub async fn open(storage: SqliteStorage, name: &str) -> Result<Self, RemoteError> {
        let s = storage.clone();
        let n = name.to_string();
        let state = blocking(move || s.follow_wal(&n)).await?;
        Ok(Position {
            name: name.to_string(),
            storage,
            seq: Arc::new(AtomicI64::new(state.seq)),
            dropped_seen: state.dropped_samples,
        })
    }

    /// Every row up to this is delivered.
    pub fn seq(&self) -> i64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// The position, for readers on other tasks.
    pub fn shared(&self) -> Arc<AtomicI64> {
        self.seq.clone()
    }

    /// Saves that every row up to `seq` is delivered. Returns the samples the
    /// store's hold bound dropped since the last call (they never reach the
    /// destination).
    pub async fn advance(&mut self, seq: i64) -> Result<u64, RemoteError> {
        let s = self.storage.clone();
        let n = self.name.clone();
        let state = blocking(move || s.advance_follower(&n, seq)).await?;
        self.seq.store(state.seq.max(seq), Ordering::Relaxed);
        let lost = state.dropped_samples.saturating_sub(self.dropped_seen);
        self.dropped_seen = state.dropped_samples;
        Ok(lost)
    }
}

/// Runs a store call off the async threads (each is one SQLite commit).
async fn blocking(
    f: impl FnOnce() -> Result<FollowerState, crate::storage::StorageError> + Send + 'static,
) -> Result<FollowerState, RemoteError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::storage::StorageError::Backend(e.to_string()))?
        .map_err(RemoteError::from)
}
