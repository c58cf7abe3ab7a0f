-- The constellation's state: viewers, spent refresh tokens, the content codebook,
-- push idempotency records, pending contributions, each viewer's live patterns and the
-- versioned consolidated release. (Same tables as the SQLite schema; pgvector's
-- codebook_vectors table is created by PostgresStorage.migrate when the extension exists.)

CREATE TABLE viewers (
    viewer_id      TEXT PRIMARY KEY,
    region         TEXT NOT NULL,
    device_model   TEXT NOT NULL,
    client_version TEXT NOT NULL,
    created_at     DOUBLE PRECISION NOT NULL
);

CREATE TABLE refresh_tokens (
    jti       TEXT PRIMARY KEY,
    viewer_id TEXT NOT NULL REFERENCES viewers (viewer_id) ON DELETE CASCADE,
    used_at   DOUBLE PRECISION NOT NULL
);

CREATE SEQUENCE codebook_puts;
CREATE TABLE codebooks (
    codebook_id   TEXT PRIMARY KEY,
    dim           INTEGER NOT NULL CHECK (dim > 0),
    k             INTEGER NOT NULL CHECK (k > 0),
    centroids_f16 BYTEA NOT NULL,
    put_seq       BIGINT NOT NULL UNIQUE DEFAULT nextval('codebook_puts')
);

CREATE TABLE push_batches (
    viewer_id  TEXT NOT NULL REFERENCES viewers (viewer_id) ON DELETE CASCADE,
    batch_id   TEXT NOT NULL,
    digest     TEXT NOT NULL,
    ack        BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (viewer_id, batch_id)
);
CREATE INDEX push_batches_by_created ON push_batches (created_at);

CREATE TABLE pending (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    viewer_id   TEXT NOT NULL REFERENCES viewers (viewer_id) ON DELETE CASCADE,
    batch_id    TEXT NOT NULL,
    region      TEXT NOT NULL,
    codebook_id TEXT NOT NULL,
    pattern_id  TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('upsert', 'remove')),
    body        BYTEA,
    created_at  DOUBLE PRECISION NOT NULL,
    CHECK ((op = 'upsert') = (body IS NOT NULL))
);

-- removed rows are removal markers: they keep the sequence number of the removal so
-- an older upsert applied later by another worker cannot bring the pattern back.
CREATE TABLE live (
    viewer_id    TEXT NOT NULL REFERENCES viewers (viewer_id) ON DELETE CASCADE,
    pattern_id   TEXT NOT NULL,
    region       TEXT NOT NULL,
    codebook_id  TEXT NOT NULL,
    removed      BOOLEAN NOT NULL DEFAULT FALSE,
    task         TEXT,
    cells        INTEGER[],
    time_bucket  TEXT,
    day_type     TEXT,
    success_rate DOUBLE PRECISION,
    support      INTEGER,
    body         BYTEA,  -- the Pattern as msgpack
    seq          BIGINT NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (viewer_id, pattern_id)
);
CREATE INDEX live_by_codebook ON live (codebook_id, updated_at);
CREATE INDEX live_by_updated ON live (updated_at);

CREATE TABLE release_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO release_state (id, version) VALUES (1, 0);

CREATE TABLE releases (
    version    BIGINT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    upserted   INTEGER NOT NULL,
    removed    INTEGER NOT NULL
);

-- One row per pattern id ever released; removed marks the version that removed it.
CREATE TABLE released (
    pattern_id   TEXT PRIMARY KEY,
    version      BIGINT NOT NULL,
    removed      BOOLEAN NOT NULL DEFAULT FALSE,
    weight       DOUBLE PRECISION NOT NULL DEFAULT 0,
    task         TEXT,
    cells        INTEGER[],
    time_bucket  TEXT,
    day_type     TEXT,
    success_rate DOUBLE PRECISION,
    support      INTEGER,
    viewers      INTEGER,
    body         BYTEA  -- the ConsolidatedPattern as msgpack
);
CREATE INDEX released_by_version ON released (version, weight DESC);

-- The trends of the current release, in the order the worker ranked them.
CREATE TABLE trends (
    position INTEGER PRIMARY KEY,
    cell     INTEGER NOT NULL,
    region   TEXT NOT NULL,
    score    DOUBLE PRECISION NOT NULL,
    version  BIGINT NOT NULL
);
