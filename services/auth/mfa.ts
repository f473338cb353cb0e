/**
 * The second login factor: TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, as every
 * authenticator app reads them) with one step of clock drift either way, and one-time recovery
 * codes for a lost phone. A code is accepted once: the step it was for is remembered, and an
 * older or equal step is refused (a code seen over a shoulder cannot be replayed).
 */
import { randomInt } from "node:crypto";
import { Secret, TOTP } from "otpauth";
import type pg from "pg";
import { AppError } from "../../lib/errors.ts";
import type { AuthDeps, RequestInfo } from "./deps.ts";
import { enqueue } from "./events.ts";
import { ipKey, mfaKey, recordFailureIn, recordSuccess, secondsLocked } from "./lockout.ts";
import { open, seal } from "./sealed.ts";
import { clientIpOrNull, hashToken } from "./secrets.ts";

const TOTP_PERIOD_S = 30;
/** Steps of drift accepted either side of the server's. */
const TOTP_WINDOW = 1;
const RECOVERY_CODE_COUNT = 10;
/** How long the second step of a login may take, and how many codes it may try. */
export const MFA_CHALLENGE_TTL_S = 300;
export const MFA_CHALLENGE_ATTEMPTS = 5;

const ISSUER = "Backplane";
const totpOf = (secret: Secret, label = "") => new TOTP({ issuer: ISSUER, label, secret, algorithm: "SHA1", digits: 6, period: TOTP_PERIOD_S });
const aadOf = (userId: string) => `totp:${userId}`;

/** A fresh secret: 160 bits, as RFC 4226 recommends. */
export function newTotpSecret(email: string): { secret: Buffer; base32: string; otpauthUrl: string } {
	const secret = new Secret({ size: 20 });
	return { secret: Buffer.from(secret.bytes), base32: secret.base32, otpauthUrl: totpOf(secret, email).toString() };
}

/** The step a code is valid for, if it is valid now and newer than `lastUsedStep`; else null. */
export function matchTotp(secret: Buffer, code: string, lastUsedStep: number, now: Date): number | null {
	const token = code.replace(/\s+/g, "");
	if (!/^\d{6}$/.test(token)) return null;
	const timestamp = now.getTime();
	const delta = totpOf(new Secret({ buffer: new Uint8Array(secret).buffer })).validate({ token, timestamp, window: TOTP_WINDOW });
	if (delta === null) return null;
	const step = Math.floor(timestamp / 1000 / TOTP_PERIOD_S) + delta;
	return step > lastUsedStep ? step : null;
}

/**
 * Ten codes like `k7f2-9qxw-3mab-cd45-efgh-jk67`: 24 characters from 31 no one misreads, 118 bits
 * each, so a plain SHA-256 may store them (ASVS 6.5.2 asks for 112 bits, else a password hash).
 */
function newRecoveryCodes(): string[] {
	const alphabet = "23456789abcdefghjkmnpqrstuvwxyz";
	return Array.from({ length: RECOVERY_CODE_COUNT }, () => {
		const chars = Array.from({ length: 24 }, () => alphabet[randomInt(alphabet.length)]).join("");
		return chars.match(/.{4}/g)!.join("-");
	});
}

/** Codes are compared without case, spaces or dashes. */
const recoveryCodeHash = (code: string) => hashToken(code.toLowerCase().replace(/[\s-]+/g, ""));

export interface Authenticator {
	secret: Buffer;
	confirmed: boolean;
	lastUsedStep: number;
}

interface AuthenticatorRow {
	secret_ciphertext: Buffer;
	secret_iv: Buffer;
	secret_tag: Buffer;
	confirmed_at: Date | null;
	last_used_step: string;
}

/** The user's authenticator (secret opened), or null; `forUpdate` inside a transaction. */
export async function loadAuthenticator(q: pg.Pool | pg.PoolClient, kek: Buffer, userId: string, forUpdate = false): Promise<Authenticator | null> {
	const { rows } = await q.query<AuthenticatorRow>(
		`SELECT secret_ciphertext, secret_iv, secret_tag, confirmed_at, last_used_step FROM totp_authenticators WHERE user_id = $1${forUpdate ? " FOR UPDATE" : ""}`,
		[userId],
	);
	const row = rows[0];
	if (!row) return null;
	const secret = open(kek, aadOf(userId), { ciphertext: row.secret_ciphertext, iv: row.secret_iv, tag: row.secret_tag });
	return { secret, confirmed: row.confirmed_at !== null, lastUsedStep: Number(row.last_used_step) };
}

/** Stores a new, unconfirmed authenticator in place of any unconfirmed one. */
export async function storeAuthenticator(tx: pg.PoolClient, kek: Buffer, userId: string, secret: Buffer, now: Date): Promise<void> {
	const sealed = seal(kek, aadOf(userId), secret);
	await tx.query(
		`INSERT INTO totp_authenticators (user_id, secret_ciphertext, secret_iv, secret_tag, created_at) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (user_id) DO UPDATE SET secret_ciphertext = $2, secret_iv = $3, secret_tag = $4, created_at = $5, confirmed_at = NULL, last_used_step = 0`,
		[userId, sealed.ciphertext, sealed.iv, sealed.tag, now],
	);
}

