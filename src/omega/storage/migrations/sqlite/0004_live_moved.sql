-- The live set moved to its own file (migrations/sqlite_live); the store copied any rows
-- of this table there before this migration runs (SQLiteStorage.migrate).
DROP TABLE live;
