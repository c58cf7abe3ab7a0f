-- Pending contributions carry the pattern's structured fields (as in the PostgreSQL
-- schema), so folding them into the live set needs no decoding of bodies.
-- (Rows queued before this migration keep NULL columns; readers use the body.)
ALTER TABLE pending ADD COLUMN task TEXT;
ALTER TABLE pending ADD COLUMN cells TEXT;  -- JSON array of codebook cells
ALTER TABLE pending ADD COLUMN time_bucket TEXT;
ALTER TABLE pending ADD COLUMN day_type TEXT;
ALTER TABLE pending ADD COLUMN success_rate REAL;
ALTER TABLE pending ADD COLUMN support INTEGER;
