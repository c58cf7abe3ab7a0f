-- The tables that grow with the fleet, hash-partitioned by viewer id (16 partitions each):
-- viewers, the refresh tokens used, the push batches kept for idempotency, the pending
-- contributions and the live set. Every primary key and unique constraint of these
-- tables now includes viewer_id, so a sharded deployment can distribute them on that
-- column (Citus: create_distributed_table(..., 'viewer_id', colocate_with => 'viewers'))
-- with no schema change (docs/storage.md).
--
-- Left whole, on purpose: devices (keyed by (manufacturer_id, device_id), which a
-- manufacturer's certificate names; one row per viewer), the popularity reports and
-- shares (they carry no viewer id: a report must not be linkable to the TV that sent it)
-- and everything sized by the catalog or the release rather than the fleet.
--
-- Each table is rebuilt: renamed, recreated partitioned with the same columns, refilled,
-- dropped; the foreign keys to viewers are dropped first and made again last.

ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_viewer_id_fkey;
ALTER TABLE push_batches DROP CONSTRAINT push_batches_viewer_id_fkey;
ALTER TABLE pending DROP CONSTRAINT pending_viewer_id_fkey;
ALTER TABLE live DROP CONSTRAINT live_viewer_id_fkey;
ALTER TABLE devices DROP CONSTRAINT devices_viewer_id_fkey;

ALTER TABLE viewers RENAME TO viewers_whole;
ALTER TABLE refresh_tokens RENAME TO refresh_tokens_whole;
ALTER TABLE push_batches RENAME TO push_batches_whole;
ALTER TABLE pending RENAME TO pending_whole;
ALTER TABLE live RENAME TO live_whole;
ALTER INDEX viewers_pkey RENAME TO viewers_whole_pkey;
ALTER INDEX refresh_tokens_pkey RENAME TO refresh_tokens_whole_pkey;
ALTER INDEX push_batches_pkey RENAME TO push_batches_whole_pkey;
ALTER INDEX pending_pkey RENAME TO pending_whole_pkey;
ALTER INDEX live_pkey RENAME TO live_whole_pkey;
ALTER INDEX push_batches_by_created RENAME TO push_batches_whole_by_created;
ALTER INDEX live_by_codebook RENAME TO live_whole_by_codebook;
ALTER INDEX live_by_updated RENAME TO live_whole_by_updated;

CREATE TABLE viewers (
    LIKE viewers_whole INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (viewer_id)
) PARTITION BY HASH (viewer_id);

-- The key includes the viewer; a token id used by any viewer is still found (and refused
-- again) through refresh_tokens_by_jti.
CREATE TABLE refresh_tokens (
    LIKE refresh_tokens_whole INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (viewer_id, jti)
) PARTITION BY HASH (viewer_id);
CREATE INDEX refresh_tokens_by_jti ON refresh_tokens (jti);

CREATE TABLE push_batches (
    LIKE push_batches_whole INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (viewer_id, batch_id)
) PARTITION BY HASH (viewer_id);
CREATE INDEX push_batches_by_created ON push_batches (created_at);

-- seq keeps its order across partitions from one sequence (an identity column cannot be
-- declared on a partitioned table before PostgreSQL 17).
CREATE SEQUENCE pending_seq;
SELECT setval('pending_seq', coalesce((SELECT max(seq) FROM pending_whole), 0) + 1, false);
CREATE TABLE pending (
    LIKE pending_whole INCLUDING CONSTRAINTS,
    PRIMARY KEY (viewer_id, seq)
) PARTITION BY HASH (viewer_id);
ALTER TABLE pending ALTER COLUMN seq SET DEFAULT nextval('pending_seq');
ALTER SEQUENCE pending_seq OWNED BY pending.seq;
CREATE INDEX pending_by_seq ON pending (seq);

CREATE TABLE live (
    LIKE live_whole INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (viewer_id, pattern_id)
) PARTITION BY HASH (viewer_id);
CREATE INDEX live_by_codebook ON live (codebook_id, updated_at);
CREATE INDEX live_by_updated ON live (updated_at);

DO $$
DECLARE
    parent TEXT;
    remainder INTEGER;
BEGIN
    FOREACH parent IN ARRAY ARRAY['viewers', 'refresh_tokens', 'push_batches', 'pending', 'live']
    LOOP
        FOR remainder IN 0..15 LOOP
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
                parent || '_p' || remainder, parent, remainder
            );
        END LOOP;
    END LOOP;
END
$$;

INSERT INTO viewers SELECT * FROM viewers_whole;
INSERT INTO refresh_tokens SELECT * FROM refresh_tokens_whole;
INSERT INTO push_batches SELECT * FROM push_batches_whole;
INSERT INTO pending SELECT * FROM pending_whole;
INSERT INTO live SELECT * FROM live_whole;

DROP TABLE refresh_tokens_whole, push_batches_whole, pending_whole, live_whole, viewers_whole;

ALTER TABLE refresh_tokens ADD FOREIGN KEY (viewer_id)
    REFERENCES viewers (viewer_id) ON DELETE CASCADE;
ALTER TABLE push_batches ADD FOREIGN KEY (viewer_id)
    REFERENCES viewers (viewer_id) ON DELETE CASCADE;
ALTER TABLE pending ADD FOREIGN KEY (viewer_id)
    REFERENCES viewers (viewer_id) ON DELETE CASCADE;
ALTER TABLE live ADD FOREIGN KEY (viewer_id)
    REFERENCES viewers (viewer_id) ON DELETE CASCADE;
ALTER TABLE devices ADD FOREIGN KEY (viewer_id)
    REFERENCES viewers (viewer_id) ON DELETE CASCADE;
