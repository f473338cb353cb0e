-- Up Migration
-- A link e-mailed to a new address the user wants to move the account to. It lives beside the
-- verification links (same lifetime rules, same single use): `purpose` tells them apart, so an
-- old verification link can never move the account to the address it was sent to.
ALTER TABLE email_verification_tokens
	ADD COLUMN purpose text NOT NULL DEFAULT 'verify',
	ADD CONSTRAINT email_verification_tokens_purpose CHECK (purpose IN ('verify', 'change'));

-- Down Migration
DELETE FROM email_verification_tokens WHERE purpose = 'change';
ALTER TABLE email_verification_tokens
	DROP CONSTRAINT email_verification_tokens_purpose,
	DROP COLUMN purpose;
