-- Up Migration
-- Everything login needs beyond the account row: one-time e-mail tokens, sessions with rotating
-- refresh tokens, signing keys (private halves encrypted), roles and permissions, login
-- throttling and the audit trail. Secrets (tokens) are stored only as SHA-256 digests; the
-- constraints below, not the application, guarantee the invariants the code relies on.

ALTER TABLE users
	ADD COLUMN email_verified_at   timestamptz,
	ADD COLUMN password_changed_at timestamptz NOT NULL DEFAULT now();
UPDATE users SET email_verified_at = updated_at WHERE email_verified;
ALTER TABLE users
	ADD CONSTRAINT users_verified_has_time CHECK (NOT email_verified OR email_verified_at IS NOT NULL),
	-- bcrypt, optionally behind our HMAC-SHA-256 pre-hash ("bcrypt-sha256$" prefix, see passwords.ts).
	ADD CONSTRAINT users_password_hash_shape CHECK (password_hash ~ '^(bcrypt-sha256\$)?\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$');

-- One-time tokens e-mailed to the user: verification of the address, and password reset.
CREATE TABLE email_verification_tokens (
	token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
	user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	-- The address the link proves; a token for an address the account no longer has is void.
	email       citext NOT NULL,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz,
	CONSTRAINT email_verification_tokens_lifetime CHECK (expires_at > created_at),
	CONSTRAINT email_verification_tokens_used_after_created CHECK (used_at IS NULL OR used_at >= created_at)
);
CREATE INDEX email_verification_tokens_user ON email_verification_tokens (user_id, created_at DESC);

CREATE TABLE password_reset_tokens (
	token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
	user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz,
	client_ip   inet,
	CONSTRAINT password_reset_tokens_lifetime CHECK (expires_at > created_at),
	CONSTRAINT password_reset_tokens_used_after_created CHECK (used_at IS NULL OR used_at >= created_at)
);
CREATE INDEX password_reset_tokens_user ON password_reset_tokens (user_id, created_at DESC);

-- A session is one login; its refresh tokens form one rotation family.
CREATE TABLE sessions (
	id              uuid PRIMARY KEY,
	user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at      timestamptz NOT NULL,
	last_used_at    timestamptz NOT NULL,
	-- Absolute lifetime: no refresh extends a session past this.
	expires_at      timestamptz NOT NULL,
	revoked_at      timestamptz,
	revoked_reason  text,
	client_ip       inet,
	CONSTRAINT sessions_lifetime CHECK (expires_at > created_at AND last_used_at >= created_at),
	CONSTRAINT sessions_revocation CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL)),
	CONSTRAINT sessions_revoked_reason CHECK (revoked_reason IN
		('logout', 'logout_all', 'refresh_token_reuse', 'password_reset', 'password_change', 'admin'))
);
CREATE INDEX sessions_user_live ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE refresh_tokens (
	token_hash   bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
	session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	created_at   timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL,
	-- Set when rotated: a token presented again after this is a replay.
	used_at      timestamptz,
	CONSTRAINT refresh_tokens_lifetime CHECK (expires_at > created_at),
	CONSTRAINT refresh_tokens_used_after_created CHECK (used_at IS NULL OR used_at >= created_at)
);
-- At most one unspent refresh token per session: rotation can never fork a family.
CREATE UNIQUE INDEX refresh_tokens_one_live_per_session ON refresh_tokens (session_id) WHERE used_at IS NULL;

