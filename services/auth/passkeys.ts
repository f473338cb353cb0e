/**
 * Passkeys (WebAuthn): sign in with a key that never leaves the user's device, unlocked there by
 * a fingerprint, a face or the device PIN. Each ceremony is two calls: the first stores a
 * single-use challenge (five minutes) under a random flow id and answers the browser's options;
 * the second spends the challenge and checks what the authenticator signed with SimpleWebAuthn.
 *
 * - Adding one needs the password again, and a code from the app when two-step login is on (a
 *   passkey skips that code), and tells the user by e-mail; removing one tells the user too. An
 *   administrator's reset of a user's two-step login removes the passkeys too (mfa-enrolment.ts).
 * - Passkeys are discoverable credentials with user verification required: signing in needs no
 *   e-mail address, and the session counts as multi-factor (`amr` ["pop", "mfa"], RFC 8176), so a
 *   passkey also meets ADMIN_REQUIRES_MFA. A user with an authenticator app is not asked for its
 *   code after a passkey: the passkey already is two factors.
 * - A signature counter that fails to grow (a cloned key) turns the passkey off and tells the user;
 *   synced passkeys send 0 and are not checked.
 * - Attestation is not asked for ("none"): which authenticator a user chose is theirs to decide.
 */
import { randomUUID } from "node:crypto";
import type pg from "pg";
import { AppError, badRequest, notFound } from "../../lib/errors.ts";
import { audit } from "./audit.ts";
import { withTransaction } from "./db.ts";
import { addSeconds } from "./deps.ts";
import type { AuthDeps, AuthHooks, RequestInfo } from "./deps.ts";
import { enqueue } from "./events.ts";
import { tokenPair } from "./login.ts";
import type { TokenPair } from "./login.ts";
import { downgradeIfNoSecondFactor } from "./mfa.ts";
import type { SecondFactor } from "./mfa.ts";
import { withBothFactors } from "./mfa-enrolment.ts";
import { hashToken, newOpaqueToken } from "./secrets.ts";
import { openSession, revokeSessions, WITH_PASSKEY } from "./sessions.ts";

export const PASSKEY_CEREMONY_TTL_S = 300;
/** A counter that did not grow this soon after the last sign-in is taken for a race, not a clone. */
const COUNTER_RACE_MS = 10_000;
/**
 * Ed25519, ES256, RS256: what every authenticator offers. SimpleWebAuthn would also offer ML-DSA,
 * which Node verifies only experimentally and whose 2.4 kB signatures Chromium's authenticator picks first.
 */
const ALGORITHMS = [-8, -7, -257];
/** More than anyone needs (a phone, a laptop, two security keys...), few enough to list. */
export const MAX_PASSKEYS_PER_USER = 20;

type Caller = { userId: string; sessionId: string };

/** What the browser sends back from navigator.credentials.create(), as JSON (base64url fields). */
export interface RegistrationCredential {
	id: string;
	rawId: string;
	type: string;
	response: { clientDataJSON: string; attestationObject: string; transports?: string[] };
}

/** What the browser sends back from navigator.credentials.get(), as JSON (base64url fields). */
export interface AuthenticationCredential {
	id: string;
	rawId: string;
	type: string;
	response: { clientDataJSON: string; authenticatorData: string; signature: string; userHandle?: string };
}

export interface PasskeyView {
	id: string;
	name: string;
	createdAt: string;
	lastUsedAt: string | null;
	/** Synced across the user's devices (a password manager's passkey) or bound to one (a security key). */
	synced: boolean;
	transports: string[];
	/** Turned off after a copy of its key signed in (its counter went back). */
	disabled: boolean;
}

// Loaded on first use: with its certificate-parsing dependencies it adds ~26 MB to a node, which
// an idle auth node (the brief: < 150 MB) should not carry before anyone uses a passkey.
const webauthn = () => import("@simplewebauthn/server");

const tooManyPasskeys = () => new AppError(409, "TOO_MANY_PASSKEYS", `An account holds at most ${MAX_PASSKEYS_PER_USER} passkeys; remove one first.`);
const invalidPasskey = (detail = "The passkey could not be verified; try again.") => new AppError(401, "INVALID_PASSKEY", detail);
const expiredFlow = () => new AppError(409, "PASSKEY_CEREMONY_EXPIRED", "This passkey request has expired or was already used; start again.");

