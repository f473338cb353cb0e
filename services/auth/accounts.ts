/**
 * Accounts: registration, e-mail verification, the move to a new e-mail address and the profile.
 * A new user, its default role, its verification link and its `user.created` +
 * `user.email_verification_requested` events are committed in one transaction: an account never
 * exists without its events, nor they without it. A new address takes effect only when the link
 * e-mailed to it is followed (`user.email_changed`); until then the account keeps the old one.
 */
import { randomUUID } from "node:crypto";
import { AppError, badRequest, conflict, notFound } from "../../lib/errors.ts";
import { audit } from "./audit.ts";
import { isUniqueViolation, withTransaction } from "./db.ts";
import { addSeconds } from "./deps.ts";
import type { AuthDeps, AuthHooks, RequestInfo, RevokedSession } from "./deps.ts";
import { enqueue } from "./events.ts";
import type pg from "pg";
import { endPendingLogins, hasConfirmedTotp, recoveryCodesLeft } from "./mfa.ts";
import { hashPassword, passwordProblems } from "./passwords.ts";
import { DEFAULT_ROLE, grantRole, grantsOf } from "./rbac.ts";
import { hashToken, newOpaqueToken } from "./secrets.ts";
import { revokeSessions } from "./sessions.ts";

export interface User {
	id: string;
	email: string;
	name: string | null;
	emailVerified: boolean;
	createdAt: string;
}

export interface Profile extends User {
	roles: string[];
	permissions: string[];
	/** Two-step login (an authenticator app) is on. */
	mfaEnabled: boolean;
	/** Recovery codes not used yet (0 while two-step login is off): few left, make new ones. */
	recoveryCodesLeft: number;
}

export interface RegisterInput {
	email: string;
	password: string;
	name?: string;
}

interface UserRow {
	id: string;
	email: string;
	name: string | null;
	email_verified: boolean;
	created_at: Date;
}

const USER_COLUMNS = "id, email, name, email_verified, created_at";

/** E-mail addresses are compared trimmed and lower-cased (and stored as citext). */
export const normalizeEmail = (email: string) => email.trim().toLowerCase();

export const invalidLinkToken = () => new AppError(400, "INVALID_OR_EXPIRED_TOKEN", "This link is invalid, has expired or was already used.");

export async function registerUser(deps: AuthDeps, input: RegisterInput, request: RequestInfo): Promise<User> {
	const email = normalizeEmail(input.email);
	const name = input.name?.trim() || null;
	const problems = passwordProblems(input.password, { email, name });
	if (problems.length) throw badRequest("The password does not meet the password policy.", problems);
	// Hash before taking a connection: bcrypt is the slow part and must not hold one.
	const passwordHash = await hashPassword(input.password, deps.settings.bcryptCost);
	const now = deps.clock.now();
	try {
		return await withTransaction(deps.pool, async (tx) => {
			const { rows } = await tx.query<UserRow>(
				`INSERT INTO users (id, email, name, password_hash, created_at, updated_at, password_changed_at) VALUES ($1, $2, $3, $4, $5, $5, $5)
				 RETURNING ${USER_COLUMNS}`,
				[randomUUID(), email, name, passwordHash, now],
			);
			const user = toUser(rows[0]!);
			await grantRole(tx, user.id, DEFAULT_ROLE, now);
			await enqueue(tx, "user.created", user.id, { userId: user.id, email: user.email, name: user.name }, request, now);
			await sendEmailLink(deps, tx, user, { purpose: "verify" }, request, now);
			await audit(tx, { action: "register", outcome: "success", userId: user.id }, request, now);
			return user;
		});
	} catch (err) {
		if (!isUniqueViolation(err, "users_email_unique")) throw err;
		await audit(deps.pool, { action: "register", outcome: "failure", details: { reason: "email_taken", email } }, request, now);
		throw conflict("An account with this e-mail address already exists.", "EMAIL_ALREADY_REGISTERED");
	}
}

/**
 * Stores a fresh one-time link token and enqueues the e-mail that carries it: a verification of the
 * account's address, or the confirmation of a new address the account should move to.
 */
export async function sendEmailLink(deps: AuthDeps, tx: pg.PoolClient, user: Pick<User, "id" | "email" | "name">, link: { purpose: "verify" } | { purpose: "change"; newEmail: string }, request: RequestInfo, now: Date): Promise<void> {
	const { token, hash } = newOpaqueToken();
	const expiresAt = addSeconds(now, deps.settings.emailVerificationTtlS);
	const address = link.purpose === "change" ? link.newEmail : user.email;
	await tx.query("INSERT INTO email_verification_tokens (token_hash, user_id, email, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)", [hash, user.id, address, link.purpose, now, expiresAt]);
	// Both pages of the console post the token to auth/verify-email. A verification opens at once;
	// a move waits for a click, so a mail scanner that opens links cannot make it.
	const url = `${deps.settings.publicUrl}/${link.purpose === "change" ? "confirm-email" : "verify-email"}?token=${encodeURIComponent(token)}`;
	const base = { userId: user.id, email: user.email, name: user.name, expiresAt: expiresAt.toISOString() };
	if (link.purpose === "verify") await enqueue(tx, "user.email_verification_requested", user.id, { ...base, verifyUrl: url }, request, now);
	else await enqueue(tx, "user.email_change_requested", user.id, { ...base, newEmail: address, confirmUrl: url }, request, now);
}

