-- Up Migration
-- A passkey whose signature counter went back after a valid signature: a copy of its key exists
-- (a cloned security key). It signs in no more, neither the copy nor the original, until the user
-- removes it and adds the device again; the user is told, and every session of theirs ends (the
-- copy may have opened one).
ALTER TABLE passkeys ADD COLUMN disabled_at timestamptz;
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason, ADD CONSTRAINT sessions_revoked_reason CHECK (revoked_reason IN
	('logout', 'logout_all', 'refresh_token_reuse', 'password_reset', 'password_change', 'admin', 'mfa_enabled', 'email_revert', 'passkey_cloned'));

-- Down Migration
UPDATE sessions SET revoked_reason = 'admin' WHERE revoked_reason = 'passkey_cloned';
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason, ADD CONSTRAINT sessions_revoked_reason CHECK (revoked_reason IN
	('logout', 'logout_all', 'refresh_token_reuse', 'password_reset', 'password_change', 'admin', 'mfa_enabled', 'email_revert'));
ALTER TABLE passkeys DROP COLUMN disabled_at;