/** Stores a ceremony's challenge under a new flow id. */
async function beginCeremony(db: pg.Pool | pg.PoolClient, purpose: "register" | "login", userId: string | null, challenge: string, now: Date): Promise<string> {
	const { token, hash } = newOpaqueToken();
	await db.query("INSERT INTO webauthn_challenges (flow_hash, purpose, user_id, challenge, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)", [
		hash, purpose, userId, challenge, now, addSeconds(now, PASSKEY_CEREMONY_TTL_S),
	]);
	return token;
}

/** Spends a ceremony's challenge: null when it is unknown, someone else's, used or expired. */
async function spendCeremony(db: pg.Pool | pg.PoolClient, flowId: string, purpose: "register" | "login", userId: string | null, now: Date): Promise<string | null> {
	const { rows } = await db.query<{ challenge: string; expires_at: Date; user_id: string | null }>(
		"DELETE FROM webauthn_challenges WHERE flow_hash = $1 AND purpose = $2 RETURNING challenge, expires_at, user_id",
		[hashToken(flowId), purpose],
	);
	const row = rows[0];
	return row && row.expires_at > now && row.user_id === userId ? row.challenge : null;
}

/**
 * The options for navigator.credentials.create(), after the password was confirmed, and a code
 * from the app too when two-step login is on: a passkey skips that code at login, so adding one
 * asks as much as turning two-step login off does.
 */
export async function startPasskeyRegistration(deps: AuthDeps, caller: Caller, input: SecondFactor & { password: string }, request: RequestInfo) {
	const { generateRegistrationOptions } = await webauthn();
	return withBothFactors(deps, caller, input, "passkey.start", request, async (tx, user, now) => {
		// Turned-off passkeys are not offered as taken: the device they came from may be added again.
		const existing = await tx.query<{ credential_id: string; transports: string[] }>("SELECT credential_id, transports FROM passkeys WHERE user_id = $1 AND disabled_at IS NULL", [user.id]);
		if (existing.rows.length >= MAX_PASSKEYS_PER_USER) throw tooManyPasskeys();
		const options = await generateRegistrationOptions({
			rpName: deps.settings.webauthn.rpName,
			rpID: deps.settings.webauthn.rpId,
			userName: user.email,
			userDisplayName: user.name ?? user.email,
			// The same handle for every passkey of the account: a device replaces its own, never holds two.
			userID: Buffer.from(user.id.replaceAll("-", ""), "hex"),
			attestationType: "none",
			// The devices that already hold one are not offered again.
			excludeCredentials: existing.rows.map((p) => ({ id: p.credential_id, transports: p.transports })),
			authenticatorSelection: { residentKey: "required", requireResidentKey: true, userVerification: "required" },
			supportedAlgorithmIDs: ALGORITHMS,
			timeout: PASSKEY_CEREMONY_TTL_S * 1000,
		});
		return { flowId: await beginCeremony(tx, "register", user.id, options.challenge, now), options };
	}, { ifEnabled: true });
}

