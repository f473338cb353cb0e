/**
 * Periodic clean-up, run by every auth node (statements are idempotent): expired one-time
 * tokens, ended sessions, retired signing keys past their publication, stale throttling rows,
 * and the one-time links inside already-published outbox events (the only place a usable token
 * exists in clear, until RabbitMQ confirmed it).
 */
import type pg from "pg";
import { addSeconds } from "./deps.ts";
import type { AuthDeps } from "./deps.ts";

/** Rows are kept this long after they stopped mattering, for investigations. */
const GRACE_S = 86_400;
const LINK_EVENTS = { "user.password_reset_requested": "resetUrl", "user.email_verification_requested": "verifyUrl", "user.email_change_requested": "confirmUrl", "user.email_changed": "revertUrl" } as const;

export interface HousekeepingReport {
	deleted: Record<string, number>;
	scrubbedEvents: number;
}

export async function housekeeping(pool: pg.Pool, now: Date): Promise<HousekeepingReport> {
	const before = addSeconds(now, -GRACE_S);
	const statements: Record<string, string> = {
		email_verification_tokens: "DELETE FROM email_verification_tokens WHERE expires_at < $1",
		password_reset_tokens: "DELETE FROM password_reset_tokens WHERE expires_at < $1",
		mfa_challenges: "DELETE FROM mfa_challenges WHERE expires_at < $1",
		webauthn_challenges: "DELETE FROM webauthn_challenges WHERE expires_at < $1",
		refresh_tokens: "DELETE FROM refresh_tokens WHERE expires_at < $1",
		sessions: "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1",
		signing_keys: "DELETE FROM signing_keys WHERE published_until < $1",
		login_throttles: "DELETE FROM login_throttles WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)",
	};
	const deleted: Record<string, number> = {};
	for (const [table, sql] of Object.entries(statements)) deleted[table] = (await pool.query(sql, [before])).rowCount ?? 0;
	let scrubbedEvents = 0;
	for (const [type, field] of Object.entries(LINK_EVENTS)) {
		const result = await pool.query(
			`UPDATE outbox_events SET envelope = jsonb_set(envelope, ARRAY['data', $2::text], '"[redacted]"')
			 WHERE type = $1 AND published_at IS NOT NULL AND envelope->'data'->>$2 <> '[redacted]'`,
			[type, field],
		);
		scrubbedEvents += result.rowCount ?? 0;
	}
	return { deleted, scrubbedEvents };
}

/** Seconds since the oldest event still waiting for the relay was committed (0: none waits). */
export async function outboxLagSeconds(pool: pg.Pool): Promise<number> {
	const { rows } = await pool.query<{ lag: number | null }>(
		"SELECT extract(epoch FROM now() - min(created_at))::float8 AS lag FROM outbox_events WHERE published_at IS NULL",
	);
	return Math.max(0, rows[0]?.lag ?? 0);
}

export interface MaintenanceHooks {
	rotated: (kid: string) => void;
	failed: (err: Error) => void;
	/** Called with the outbox lag every `lagEveryMs` (omit to skip). */
	lag?: (seconds: number) => void;
}

/** Rotates the signing key when due and cleans up, every `everyMs`; returns the function that stops it. */
export function startMaintenance(deps: Pick<AuthDeps, "pool" | "clock" | "keys">, hooks: MaintenanceHooks, everyMs = 10 * 60_000, lagEveryMs = 10_000): () => void {
	const run = async () => {
		const kid = await deps.keys.ensureCurrent();
		if (kid) hooks.rotated(kid);
		await housekeeping(deps.pool, deps.clock.now());
	};
	const timers = [setInterval(() => void run().catch(hooks.failed), everyMs)];
	const lag = hooks.lag;
	if (lag) timers.push(setInterval(() => void outboxLagSeconds(deps.pool).then(lag, () => undefined), lagEveryMs));
	for (const t of timers) t.unref();
	return () => timers.forEach(clearInterval);
}
