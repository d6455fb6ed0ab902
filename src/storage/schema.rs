//! Opens the database files with the pragmas the store relies on and applies
//! the migrations they have not seen yet.
//!
//! Migrations are forward-only: a file's `PRAGMA user_version` is the number
//! of migrations applied to it, each migration runs in the transaction that
//! raises the version, and none is ever edited or removed once released (a
//! change is a new migration at the end). A file whose version is larger
//! than this binary knows was written by a newer infermon; it is refused
//! before anything writes to it, so going back to an older binary never
//! half-upgrades or corrupts a store.

use std::path::Path;

use rusqlite::Connection;

use super::StorageError;
use crate::config::Fsync;

/// The migrations of one database file, in order.
pub struct Migrations {
    /// The file's role, for messages (`infermon.db`, `state.db`).
    pub file: &'static str,
    /// (name, SQL) in order; the version after applying the first N is N.
    steps: &'static [(&'static str, &'static str)],
}

impl Migrations {
    /// The schema version this binary writes: the number of migrations.
    pub const fn version(&self) -> u32 {
        self.steps.len() as u32
    }
}

/// The time-series store (`infermon.db`); numbered files in `migrations/`.
pub const STORE: Migrations = Migrations {
    file: super::sqlite::DB_FILE,
    steps: &[
        (
            "0001_storage.sql",
            include_str!("../../migrations/0001_storage.sql"),
        ),
        (
            "0002_wal_followers.sql",
            include_str!("../../migrations/0002_wal_followers.sql"),
        ),
        (
            "0003_rollups.sql",
            include_str!("../../migrations/0003_rollups.sql"),
        ),
    ],
};

/// The alert state store (`state.db`). Its first version is the schema it
/// had before it was versioned (`IF NOT EXISTS`, so a store from then, at
/// version 0 with its tables present, takes it unchanged).
pub const STATE: Migrations = Migrations {
    file: "state.db",
    steps: &[(
        "state_0001.sql",
        include_str!("../../migrations/state/0001_state.sql"),
    )],
};

/// The schema version recorded in `conn`'s file (0 for a new file).
pub fn recorded_version(conn: &Connection) -> rusqlite::Result<u32> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    // A negative version is no version infermon wrote: read it as too new.
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

/// The schema version of an existing file, read without changing it;
/// `None` when the file does not exist.
pub fn file_version(path: &Path) -> Result<Option<u32>, StorageError> {
    if !path.exists() {
        return Ok(None);
    }
    // Read-write but never writing: a read-only connection to a WAL-mode
    // file would leave -wal and -shm files behind, which the last read-write
    // connection removes on close.
    let version = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .and_then(|c| recorded_version(&c))
        .map_err(|e| StorageError::Backend(format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(version))
}

/// Refuses a file written by a newer infermon; nothing has been written yet.
pub fn check_not_newer(
    conn: &Connection,
    path: &Path,
    migrations: &Migrations,
) -> Result<u32, StorageError> {
    let found = recorded_version(conn).map_err(|e| backend_at(path, e))?;
    if found > migrations.version() {
        return Err(StorageError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: migrations.version(),
        });
    }
    Ok(found)
}

fn backend_at(path: &Path, e: rusqlite::Error) -> StorageError {
    StorageError::Backend(format!("cannot open {}: {e}", path.display()))
}

/// Applies the migrations `conn` has not seen, each in its own transaction
/// with the version it reaches.
pub fn migrate(
    conn: &Connection,
    path: &Path,
    migrations: &Migrations,
) -> Result<(), StorageError> {
    let applied = check_not_newer(conn, path, migrations)? as usize;
    for (i, (name, sql)) in migrations.steps.iter().enumerate().skip(applied) {
        tracing::info!(
            file = migrations.file,
            migration = name,
            version = i + 1,
            "applying schema migration"
        );
        let step = || -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()
        };
        step().map_err(|e| {
            StorageError::Backend(format!(
                "{}: migration {name} to schema version {} failed (the file stays at version {i}): {e}",
                path.display(),
                i + 1
            ))
        })?;
    }
    Ok(())
}