export async function hasConfirmedTotp(q: pg.Pool | pg.PoolClient, userId: string): Promise<boolean> {
	const { rowCount } = await q.query("SELECT 1 FROM totp_authenticators WHERE user_id = $1 AND confirmed_at IS NOT NULL", [userId]);
	return rowCount === 1;
}

/** Whether the user can sign in with a second factor: an authenticator app, or a passkey not turned off. */
export async function hasSecondFactor(q: pg.Pool | pg.PoolClient, userId: string): Promise<boolean> {
	const { rows } = await q.query<{ any: boolean }>(
		`SELECT EXISTS (SELECT 1 FROM totp_authenticators WHERE user_id = $1 AND confirmed_at IS NOT NULL)
		     OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1 AND disabled_at IS NULL) AS any`,
		[userId],
	);
	return rows[0]?.any === true;
}

/**
 * After the user's last second factor went: their sessions count as signed in with the password
 * alone from their next refresh (what ADMIN_REQUIRES_MFA and USERS_REQUIRE_MFA read).
 */
export async function downgradeIfNoSecondFactor(tx: pg.PoolClient, userId: string): Promise<void> {
	if (await hasSecondFactor(tx, userId)) return;
	await tx.query("UPDATE sessions SET amr = '{pwd}' WHERE user_id = $1 AND revoked_at IS NULL AND 'mfa' = ANY(amr)", [userId]);
}

/** Ten new recovery codes in place of the user's old ones (used or not); answered in clear this once. */
export async function replaceRecoveryCodes(tx: pg.PoolClient, userId: string, now: Date): Promise<string[]> {
	const codes = newRecoveryCodes();
	await tx.query("DELETE FROM recovery_codes WHERE user_id = $1", [userId]);
	await tx.query("INSERT INTO recovery_codes (user_id, code_hash, created_at) SELECT $1, unnest($2::bytea[]), $3", [userId, codes.map(recoveryCodeHash), now]);
	return codes;
}

/** Recovery codes the user has not used yet. */
export async function recoveryCodesLeft(q: pg.Pool | pg.PoolClient, userId: string): Promise<number> {
	const { rows } = await q.query<{ left: number }>("SELECT count(*)::int AS left FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL", [userId]);
	return rows[0]?.left ?? 0;
}

/** Spends a recovery code of the user; true when it was theirs and unused. */
async function spendRecoveryCode(tx: pg.PoolClient, userId: string, code: string, now: Date): Promise<boolean> {
	const { rowCount } = await tx.query("UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL", [userId, recoveryCodeHash(code), now]);
	return rowCount === 1;
}

/** Logins halfway through (password given, code pending) end: the password changed, or the factor went. */
export async function endPendingLogins(tx: pg.PoolClient, userId: string): Promise<void> {
	await tx.query("DELETE FROM mfa_challenges WHERE user_id = $1", [userId]);
}

export type SecondFactor = { code?: string; recoveryCode?: string };
export type FactorCheck = { ok: true; method: "totp" | "recovery_code" } | { ok: false; lockedS: number };

/**
 * Checks a code from the app or a recovery code of a user with two-step login on, inside the
 * caller's transaction. The authenticator row is locked first, so a user's checks run one at a
 * time: the lockout read and the failure counted cannot be raced by parallel guesses. Wrong codes
 * count under their own key (`mfaKey`), which a password reset does not clear, and under the
 * client's IP, as wrong passwords do (one IP trying codes across many stolen passwords). When
 * they lock the account's second factor, its owner is told (`user.mfa_locked`): whoever typed
 * them had the password.
 */
export async function checkSecondFactor(tx: pg.PoolClient, deps: Pick<AuthDeps, "kek" | "lockout">, userId: string, factor: SecondFactor, request: RequestInfo, now: Date): Promise<FactorCheck> {
	const authenticator = await loadAuthenticator(tx, deps.kek, userId, true);
	if (!authenticator?.confirmed) throw new AppError(409, "MFA_NOT_ENABLED", "Two-step login is not on.");
	const key = mfaKey(userId);
	const ip = clientIpOrNull(request.clientIp);
	const lockedS = await secondsLocked(tx, ip ? [key, ipKey(ip)] : [key], now);
	if (lockedS > 0) return { ok: false, lockedS };
	let method: "totp" | "recovery_code" | undefined;
	if (factor.code) {
		const step = matchTotp(authenticator.secret, factor.code, authenticator.lastUsedStep, now);
		if (step !== null) {
			await tx.query("UPDATE totp_authenticators SET last_used_step = $2 WHERE user_id = $1", [userId, step]);
			method = "totp";
		}
	} else if (factor.recoveryCode && (await spendRecoveryCode(tx, userId, factor.recoveryCode, now))) {
		method = "recovery_code";
	}
	if (!method) {
		const lockedUntil = await recordFailureIn(tx, key, deps.lockout.account, now);
		if (ip) await recordFailureIn(tx, ipKey(ip), deps.lockout.ip, now);
		if (lockedUntil) {
			const { rows } = await tx.query<{ email: string; name: string | null }>("SELECT email, name FROM users WHERE id = $1", [userId]);
			if (rows[0]) await enqueue(tx, "user.mfa_locked", userId, { userId, email: rows[0].email, name: rows[0].name, at: now.toISOString(), lockedUntil: lockedUntil.toISOString() }, request, now);
		}
		return { ok: false, lockedS: 0 };
	}
	await recordSuccess(tx, key, now);
	return { ok: true, method };
}
