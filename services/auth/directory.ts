/**
 * What administrators see of accounts: the users, by e-mail address, with their roles, live
 * sessions and whether two-step login is on, in keyset pages (stable under inserts, no OFFSET scans); and the role catalog.
 */
import type pg from "pg";
import { badRequest } from "../../lib/errors.ts";
import type { User } from "./accounts.ts";

export interface UserSummary extends User {
	roles: string[];
	activeSessions: number;
	mfaEnabled: boolean;
	passkeys: number;
}

export interface ListUsersInput {
	/** Part of an e-mail address, or a user id. */
	query?: string;
	cursor?: string;
	limit: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The cursor is the last e-mail address of the previous page: users are ordered by it (unique). */
const encodeCursor = (email: string) => Buffer.from(email).toString("base64url");
function decodeCursor(cursor: string): string {
	const email = Buffer.from(cursor, "base64url").toString();
	if (!email.includes("@")) throw badRequest("The cursor is not valid.", [{ field: "cursor", message: "is not a cursor from a previous page" }]);
	return email;
}

/** LIKE treats % and _ as wildcards; a query is matched literally. */
const likePattern = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

export async function listUsers(pool: pg.Pool, input: ListUsersInput, now: Date): Promise<{ items: UserSummary[]; nextCursor: string | null }> {
	const params: unknown[] = [now, input.limit + 1];
	const where: string[] = [];
	if (input.query) {
		const byId = UUID.test(input.query);
		params.push(byId ? input.query : likePattern(input.query));
		// citext: LIKE ignores case, as e-mail addresses do.
		where.push(byId ? `u.id = $${params.length}::uuid` : `u.email LIKE $${params.length}`);
	}
	if (input.cursor) {
		params.push(decodeCursor(input.cursor));
		where.push(`u.email > $${params.length}`);
	}
	const { rows } = await pool.query<{ id: string; email: string; name: string | null; email_verified: boolean; created_at: Date; roles: string[]; active_sessions: string; mfa_enabled: boolean; passkeys: number }>(
		`SELECT u.id, u.email, u.name, u.email_verified, u.created_at,
		        coalesce((SELECT array_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id), '{}') AS roles,
		        (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > $1) AS active_sessions,
		        EXISTS (SELECT 1 FROM totp_authenticators t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL) AS mfa_enabled,
		        (SELECT count(*)::int FROM passkeys p WHERE p.user_id = u.id) AS passkeys
		 FROM users u ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
		 ORDER BY u.email LIMIT $2`,
		params,
	);
	const page = rows.slice(0, input.limit).map((r) => ({
		id: r.id,
		email: r.email,
		name: r.name,
		emailVerified: r.email_verified,
		createdAt: r.created_at.toISOString(),
		roles: r.roles,
		activeSessions: Number(r.active_sessions),
		mfaEnabled: r.mfa_enabled,
		passkeys: r.passkeys,
	}));
	return { items: page, nextCursor: rows.length > input.limit ? encodeCursor(page.at(-1)!.email) : null };
}

export interface RoleSummary {
	name: string;
	description: string;
	permissions: string[];
	/** How many users hold it. */
	users: number;
}

export async function listRoles(pool: pg.Pool): Promise<RoleSummary[]> {
	const { rows } = await pool.query<{ name: string; description: string; permissions: string[]; users: string }>(
		`SELECT ro.name, ro.description,
		        coalesce((SELECT array_agg(rp.permission ORDER BY rp.permission) FROM role_permissions rp WHERE rp.role = ro.name), '{}') AS permissions,
		        (SELECT count(*) FROM user_roles ur WHERE ur.role = ro.name) AS users
		 FROM roles ro ORDER BY ro.name`,
	);
	return rows.map((r) => ({ name: r.name, description: r.description, permissions: r.permissions, users: Number(r.users) }));
}
