-- Up Migration
-- How a session was authenticated (RFC 8176 method references): "pwd" for the password alone,
-- "pwd", "otp", "mfa" when two-step login's code (or a recovery code) followed it. Access tokens
-- carry it as `amr`, so the gateway can require the second factor where policy says so.
ALTER TABLE sessions ADD COLUMN amr text[] NOT NULL DEFAULT '{pwd}';

-- Down Migration
ALTER TABLE sessions DROP COLUMN amr;
