/**
 * Turning the second factor on and off, and replacing its recovery codes. Starting needs the
 * password again and gives the secret (and its otpauth:// link for a QR code); the factor is on
 * only once a first code from the app confirmed it, which also gives ten recovery codes, shown this
 * once, and ends the account's other sessions (one opened before, by someone else, would otherwise
 * keep going). Turning it off, or making new recovery codes (the old ones stop working), needs the
 * password and a code (or a recovery code). Each publishes an event, so the user hears of it by
 * e-mail.
 */
import type pg from "pg";
import { AppError, badRequest, forbidden, notFound } from "../../lib/errors.ts";
import { audit } from "./audit.ts";
import { withTransaction } from "./db.ts";
import type { Actor, AuthDeps, AuthHooks, RequestInfo } from "./deps.ts";
import { enqueue } from "./events.ts";
import { tooManyAttempts } from "./login.ts";
import { checkSecondFactor, downgradeIfNoSecondFactor, endPendingLogins, hasConfirmedTotp, loadAuthenticator, matchTotp, newTotpSecret, replaceRecoveryCodes, storeAuthenticator } from "./mfa.ts";
import type { SecondFactor } from "./mfa.ts";
import { confirmPassword } from "./recovery.ts";
import { grantsOf } from "./rbac.ts";
import { revokeSessions, WITH_SECOND_FACTOR } from "./sessions.ts";

type Caller = { userId: string; sessionId: string };

const alreadyOn = () => new AppError(409, "MFA_ALREADY_ENABLED", "Two-step login is already on; turn it off first to use another authenticator.");

export async function startTotpEnrolment(deps: AuthDeps, caller: Caller, input: { password: string }, request: RequestInfo): Promise<{ secret: string; otpauthUrl: string }> {
	const user = await confirmPassword(deps, caller, input.password, "password", "mfa.start", request);
	const now = deps.clock.now();
	return withTransaction(deps.pool, async (tx) => {
		const existing = await loadAuthenticator(tx, deps.kek, user.id, true);
		if (existing?.confirmed) throw alreadyOn();
		const { secret, base32, otpauthUrl } = newTotpSecret(user.email);
		await storeAuthenticator(tx, deps.kek, user.id, secret, now);
		await audit(tx, { action: "mfa.start", outcome: "success", userId: user.id, sessionId: caller.sessionId }, request, now);
		return { secret: base32, otpauthUrl };
	});
}

export async function confirmTotpEnrolment(deps: AuthDeps, hooks: AuthHooks, caller: Caller, input: { code: string }, request: RequestInfo): Promise<{ recoveryCodes: string[] }> {
	const now = deps.clock.now();
	const { recoveryCodes, revoked } = await withTransaction(deps.pool, async (tx) => {
		const { rows } = await tx.query<{ email: string; name: string | null }>("SELECT email, name FROM users WHERE id = $1 FOR UPDATE", [caller.userId]);
		const user = rows[0];
		const pending = user ? await loadAuthenticator(tx, deps.kek, caller.userId, true) : null;
		if (!user || !pending) throw new AppError(409, "MFA_NOT_STARTED", "Start turning on two-step login first.");
		if (pending.confirmed) throw alreadyOn();
		const step = matchTotp(pending.secret, input.code, pending.lastUsedStep, now);
		if (step === null) throw badRequest("The code is not right; enter the one your app shows now.", [{ field: "code", message: "is not the current code", type: "mfaCode" }]);
		await tx.query("UPDATE totp_authenticators SET confirmed_at = $2, last_used_step = $3 WHERE user_id = $1", [caller.userId, now, step]);
		const recoveryCodes = await replaceRecoveryCodes(tx, caller.userId, now);
		// This session just proved a code from the app: it counts as signed in with two factors
		// from its next refresh (what USERS_REQUIRE_MFA waits for), like a login's second step.
		await tx.query("UPDATE sessions SET amr = $3 WHERE id = $1 AND user_id = $2", [caller.sessionId, caller.userId, WITH_SECOND_FACTOR]);
		await enqueue(tx, "user.mfa_enabled", caller.userId, { userId: caller.userId, email: user.email, name: user.name, at: now.toISOString() }, request, now);
		const revoked = await revokeSessions(tx, { userId: caller.userId, exceptSessionId: caller.sessionId }, "mfa_enabled", deps.settings, now);
		await audit(tx, { action: "mfa.enable", outcome: "success", userId: caller.userId, sessionId: caller.sessionId, details: { revokedSessions: revoked.length } }, request, now);
		return { recoveryCodes, revoked };
	});
	if (revoked.length) hooks.sessionsRevoked(revoked);
	return { recoveryCodes };
}

export async function disableTotp(deps: AuthDeps, caller: Caller, input: SecondFactor & { password: string }, request: RequestInfo): Promise<void> {
	await withBothFactors(deps, caller, input, "mfa.disable", request, (tx, user, now) => removeSecondFactor(tx, user, "user", request, now));
}

/**
 * An administrator turns off a user's two-step login: the way back for a user who lost the phone
 * and the recovery codes, once the administrator has proven who they are some other way (NIST SP
 * 800-63B 6.1.2.3). The user's sessions end (one may be on the lost phone) and the user is told;
 * they set it up again after logging in with the password. Not one's own (that needs the password
 * and a code), and not a user who holds a permission the administrator lacks (a helpdesk role
 * cannot strip an administrator's second factor). An operator at the REPL is not limited.
 */