/** Verifies what the authenticator made and stores its public key; the user is told by e-mail. */
export async function finishPasskeyRegistration(deps: AuthDeps, caller: Caller, input: { flowId: string; name?: string; credential: RegistrationCredential }, request: RequestInfo): Promise<PasskeyView> {
	const now = deps.clock.now();
	const { verifyRegistrationResponse } = await webauthn();
	// Spent before anything is checked: a challenge answers one attempt, right or wrong.
	const challenge = await spendCeremony(deps.pool, input.flowId, "register", caller.userId, now);
	if (!challenge) throw expiredFlow();
	let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
	try {
		verification = await verifyRegistrationResponse({
			response: { ...input.credential, type: "public-key", clientExtensionResults: {} },
			expectedChallenge: challenge,
			expectedOrigin: deps.settings.webauthn.origins,
			expectedRPID: deps.settings.webauthn.rpId,
			requireUserVerification: true,
			supportedAlgorithmIDs: ALGORITHMS,
		});
	} catch (err) {
		await audit(deps.pool, { action: "passkey.add", outcome: "failure", userId: caller.userId, sessionId: caller.sessionId, details: { reason: (err as Error).message.slice(0, 200) } }, request, now);
		verification = { verified: false };
	}
	if (!verification.verified) throw badRequest("The passkey could not be verified; try again.", [{ field: "credential", message: "is not a valid answer to this request", type: "passkey" }]);
	const info = verification.registrationInfo;
	// What the authenticator claims is checked for its signature, not its size: bound it here.
	const idBytes = Buffer.from(info.credential.id, "base64url").length;
	if (idBytes < 16 || idBytes > 1_023 || info.credential.publicKey.length > 2_048) {
		throw badRequest("The passkey could not be verified; try again.", [{ field: "credential", message: "has a credential id or public key of an impossible size", type: "passkey" }]);
	}
	return withTransaction(deps.pool, async (tx) => {
		const { rows } = await tx.query<{ email: string; name: string | null }>("SELECT email, name FROM users WHERE id = $1 FOR UPDATE", [caller.userId]);
		const user = rows[0];
		if (!user) throw notFound("User");
		// Counted again under the user's lock, in a statement of its own: registrations begun side by
		// side finish one at a time, and a count in the locking statement would read the snapshot
		// taken before the wait (READ COMMITTED), missing the passkey the other one just added.
		const count = await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM passkeys WHERE user_id = $1 AND disabled_at IS NULL", [caller.userId]);
		if (count.rows[0]!.n >= MAX_PASSKEYS_PER_USER) throw tooManyPasskeys();
		const id = randomUUID();
		const name = input.name?.trim() || "Passkey";
		const inserted = await tx.query(
			`INSERT INTO passkeys (id, user_id, credential_id, public_key, sign_count, transports, device_type, backed_up, aaguid, name, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (credential_id) DO NOTHING`,
			[id, caller.userId, info.credential.id, Buffer.from(info.credential.publicKey), info.credential.counter, info.credential.transports ?? [], info.credentialDeviceType, info.credentialBackedUp, info.aaguid, name, now],
		);
		if (inserted.rowCount !== 1) throw new AppError(409, "PASSKEY_ALREADY_REGISTERED", "This passkey is registered already.");
		await enqueue(tx, "user.passkey_added", caller.userId, { userId: caller.userId, email: user.email, name: user.name, passkeyName: name, at: now.toISOString() }, request, now);
		await audit(tx, { action: "passkey.add", outcome: "success", userId: caller.userId, sessionId: caller.sessionId, details: { passkeyId: id, synced: info.credentialDeviceType === "multiDevice" } }, request, now);
		return { id, name, createdAt: now.toISOString(), lastUsedAt: null, synced: info.credentialDeviceType === "multiDevice", transports: info.credential.transports ?? [], disabled: false };
	});
}

export async function listPasskeys(pool: pg.Pool, userId: string): Promise<PasskeyView[]> {
	const { rows } = await pool.query<{ id: string; name: string; created_at: Date; last_used_at: Date | null; device_type: string; transports: string[]; disabled_at: Date | null }>(
		"SELECT id, name, created_at, last_used_at, device_type, transports, disabled_at FROM passkeys WHERE user_id = $1 ORDER BY created_at",
		[userId],
	);
	return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at.toISOString(), lastUsedAt: r.last_used_at?.toISOString() ?? null, synced: r.device_type === "multiDevice", transports: r.transports, disabled: r.disabled_at !== null }));
}

/** Removes one of the caller's passkeys (404 when it is not theirs); the user is told by e-mail. */
export async function removePasskey(deps: AuthDeps, caller: Caller, passkeyId: string, request: RequestInfo): Promise<void> {
	const now = deps.clock.now();
	await withTransaction(deps.pool, async (tx) => {
		const { rows } = await tx.query<{ name: string; email: string; user_name: string | null }>(
			"DELETE FROM passkeys p USING users u WHERE p.id = $1 AND p.user_id = $2 AND u.id = p.user_id RETURNING p.name, u.email, u.name AS user_name",
			[passkeyId, caller.userId],
		);
		const removed = rows[0];
		if (!removed) throw notFound("Passkey");
		await downgradeIfNoSecondFactor(tx, caller.userId);
		await enqueue(tx, "user.passkey_removed", caller.userId, { userId: caller.userId, email: removed.email, name: removed.user_name, passkeyName: removed.name, at: now.toISOString() }, request, now);
		await audit(tx, { action: "passkey.remove", outcome: "success", userId: caller.userId, sessionId: caller.sessionId, details: { passkeyId } }, request, now);
	});
}

/** The options for navigator.credentials.get(): any passkey of this site may answer. */
export async function startPasskeyLogin(deps: AuthDeps) {
	const { generateAuthenticationOptions } = await webauthn();
	const options = await generateAuthenticationOptions({ rpID: deps.settings.webauthn.rpId, userVerification: "required", timeout: PASSKEY_CEREMONY_TTL_S * 1000 });
	return { flowId: await beginCeremony(deps.pool, "login", null, options.challenge, deps.clock.now()), options };
}

/**
 * Checks the signature of a passkey over the challenge and opens a session for its user. The
 * counter is compared here, after the signature proved the key: SimpleWebAuthn compares it before,
 * where a forged answer could not be told from a cloned key. A counter that goes back turns the
 * passkey off (`disabled_at`) and tells the user; one turned off signs in no more.
 */
