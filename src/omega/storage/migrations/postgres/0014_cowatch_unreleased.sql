-- Co-watch batches folded with central DP on that no private release has covered yet
-- (omega.federation.cowatch, docs/cowatch.md): a fold adds one in its transaction, a
-- private release sets it back to 0 in its own. A round releases whenever it is above 0,
-- so a round that folded and then failed before its release leaves the next round to
-- release, new batch or not.
CREATE TABLE cowatch_unreleased (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    folds BIGINT NOT NULL
);
INSERT INTO cowatch_unreleased (id, folds) VALUES (1, 0);
