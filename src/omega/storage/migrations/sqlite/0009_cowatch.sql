-- Private co-watch knowledge (omega.protocol.cowatch, docs/cowatch.md).
-- The constellation's co-watch keys: the second OPRF key and the X25519 key TVs seal
-- their reports to (one row; made at first use).
CREATE TABLE cowatch_keys (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    oprf_key BLOB NOT NULL,
    hpke_key BLOB NOT NULL
);
-- OPRF points each viewer had evaluated per epoch (the per-TV rate limit).
CREATE TABLE cowatch_usage (
    viewer_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (viewer_id, epoch)
);
-- Opened reports from the helper's shuffled batches: one point of a tag's polynomial
-- each, no viewer. Below the threshold a tag's points reveal nothing of its pair.
CREATE TABLE cowatch_shares (
    tag BLOB NOT NULL,
    x BLOB NOT NULL,
    y BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (tag, x)
);
-- Pairs read from at least k points, with the distinct TVs (points on the polynomial).
CREATE TABLE cowatch_pairs (
    tag BLOB PRIMARY KEY,
    a INTEGER NOT NULL,
    b INTEGER NOT NULL,
    secret BLOB NOT NULL,
    tvs INTEGER NOT NULL
);
CREATE INDEX cowatch_pairs_a ON cowatch_pairs (a);
-- The released table: per source title its neighbours (msgpack [[b, count], …]), and the
-- co-watch version it last changed in (pulls page through it in (version, source) order).
CREATE TABLE cowatch_rows (
    source INTEGER PRIMARY KEY,
    neighbours BLOB NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX cowatch_rows_version ON cowatch_rows (version, source);
