-- remote_write follows the WAL (src/remote/mod.rs). `seq` must grow forever,
-- also across checkpoints that empty the table, so a follower's position
-- stays meaningful: AUTOINCREMENT never hands out a seq twice. `samples` and
-- `appended_ms` come before `data` so counting pending samples and finding
-- the oldest unsent batch never walk a blob's overflow pages.
CREATE TABLE wal_v2 (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    samples     INTEGER NOT NULL DEFAULT 0,
    appended_ms INTEGER NOT NULL DEFAULT 0,
    data        BLOB    NOT NULL
);
INSERT INTO wal_v2 (seq, data) SELECT seq, data FROM wal;
DROP TABLE wal;
ALTER TABLE wal_v2 RENAME TO wal;

-- One row per remote_write destination: every WAL row with a larger seq is
-- not yet delivered there, so a checkpoint keeps it (up to a size and age
-- bound; what the bound removes is added to `dropped_samples`).
CREATE TABLE wal_followers (
    name            TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,
    dropped_samples INTEGER NOT NULL DEFAULT 0,
    updated_ms      INTEGER NOT NULL
);