interface LinkRow {
	user_id: string;
	used_at: Date | null;
	created_at: Date;
	expires_at: Date;
	token_email: string;
	purpose: "verify" | "change" | "revert";
	email: string;
	name: string | null;
	email_verified: boolean;
}

/** How long the address an account left can undo the move ("this was not me"). */
const EMAIL_REVERT_TTL_S = 7 * 86_400;

/**
 * Follows an e-mailed link. A verification link marks the account's address verified; it proves
 * only the address it was sent to, so after a move to another address it is void. A change link
 * moves the account to the address it was sent to (now verified) and tells the old address, with
 * a link that moves it back. That revert link ends every session and removes an authenticator set
 * up since the move: it is the owner taking the account back. All are single-use and expire.
 */
export async function verifyEmail(deps: AuthDeps, hooks: AuthHooks, token: string, request: RequestInfo): Promise<{ userId: string }> {
	const now = deps.clock.now();
	let result: { ok: boolean; userId?: string; revoked?: RevokedSession[] };
	try {
		result = await withTransaction(deps.pool, async (tx) => {
			// The user row first, as every other writer of a user's links locks it: the same order everywhere, no deadlock.
			await tx.query("SELECT 1 FROM users WHERE id = (SELECT user_id FROM email_verification_tokens WHERE token_hash = $1) FOR UPDATE", [hashToken(token)]);
			const { rows } = await tx.query<LinkRow>(
				`SELECT t.user_id, t.used_at, t.created_at, t.expires_at, t.email AS token_email, t.purpose, u.email, u.name, u.email_verified
				 FROM email_verification_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 FOR UPDATE OF t, u`,
				[hashToken(token)],
			);
			const row = rows[0];
			const sameAddress = row?.token_email.toLowerCase() === row?.email.toLowerCase();
			if (!row || row.used_at || row.expires_at <= now || (row.purpose !== "verify") === sameAddress) return { ok: false, userId: row?.user_id };
			await tx.query("UPDATE email_verification_tokens SET used_at = $2 WHERE token_hash = $1", [hashToken(token), now]);
			if (row.purpose === "change") {
				// The way back goes only to an address the user proved: one never verified (a typo, say)
				// may be someone else's, who could then move the account to it and reset its password.
				let revertUrl: string | null = null;
				if (row.email_verified) {
					const revert = newOpaqueToken();
					await tx.query("INSERT INTO email_verification_tokens (token_hash, user_id, email, purpose, created_at, expires_at) VALUES ($1, $2, $3, 'revert', $4, $5)", [revert.hash, row.user_id, row.email, now, addSeconds(now, EMAIL_REVERT_TTL_S)]);
					revertUrl = `${deps.settings.publicUrl}/revert-email?token=${encodeURIComponent(revert.token)}`;
				}
				await moveAccount(tx, row, revertUrl, request, now);
				return { ok: true, userId: row.user_id };
			}
			if (row.purpose === "revert") {
				await moveAccount(tx, row, null, request, now);
				await voidEmailChangeLinks(tx, row.user_id, now);
				await endPendingLogins(tx, row.user_id);
				const authenticator = await tx.query("DELETE FROM totp_authenticators WHERE user_id = $1 AND created_at >= $2", [row.user_id, row.created_at]);
				if (authenticator.rowCount) await tx.query("DELETE FROM recovery_codes WHERE user_id = $1", [row.user_id]);
				const revoked = await revokeSessions(tx, { userId: row.user_id }, "email_revert", deps.settings, now);
				await audit(tx, { action: "email.revert", outcome: "success", userId: row.user_id, details: { revokedSessions: revoked.length, removedAuthenticator: authenticator.rowCount === 1 } }, request, now);
				return { ok: true, userId: row.user_id, revoked };
			}
			if (!row.email_verified) {
				await tx.query("UPDATE users SET email_verified = true, email_verified_at = $2, updated_at = $2 WHERE id = $1", [row.user_id, now]);
				await enqueue(tx, "user.email_verified", row.user_id, { userId: row.user_id, email: row.email, name: row.name, verifiedAt: now.toISOString() }, request, now);
			}
			await audit(tx, { action: "email.verify", outcome: "success", userId: row.user_id }, request, now);
			return { ok: true, userId: row.user_id };
		});
	} catch (err) {
		// Another account took the address between the request and the click.
		if (!isUniqueViolation(err, "users_email_unique")) throw err;
		throw conflict("An account with this e-mail address already exists.", "EMAIL_ALREADY_REGISTERED");
	}
	if (!result.ok) {
		await audit(deps.pool, { action: "email.verify", outcome: "failure", userId: result.userId ?? null }, request, now);
		throw invalidLinkToken();
	}
	if (result.revoked?.length) hooks.sessionsRevoked(result.revoked);
	return { userId: result.userId! };
}

