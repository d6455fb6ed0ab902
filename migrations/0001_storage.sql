-- The time-series store. Layout and chunk encoding: src/storage/FORMAT.md.

-- One row per label set. `labels` is the canonical JSON object (keys sorted).
CREATE TABLE series (
    id     INTEGER PRIMARY KEY,
    labels TEXT NOT NULL UNIQUE
);

-- Closed chunks: one series' consecutive samples, encoded (FORMAT.md).
CREATE TABLE chunks (
    series_id INTEGER NOT NULL,
    min_t     INTEGER NOT NULL,
    max_t     INTEGER NOT NULL,
    samples   INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (series_id, min_t)
) WITHOUT ROWID;

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
