/**
 * Password reset by e-mailed link, and the changes a logged-in user makes only after entering the
 * password again: a new password, a new e-mail address, deleting the account. A reset request
 * answers the same whether or not the account exists; its token is single-use, stored hashed and
 * expires after `passwordResetTtlS`. Using it ends every session; a change ends all the other
 * sessions unless asked not to. Both publish `user.password_changed`.
 */
import { AppError, badRequest, conflict, notFound } from "../../lib/errors.ts";
import { invalidLinkToken, normalizeEmail, sendEmailLink, voidEmailChangeLinks, voidPasswordResetLinks } from "./accounts.ts";
import { audit } from "./audit.ts";
import { withTransaction } from "./db.ts";
import { addSeconds } from "./deps.ts";
import type { AuthDeps, AuthHooks, RequestInfo } from "./deps.ts";
import { enqueue } from "./events.ts";
import { accountKey, recordFailure, recordSuccess, secondsLocked } from "./lockout.ts";
import { endPendingLogins } from "./mfa.ts";
import { tooManyAttempts } from "./login.ts";
import { hashPassword, passwordProblems, verifyPassword } from "./passwords.ts";
import { clientIpOrNull, hashToken, newOpaqueToken } from "./secrets.ts";
import { ADMIN_ROLE } from "./rbac.ts";
import { revokeSessions } from "./sessions.ts";

interface AccountRow {
	id: string;
	email: string;
	name: string | null;
	password_hash: string;
}

/**
 * Sends a reset link when the account exists and none was sent in the last
 * `emailResendIntervalS` (no mail bombing); resolves the same way in every case.
 */
export async function forgotPassword(deps: AuthDeps, rawEmail: string, request: RequestInfo): Promise<void> {
	const email = normalizeEmail(rawEmail);
	const now = deps.clock.now();
	await withTransaction(deps.pool, async (tx) => {
		const { rows } = await tx.query<AccountRow>("SELECT id, email, name FROM users WHERE email = $1 FOR UPDATE", [email]);
		const user = rows[0];
		const recent = user
			? await tx.query("SELECT 1 FROM password_reset_tokens WHERE user_id = $1 AND created_at > $2 LIMIT 1", [user.id, addSeconds(now, -deps.settings.emailResendIntervalS)])
			: undefined;
		const send = user !== undefined && recent?.rowCount === 0;
		if (user && send) {
			const { token, hash } = newOpaqueToken();
			const expiresAt = addSeconds(now, deps.settings.passwordResetTtlS);
			await tx.query("INSERT INTO password_reset_tokens (token_hash, user_id, created_at, expires_at, client_ip) VALUES ($1, $2, $3, $4, $5)", [hash, user.id, now, expiresAt, clientIpOrNull(request.clientIp)]);
			const resetUrl = `${deps.settings.publicUrl}/reset-password?token=${encodeURIComponent(token)}`;
			await enqueue(tx, "user.password_reset_requested", user.id, { userId: user.id, email: user.email, name: user.name, resetUrl, expiresAt: expiresAt.toISOString() }, request, now);
		}
		const reason = !user ? "unknown_account" : send ? undefined : "recently_sent";
		await audit(tx, { action: "password.reset_requested", outcome: "success", userId: user?.id ?? null, details: reason ? { reason, email } : {} }, request, now);
	});
}

interface ResetRow {
	user_id: string;
	used_at: Date | null;
	expires_at: Date;
	email: string;
	name: string | null;
}

