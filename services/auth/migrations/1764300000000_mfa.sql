-- Up Migration
-- Two-step login with an authenticator app (TOTP, RFC 6238) and one-time recovery codes.

-- One authenticator per user. The shared secret is sealed like the signing keys (AES-256-GCM
-- under the key-encryption key, bound to the user id); it is useless without that key.
CREATE TABLE totp_authenticators (
	user_id         uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	secret_ciphertext bytea NOT NULL,
	secret_iv       bytea NOT NULL CHECK (octet_length(secret_iv) = 12),
	secret_tag      bytea NOT NULL CHECK (octet_length(secret_tag) = 16),
	created_at      timestamptz NOT NULL,
	-- Null until a first code proved that the user's app holds the secret: only then does login ask for it.
	confirmed_at    timestamptz,
	-- The last 30-second step a code was accepted for: each code works once.
	last_used_step  bigint NOT NULL DEFAULT 0
);

-- Ten per enrolment, each usable once; 118 random bits each, so stored as SHA-256.
CREATE TABLE recovery_codes (
	user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	code_hash   bytea NOT NULL CHECK (octet_length(code_hash) = 32),
	created_at  timestamptz NOT NULL,
	used_at     timestamptz,
	PRIMARY KEY (user_id, code_hash)
);

-- A login whose password was right and whose second step is pending.
CREATE TABLE mfa_challenges (
	token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
	user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	used_at     timestamptz,
	CONSTRAINT mfa_challenges_lifetime CHECK (expires_at > created_at)
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);

-- Wrong second-factor codes are throttled under keys of their own (mfa:<user id>).
ALTER TABLE login_throttles DROP CONSTRAINT login_throttles_key_check,
	ADD CONSTRAINT login_throttles_key_check CHECK (key ~ '^(account|ip|mfa):.' AND char_length(key) <= 300);

-- Turning two-step login on ends the account's other sessions.
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason, ADD CONSTRAINT sessions_revoked_reason CHECK (revoked_reason IN
	('logout', 'logout_all', 'refresh_token_reuse', 'password_reset', 'password_change', 'admin', 'mfa_enabled'));

-- Down Migration
DELETE FROM login_throttles WHERE key LIKE 'mfa:%';
ALTER TABLE login_throttles DROP CONSTRAINT login_throttles_key_check,
	ADD CONSTRAINT login_throttles_key_check CHECK (key ~ '^(account|ip):.' AND char_length(key) <= 300);
UPDATE sessions SET revoked_reason = 'admin' WHERE revoked_reason = 'mfa_enabled';
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason, ADD CONSTRAINT sessions_revoked_reason CHECK (revoked_reason IN
	('logout', 'logout_all', 'refresh_token_reuse', 'password_reset', 'password_change', 'admin'));
DROP TABLE mfa_challenges;
DROP TABLE recovery_codes;
DROP TABLE totp_authenticators;
