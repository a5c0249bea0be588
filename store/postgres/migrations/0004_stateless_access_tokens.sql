-- Keyward schema, version 4 (issue #14): access tokens are self-contained
-- and no longer stored. The records written before are read by nothing
-- and would stay until collected at their expiry: remove them now. The
-- bbolt backend does the same once, at Open (store/bolt/upgrade.go).
DELETE FROM grants WHERE kind = 'access_token';
