//! Opens the database file with the pragmas the store relies on and applies
//! the numbered migrations in `migrations/` that it has not seen yet.

use rusqlite::Connection;

/// Migrations in order; `PRAGMA user_version` records how many were applied.
const MIGRATIONS: &[(&str, &str)] = &[
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
];

/// Pragmas for the one writer: WAL so readers never block it, and a full
/// sync on every commit so an acknowledged append survives `kill -9`.
pub fn open_writer(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // page_size and auto_vacuum must be chosen before the first table
    // exists (an existing file keeps its own). auto_vacuum lets retention
    // give freed pages back to the file system; 16 KiB pages hold several
    // day-sized chunks each, where 4 KiB pages left a quarter of the chunk
    // pages empty (FORMAT.md). The WAL file is checkpointed every 256
    // pages, the 4 MiB SQLite's default of 1000 pages meant at 4 KiB.
    conn.execute_batch(
        "PRAGMA page_size = 16384;
         PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA wal_autocheckpoint = 256;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = OFF;
         PRAGMA busy_timeout = 5000;",
    )?;
    migrate(&conn)?;
    Ok(conn)
}

/// A connection for queries; it never writes.
pub fn open_reader(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?
        .max(0) as usize;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
        tracing::info!(migration = name, "applying storage migration");
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}
