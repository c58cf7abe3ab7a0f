-- The co-watch pairs by neighbour: with the spread rule on (docs/cowatch.md) a source's
-- released row depends on its neighbours' own best counts, so a fold that raises a
-- title's best re-ranks every row pointing at that title.
CREATE INDEX cowatch_pairs_b ON cowatch_pairs (b);
