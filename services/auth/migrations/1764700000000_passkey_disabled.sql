-- Up Migration
-- A passkey whose signature counter went back after a valid signature: a copy of its key exists
-- (a cloned security key). It signs in no more, neither the copy nor the original, until the user
-- removes it and adds the device again; the user is told.
ALTER TABLE passkeys ADD COLUMN disabled_at timestamptz;

-- Down Migration
ALTER TABLE passkeys DROP COLUMN disabled_at;