export async function finishPasskeyLogin(deps: AuthDeps, hooks: AuthHooks, input: { flowId: string; credential: AuthenticationCredential }, request: RequestInfo): Promise<TokenPair> {
	const now = deps.clock.now();
	const { verifyAuthenticationResponse } = await webauthn();
	const result = await withTransaction(deps.pool, async (tx) => {
		const challenge = await spendCeremony(tx, input.flowId, "login", null, now);
		if (!challenge) return { ok: false as const, reason: "expired_flow" };
		const { rows } = await tx.query<{ id: string; user_id: string; name: string; public_key: Buffer; sign_count: string; transports: string[]; disabled_at: Date | null; last_used_at: Date | null; email: string; user_name: string | null }>(
			`SELECT p.id, p.user_id, p.name, p.public_key, p.sign_count, p.transports, p.disabled_at, p.last_used_at, u.email, u.name AS user_name
			 FROM passkeys p JOIN users u ON u.id = p.user_id WHERE p.credential_id = $1 FOR UPDATE OF p`,
			[input.credential.id],
		);
		const passkey = rows[0];
		if (!passkey) return { ok: false as const, reason: "unknown_passkey" };
		if (passkey.disabled_at) return { ok: false as const, reason: "disabled_passkey", userId: passkey.user_id };
		let info: Awaited<ReturnType<typeof verifyAuthenticationResponse>>["authenticationInfo"];
		try {
			const verification = await verifyAuthenticationResponse({
				response: { ...input.credential, type: "public-key", clientExtensionResults: {} },
				expectedChallenge: challenge,
				expectedOrigin: deps.settings.webauthn.origins,
				expectedRPID: deps.settings.webauthn.rpId,
				credential: { id: input.credential.id, publicKey: new Uint8Array(passkey.public_key), counter: 0, transports: passkey.transports },
				requireUserVerification: true,
			});
			if (!verification.verified) return { ok: false as const, reason: "bad_signature", userId: passkey.user_id };
			info = verification.authenticationInfo;
		} catch (err) {
			return { ok: false as const, reason: (err as Error).message.slice(0, 200), userId: passkey.user_id };
		}
		const stored = Number(passkey.sign_count);
		if ((stored > 0 || info.newCounter > 0) && info.newCounter <= stored) {
			// Two sign-ins of one device a moment apart can arrive out of order: refused, not a clone.
			if (passkey.last_used_at && now.getTime() - passkey.last_used_at.getTime() < COUNTER_RACE_MS) return { ok: false as const, reason: "counter_race", userId: passkey.user_id };
			await tx.query("UPDATE passkeys SET disabled_at = $2 WHERE id = $1", [passkey.id, now]);
			await enqueue(tx, "user.passkey_disabled", passkey.user_id, { userId: passkey.user_id, email: passkey.email, name: passkey.user_name, passkeyName: passkey.name, at: now.toISOString() }, request, now);
			// The copy may have signed in before: every session of the user ends.
			const revoked = await revokeSessions(tx, { userId: passkey.user_id }, "passkey_cloned", deps.settings, now);
			await downgradeIfNoSecondFactor(tx, passkey.user_id);
			return { ok: false as const, reason: "cloned_passkey", userId: passkey.user_id, passkeyId: passkey.id, revoked };
		}
		await tx.query("UPDATE passkeys SET sign_count = $2, last_used_at = $3, backed_up = $4 WHERE id = $1", [passkey.id, info.newCounter, now, info.credentialBackedUp]);
		const issued = await openSession(tx, passkey.user_id, deps.settings, now, request.clientIp, WITH_PASSKEY);
		await audit(tx, { action: "login", outcome: "success", userId: passkey.user_id, sessionId: issued.sessionId, details: { method: "passkey", passkeyId: passkey.id } }, request, now);
		return { ok: true as const, userId: passkey.user_id, issued };
	});
	if (result.ok) return tokenPair(deps, result.userId, result.issued, now);
	if ("revoked" in result && result.revoked?.length) hooks.sessionsRevoked(result.revoked);
	await audit(deps.pool, { action: "login.passkey", outcome: "failure", userId: result.userId ?? null, details: { reason: result.reason, ...("passkeyId" in result ? { passkeyId: result.passkeyId } : {}) } }, request, now);
	if (result.reason === "expired_flow") throw invalidPasskey("This sign-in has expired or was already used; try again.");
	if (result.reason === "disabled_passkey" || result.reason === "cloned_passkey") throw invalidPasskey("This passkey was turned off because a copy of it was used; sign in with your password, remove it and add the device again.");
	throw invalidPasskey();
}
