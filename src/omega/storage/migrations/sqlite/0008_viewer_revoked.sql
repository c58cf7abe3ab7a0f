-- Viewers the operator revoked (`omega admin viewers revoke`): NULL while in good standing.
-- A revoked viewer gets no new tokens, its pushes are refused and rounds leave its
-- patterns out, as for a device attested under a revoked manufacturer key.
ALTER TABLE viewers ADD COLUMN revoked_at REAL;
