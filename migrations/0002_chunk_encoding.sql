-- Chunks carry their encoding: 0 = Gorilla (written at ingest), 1 = pco
-- (written by compaction for whole days). See src/storage/FORMAT.md.
ALTER TABLE chunks ADD COLUMN encoding INTEGER NOT NULL DEFAULT 0;
