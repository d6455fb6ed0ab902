-- The alert state store (<storage.path>/state.db): rule alert state,
-- silences, the notification log, the outbox and the delivery history
-- (src/storage/state.rs). `IF NOT EXISTS` because state.db files written
-- before the store was versioned already have these tables at version 0.
CREATE TABLE IF NOT EXISTS rule_state (
    rule_key TEXT PRIMARY KEY,
    state_json TEXT NOT NULL,
    saved_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    silence_json TEXT NOT NULL,
    ends_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notification_log (
    log_key TEXT PRIMARY KEY,
    entry_json TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    integration TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_integration ON outbox (integration, id);
CREATE TABLE IF NOT EXISTS delivery_history (
    id INTEGER PRIMARY KEY,
    integration TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    finished_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT
);