export async function resetPassword(deps: AuthDeps, hooks: AuthHooks, input: { token: string; password: string }, request: RequestInfo): Promise<void> {
	const hash = hashToken(input.token);
	const find = `SELECT t.user_id, t.used_at, t.expires_at, u.email, u.name FROM password_reset_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1`;
	const usable = (row: ResetRow | undefined, now: Date) => row !== undefined && row.used_at === null && row.expires_at > now;
	const first = (await deps.pool.query<ResetRow>(find, [hash])).rows[0];
	if (!first || !usable(first, deps.clock.now())) {
		await audit(deps.pool, { action: "password.reset", outcome: "failure", userId: first?.user_id ?? null, details: { reason: first ? "used_or_expired" : "unknown_token" } }, request, deps.clock.now());
		throw invalidLinkToken();
	}
	// The policy check leaves the token usable: the user may try another password with the same link.
	const problems = passwordProblems(input.password, { email: first.email, name: first.name });
	if (problems.length) throw badRequest("The password does not meet the password policy.", problems);
	const passwordHash = await hashPassword(input.password, deps.settings.bcryptCost);
	const now = deps.clock.now();
	const revoked = await withTransaction(deps.pool, async (tx) => {
		const row = (await tx.query<ResetRow>(`${find} FOR UPDATE OF t, u`, [hash])).rows[0];
		if (!row || !usable(row, now)) throw invalidLinkToken();
		await tx.query("UPDATE users SET password_hash = $2, password_changed_at = $3, updated_at = $3 WHERE id = $1", [row.user_id, passwordHash, now]);
		// This link and any other outstanding one die with the old password, and so does a pending
		// move to another address (asked for by whoever had the old password).
		await voidPasswordResetLinks(tx, row.user_id, now);
		await voidEmailChangeLinks(tx, row.user_id, now);
		await endPendingLogins(tx, row.user_id);
		const sessions = await revokeSessions(tx, { userId: row.user_id }, "password_reset", deps.settings, now);
		// Proof of the mailbox lifts a lockout, so an attacker cannot keep the owner out.
		await recordSuccess(tx, accountKey(row.email), now);
		await enqueue(tx, "user.password_changed", row.user_id, { userId: row.user_id, email: row.email, name: row.name, changedAt: now.toISOString(), method: "reset" }, request, now);
		await audit(tx, { action: "password.reset", outcome: "success", userId: row.user_id, details: { revokedSessions: sessions.length } }, request, now);
		return sessions;
	});
	if (revoked.length) hooks.sessionsRevoked(revoked);
}

export interface ChangePasswordInput {
	currentPassword: string;
	newPassword: string;
	/** Keep the user's other sessions (default: end them, ASVS 7.4.3). */
	keepOtherSessions?: boolean;
}

/**
 * Re-authentication for a sensitive change by a logged-in user: the account's current password,
 * under the same lockout as the login form (guessing through this form counts there too).
 */
export async function confirmPassword(deps: AuthDeps, caller: { userId: string; sessionId: string }, password: string, field: string, action: string, request: RequestInfo): Promise<AccountRow & { key: string }> {
	const { rows } = await deps.pool.query<AccountRow>("SELECT id, email, name, password_hash FROM users WHERE id = $1", [caller.userId]);
	const user = rows[0];
	if (!user) throw notFound("User");
	const key = accountKey(user.email);
	const locked = await secondsLocked(deps.pool, [key], deps.clock.now());
	if (locked > 0) throw tooManyAttempts(locked);
	const check = await verifyPassword(password, user.password_hash, deps.settings.bcryptCost);
	if (!check.ok) {
		await recordFailure(deps.pool, key, deps.lockout.account, deps.clock.now());
		await audit(deps.pool, { action, outcome: "failure", userId: user.id, sessionId: caller.sessionId, details: { reason: "wrong_current_password" } }, request, deps.clock.now());
		throw badRequest("The current password is not correct.", [{ field, message: "is not your current password", type: "passwordMismatch" }]);
	}
	return { ...user, key };
}

export async function changePassword(deps: AuthDeps, hooks: AuthHooks, caller: { userId: string; sessionId: string }, input: ChangePasswordInput, request: RequestInfo): Promise<void> {
	const { key, ...user } = await confirmPassword(deps, caller, input.currentPassword, "currentPassword", "password.change", request);
	const problems = passwordProblems(input.newPassword, { email: user.email, name: user.name }, "newPassword");
	if (problems.length) throw badRequest("The new password does not meet the password policy.", problems);
	const passwordHash = await hashPassword(input.newPassword, deps.settings.bcryptCost);
	const now = deps.clock.now();
	const revoked = await withTransaction(deps.pool, async (tx) => {
		// Guarded by the hash we checked: a concurrent change wins, this one fails cleanly.
		const updated = await tx.query("UPDATE users SET password_hash = $3, password_changed_at = $4, updated_at = $4 WHERE id = $1 AND password_hash = $2", [user.id, user.password_hash, passwordHash, now]);
		if (updated.rowCount !== 1) throw badRequest("The password was changed meanwhile; try again.", [{ field: "currentPassword", message: "is not your current password", type: "passwordMismatch" }]);
		const sessions = input.keepOtherSessions ? [] : await revokeSessions(tx, { userId: user.id, exceptSessionId: caller.sessionId }, "password_change", deps.settings, now);
		await voidEmailChangeLinks(tx, user.id, now);
		await endPendingLogins(tx, user.id);
		await recordSuccess(tx, key, now);
		await enqueue(tx, "user.password_changed", user.id, { userId: user.id, email: user.email, name: user.name, changedAt: now.toISOString(), method: "change" }, request, now);
		await audit(tx, { action: "password.change", outcome: "success", userId: user.id, sessionId: caller.sessionId, details: { revokedSessions: sessions.length } }, request, now);
		return sessions;
	});
	if (revoked.length) hooks.sessionsRevoked(revoked);
}

