-- Up Migration
-- Passkeys (WebAuthn discoverable credentials): sign in without a password, the key never leaving
-- the user's device. Only the public key is stored; it verifies, it cannot sign.
CREATE TABLE passkeys (
	id              uuid PRIMARY KEY,
	user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	-- The authenticator's credential id, base64url (what the browser names when it signs in).
	credential_id   text NOT NULL UNIQUE CHECK (char_length(credential_id) BETWEEN 16 AND 1400),
	-- COSE-encoded public key.
	public_key      bytea NOT NULL CHECK (octet_length(public_key) <= 2048),
	-- The authenticator's signature counter: a value that fails to grow betrays a cloned key
	-- (synced passkeys always send 0, and are not checked).
	sign_count      bigint NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
	transports      text[] NOT NULL DEFAULT '{}',
	-- Synced across the user's devices (multiDevice) or bound to one (singleDevice).
	device_type     text NOT NULL CHECK (device_type IN ('singleDevice', 'multiDevice')),
	backed_up       boolean NOT NULL,
	aaguid          text NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
	name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
	created_at      timestamptz NOT NULL,
	last_used_at    timestamptz
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- A WebAuthn ceremony in progress: the challenge the browser must sign, used once. Registration
-- belongs to a user; a sign-in does not (the passkey names its user).
CREATE TABLE webauthn_challenges (
	flow_hash   bytea PRIMARY KEY CHECK (octet_length(flow_hash) = 32),
	purpose     text NOT NULL CHECK (purpose IN ('register', 'login')),
	user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
	challenge   text NOT NULL,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	CONSTRAINT webauthn_challenges_owner CHECK ((purpose = 'register') = (user_id IS NOT NULL)),
	CONSTRAINT webauthn_challenges_lifetime CHECK (expires_at > created_at)
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);

-- Down Migration
DROP TABLE webauthn_challenges;
DROP TABLE passkeys;
