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

-- Down Migration
DROP TABLE mfa_challenges;
DROP TABLE recovery_codes;
DROP TABLE totp_authenticators;