export async function resetSecondFactor(deps: AuthDeps, hooks: AuthHooks, input: { userId: string; actorPermissions?: string[] } & Actor, request: RequestInfo): Promise<void> {
	if (input.actorId === input.userId) throw forbidden("Turn off your own two-step login in your account, with your password and a code.", "OWN_ACCOUNT");
	const now = deps.clock.now();
	const revoked = await withTransaction(deps.pool, async (tx) => {
		const { rows } = await tx.query<{ id: string; email: string; name: string | null }>("SELECT id, email, name FROM users WHERE id = $1 FOR UPDATE", [input.userId]);
		const user = rows[0];
		if (!user) throw notFound("User");
		if (input.actorId !== null) {
			const beyond = (await grantsOf(tx, user.id)).permissions.filter((p) => !input.actorPermissions?.includes(p));
			if (beyond.length) throw forbidden(`This user holds permissions you do not have (${beyond.join(", ")}).`, "MISSING_PERMISSION");
		}
		// Every factor goes, passkeys too: the lost phone may hold one.
		const hadTotp = await hasConfirmedTotp(tx, user.id);
		const passkeysRemoved = (await tx.query("DELETE FROM passkeys WHERE user_id = $1", [user.id])).rowCount ?? 0;
		if (!hadTotp && !passkeysRemoved) throw new AppError(409, "MFA_NOT_ENABLED", "This user has neither two-step login nor a passkey.");
		await removeSecondFactor(tx, user, "administrator", request, now, passkeysRemoved);
		const sessions = await revokeSessions(tx, { userId: user.id }, "admin", deps.settings, now);
		await audit(tx, { action: "mfa.reset", outcome: "success", userId: user.id, actorId: input.actorId, details: { revokedSessions: sessions.length, ...(input.operator ? { operator: input.operator } : {}) } }, request, now);
		return sessions;
	});
	if (revoked.length) hooks.sessionsRevoked(revoked);
}

/** The authenticator and the recovery codes go, and logins halfway through end; the user is told (of the passkeys removed with them too). */
async function removeSecondFactor(tx: pg.PoolClient, user: { id: string; email: string; name: string | null }, by: "user" | "administrator", request: RequestInfo, now: Date, passkeysRemoved = 0): Promise<void> {
	await tx.query("DELETE FROM totp_authenticators WHERE user_id = $1", [user.id]);
	await tx.query("DELETE FROM recovery_codes WHERE user_id = $1", [user.id]);
	await enqueue(tx, "user.mfa_disabled", user.id, { userId: user.id, email: user.email, name: user.name, at: now.toISOString(), by, passkeysRemoved }, request, now);
	await endPendingLogins(tx, user.id);
	await downgradeIfNoSecondFactor(tx, user.id);
}

/** Ten new recovery codes (shown this once); the old ones, used or not, stop working. */
export async function regenerateRecoveryCodes(deps: AuthDeps, caller: Caller, input: SecondFactor & { password: string }, request: RequestInfo): Promise<{ recoveryCodes: string[] }> {
	const recoveryCodes = await withBothFactors(deps, caller, input, "mfa.recovery_codes", request, async (tx, user, now) => {
		const codes = await replaceRecoveryCodes(tx, user.id, now);
		await enqueue(tx, "user.mfa_recovery_codes_regenerated", user.id, { userId: user.id, email: user.email, name: user.name, at: now.toISOString() }, request, now);
		return codes;
	});
	return { recoveryCodes };
}

/**
 * Runs `change` (in one transaction, audited as `action`) once the caller proved both factors:
 * the password, and a code from the app or a recovery code. Wrong codes count as at login. With
 * `ifEnabled`, an account without two-step login proves the password alone.
 */
export async function withBothFactors<T>(
	deps: AuthDeps,
	caller: Caller,
	input: SecondFactor & { password: string },
	action: string,
	request: RequestInfo,
	change: (tx: pg.PoolClient, user: { id: string; email: string; name: string | null }, now: Date) => Promise<T>,
	opts: { ifEnabled?: boolean } = {},
): Promise<T> {
	const user = await confirmPassword(deps, caller, input.password, "password", action, request);
	const now = deps.clock.now();
	const outcome = await withTransaction(deps.pool, async (tx) => {
		if (opts.ifEnabled && !(await hasConfirmedTotp(tx, user.id))) {
			const result = await change(tx, user, now);
			await audit(tx, { action, outcome: "success", userId: user.id, sessionId: caller.sessionId, details: { with: "password" } }, request, now);
			return { check: { ok: true as const }, result };
		}
		if (!input.code && !input.recoveryCode) throw badRequest("Two-step login is on: enter a code from your app (or a recovery code) too.", [{ field: "code", message: "is required while two-step login is on", type: "required" }]);
		const check = await checkSecondFactor(tx, deps, user.id, input, request, now);
		if (!check.ok) return { check };
		const result = await change(tx, user, now);
		await audit(tx, { action, outcome: "success", userId: user.id, sessionId: caller.sessionId, details: { with: check.method } }, request, now);
		return { check, result };
	});
	if (outcome.check.ok) return outcome.result as T;
	await audit(deps.pool, { action, outcome: "failure", userId: user.id, sessionId: caller.sessionId, details: { reason: outcome.check.lockedS > 0 ? "locked" : "wrong_code" } }, request, now);
	if (outcome.check.lockedS > 0) throw tooManyAttempts(outcome.check.lockedS);
	throw badRequest("The code is not right; enter the one your app shows now, or a recovery code.", [{ field: "code", message: "is not the current code", type: "mfaCode" }]);
}