/** Pending moves to another address stop working (a newer request, the password changed, a move back). */
export async function voidEmailChangeLinks(tx: pg.PoolClient, userId: string, now: Date): Promise<void> {
	await tx.query("UPDATE email_verification_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'change' AND used_at IS NULL", [userId, now]);
}

/** Every outstanding password reset link of the user stops working. */
export async function voidPasswordResetLinks(tx: pg.PoolClient, userId: string, now: Date): Promise<void> {
	await tx.query("UPDATE password_reset_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL", [userId, now]);
}

/** Moves the account to the link's address, verified; reset links sent to the old one die. */
async function moveAccount(tx: pg.PoolClient, row: LinkRow, revertUrl: string | null, request: RequestInfo, now: Date): Promise<void> {
	await tx.query("UPDATE users SET email = $2, email_verified = true, email_verified_at = $3, updated_at = $3 WHERE id = $1", [row.user_id, row.token_email, now]);
	await voidPasswordResetLinks(tx, row.user_id, now);
	await enqueue(tx, "user.email_changed", row.user_id, { userId: row.user_id, email: row.token_email, previousEmail: row.email, previousEmailVerified: row.email_verified, name: row.name, changedAt: now.toISOString(), revertUrl }, request, now);
	await audit(tx, { action: "email.change", outcome: "success", userId: row.user_id, details: { from: row.email, to: row.token_email } }, request, now);
}

/** Sends a new verification link to the caller, at most once per `emailResendIntervalS`. */
export async function resendVerification(deps: AuthDeps, userId: string, request: RequestInfo): Promise<{ sent: boolean }> {
	const now = deps.clock.now();
	return withTransaction(deps.pool, async (tx) => {
		const { rows } = await tx.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE`, [userId]);
		const row = rows[0];
		if (!row) throw notFound("User");
		if (row.email_verified) return { sent: false };
		const last = await tx.query<{ created_at: Date }>("SELECT created_at FROM email_verification_tokens WHERE user_id = $1 AND purpose = 'verify' ORDER BY created_at DESC LIMIT 1", [userId]);
		const wait = last.rows[0] ? deps.settings.emailResendIntervalS - (now.getTime() - last.rows[0].created_at.getTime()) / 1000 : 0;
		if (wait > 0) {
			const retryAfterS = Math.ceil(wait);
			throw new AppError(429, "TOO_MANY_REQUESTS", `A verification e-mail was sent moments ago; try again in ${retryAfterS} s.`, { retryAfterS });
		}
		await sendEmailLink(deps, tx, toUser(row), { purpose: "verify" }, request, now);
		await audit(tx, { action: "email.verification_resent", outcome: "success", userId }, request, now);
		return { sent: true };
	});
}

/** Changes what the user may change freely (the display name); publishes `user.updated`. */
export async function updateProfile(deps: AuthDeps, userId: string, input: { name?: string | null }, request: RequestInfo): Promise<Profile> {
	const now = deps.clock.now();
	await withTransaction(deps.pool, async (tx) => {
		const { rows } = await tx.query<UserRow>(`UPDATE users SET name = $2, updated_at = $3 WHERE id = $1 RETURNING ${USER_COLUMNS}`, [userId, input.name?.trim() || null, now]);
		const row = rows[0];
		if (!row) throw notFound("User");
		await enqueue(tx, "user.updated", userId, { userId, email: row.email, name: row.name, updatedAt: now.toISOString() }, request, now);
		await audit(tx, { action: "profile.update", outcome: "success", userId }, request, now);
	});
	return getProfile(deps, userId);
}

export async function getProfile(deps: AuthDeps, userId: string): Promise<Profile> {
	const { rows } = await deps.pool.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [userId]);
	if (!rows[0]) throw notFound("User");
	const [grants, mfaEnabled, recoveryCodes] = await Promise.all([grantsOf(deps.pool, userId), hasConfirmedTotp(deps.pool, userId), recoveryCodesLeft(deps.pool, userId)]);
	return { ...toUser(rows[0]), ...grants, mfaEnabled, recoveryCodesLeft: mfaEnabled ? recoveryCodes : 0 };
}

function toUser(row: UserRow): User {
	return { id: row.id, email: row.email, name: row.name, emailVerified: row.email_verified, createdAt: row.created_at.toISOString() };
}
