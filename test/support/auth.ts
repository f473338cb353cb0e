/**
 * Helpers for the auth tests: a migrated database of their own, the domain dependencies with a
 * clock the test moves, and a small lockout policy so lockouts happen in a few attempts.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import pg from "pg";
import { migrateUp } from "../../lib/migrations.ts";
import { DEFAULT_LINK_SETTINGS } from "../../services/auth/deps.ts";
import type { AuthDeps, AuthHooks, AuthSettings, Clock, RevokedSession } from "../../services/auth/deps.ts";
import { KeyRing } from "../../services/auth/keys.ts";
import type { LockoutPolicy } from "../../services/auth/lockout.ts";
import { createTestDatabase } from "./infra.ts";

export const MIGRATIONS_DIR = path.resolve(import.meta.dirname, "../../services/auth/migrations");
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A clock that only moves when the test says so. */
export class TestClock implements Clock {
	private t: number;
	constructor(start = Date.parse("2030-01-01T00:00:00Z")) {
		this.t = start;
	}
	now(): Date {
		return new Date(this.t);
	}
	advance(seconds: number): void {
		this.t += seconds * 1000;
	}
}

export const TEST_LOCKOUT: LockoutPolicy = {
	account: { maxFailures: 3, windowS: 600, lockS: 60, maxLockS: 240 },
	ip: { maxFailures: 6, windowS: 600, lockS: 120, maxLockS: 120 },
};

export const TEST_SETTINGS: AuthSettings = {
	bcryptCost: 4,
	issuer: "http://auth.test",
	audience: "backplane-api",
	accessTokenTtlS: 900,
	refreshTokenTtlS: 30 * 86_400,
	sessionIdleTimeoutS: 7 * 86_400,
	publicUrl: "http://app.test",
	webauthn: { rpId: "app.test", rpName: "Backplane", origins: ["http://app.test"] },
	...DEFAULT_LINK_SETTINGS,
};

export interface AuthKit {
	databaseUrl: string;
	pool: pg.Pool;
	clock: TestClock;
	deps: AuthDeps;
	/** Collects what the service would broadcast as `auth.session.revoked`. */
	revoked: RevokedSession[];
	hooks: AuthHooks;
	close(): Promise<void>;
}

export async function authKit(opts: { kek?: Buffer; rotationDays?: number } = {}): Promise<AuthKit> {
	const databaseUrl = await createTestDatabase();
	await migrateUp(databaseUrl, MIGRATIONS_DIR, silent);
	const pool = new pg.Pool({ connectionString: databaseUrl, max: 5 });
	const clock = new TestClock();
	const kek = opts.kek ?? randomBytes(32);
	const keys = new KeyRing(pool, kek, clock, { rotationDays: opts.rotationDays ?? 30, accessTokenTtlS: TEST_SETTINGS.accessTokenTtlS });
	const revoked: RevokedSession[] = [];
	return {
		databaseUrl,
		pool,
		clock,
		deps: { pool, clock, keys, kek, settings: TEST_SETTINGS, lockout: TEST_LOCKOUT },
		revoked,
		hooks: { sessionsRevoked: (s) => revoked.push(...s) },
		close: () => pool.end(),
	};
}

/** The outbox rows of one type, oldest first (what the relay would publish). */
export async function outboxEvents<T = Record<string, unknown>>(pool: pg.Pool, type: string): Promise<{ id: string; subject: string; data: T }[]> {
	const { rows } = await pool.query<{ envelope: { id: string; subject: string; data: T } }>("SELECT envelope FROM outbox_events WHERE type = $1 ORDER BY seq", [type]);
	return rows.map((r) => r.envelope);
}

/** The token inside the last e-mailed link of that type for a user. */
export async function lastLinkToken(pool: pg.Pool, type: "user.password_reset_requested" | "user.email_verification_requested" | "user.email_change_requested", userId: string): Promise<string> {
	const events = await outboxEvents<{ resetUrl?: string; verifyUrl?: string; confirmUrl?: string }>(pool, type);
	const mine = events.filter((e) => e.subject === userId);
	const url = mine.at(-1)?.data.resetUrl ?? mine.at(-1)?.data.verifyUrl ?? mine.at(-1)?.data.confirmUrl;
	if (!url) throw new Error(`no ${type} event for ${userId}`);
	return new URL(url).searchParams.get("token")!;
}
