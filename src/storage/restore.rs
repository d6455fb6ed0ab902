//! Restore: replaces a stopped store's database with a backup after checking
//! that the backup is a sound infermon store. The database it replaces is
//! kept beside it under a dated name, never deleted.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::sqlite::{DB_FILE, lock_dir};
use super::{SqliteStorage, StorageError, StorageOptions};

/// What a restore did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// Where the replaced database went, if there was one.
    pub replaced: Option<PathBuf>,
    /// Series in the restored store.
    pub series: u64,
    /// Samples in the restored store.
    pub samples: u64,
}

/// Checks that `backup` is an intact infermon store: SQLite's integrity
/// check passes and the store's tables are there.
pub fn verify_backup(backup: &Path) -> Result<(), StorageError> {
    let bad = |why: String| StorageError::Backend(format!("{}: {why}", backup.display()));
    let conn = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| bad(format!("cannot open: {e}")))?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| bad(format!("not an SQLite database ({e})")))?;
    if verdict != "ok" {
        return Err(bad(format!("failed the integrity check: {verdict}")));
    }
    for table in ["series", "chunks", "head_chunks", "wal"] {
        let found: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(|e| bad(e.to_string()))?;
        if found == 0 {
            return Err(bad(format!(
                "not an infermon store (no {table} table); pick a file from <snapshots dir>/backups/"
            )));
        }
    }
    // A backup from a newer infermon would be refused at the next start.
    super::schema::check_not_newer(&conn, backup, &super::schema::STORE)?;
    Ok(())
}

/// `dir/base`, or `dir/base-N` with the first N none of whose files
/// (`""`, `-wal`, `-shm`) exist: two restores within one second must not
/// rename the second replaced database over the first (rename replaces).
fn free_name(dir: &Path, base: &str) -> Result<PathBuf, StorageError> {
    let taken = |p: &Path| {
        ["", "-wal", "-shm"]
            .iter()
            .any(|suffix| PathBuf::from(format!("{}{suffix}", p.display())).exists())
    };
    let first = dir.join(base);
    if !taken(&first) {
        return Ok(first);
    }
    (1..10_000)
        .map(|n| dir.join(format!("{base}-{n}")))
        .find(|p| !taken(p))
        .ok_or_else(|| {
            StorageError::Backend(format!(
                "{}: too many replaced databases named {base}-N; move some away",
                dir.display()
            ))
        })
}

impl SqliteStorage {
    /// Replaces the database in `dir` with a copy of `backup`. Refuses while
    /// another process has `dir` open, and leaves `dir` untouched when the
    /// backup fails its checks. The copy is opened once (replaying the WAL
    /// rows the backup holds) before this returns.
    pub fn restore(
        backup: &Path,
        dir: &Path,
        opts: StorageOptions,
    ) -> Result<RestoreReport, StorageError> {
        verify_backup(backup)?;
        std::fs::create_dir_all(dir).map_err(super::sqlite::backend)?;
        let lock = lock_dir(dir)?;
        let io = |what: &str, p: &Path, e: std::io::Error| {
            StorageError::Backend(format!("cannot {what} {}: {e}", p.display()))
        };
        let db = dir.join(DB_FILE);
        let incoming = dir.join(format!("{DB_FILE}.restoring"));
        std::fs::copy(backup, &incoming).map_err(|e| io("copy the backup to", &incoming, e))?;
        std::fs::File::open(&incoming)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("sync", &incoming, e))?;
        let mut replaced = None;
        if db.exists() {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let aside = free_name(dir, &format!("{DB_FILE}.replaced-{stamp}"))?;
            // The -wal file holds committed pages of the old database: it
            // moves with it, under the name SQLite looks for.
            for suffix in ["-wal", "-shm", ""] {
                let from = PathBuf::from(format!("{}{suffix}", db.display()));
                if from.exists() {
                    let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                    std::fs::rename(&from, &to).map_err(|e| io("move aside", &from, e))?;
                }
            }
            replaced = Some(aside);
        }
        std::fs::rename(&incoming, &db).map_err(|e| io("rename", &incoming, e))?;
        drop(lock);
        let store = SqliteStorage::open(dir, opts)?;
        let stats = store.stats();
        store.close()?;
        Ok(RestoreReport {
            replaced,
            series: stats.series,
            samples: stats.samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_never_renames_over_an_earlier_replaced_database() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = SqliteStorage::open(&data, StorageOptions::default()).unwrap();
        let backup = dir.path().join("backup.db");
        store.backup_to(&backup).unwrap();
        store.close().unwrap();
        drop(store);
        // Earlier replaced databases under every name this second and the
        // next few could give.
        let now = chrono::Utc::now();
        let planted: Vec<PathBuf> = (0..10)
            .map(|i| {
                let stamp = (now + chrono::Duration::seconds(i)).format("%Y%m%dT%H%M%SZ");
                let p = data.join(format!("{DB_FILE}.replaced-{stamp}"));
                std::fs::write(&p, b"earlier").unwrap();
                p
            })
            .collect();
        let report = SqliteStorage::restore(&backup, &data, StorageOptions::default()).unwrap();
        let replaced = report.replaced.unwrap();
        assert!(replaced.is_file());
        assert!(!planted.contains(&replaced), "{}", replaced.display());
        for p in &planted {
            assert_eq!(std::fs::read(p).unwrap(), b"earlier", "{}", p.display());
        }
    }
}
