-- Up Migration
-- Accounts and the transactional outbox. Later migrations add credentials history, sessions,
-- roles and permissions; never edit a migration that has shipped, add a new one.

CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE users (
	id              uuid PRIMARY KEY,
	email           citext NOT NULL,
	name            text CHECK (char_length(name) <= 200),
	password_hash   text NOT NULL,
	email_verified  boolean NOT NULL DEFAULT false,
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT users_email_unique UNIQUE (email),
	CONSTRAINT users_email_shape CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND char_length(email) <= 254)
);

-- Events committed in the same transaction as the change they describe, relayed to RabbitMQ.
CREATE TABLE outbox_events (
	seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id            uuid NOT NULL UNIQUE,
	type          text NOT NULL,
	envelope      jsonb NOT NULL,
	request_id    text,
	created_at    timestamptz NOT NULL DEFAULT now(),
	published_at  timestamptz
);
CREATE INDEX outbox_events_unpublished ON outbox_events (seq) WHERE published_at IS NULL;

-- Down Migration
DROP TABLE outbox_events;
DROP TABLE users;
