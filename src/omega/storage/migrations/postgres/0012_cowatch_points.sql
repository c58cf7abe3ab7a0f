-- The OPRF points each viewer had evaluated in its current epoch (a SHA-256 of each): a
-- retried request whose answer was lost is answered again without a second charge
-- (docs/cowatch.md). Past epochs' rows are deleted at the viewer's next charge.
CREATE TABLE cowatch_points (
    viewer_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    digest BYTEA NOT NULL,
    PRIMARY KEY (viewer_id, epoch, digest)
);
