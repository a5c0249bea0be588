-- Keyward schema, version 2 (issue #14): self-contained access tokens are
-- not stored, so a code redemption or refresh token records the jti and
-- expiry of the access token issued with it (to deny that jti when the
-- family is revoked), and the revocation feed gains entries for one token
-- (kind 'token', keyed by its jti). The new grant kind 'denied_token' needs
-- no change: kind is free text.

ALTER TABLE grants
    ADD COLUMN access_token_id   text NOT NULL DEFAULT '',
    ADD COLUMN access_expires_at timestamptz;

ALTER TABLE revocations
    ADD COLUMN token_id text NOT NULL DEFAULT '';