/// Pragmas for the one writer: WAL so readers never block it, and a full
/// sync on every commit so an acknowledged append survives `kill -9`.
pub fn open_writer(path: &Path, fsync: Fsync) -> Result<Connection, StorageError> {
    let conn = Connection::open(path).map_err(|e| backend_at(path, e))?;
    // Before any pragma below writes to the file.
    check_not_newer(&conn, path, &STORE)?;
    // page_size and auto_vacuum must be chosen before the first table
    // exists (an existing file keeps its own). auto_vacuum lets retention
    // give freed pages back to the file system; 16 KiB pages hold several
    // day-sized chunks each, where 4 KiB pages left a quarter of the chunk
    // pages empty (FORMAT.md). The WAL file is checkpointed every 256
    // pages, the 4 MiB SQLite's default of 1000 pages meant at 4 KiB.
    // In WAL mode NORMAL writes each commit to the log without an fsync
    // (a killed process loses nothing; the log is fsync'd at checkpoints),
    // FULL fsyncs the log at every commit.
    let synchronous = match fsync {
        Fsync::Checkpoint => "NORMAL",
        Fsync::Commit => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA page_size = 16384;
         PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA wal_autocheckpoint = 256;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA foreign_keys = OFF;
         PRAGMA busy_timeout = 5000;"
    ))
    .map_err(|e| backend_at(path, e))?;
    migrate(&conn, path, &STORE)?;
    Ok(conn)
}

/// A connection for queries; it never writes.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")?;
    // Query-planner stability: bound values never make SQLite recompile a
    // statement. Queries bind one series and range after another to the
    // same cached statements, and re-preparing them on every bind cost
    // ~10 % of a long-range query.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn a_new_store_gets_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("infermon.db");
        let conn = open_writer(&path, Fsync::Commit).unwrap();
        assert_eq!(recorded_version(&conn).unwrap(), STORE.version());
        drop(conn);
        // Opening again applies nothing and keeps the version.
        let conn = open_writer(&path, Fsync::Commit).unwrap();
        assert_eq!(recorded_version(&conn).unwrap(), STORE.version());
    }

    #[test]
    fn storage_fsync_picks_the_synchronous_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("infermon.db");
        let level = |fsync| -> i64 {
            let conn = open_writer(&path, fsync).unwrap();
            conn.pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        // SQLite's numbering: 1 = NORMAL, 2 = FULL.
        assert_eq!(level(Fsync::Checkpoint), 1);
        assert_eq!(level(Fsync::Commit), 2);
    }

    #[test]
    fn a_store_from_a_newer_binary_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("infermon.db");
        {
            let conn = open_writer(&path, Fsync::Commit).unwrap();
            conn.pragma_update(None, "user_version", STORE.version() + 1)
                .unwrap();
            conn.execute_batch("PRAGMA journal_mode = DELETE").unwrap();
        }
        let before = bytes(&path);
        let err = open_writer(&path, Fsync::Commit).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, StorageError::SchemaTooNew { found, supported, .. }
                if found == STORE.version() + 1 && supported == STORE.version()),
            "{msg}"
        );
        assert!(msg.contains("newer infermon"), "{msg}");
        assert_eq!(bytes(&path), before, "a refused file must not change");
        assert!(!dir.path().join("infermon.db-wal").exists());
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        const BROKEN: Migrations = Migrations {
            file: "x.db",
            steps: &[
                ("one", "CREATE TABLE a (x INTEGER);"),
                ("two", "CREATE TABLE b (x INTEGER); CREATE TABLE a (y);"),
            ],
        };
        let conn = Connection::open(&path).unwrap();
        let err = migrate(&conn, &path, &BROKEN).unwrap_err().to_string();
        assert!(err.contains("migration two"), "{err}");
        assert_eq!(recorded_version(&conn).unwrap(), 1);
        let b: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(b, 0, "the failed step's first statement was rolled back");
    }
}
