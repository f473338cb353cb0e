/**
 * Login, refresh, logout and introspection. Login answers an unknown e-mail exactly like a wrong
 * password (same error, same bcrypt work against a dummy hash) and is throttled per account and
 * per client IP (lockout.ts). With two-step login on, the right password gives a short-lived
 * challenge (403 MFA_REQUIRED with `mfaToken`) instead of tokens; `completeMfaLogin` spends it with
 * a code from the app or a recovery code; wrong codes count against the account's lockout and the
 * client IP's (the owner is told when they lock it: mfa.ts), and the challenge dies after five.
 * Every outcome lands in the audit log.
 */
import { AppError, notFound } from "../../lib/errors.ts";
import { tokenCacheKey } from "../../lib/expiring-cache.ts";
import { normalizeEmail } from "./accounts.ts";
import { audit } from "./audit.ts";
import { withTransaction } from "./db.ts";
import { addSeconds } from "./deps.ts";
import type { Actor, AuthDeps, AuthHooks, RequestInfo, RevokedSession } from "./deps.ts";
import { accountKey, ipKey, recordFailure, recordSuccess, secondsLocked } from "./lockout.ts";
import { hashPassword, verifyAgainstDummy, verifyPassword } from "./passwords.ts";
import { grantsOf } from "./rbac.ts";
import { MFA_CHALLENGE_ATTEMPTS, MFA_CHALLENGE_TTL_S, checkSecondFactor, hasConfirmedTotp } from "./mfa.ts";
import type { SecondFactor } from "./mfa.ts";
import { clientIpOrNull, hashToken, newOpaqueToken } from "./secrets.ts";
import { PASSWORD_ONLY, WITH_SECOND_FACTOR, openSession, revokeSessions, rotateRefreshToken, sessionIsActive } from "./sessions.ts";
import type { IssuedRefreshToken } from "./sessions.ts";
import { issueAccessToken, verifyAccessToken } from "./tokens.ts";

export interface TokenPair {
	accessToken: string;
	refreshToken: string;
	tokenType: "Bearer";
	/** Seconds until the access token expires. */
	expiresIn: number;
	/** Seconds until the refresh token expires (unless used or revoked first). */
	refreshTokenExpiresIn: number;
}

export const invalidCredentials = () => new AppError(401, "INVALID_CREDENTIALS", "The e-mail address or the password is not correct.");
export const invalidRefreshToken = () => new AppError(401, "INVALID_REFRESH_TOKEN", "The refresh token is invalid, expired or revoked; log in again.");
export const tooManyAttempts = (retryAfterS: number) =>
	new AppError(429, "TOO_MANY_LOGIN_ATTEMPTS", `Too many failed attempts; try again in ${retryAfterS} s.`, { retryAfterS });

/** The throttling keys of a login attempt: the account, and the client IP when known. */
export function throttleKeys(email: string, clientIp: string | undefined): { account: string; ip?: string } {
	const ip = clientIpOrNull(clientIp);
	return { account: accountKey(email), ...(ip ? { ip: ipKey(ip) } : {}) };
}

interface LoginRow {
	id: string;
	password_hash: string;
}

export async function login(deps: AuthDeps, input: { email: string; password: string }, request: RequestInfo): Promise<TokenPair> {
	const { pool, clock, settings } = deps;
	const email = normalizeEmail(input.email);
	const keys = throttleKeys(email, request.clientIp);
	const now = clock.now();
	const locked = await secondsLocked(pool, [keys.account, ...(keys.ip ? [keys.ip] : [])], now);
	if (locked > 0) {
		await audit(pool, { action: "login", outcome: "failure", details: { reason: "locked", email } }, request, now);
		throw tooManyAttempts(locked);
	}
	const { rows } = await pool.query<LoginRow>("SELECT id, password_hash FROM users WHERE email = $1", [email]);
	const user = rows[0];
	const check = user ? await verifyPassword(input.password, user.password_hash, settings.bcryptCost) : await verifyAgainstDummy(input.password, settings.bcryptCost);
	if (!user || !check.ok) {
		const at = clock.now();
		await recordFailure(pool, keys.account, deps.lockout.account, at);
		if (keys.ip) await recordFailure(pool, keys.ip, deps.lockout.ip, at);
		await audit(pool, { action: "login", outcome: "failure", userId: user?.id ?? null, details: { reason: user ? "wrong_password" : "unknown_account", email } }, request, at);
		throw invalidCredentials();
	}
	if (check.needsRehash) {
		const rehashed = await hashPassword(input.password, settings.bcryptCost);
		await pool.query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2", [user.id, user.password_hash, rehashed]);
	}
	const at = clock.now();
	if (await hasConfirmedTotp(pool, user.id)) {
		const { token, hash } = newOpaqueToken();
		await pool.query("INSERT INTO mfa_challenges (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)", [hash, user.id, at, addSeconds(at, MFA_CHALLENGE_TTL_S)]);
		await audit(pool, { action: "login.password", outcome: "success", userId: user.id, details: { next: "mfa" } }, request, at);
		throw new AppError(403, "MFA_REQUIRED", "Enter the code from your authenticator app (or a recovery code) with this mfaToken.", { extensions: { mfaToken: token, mfaTokenExpiresIn: MFA_CHALLENGE_TTL_S } });
	}
	const refresh = await withTransaction(pool, async (tx) => {
		await recordSuccess(tx, keys.account, at);
		const issued = await openSession(tx, user.id, settings, at, request.clientIp, PASSWORD_ONLY);
		await audit(tx, { action: "login", outcome: "success", userId: user.id, sessionId: issued.sessionId }, request, at);
		return issued;
	});
	return tokenPair(deps, user.id, refresh, at);
}

