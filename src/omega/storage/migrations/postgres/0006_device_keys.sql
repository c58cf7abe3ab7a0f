-- The device key each attested device registers with (raw Ed25519): a certificate for the
-- same serial under another device key is refused, so a manufacturer key, leaked or not,
-- cannot take over an existing TV's viewer. NULL: not known yet (a row from before this
-- migration, or one the operator re-keyed on purpose); the next registration records it.
ALTER TABLE devices ADD COLUMN device_key BYTEA;
