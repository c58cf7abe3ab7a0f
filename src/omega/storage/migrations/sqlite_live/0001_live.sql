-- The live set in a file of its own beside the main one (see omega.storage._sqlite_live):
-- each viewer's newest contribution per pattern id, folded from the main file's pending
-- queue by federation rounds, and how far into that queue the folding has come.

-- removed = 1 rows are removal markers: they keep the sequence number of the removal so
-- an older upsert applied later by another worker cannot bring the pattern back.
CREATE TABLE live (
    viewer_id    TEXT NOT NULL,
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

-- Every pending row with seq <= applied_seq is in the live set (and may be deleted from
-- the main file's queue); pending seq is AUTOINCREMENT, so it never goes back.
CREATE TABLE fold_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    applied_seq INTEGER NOT NULL
) STRICT;
INSERT INTO fold_state (id, applied_seq) VALUES (1, 0);
