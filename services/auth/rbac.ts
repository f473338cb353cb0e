/**
 * Roles and permissions (tables roles, permissions, role_permissions, user_roles). A user's
 * roles and the union of their permissions go into every access token, so the gateway can
 * enforce them without calling auth; a change reaches the token at the next refresh.
 */
import { AppError, badRequest, notFound } from "../../lib/errors.ts";
import { audit } from "./audit.ts";
import { withTransaction } from "./db.ts";
import type { Db } from "./db.ts";
import type { Actor, AuthDeps, RequestInfo } from "./deps.ts";

export const DEFAULT_ROLE = "user";
export const ADMIN_ROLE = "admin";

export interface Grants {
	roles: string[];
	permissions: string[];
}

export async function grantsOf(db: Db, userId: string): Promise<Grants> {
	const { rows } = await db.query<{ role: string; permission: string | null }>(
		`SELECT ur.role, rp.permission FROM user_roles ur LEFT JOIN role_permissions rp ON rp.role = ur.role
		 WHERE ur.user_id = $1 ORDER BY ur.role, rp.permission`,
		[userId],
	);
	return {
		roles: [...new Set(rows.map((r) => r.role))],
		permissions: [...new Set(rows.flatMap((r) => (r.permission ? [r.permission] : [])))].sort(),
	};
}

export async function grantRole(db: Db, userId: string, role: string, at: Date, grantedBy: string | null = null): Promise<void> {
	await db.query("INSERT INTO user_roles (user_id, role, granted_at, granted_by) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", [userId, role, at, grantedBy]);
}

export interface SetRolesInput extends Actor {
	userId: string;
	roles: string[];
}

/** Replaces a user's roles. Refuses unknown roles and removing the last administrator. */
export async function setUserRoles(deps: AuthDeps, input: SetRolesInput, request: RequestInfo): Promise<Grants & { userId: string }> {
	const now = deps.clock.now();
	const wanted = [...new Set(input.roles)].sort();
	return withTransaction(deps.pool, async (tx) => {
		const known = await tx.query<{ name: string }>("SELECT name FROM roles WHERE name = ANY($1)", [wanted]);
		const unknown = wanted.filter((r) => !known.rows.some((k) => k.name === r));
		if (unknown.length) throw badRequest(`Unknown role(s): ${unknown.join(", ")}.`, [{ field: "roles", message: `unknown role(s): ${unknown.join(", ")}`, type: "unknownRole" }]);
		const user = await tx.query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", [input.userId]);
		if (user.rowCount === 0) throw notFound("User");
		// Serialise role changes, so two concurrent demotions cannot both pass the last-admin check.
		await tx.query("LOCK TABLE user_roles IN SHARE ROW EXCLUSIVE MODE");
		const before = await grantsOf(tx, input.userId);
		await tx.query("DELETE FROM user_roles WHERE user_id = $1 AND NOT (role = ANY($2))", [input.userId, wanted]);
		for (const role of wanted) await grantRole(tx, input.userId, role, now, input.actorId);
		const admins = await tx.query("SELECT 1 FROM user_roles WHERE role = $1 LIMIT 1", [ADMIN_ROLE]);
		if (admins.rowCount === 0) throw new AppError(409, "LAST_ADMIN", "This would leave no administrator; grant the admin role to someone else first.");
		await audit(tx, { action: "roles.set", outcome: "success", userId: input.userId, actorId: input.actorId, details: { before: before.roles, after: wanted, ...(input.operator ? { operator: input.operator } : {}) } }, request, now);
		return { userId: input.userId, ...(await grantsOf(tx, input.userId)) };
	});
}

/** First administrator of a fresh installation (from the REPL); refused once any exists. */
export async function bootstrapAdmin(deps: AuthDeps, email: string, request: RequestInfo): Promise<{ userId: string }> {
	const now = deps.clock.now();
	return withTransaction(deps.pool, async (tx) => {
		await tx.query("LOCK TABLE user_roles IN SHARE ROW EXCLUSIVE MODE");
		const admins = await tx.query("SELECT 1 FROM user_roles WHERE role = $1 LIMIT 1", [ADMIN_ROLE]);
		if (admins.rowCount) throw new AppError(409, "ADMIN_EXISTS", "An administrator exists already; use setUserRoles.");
		const { rows } = await tx.query<{ id: string }>("SELECT id FROM users WHERE email = $1", [email]);
		if (!rows[0]) throw notFound("User");
		await grantRole(tx, rows[0].id, ADMIN_ROLE, now);
		await audit(tx, { action: "roles.bootstrap_admin", outcome: "success", userId: rows[0].id }, request, now);
		return { userId: rows[0].id };
	});
}
