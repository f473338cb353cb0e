/**
 * What an operator needs from auth's database (REPL commands, not the public API): find a user,
 * look at the outbox, and send an event again. Replaying is safe because every consumer is
 * idempotent by event id.
 */
import type pg from "pg";
import { notFound } from "../../lib/errors.ts";
import { getProfile, normalizeEmail } from "./accounts.ts";
import type { Profile } from "./accounts.ts";
import type { AuthDeps } from "./deps.ts";

export interface UserReport extends Profile {
	activeSessions: number;
}

/** A user by id or e-mail address, with roles and the number of live sessions. */
export async function findUser(deps: AuthDeps, idOrEmail: string): Promise<UserReport> {
	const byEmail = idOrEmail.includes("@");
	const { rows } = await deps.pool.query<{ id: string }>(byEmail ? "SELECT id FROM users WHERE email = $1" : "SELECT id FROM users WHERE id::text = $1", [byEmail ? normalizeEmail(idOrEmail) : idOrEmail]);
	if (!rows[0]) throw notFound("User");
	const profile = await getProfile(deps, rows[0].id);
	const sessions = await deps.pool.query<{ n: string }>("SELECT count(*) AS n FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2", [profile.id, deps.clock.now()]);
	return { ...profile, activeSessions: Number(sessions.rows[0]?.n ?? 0) };
}

export interface OutboxRow {
	id: string;
	type: string;
	createdAt: string;
	publishedAt: string | null;
}

/** The newest outbox rows; only those not yet relayed when `pendingOnly`. */
export async function listOutbox(pool: pg.Pool, opts: { pendingOnly: boolean; limit: number }): Promise<{ pending: number; rows: OutboxRow[] }> {
	const { rows } = await pool.query<{ id: string; type: string; created_at: Date; published_at: Date | null }>(
		`SELECT id, type, created_at, published_at FROM outbox_events ${opts.pendingOnly ? "WHERE published_at IS NULL" : ""} ORDER BY seq DESC LIMIT $1`,
		[opts.limit],
	);
	const pending = await pool.query<{ n: string }>("SELECT count(*) AS n FROM outbox_events WHERE published_at IS NULL");
	return {
		pending: Number(pending.rows[0]?.n ?? 0),
		rows: rows.map((r) => ({ id: r.id, type: r.type, createdAt: r.created_at.toISOString(), publishedAt: r.published_at?.toISOString() ?? null })),
	};
}

/** Marks a relayed event for relaying again (consumers deduplicate by its unchanged id). */
export async function replayEvent(pool: pg.Pool, eventId: string): Promise<{ id: string; type: string }> {
	const { rows } = await pool.query<{ id: string; type: string }>("UPDATE outbox_events SET published_at = NULL WHERE id::text = $1 RETURNING id, type", [eventId]);
	if (!rows[0]) throw notFound("Event");
	return rows[0];
}