/**
 * E-mails a confirmation link to the address the caller wants the account moved to (after checking
 * the password again). The account keeps its address until the link is followed (accounts.ts
 * verifyEmail); a newer request voids the links of earlier ones.
 */
export async function requestEmailChange(deps: AuthDeps, caller: { userId: string; sessionId: string }, input: { newEmail: string; password: string }, request: RequestInfo): Promise<void> {
	const newEmail = normalizeEmail(input.newEmail);
	const { key } = await confirmPassword(deps, caller, input.password, "password", "email.change_request", request);
	const now = deps.clock.now();
	await withTransaction(deps.pool, async (tx) => {
		// Read again under the lock: one request at a time per account (the throttle below reads
		// what the last one wrote), and the event carries the address the account has now.
		const { rows } = await tx.query<Omit<AccountRow, "password_hash">>("SELECT id, email, name FROM users WHERE id = $1 FOR UPDATE", [caller.userId]);
		const user = rows[0];
		if (!user) throw notFound("User");
		if (newEmail === user.email.toLowerCase()) throw badRequest("This is already the account's e-mail address.", [{ field: "newEmail", message: "is the current address", type: "sameEmail" }]);
		const taken = await tx.query("SELECT 1 FROM users WHERE email = $1", [newEmail]);
		if (taken.rowCount) throw conflict("An account with this e-mail address already exists.", "EMAIL_ALREADY_REGISTERED");
		// Each request mails an address the account does not own yet: at most one a minute, so a
		// session cannot be used to flood someone else's inbox.
		const last = await tx.query<{ created_at: Date }>("SELECT created_at FROM email_verification_tokens WHERE user_id = $1 AND purpose = 'change' ORDER BY created_at DESC LIMIT 1", [user.id]);
		const wait = last.rows[0] ? deps.settings.emailResendIntervalS - (now.getTime() - last.rows[0].created_at.getTime()) / 1000 : 0;
		if (wait > 0) throw new AppError(429, "TOO_MANY_REQUESTS", `A confirmation e-mail was sent moments ago; try again in ${Math.ceil(wait)} s.`, { retryAfterS: Math.ceil(wait) });
		await voidEmailChangeLinks(tx, user.id, now);
		await sendEmailLink(deps, tx, user, { purpose: "change", newEmail }, request, now);
		await recordSuccess(tx, key, now);
		await audit(tx, { action: "email.change_request", outcome: "success", userId: user.id, sessionId: caller.sessionId, details: { to: newEmail } }, request, now);
	});
}

/**
 * Deletes the caller's account for good (the right to erasure), after checking the password again.
 * Sessions, tokens, roles and links go with the user row (foreign keys cascade); audit entries
 * stay without the user id. `user.deleted` tells billing and notification to erase their copies,
 * and every live session is announced as revoked so gateways stop accepting its tokens at once.
 */
export async function deleteAccount(deps: AuthDeps, hooks: AuthHooks, caller: { userId: string; sessionId: string }, input: { password: string }, request: RequestInfo): Promise<void> {
	const { key, ...user } = await confirmPassword(deps, caller, input.password, "password", "account.delete", request);
	const now = deps.clock.now();
	const revoked = await withTransaction(deps.pool, async (tx) => {
		await tx.query("LOCK TABLE user_roles IN SHARE ROW EXCLUSIVE MODE");
		const otherAdmins = await tx.query("SELECT 1 FROM user_roles WHERE role = $1 AND user_id <> $2 LIMIT 1", [ADMIN_ROLE, user.id]);
		const isAdmin = await tx.query("SELECT 1 FROM user_roles WHERE role = $1 AND user_id = $2", [ADMIN_ROLE, user.id]);
		if (isAdmin.rowCount === 1 && otherAdmins.rowCount === 0) throw new AppError(409, "LAST_ADMIN", "The last administrator cannot delete their account; grant the admin role to someone else first.");
		const live = await tx.query<{ id: string }>("SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2", [user.id, now]);
		await enqueue(tx, "user.deleted", user.id, { userId: user.id }, request, now);
		// Written before the delete: the entry keeps the id in its details once user_id is nulled.
		await audit(tx, { action: "account.delete", outcome: "success", userId: user.id, sessionId: caller.sessionId, details: { deletedUserId: user.id } }, request, now);
		await tx.query("DELETE FROM login_throttles WHERE key = $1", [key]);
		await tx.query("DELETE FROM users WHERE id = $1", [user.id]);
		const expiresAt = addSeconds(now, deps.settings.accessTokenTtlS).toISOString();
		return live.rows.map((r) => ({ sessionId: r.id, userId: user.id, expiresAt }));
	});
	if (revoked.length) hooks.sessionsRevoked(revoked);
}
