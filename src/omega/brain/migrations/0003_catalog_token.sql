-- A random token replaced by every change to the set of titles (in the same
-- transaction): the saved float32 copy of the catalog's vectors is named by it, so a
-- copy is used only while the titles it was made from are the ones in this file.
-- (An older Omega, which would change titles without replacing it, refuses this schema.)
CREATE TABLE catalog_token (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    token TEXT NOT NULL
);
