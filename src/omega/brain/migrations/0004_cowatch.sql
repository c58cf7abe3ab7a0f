-- Co-watch knowledge (issue #20). ``cowatch``: the released table, one row per source
-- title (its position in the server's catalog order), its neighbours' positions and
-- quantised counts as little-endian int32 arrays; a pulled page replaces the rows it
-- carries. ``cowatch_sent``: the ordered pairs (a → b, the brain's own title keys) this
-- TV already contributed, and in which epoch, so that no pair is ever sent twice.
CREATE TABLE cowatch (
    source INTEGER PRIMARY KEY,
    neighbours BLOB NOT NULL,
    counts BLOB NOT NULL
);
CREATE TABLE cowatch_sent (
    a INTEGER NOT NULL,
    b INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    PRIMARY KEY (a, b)
);
CREATE INDEX cowatch_sent_epoch ON cowatch_sent (epoch);
