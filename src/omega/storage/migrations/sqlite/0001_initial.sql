-- The constellation's state: viewers, spent refresh tokens, the content codebook,
-- push idempotency records, pending contributions, each viewer's live patterns and the
-- versioned consolidated release.

CREATE TABLE viewers (
    viewer_id      TEXT PRIMARY KEY,
    region         TEXT NOT NULL,
    device_model   TEXT NOT NULL,
    client_version TEXT NOT NULL,
    created_at     REAL NOT NULL
) STRICT;

CREATE TABLE refresh_tokens (
    jti       TEXT PRIMARY KEY,
    viewer_id TEXT NOT NULL REFERENCES viewers (viewer_id) ON DELETE CASCADE,
    used_at   REAL NOT NULL
) STRICT;

CREATE TABLE codebooks (
    codebook_id   TEXT PRIMARY KEY,
    dim           INTEGER NOT NULL CHECK (dim > 0),
    k             INTEGER NOT NULL CHECK (k > 0),
    centroids_f16 BLOB NOT NULL,
    put_seq       INTEGER NOT NULL UNIQUE
) STRICT;

CREATE TABLE push_batches (
    viewer_id  TEXT NOT NULL REFERENCES viewers (viewer_id) ON DELETE CASCADE,
    batch_id   TEXT NOT NULL,
    digest     TEXT NOT NULL,
    ack        BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (viewer_id, batch_id)
) STRICT;
CREATE INDEX push_batches_by_created ON push_batches (created_at);

CREATE TABLE pending (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    viewer_id   TEXT NOT NULL REFERENCES viewers (viewer_id) ON DELETE CASCADE,
    batch_id    TEXT NOT NULL,
    region      TEXT NOT NULL,
    codebook_id TEXT NOT NULL,
    pattern_id  TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('upsert', 'remove')),
    body        BLOB,
    created_at  REAL NOT NULL,
    CHECK ((op = 'upsert') = (body IS NOT NULL))
) STRICT;

-- removed = 1 rows are removal markers: they keep the sequence number of the removal so
-- an older upsert applied later by another worker cannot bring the pattern back.
CREATE TABLE live (
    viewer_id    TEXT NOT NULL REFERENCES viewers (viewer_id) ON DELETE CASCADE,
    pattern_id   TEXT NOT NULL,
    region       TEXT NOT NULL,
    codebook_id  TEXT NOT NULL,
    removed      INTEGER NOT NULL DEFAULT 0 CHECK (removed IN (0, 1)),
    task         TEXT,
    cells        TEXT,  -- JSON array of codebook cells
    time_bucket  TEXT,
    day_type     TEXT,
    success_rate REAL,
    support      INTEGER,
    body         BLOB,  -- the Pattern as msgpack
    seq          INTEGER NOT NULL,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (viewer_id, pattern_id)
) STRICT;
CREATE INDEX live_by_codebook ON live (codebook_id, updated_at);
CREATE INDEX live_by_updated ON live (updated_at);

CREATE TABLE release_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO release_state (id, version) VALUES (1, 0);

CREATE TABLE releases (
    version    INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    upserted   INTEGER NOT NULL,
    removed    INTEGER NOT NULL
) STRICT;

-- One row per pattern id ever released; removed = 1 marks the version that removed it.
CREATE TABLE released (
    pattern_id   TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    removed      INTEGER NOT NULL DEFAULT 0 CHECK (removed IN (0, 1)),
    weight       REAL NOT NULL DEFAULT 0,
    task         TEXT,
    cells        TEXT,
    time_bucket  TEXT,
    day_type     TEXT,
    success_rate REAL,
    support      INTEGER,
    viewers      INTEGER,
    body         BLOB  -- the ConsolidatedPattern as msgpack
) STRICT;
CREATE INDEX released_by_version ON released (version, weight DESC);

-- The trends of the current release, in the order the worker ranked them.
CREATE TABLE trends (
    position INTEGER PRIMARY KEY,
    cell     INTEGER NOT NULL,
    region   TEXT NOT NULL,
    score    REAL NOT NULL,
    version  INTEGER NOT NULL
) STRICT;
