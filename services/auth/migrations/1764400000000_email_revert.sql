-- Up Migration
-- The notice e-mailed to the address an account left carries a link that moves the account back
-- ("this was not me"), valid for a week; following it ends every session of the account.
ALTER TABLE email_verification_tokens DROP CONSTRAINT email_verification_tokens_purpose,
	ADD CONSTRAINT email_verification_tokens_purpose CHECK (purpose IN ('verify', 'change', 'revert'));
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason, ADD CONSTRAINT sessions_revoked_reason CHECK (revoked_reason IN
	('logout', 'logout_all', 'refresh_token_reuse', 'password_reset', 'password_change', 'admin', 'mfa_enabled', 'email_revert'));

-- Down Migration
DELETE FROM email_verification_tokens WHERE purpose = 'revert';
UPDATE sessions SET revoked_reason = 'admin' WHERE revoked_reason = 'email_revert';
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason, ADD CONSTRAINT sessions_revoked_reason CHECK (revoked_reason IN
	('logout', 'logout_all', 'refresh_token_reuse', 'password_reset', 'password_change', 'admin', 'mfa_enabled'));
ALTER TABLE email_verification_tokens DROP CONSTRAINT email_verification_tokens_purpose,
	ADD CONSTRAINT email_verification_tokens_purpose CHECK (purpose IN ('verify', 'change'));
