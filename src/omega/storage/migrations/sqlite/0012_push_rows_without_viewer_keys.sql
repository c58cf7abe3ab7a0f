-- A push's rows no longer carry foreign keys to viewers: push_batches and pending (as
-- PostgreSQL's migration 0011, whose header says why: the push statement inserts its
-- batch only for a viewer in good standing, and its contributions only after that row).
-- Every row re-checked the key with a lookup in viewers (~60 µs of the writer thread's
-- CPU a push of 20 patterns). No viewer row is ever deleted (revocation marks it), so the
-- cascades never ran. SQLite drops a key only by rebuilding the table.
CREATE TABLE push_batches_new (
    viewer_id  TEXT NOT NULL,
    batch_id   TEXT NOT NULL,
    digest     TEXT NOT NULL,
    ack        BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (viewer_id, batch_id)
) STRICT;
INSERT INTO push_batches_new (viewer_id, batch_id, digest, ack, created_at)
SELECT viewer_id, batch_id, digest, ack, created_at FROM push_batches;
DROP TABLE push_batches;
ALTER TABLE push_batches_new RENAME TO push_batches;
CREATE INDEX push_batches_by_created ON push_batches (created_at);

CREATE TABLE pending_new (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    viewer_id    TEXT NOT NULL,
    batch_id     TEXT NOT NULL,
    region       TEXT NOT NULL,
    codebook_id  TEXT NOT NULL,
    pattern_id   TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('upsert', 'remove')),
    body         BLOB,
    created_at   REAL NOT NULL,
    task         TEXT,
    cells        TEXT,  -- JSON array of codebook cells
    time_bucket  TEXT,
    day_type     TEXT,
    success_rate REAL,
    support      INTEGER,
    CHECK ((op = 'upsert') = (body IS NOT NULL))
) STRICT;
INSERT INTO pending_new (seq, viewer_id, batch_id, region, codebook_id, pattern_id, op, body,
                         created_at, task, cells, time_bucket, day_type, success_rate, support)
SELECT seq, viewer_id, batch_id, region, codebook_id, pattern_id, op, body,
       created_at, task, cells, time_bucket, day_type, success_rate, support FROM pending;
-- The queue's numbering goes on where it was, past rows already folded and deleted (the
-- live file checks it against what it folded: omega.storage._sqlite_live).
DELETE FROM sqlite_sequence WHERE name = 'pending_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'pending_new', seq FROM sqlite_sequence
WHERE name = 'pending';
DROP TABLE pending;
ALTER TABLE pending_new RENAME TO pending;
