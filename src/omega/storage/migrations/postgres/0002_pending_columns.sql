-- Pending contributions carry the pattern's structured fields, so a worker can fold a
-- leased batch into the live set in one set-based statement without decoding bodies.
-- (Rows queued before this migration keep NULL columns; readers use the body.)
ALTER TABLE pending
    ADD COLUMN task TEXT,
    ADD COLUMN cells INTEGER[],
    ADD COLUMN time_bucket TEXT,
    ADD COLUMN day_type TEXT,
    ADD COLUMN success_rate DOUBLE PRECISION,
    ADD COLUMN support INTEGER;
