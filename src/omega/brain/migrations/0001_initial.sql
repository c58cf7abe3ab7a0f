CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    key INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    genres TEXT NOT NULL DEFAULT '',
    year INTEGER,
    runtime_min INTEGER,
    tags TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    embedding BLOB NOT NULL,
    cell INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE episodes (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    item_key INTEGER,
    session_id TEXT NOT NULL,
    time_bucket TEXT NOT NULL,
    day_type TEXT NOT NULL,
    reward REAL NOT NULL,
    success INTEGER NOT NULL,
    critique TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX episodes_ts ON episodes (ts);
CREATE INDEX episodes_item ON episodes (item_key);
CREATE TABLE patterns (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    cells TEXT NOT NULL,
    time_bucket TEXT NOT NULL,
    day_type TEXT NOT NULL,
    successes REAL NOT NULL,
    support INTEGER NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    shared_rate REAL NOT NULL DEFAULT -1,
    shared_support INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE collective (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    cells TEXT NOT NULL,
    time_bucket TEXT NOT NULL,
    day_type TEXT NOT NULL,
    success_rate REAL NOT NULL,
    support INTEGER NOT NULL,
    viewers INTEGER NOT NULL,
    weight REAL NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE trends (
    cell INTEGER PRIMARY KEY, score REAL NOT NULL, version INTEGER NOT NULL
);
CREATE TABLE skills (
    name TEXT NOT NULL,
    context TEXT NOT NULL,
    uses REAL NOT NULL,
    successes REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (name, context)
);
CREATE TABLE tiers (
    name TEXT PRIMARY KEY,
    vector BLOB NOT NULL,
    mass REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE outbox (
    pattern_id TEXT PRIMARY KEY,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'remove')),
    seq INTEGER NOT NULL,
    batch_id TEXT
);
CREATE TABLE inflight (
    batch_id TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE codebook (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    codebook_id TEXT NOT NULL,
    dim INTEGER NOT NULL,
    k INTEGER NOT NULL,
    centroids BLOB NOT NULL,
    origin TEXT NOT NULL
);
