-- The time-series store. Layout and chunk encoding: src/storage/FORMAT.md.

-- One row per label set. `labels` is the canonical JSON object (keys sorted).
CREATE TABLE series (
    id     INTEGER PRIMARY KEY,
    labels TEXT NOT NULL UNIQUE
);

-- Closed chunks: one series' consecutive samples, encoded (FORMAT.md).
-- A rowid table (not WITHOUT ROWID): SQLite then keeps a large blob's tail
-- in the leaf page and fills its overflow pages completely, so no page is
-- left mostly empty. `data` is last so reading the other columns never walks
-- the blob's overflow pages. encoding: 0 Gorilla, 1 pco (compacted days).
CREATE TABLE chunks (
    id        INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    min_t     INTEGER NOT NULL,
    max_t     INTEGER NOT NULL,
    samples   INTEGER NOT NULL,
    encoding  INTEGER NOT NULL DEFAULT 0,
    data      BLOB    NOT NULL
);
CREATE UNIQUE INDEX chunks_series_time ON chunks (series_id, min_t);

-- The open (head) chunk of each series as of the last checkpoint.
CREATE TABLE head_chunks (
    series_id INTEGER PRIMARY KEY,
    data      BLOB NOT NULL
);

-- Appended batches since the last checkpoint, replayed onto head_chunks at open.
CREATE TABLE wal (
    seq  INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
