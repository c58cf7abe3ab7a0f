-- Item popularity by local differential privacy (OLH, see omega.protocol.frequency).
-- The catalog's public item ids travel with the codebook (JSON array; NULL: none).
ALTER TABLE codebooks ADD COLUMN item_ids TEXT;
-- Reports wait here until a round folds them into support counts. No viewer id: a
-- report is only needed as a count, and the batch's idempotency lives in push_batches.
CREATE TABLE pending_reports (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    seed INTEGER NOT NULL,
    value INTEGER NOT NULL,
    buckets INTEGER NOT NULL,
    epsilon REAL NOT NULL,
    created_at REAL NOT NULL
);
-- Per catalog (codebook) and report parameters: reports folded and, per catalog item
-- in the codebook's item_ids order, how many reports each matched (int64 LE).
CREATE TABLE popularity_counts (
    codebook_id TEXT NOT NULL,
    buckets INTEGER NOT NULL,
    epsilon REAL NOT NULL,
    reports INTEGER NOT NULL,
    support BLOB NOT NULL,
    PRIMARY KEY (codebook_id, buckets, epsilon)
);
-- The released popularity list: score 0 marks a title that left the top.
CREATE TABLE popular (
    item_id TEXT PRIMARY KEY,
    score REAL NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX popular_version ON popular (version);
