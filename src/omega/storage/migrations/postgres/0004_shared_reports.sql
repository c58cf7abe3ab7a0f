-- Two-server popularity reports (see omega.protocol.shares): each waits here, encoded
-- (msgpack), until a round has the helper verify and aggregate it. No viewer id.
-- batch: set just before the helper aggregates the report, so a round that dies after
-- the helper answered sends the very same batch again (and gets the same answer).
CREATE TABLE pending_shares (
    seq BIGSERIAL PRIMARY KEY,
    body BYTEA NOT NULL,
    batch TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
-- Exact counts (buckets = 0) carry the variance of the noise the servers added.
ALTER TABLE popularity_counts ADD COLUMN noise_variance DOUBLE PRECISION NOT NULL DEFAULT 0;
