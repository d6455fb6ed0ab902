//! Errors of the remote_write part.

use crate::storage::StorageError;

/// Why remote_write could not start or a request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A `remote_write` entry cannot be used as written.
    #[error("remote_write {remote}: {reason}")]
    Config {
        /// The entry's name (or URL hash).
        remote: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading the WAL or saving a position failed.
    #[error("remote_write storage: {0}")]
    Storage(#[from] StorageError),
    /// A request body could not be compressed.
    #[error("snappy compression failed: {0}")]
    Compress(#[from] snap::Error),
}
