/**
 * Sessions and their refresh tokens. A login opens a session (absolute lifetime
 * `refreshTokenTtlS`); each refresh spends the presented token and issues the next one of the
 * same family, valid for `sessionIdleTimeoutS` (never past the session's end). Presenting a spent
 * token again is a replay: the whole session (the family) is revoked. A unique index keeps at
 * most one unspent token per session, so rotation cannot fork.
 */
import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { Db } from "./db.ts";
import { addSeconds } from "./deps.ts";
import type { AuthSettings, RevokedSession } from "./deps.ts";
import type { ActiveSessionCache } from "./session-cache.ts";
import { clientIpOrNull, hashToken, newOpaqueToken } from "./secrets.ts";

type SessionSettings = Pick<AuthSettings, "refreshTokenTtlS" | "sessionIdleTimeoutS" | "accessTokenTtlS">;

export type RevokeReason = "logout" | "logout_all" | "refresh_token_reuse" | "password_reset" | "password_change" | "admin" | "mfa_enabled" | "email_revert" | "passkey_cloned";

export interface IssuedRefreshToken {
	sessionId: string;
	refreshToken: string;
	expiresAt: Date;
	/** The session's authentication methods, which its access tokens carry. */
	amr: string[];
}

/** How the user proved who they are (RFC 8176): the password alone, the password and a second factor, or a passkey. */
export const PASSWORD_ONLY = ["pwd"];
export const WITH_SECOND_FACTOR = ["pwd", "otp", "mfa"];
/** A passkey with user verification: proof of possession of a key, unlocked by biometrics or a PIN. */
export const WITH_PASSKEY = ["pop", "mfa"];

export async function openSession(tx: pg.PoolClient, userId: string, settings: SessionSettings, now: Date, clientIp: string | undefined, amr: string[]): Promise<IssuedRefreshToken> {
	const sessionId = randomUUID();
	const sessionEnd = addSeconds(now, settings.refreshTokenTtlS);
	await tx.query(
		"INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, client_ip, amr) VALUES ($1, $2, $3, $3, $4, $5, $6)",
		[sessionId, userId, now, sessionEnd, clientIpOrNull(clientIp), amr],
	);
	return issueRefreshToken(tx, sessionId, sessionEnd, amr, settings, now);
}

async function issueRefreshToken(tx: pg.PoolClient, sessionId: string, sessionEnd: Date, amr: string[], settings: SessionSettings, now: Date): Promise<IssuedRefreshToken> {
	const { token, hash } = newOpaqueToken();
	const idleEnd = addSeconds(now, settings.sessionIdleTimeoutS);
	const expiresAt = idleEnd < sessionEnd ? idleEnd : sessionEnd;
	await tx.query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)", [hash, sessionId, now, expiresAt]);
	return { sessionId, refreshToken: token, expiresAt, amr };
}

export type Rotation =
	| { ok: true; userId: string; token: IssuedRefreshToken }
	| { ok: false; reason: "unknown" | "expired" | "revoked" | "reused"; userId?: string; sessionId?: string; revoked?: RevokedSession[] };

interface PresentedRow {
	session_id: string;
	expires_at: Date;
	used_at: Date | null;
	user_id: string;
	session_expires_at: Date;
	revoked_at: Date | null;
	amr: string[];
}

/**
 * Spends `refreshToken` and issues its successor. A replay of a spent token revokes the session;
 * the caller must commit the transaction even then (the revocation is the point) and answer 401.
 */
export async function rotateRefreshToken(tx: pg.PoolClient, refreshToken: string, settings: SessionSettings, now: Date): Promise<Rotation> {
	const { rows } = await tx.query<PresentedRow>(
		`SELECT rt.session_id, rt.expires_at, rt.used_at, s.user_id, s.expires_at AS session_expires_at, s.revoked_at, s.amr
		 FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
		 WHERE rt.token_hash = $1 FOR UPDATE OF rt, s`,
		[hashToken(refreshToken)],
	);
	const row = rows[0];
	if (!row) return { ok: false, reason: "unknown" };
	const who = { userId: row.user_id, sessionId: row.session_id };
	if (row.revoked_at) return { ok: false, reason: "revoked", ...who };
	if (row.used_at) {
		const revoked = await revokeSessions(tx, { sessionId: row.session_id }, "refresh_token_reuse", settings, now);
		return { ok: false, reason: "reused", ...who, revoked };
	}
	if (row.expires_at <= now || row.session_expires_at <= now) return { ok: false, reason: "expired", ...who };
	await tx.query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1", [hashToken(refreshToken), now]);
	await tx.query("UPDATE sessions SET last_used_at = $2 WHERE id = $1", [row.session_id, now]);
	return { ok: true, userId: row.user_id, token: await issueRefreshToken(tx, row.session_id, row.session_expires_at, row.amr, settings, now) };
}

export type SessionSelector = { sessionId: string; userId?: string } | { userId: string; exceptSessionId?: string };

/**
 * Ends the selected live sessions. Their access tokens still carry a valid signature until they
 * expire (`expiresAt` at the latest): the caller broadcasts the list so gateways refuse them.
 */
export async function revokeSessions(db: Db, which: SessionSelector, reason: RevokeReason, settings: Pick<SessionSettings, "accessTokenTtlS">, now: Date): Promise<RevokedSession[]> {
	const { rows } =
		"sessionId" in which
			? await db.query<{ id: string; user_id: string }>(
					"UPDATE sessions SET revoked_at = $3, revoked_reason = $4 WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND revoked_at IS NULL RETURNING id, user_id",
					[which.sessionId, which.userId ?? null, now, reason],
				)
			: await db.query<{ id: string; user_id: string }>(
					"UPDATE sessions SET revoked_at = $3, revoked_reason = $4 WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2) AND revoked_at IS NULL RETURNING id, user_id",
					[which.userId, which.exceptSessionId ?? null, now, reason],
				);
	const expiresAt = addSeconds(now, settings.accessTokenTtlS).toISOString();
	return rows.map((r) => ({ sessionId: r.id, userId: r.user_id, expiresAt }));
}

/** Not revoked and within its absolute lifetime. */
export async function sessionIsActive(db: Db, sessionId: string, now: Date, cache?: ActiveSessionCache): Promise<boolean> {
	if (cache?.isActive(sessionId, now)) return true;
	const { rows } = await db.query<{ expires_at: Date }>("SELECT expires_at FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2", [sessionId, now]);
	if (rows[0]) cache?.remember(sessionId, rows[0].expires_at, now);
	return rows.length === 1;
}

export interface SessionView {
	id: string;
	createdAt: string;
	lastUsedAt: string;
	expiresAt: string;
	clientIp: string | null;
	current: boolean;
}

export async function listSessions(db: Db, userId: string, currentSessionId: string | undefined, now: Date): Promise<SessionView[]> {
	const { rows } = await db.query<{ id: string; created_at: Date; last_used_at: Date; expires_at: Date; client_ip: string | null }>(
		"SELECT id, created_at, last_used_at, expires_at, client_ip FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY last_used_at DESC LIMIT 100",
		[userId, now],
	);
	return rows.map((r) => ({
		id: r.id, createdAt: r.created_at.toISOString(), lastUsedAt: r.last_used_at.toISOString(), expiresAt: r.expires_at.toISOString(),
		clientIp: r.client_ip, current: r.id === currentSessionId,
	}));
}
