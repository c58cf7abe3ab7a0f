-- A push's rows no longer carry foreign keys to viewers: push_batches and pending.
--
-- Every push inserts its batch row only when the viewer exists in good standing (the
-- statement's own EXISTS on viewers, omega.storage._sql_storage.INSERT_BATCH) and its
-- contributions only from that inserted row, so the keys checked again what the
-- statement had just checked: once per row, each a lookup in the partitioned viewers
-- table and a share lock on the viewer's row (what that cost: docs/storage.md).
-- No viewer row is ever deleted (revocation marks it), so ON DELETE CASCADE never ran;
-- prune_batches and the round's apply remove these rows as before.
ALTER TABLE push_batches DROP CONSTRAINT push_batches_viewer_id_fkey;
ALTER TABLE pending DROP CONSTRAINT pending_viewer_id_fkey;