const invalidMfaToken = () => new AppError(401, "INVALID_MFA_TOKEN", "This login step has expired or was already used; log in again.");
const invalidMfaCode = () => new AppError(401, "INVALID_MFA_CODE", "The code is not right (or was used already); try the one your app shows now.");

/** The second step of a login: a code from the authenticator app, or one recovery code. */
export async function completeMfaLogin(deps: AuthDeps, input: SecondFactor & { mfaToken: string }, request: RequestInfo): Promise<TokenPair> {
	const { pool, settings } = deps;
	const now = deps.clock.now();
	const hash = hashToken(input.mfaToken);
	const result = await withTransaction(pool, async (tx) => {
		const { rows } = await tx.query<{ user_id: string; expires_at: Date; attempts: number; used_at: Date | null; email: string }>(
			"SELECT c.user_id, c.expires_at, c.attempts, c.used_at, u.email FROM mfa_challenges c JOIN users u ON u.id = c.user_id WHERE c.token_hash = $1 FOR UPDATE OF c",
			[hash],
		);
		const row = rows[0];
		if (!row || row.used_at || row.expires_at <= now || row.attempts >= MFA_CHALLENGE_ATTEMPTS) return { kind: "invalid" as const, userId: row?.user_id };
		const check = await checkSecondFactor(tx, deps, row.user_id, input, request, now);
		if (!check.ok && check.lockedS > 0) return { kind: "locked" as const, lockedS: check.lockedS, userId: row.user_id };
		if (!check.ok) {
			await tx.query("UPDATE mfa_challenges SET attempts = attempts + 1 WHERE token_hash = $1", [hash]);
			return { kind: "wrong" as const, userId: row.user_id };
		}
		await tx.query("UPDATE mfa_challenges SET used_at = $2 WHERE token_hash = $1", [hash, now]);
		await recordSuccess(tx, accountKey(row.email), now);
		const issued = await openSession(tx, row.user_id, settings, now, request.clientIp, WITH_SECOND_FACTOR);
		await audit(tx, { action: "login", outcome: "success", userId: row.user_id, sessionId: issued.sessionId, details: { mfa: check.method } }, request, now);
		return { kind: "ok" as const, userId: row.user_id, issued };
	});
	if (result.kind === "ok") return tokenPair(deps, result.userId, result.issued, now);
	await audit(pool, { action: "login.mfa", outcome: "failure", userId: result.userId ?? null, details: { reason: result.kind } }, request, now);
	if (result.kind === "locked") throw tooManyAttempts(result.lockedS);
	if (result.kind === "invalid") throw invalidMfaToken();
	throw invalidMfaCode();
}

/** The access token and refresh token of a session just opened (or refreshed). */
export async function tokenPair(deps: AuthDeps, userId: string, refresh: IssuedRefreshToken, now: Date): Promise<TokenPair> {
	const grants = await grantsOf(deps.pool, userId);
	const access = await issueAccessToken(deps.keys, deps.settings, { sub: userId, sid: refresh.sessionId, amr: refresh.amr, ...grants }, now);
	return {
		accessToken: access.token,
		refreshToken: refresh.refreshToken,
		tokenType: "Bearer",
		expiresIn: access.expiresIn,
		refreshTokenExpiresIn: Math.floor((refresh.expiresAt.getTime() - now.getTime()) / 1000),
	};
}

