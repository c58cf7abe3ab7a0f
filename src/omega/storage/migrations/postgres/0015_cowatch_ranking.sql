-- How the co-watch release ranks a title's neighbours (omega.federation.cowatch.Ranking,
-- docs/cowatch.md). With the spread rule on, a source's released row depends on its
-- neighbours' own best counts: a fold that raises a title's best re-ranks every row
-- pointing at that title (the index by neighbour), and reads each neighbour's best (the
-- index by source and count, which also serves the source's own pairs). A fold whose
-- ranking differs from the one recorded here re-ranks every row.
DROP INDEX cowatch_pairs_a;
CREATE INDEX cowatch_pairs_a_tvs ON cowatch_pairs (a, tvs);
CREATE INDEX cowatch_pairs_b ON cowatch_pairs (b);
CREATE TABLE cowatch_ranking (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    policy TEXT NOT NULL
);
INSERT INTO cowatch_ranking (id, policy) VALUES (1, '');
