/**
 * Login throttling (NIST SP 800-63B 5.2.2, ASVS 6.3.1): consecutive failures are counted per
 * account (by normalised e-mail, whether or not the account exists, so a lockout reveals
 * nothing) and per client IP. Reaching the limit within the window locks the key; each further
 * lockout before a success doubles its length, up to a ceiling. Locks expire by themselves, and a
 * password reset (proof of the mailbox) clears the account's lock.
 */
import { withTransaction } from "./db.ts";
import type { Db } from "./db.ts";
import type pg from "pg";

export interface ThrottleRule {
	maxFailures: number;
	windowS: number;
	lockS: number;
	maxLockS: number;
}

export interface LockoutPolicy {
	account: ThrottleRule;
	ip: ThrottleRule;
}

/**
 * 5 wrong passwords in 15 minutes lock an account for 15 minutes (then 30, then 60 at most):
 * online guessing is held to about 5 guesses an hour per account, while a victim whom someone
 * else locks out waits an hour at worst (or resets the password). 50 failures from one IP in 15
 * minutes lock that IP.
 */
export const DEFAULT_LOCKOUT: LockoutPolicy = {
	account: { maxFailures: 5, windowS: 900, lockS: 900, maxLockS: 3_600 },
	ip: { maxFailures: 50, windowS: 900, lockS: 900, maxLockS: 3_600 },
};

export const accountKey = (email: string) => `account:${email}`;
export const ipKey = (ip: string) => `ip:${ip}`;
/** Wrong second-factor codes: a key of their own, which a password reset (proof of the mailbox only) does not clear. */
export const mfaKey = (userId: string) => `mfa:${userId}`;

/** Seconds until every one of `keys` is unlocked (0: none is locked). */
export async function secondsLocked(db: Db, keys: string[], now: Date): Promise<number> {
	const { rows } = await db.query<{ until: Date | null }>(
		"SELECT max(locked_until) AS until FROM login_throttles WHERE key = ANY($1) AND locked_until > $2",
		[keys, now],
	);
	const until = rows[0]?.until;
	return until ? Math.ceil((until.getTime() - now.getTime()) / 1000) : 0;
}

interface ThrottleRow {
	failures: number;
	first_failure_at: Date | null;
	lockouts: number;
}

/** Counts one failure against `key`; returns when the key is now locked until, if this failure locked it. */
export async function recordFailure(pool: pg.Pool, key: string, rule: ThrottleRule, now: Date): Promise<Date | undefined> {
	return withTransaction(pool, (tx) => recordFailureIn(tx, key, rule, now));
}

/** `recordFailure` inside the caller's transaction (its check and its count then cannot be raced). */
export async function recordFailureIn(tx: pg.PoolClient, key: string, rule: ThrottleRule, now: Date): Promise<Date | undefined> {
	await tx.query("INSERT INTO login_throttles (key, updated_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", [key, now]);
	const { rows } = await tx.query<ThrottleRow>("SELECT failures, first_failure_at, lockouts FROM login_throttles WHERE key = $1 FOR UPDATE", [key]);
	const row = rows[0]!;
	const inWindow = row.first_failure_at !== null && now.getTime() - row.first_failure_at.getTime() < rule.windowS * 1000;
	const failures = inWindow ? row.failures + 1 : 1;
	const firstFailureAt = inWindow ? row.first_failure_at : now;
	if (failures < rule.maxFailures) {
		await tx.query("UPDATE login_throttles SET failures = $2, first_failure_at = $3, updated_at = $4 WHERE key = $1", [key, failures, firstFailureAt, now]);
		return undefined;
	}
	const lockedUntil = new Date(now.getTime() + Math.min(rule.lockS * 2 ** row.lockouts, rule.maxLockS) * 1000);
	await tx.query(
		"UPDATE login_throttles SET failures = 0, first_failure_at = NULL, locked_until = $2, lockouts = lockouts + 1, updated_at = $3 WHERE key = $1",
		[key, lockedUntil, now],
	);
	return lockedUntil;
}

/** A successful login clears the account's failures and its lockout history (never an IP's). */
export async function recordSuccess(db: Db, key: string, now: Date): Promise<void> {
	await db.query(
		"UPDATE login_throttles SET failures = 0, first_failure_at = NULL, lockouts = 0, locked_until = NULL, updated_at = $2 WHERE key = $1 AND (failures > 0 OR lockouts > 0)",
		[key, now],
	);
}
