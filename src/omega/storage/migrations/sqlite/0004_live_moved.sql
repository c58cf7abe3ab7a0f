-- The live set moved to its own file (migrations/sqlite_live); the store copied any rows
-- of this table there before this migration runs (SQLiteStorage.migrate).
DROP TABLE live;
-- How far the queue has been deleted as folded into the live file: a live file that has
-- folded less than this is older than this file (see omega.storage._sqlite_live).
CREATE TABLE queue_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    deleted_through INTEGER NOT NULL
) STRICT;
INSERT INTO queue_state (id, deleted_through) VALUES (1, 0);