-- Token signing keys. The private key is AES-256-GCM encrypted with the key-encryption key
-- (AUTH_KEY_ENCRYPTION_KEY) whose fingerprint is `kek_id`; the key id is the GCM associated data.
CREATE TABLE signing_keys (
	kid                     text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{16,64}$'),
	algorithm               text NOT NULL CHECK (algorithm IN ('EdDSA', 'ES256')),
	public_jwk              jsonb NOT NULL CHECK (jsonb_typeof(public_jwk) = 'object' AND NOT public_jwk ? 'd'),
	private_key_ciphertext  bytea NOT NULL,
	private_key_iv          bytea NOT NULL CHECK (octet_length(private_key_iv) = 12),
	private_key_tag         bytea NOT NULL CHECK (octet_length(private_key_tag) = 16),
	kek_id                  text NOT NULL,
	created_at              timestamptz NOT NULL,
	-- Stops signing at retired_at; stays in the JWKS until published_until (tokens it signed expired).
	retired_at              timestamptz,
	published_until         timestamptz,
	CONSTRAINT signing_keys_retirement CHECK ((retired_at IS NULL) = (published_until IS NULL) AND (published_until IS NULL OR published_until >= retired_at))
);
-- Exactly one key signs at a time.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL;

-- Role-based access control; permission names are `<resource>:<verb>`.
CREATE TABLE roles (
	name         text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,49}$'),
	description  text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
	created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE permissions (
	name         text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,49}:[a-z][a-z0-9_-]{0,49}$'),
	description  text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500)
);
CREATE TABLE role_permissions (
	role        text NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
	permission  text NOT NULL REFERENCES permissions (name) ON DELETE CASCADE,
	PRIMARY KEY (role, permission)
);
CREATE TABLE user_roles (
	user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role        text NOT NULL REFERENCES roles (name) ON DELETE RESTRICT,
	granted_at  timestamptz NOT NULL DEFAULT now(),
	granted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
	PRIMARY KEY (user_id, role)
);
CREATE INDEX user_roles_role ON user_roles (role);

INSERT INTO roles (name, description) VALUES
	('admin', 'Operators: manage users, roles, billing and notifications'),
	('user', 'Every registered account');
INSERT INTO permissions (name, description) VALUES
	('users:read', 'Read any user account'),
	('users:write', 'Change any user account, end its sessions'),
	('roles:read', 'Read roles and who holds them'),
	('roles:write', 'Grant and revoke roles'),
	('billing:admin', 'Administer plans, subscriptions and invoices of any customer'),
	('notifications:admin', 'Administer notifications of any user');
INSERT INTO role_permissions (role, permission) SELECT 'admin', name FROM permissions;
INSERT INTO user_roles (user_id, role) SELECT id, 'user' FROM users;

-- Login throttling: consecutive failures per key ("account:<email>" or "ip:<address>").
CREATE TABLE login_throttles (
	key               text PRIMARY KEY CHECK (key ~ '^(account|ip):.' AND char_length(key) <= 300),
	failures          integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
	first_failure_at  timestamptz,
	locked_until      timestamptz,
	-- Lockouts since the last success: each one doubles the next lockout.
	lockouts          integer NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
	updated_at        timestamptz NOT NULL
);
CREATE INDEX login_throttles_updated ON login_throttles (updated_at);

-- Security-relevant events, append-only by convention (no UPDATE in the code).
CREATE TABLE audit_log (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at          timestamptz NOT NULL,
	action      text NOT NULL CHECK (action ~ '^[a-z][a-z_.]{1,60}$'),
	outcome     text NOT NULL CHECK (outcome IN ('success', 'failure')),
	user_id     uuid REFERENCES users (id) ON DELETE SET NULL,
	actor_id    uuid REFERENCES users (id) ON DELETE SET NULL,
	session_id  uuid,
	client_ip   inet,
	request_id  text CHECK (char_length(request_id) <= 200),
	details     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_log_user ON audit_log (user_id, at DESC);
CREATE INDEX audit_log_at ON audit_log (at);

-- Down Migration
DROP TABLE audit_log;
DROP TABLE login_throttles;
DROP TABLE user_roles;
DROP TABLE role_permissions;
DROP TABLE permissions;
DROP TABLE roles;
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE password_reset_tokens;
DROP TABLE email_verification_tokens;
ALTER TABLE users
	DROP CONSTRAINT users_password_hash_shape,
	DROP CONSTRAINT users_verified_has_time,
	DROP COLUMN password_changed_at,
	DROP COLUMN email_verified_at;