/** Spends a refresh token for a new pair (roles and permissions read afresh). A replay revokes the session. */
export async function refresh(deps: AuthDeps, hooks: AuthHooks, refreshToken: string, request: RequestInfo): Promise<TokenPair> {
	const now = deps.clock.now();
	const rotation = await withTransaction(deps.pool, async (tx) => {
		const result = await rotateRefreshToken(tx, refreshToken, deps.settings, now);
		await audit(
			tx,
			{ action: "token.refresh", outcome: result.ok ? "success" : "failure", userId: result.userId ?? null, sessionId: result.ok ? result.token.sessionId : (result.sessionId ?? null), details: result.ok ? {} : { reason: result.reason } },
			request,
			now,
		);
		return result;
	});
	if (!rotation.ok) {
		if (rotation.revoked?.length) hooks.sessionsRevoked(rotation.revoked);
		throw invalidRefreshToken();
	}
	return tokenPair(deps, rotation.userId, rotation.token, now);
}

export interface LogoutInput {
	/** Ends the session of this refresh token (one of the caller's own); default: the caller's current session. */
	refreshToken?: string;
	/** Ends this one of the caller's sessions (an id from their sessions list); 404 when it is not one. */
	sessionId?: string;
	/** Ends every session of the caller. */
	allSessions?: boolean;
	/** Ends every session of the caller but the current one ("sign out everywhere else"). */
	otherSessions?: boolean;
}

export async function logout(deps: AuthDeps, hooks: AuthHooks, caller: { userId: string; sessionId: string }, input: LogoutInput, request: RequestInfo): Promise<{ revokedSessions: number }> {
	const now = deps.clock.now();
	const revoked = await withTransaction(deps.pool, async (tx) => {
		let sessions: RevokedSession[];
		if (input.allSessions || input.otherSessions) {
			const exceptSessionId = input.allSessions ? undefined : caller.sessionId;
			sessions = await revokeSessions(tx, { userId: caller.userId, exceptSessionId }, "logout_all", deps.settings, now);
		} else {
			let sessionId = input.sessionId ?? caller.sessionId;
			if (input.refreshToken) {
				const { rows } = await tx.query<{ session_id: string }>("SELECT session_id FROM refresh_tokens WHERE token_hash = $1", [hashToken(input.refreshToken)]);
				if (rows[0]) sessionId = rows[0].session_id;
			}
			sessions = await revokeSessions(tx, { sessionId, userId: caller.userId }, "logout", deps.settings, now);
			// Someone else's session, or one already ended, is not there for this caller.
			if (input.sessionId && !sessions.length) throw notFound("Session");
		}
		const action = input.allSessions ? "logout.all" : input.otherSessions ? "logout.others" : "logout";
		await audit(tx, { action, outcome: "success", userId: caller.userId, sessionId: caller.sessionId, details: { revoked: sessions.length } }, request, now);
		return sessions;
	});
	if (revoked.length) hooks.sessionsRevoked(revoked);
	return { revokedSessions: revoked.length };
}

/** An administrator (or an operator) ends every session of a user: a lost device, a leaver. */
export async function endUserSessions(deps: AuthDeps, hooks: AuthHooks, input: { userId: string } & Actor, request: RequestInfo): Promise<{ revokedSessions: number }> {
	const now = deps.clock.now();
	const revoked = await withTransaction(deps.pool, async (tx) => {
		const sessions = await revokeSessions(tx, { userId: input.userId }, "admin", deps.settings, now);
		await audit(tx, { action: "sessions.revoke_user", outcome: "success", userId: input.userId, actorId: input.actorId, details: { revoked: sessions.length, ...(input.operator ? { operator: input.operator } : {}) } }, request, now);
		return sessions;
	});
	if (revoked.length) hooks.sessionsRevoked(revoked);
	return { revokedSessions: revoked.length };
}

export interface Introspection {
	active: boolean;
	sub?: string;
	sid?: string;
	jti?: string;
	iss?: string;
	aud?: string;
	iat?: number;
	exp?: number;
	roles?: string[];
	permissions?: string[];
	amr?: string[];
	tokenType?: "access_token";
}

/** RFC 7662-style answer: `active` only when the signature, the claims, the expiry and the session all hold. */
export async function introspect(deps: AuthDeps, token: string): Promise<Introspection> {
	const now = deps.clock.now();
	const key = tokenCacheKey(token);
	const cached = deps.tokenCache?.get(key, now.getTime());
	const check = cached ? { valid: true as const, claims: cached } : await verifyAccessToken(deps.keys, deps.settings, token, now);
	if (check.valid && !cached) deps.tokenCache?.set(key, check.claims, check.claims.exp * 1000);
	if (!check.valid || !(await sessionIsActive(deps.pool, check.claims.sid, now, deps.sessionCache))) return { active: false };
	const { sub, sid, jti, iss, aud, iat, exp, roles, permissions, amr } = check.claims;
	return { active: true, sub, sid, jti, iss, aud, iat, exp, roles, permissions, amr, tokenType: "access_token" };
}
