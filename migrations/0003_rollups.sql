-- 5-minute rollups of raw samples older than storage.rollup_after, kept until
-- storage.rollup_retention. Layout: src/storage/FORMAT.md.

-- One row per series and UTC day: min_t is the day's start (ms), max_t the
-- time of the newest summarised raw sample, points the number of 5-minute
-- points, raw_samples how many raw samples were summarised (a day is
-- summarised again when newer or more raw samples turn up). A rowid table
-- with data last, as `chunks`.
CREATE TABLE rollups (
    id          INTEGER PRIMARY KEY,
    series_id   INTEGER NOT NULL,
    min_t       INTEGER NOT NULL,
    max_t       INTEGER NOT NULL,
    points      INTEGER NOT NULL,
    raw_samples INTEGER NOT NULL,
    data        BLOB    NOT NULL
);
CREATE UNIQUE INDEX rollups_series_time ON rollups (series_id, min_t);
