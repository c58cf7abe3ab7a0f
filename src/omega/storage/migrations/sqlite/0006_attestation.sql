-- Attested registration (omega.protocol.attestation): the manufacturer keys the operator
-- trusts (revoked ones stay, so their certificates keep being refused), and one row per
-- attested device: a device is one viewer however often it registers, and the time its
-- registration was signed only moves forward (a replayed registration is refused).
CREATE TABLE manufacturer_keys (
    manufacturer_id TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    public_key      BLOB NOT NULL,
    created_at      REAL NOT NULL,
    revoked_at      REAL,
    PRIMARY KEY (manufacturer_id, key_id)
) STRICT;

CREATE TABLE devices (
    manufacturer_id TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    viewer_id       TEXT NOT NULL UNIQUE REFERENCES viewers (viewer_id) ON DELETE CASCADE,
    signed_at       REAL NOT NULL,
    registered_at   REAL NOT NULL,
    PRIMARY KEY (manufacturer_id, device_id),
    FOREIGN KEY (manufacturer_id, key_id) REFERENCES manufacturer_keys (manufacturer_id, key_id)
) STRICT;
CREATE INDEX devices_by_key ON devices (manufacturer_id, key_id);
