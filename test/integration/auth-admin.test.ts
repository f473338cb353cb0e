/**
 * The administrators' user directory through the gateway (REST -> gRPC -> auth, real PostgreSQL):
 * find users by part of their address or by id, page through them by cursor, see every role,
 * end a user's sessions, turn off the two-step login of a user who lost every factor (audited, the
 * user told); each route refused without its permission, and, on a gateway with
 * ADMIN_REQUIRES_MFA, to a session signed in without two-step login.
 */
import type { ServiceBroker } from "moleculer";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, eventually, gatewayUrl, startNode, testEnv, uniqueId, waitForCluster } from "../support/infra.ts";
import { outboxEvents } from "../support/auth.ts";
import { totpCode } from "../support/totp.ts";

interface UserSummary {
	id: string;
	email: string;
	roles: string[];
	activeSessions: number;
	mfaEnabled: boolean;
}

describe("admin user directory over the gateway", () => {
	let auth: ServiceBroker;
	let gateway: ServiceBroker;
	let strictGateway: ServiceBroker;
	let base: string;
	let adminToken: string;
	let adminId: string;
	let db: pg.Pool;
	const password = "a perfectly long passphrase";
	// One domain per run, so the tests see only their own users.
	const domain = `${uniqueId("dir")}.example.com`;

	const call = (method: string, path: string, token: string, body?: unknown) =>
		fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
	async function register(local: string): Promise<{ id: string; email: string; accessToken: string }> {
		const email = `${local}@${domain}`;
		const reg = await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
		expect(reg.status).toBe(201);
		const { id } = ((await reg.json()) as { user: { id: string } }).user;
		const login = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
		return { id, email, accessToken: ((await login.json()) as { accessToken: string }).accessToken };
	}

	beforeAll(async () => {
		const env = testEnv(uniqueId("authadm"), { DATABASE_URL: await createTestDatabase() });
		db = new pg.Pool({ connectionString: env.DATABASE_URL, max: 2 });
		auth = await startNode(["auth"], env);
		gateway = await startNode(["gateway"], env);
		strictGateway = await startNode(["gateway"], { ...env, ADMIN_REQUIRES_MFA: "true" });
		// Both ways: auth broadcasts revoked sessions only to the gateways it has discovered.
		await waitForCluster([auth, gateway, strictGateway]);
		base = gatewayUrl(gateway);
		const admin = await register("root");
		await auth.call("auth.bootstrapAdmin", { email: admin.email });
		adminId = admin.id;
		const login = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: admin.email, password }) });
		adminToken = ((await login.json()) as { accessToken: string }).accessToken;
	});
	afterAll(async () => {
		await Promise.all([gateway?.stop(), strictGateway?.stop(), auth?.stop(), db?.end()]);
	});

	it("finds users by part of the address or by id, with roles and live sessions", async () => {
		const ada = await register("ada.lovelace");
		const res = await call("GET", `/api/v1/auth/users?query=${encodeURIComponent("LOVELACE@" + domain)}`, adminToken);
		expect(res.status).toBe(200);
		const page = (await res.json()) as { items: UserSummary[]; nextCursor: string };
		expect(page.items).toEqual([expect.objectContaining({ id: ada.id, email: ada.email, roles: ["user"], activeSessions: 1, emailVerified: false })]);
		expect(page.nextCursor).toBe("");
		const byId = (await (await call("GET", `/api/v1/auth/users?query=${ada.id}`, adminToken)).json()) as { items: UserSummary[] };
		expect(byId.items.map((u) => u.email)).toEqual([ada.email]);
		// LIKE wildcards in a query are matched literally.
		expect(((await (await call("GET", `/api/v1/auth/users?query=${encodeURIComponent("%_")}`, adminToken)).json()) as { items: unknown[] }).items).toEqual([]);
	});

	it("pages through every user in address order by cursor", async () => {
		for (const name of ["page-c", "page-a", "page-b"]) await register(name);
		const seen: string[] = [];
		let cursor = "";
		for (let i = 0; i < 5; i++) {
			const res = await call("GET", `/api/v1/auth/users?query=page-&limit=2${cursor ? `&cursor=${cursor}` : ""}`, adminToken);
			const page = (await res.json()) as { items: UserSummary[]; nextCursor: string };
			seen.push(...page.items.map((u) => u.email.split("@")[0]!));
			cursor = page.nextCursor;
			if (!cursor) break;
		}
		expect(seen).toEqual(["page-a", "page-b", "page-c"]);
	});

	it("refuses bad paging parameters with problem+json naming the field", async () => {
		const big = await call("GET", "/api/v1/auth/users?limit=500", adminToken);
		expect(big.status).toBe(400);
		expect(((await big.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toContain("limit");
		const bad = await call("GET", "/api/v1/auth/users?cursor=bm90LWEtY3Vyc29y", adminToken);
		expect(bad.status).toBe(400);
		expect(await bad.json()).toMatchObject({ code: "VALIDATION_ERROR", errors: [{ field: "cursor" }] });
	});

	it("lists roles with their permissions and holders", async () => {
		const res = await call("GET", "/api/v1/auth/roles", adminToken);
		expect(res.status).toBe(200);
		const { items } = (await res.json()) as { items: { name: string; permissions: string[]; users: number }[] };
		expect(items.map((r) => r.name)).toEqual(["admin", "user"]);
		expect(items[0]).toMatchObject({ users: 1, permissions: expect.arrayContaining(["users:read", "roles:write", "billing:admin"]) as string[] });
		expect(items[1]!.users).toBeGreaterThanOrEqual(1);
	});

	it("ends every session of a user, whose token is then refused", async () => {
		const bob = await register("bob");
		expect((await call("GET", "/api/v1/auth/me", bob.accessToken)).status).toBe(200);
		const res = await call("DELETE", `/api/v1/auth/users/${bob.id}/sessions`, adminToken);
		expect(res.status).toBe(200);
		expect(await res.json()).toEqual({ revokedSessions: 1 });
		await eventually(async () => (await call("GET", "/api/v1/auth/me", bob.accessToken)).status === 401, 5_000, "the revoked token to be refused");
		const { rows } = await db.query<{ actor_id: string }>("SELECT actor_id FROM audit_log WHERE action = 'sessions.revoke_user' AND user_id = $1", [bob.id]);
		expect(rows).toEqual([{ actor_id: adminId }]);
	});

	it("turns off the two-step login of a user who lost every factor; audited, the user told, the password alone signs in", async () => {
		const cy = await register("cy");
		const { secret } = (await (await call("POST", "/api/v1/auth/mfa/totp", cy.accessToken, { password })).json()) as { secret: string };
		expect((await call("POST", "/api/v1/auth/mfa/totp/confirm", cy.accessToken, { code: totpCode(secret) })).status).toBe(200);
		const login = () => fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: cy.email, password }) });
		expect((await login()).status).toBe(403);
		const listed = async () => ((await (await call("GET", `/api/v1/auth/users?query=${cy.id}`, adminToken)).json()) as { items: UserSummary[] }).items[0]!.mfaEnabled;
		expect(await listed()).toBe(true);

		// Not one's own: that needs the password and a code.
		const own = await call("DELETE", `/api/v1/auth/users/${adminId}/mfa`, adminToken);
		expect([own.status, ((await own.json()) as { code: string }).code]).toEqual([403, "OWN_ACCOUNT"]);
		expect((await call("DELETE", `/api/v1/auth/users/${cy.id}/mfa`, adminToken)).status).toBe(204);
		expect(await listed()).toBe(false);
		// Cy's sessions ended too: one may be on the lost phone.
		await eventually(async () => (await call("GET", "/api/v1/auth/me", cy.accessToken)).status === 401, 5_000, "cy's token to be refused");
		expect((await login()).status).toBe(200);
		const again = await call("DELETE", `/api/v1/auth/users/${cy.id}/mfa`, adminToken);
		expect([again.status, ((await again.json()) as { code: string }).code]).toEqual([409, "MFA_NOT_ENABLED"]);
		const audited = await db.query<{ actor_id: string }>("SELECT actor_id FROM audit_log WHERE action = 'mfa.reset' AND user_id = $1", [cy.id]);
		expect(audited.rows).toEqual([{ actor_id: adminId }]);
		const told = await outboxEvents<{ by: string }>(db, "user.mfa_disabled");
		expect(told.filter((e) => e.subject === cy.id).map((e) => e.data.by)).toEqual(["administrator"]);
	});

	it("refuses every admin route to a user without the permission", async () => {
		const eve = await register("eve");
		for (const [method, path] of [["GET", "/api/v1/auth/users"], ["GET", "/api/v1/auth/roles"], ["DELETE", `/api/v1/auth/users/${eve.id}/sessions`], ["DELETE", `/api/v1/auth/users/${eve.id}/mfa`]] as const) {
			const res = await call(method, path, eve.accessToken);
			expect(res.status, `${method} ${path}`).toBe(403);
			expect(((await res.json()) as { code: string }).code).toBe("MISSING_PERMISSION");
		}
	});

	// Last: it turns two-step login on for the administrator.
	it("with ADMIN_REQUIRES_MFA, lets only a session signed in with two-step login into the administration, also after a refresh", async () => {
		const strict = gatewayUrl(strictGateway);
		const listUsers = (token: string) => fetch(`${strict}/api/v1/auth/users`, { headers: { authorization: `Bearer ${token}` } });
		const refused = await listUsers(adminToken);
		expect([refused.status, ((await refused.json()) as { code: string }).code]).toEqual([403, "SECOND_FACTOR_REQUIRED"]);
		// The other gateway has no such policy; routes without a permission are not concerned.
		expect((await call("GET", "/api/v1/auth/users", adminToken)).status).toBe(200);
		expect((await fetch(`${strict}/api/v1/auth/me`, { headers: { authorization: `Bearer ${adminToken}` } })).status).toBe(200);

		const { secret } = (await (await call("POST", "/api/v1/auth/mfa/totp", adminToken, { password })).json()) as { secret: string };
		const { recoveryCodes } = (await (await call("POST", "/api/v1/auth/mfa/totp/confirm", adminToken, { code: totpCode(secret) })).json()) as { recoveryCodes: string[] };
		// Turning it on does not upgrade the session that did it: only a login with the second factor counts.
		expect((await listUsers(adminToken)).status).toBe(403);
		const { email } = (await (await call("GET", "/api/v1/auth/me", adminToken)).json()) as { email: string };
		const challenge = await fetch(`${strict}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
		const { mfaToken } = (await challenge.json()) as { mfaToken: string };
		const pair = (await (await fetch(`${strict}/api/v1/auth/login/mfa`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ mfaToken, recoveryCode: recoveryCodes[0] }) })).json()) as { accessToken: string; refreshToken: string };
		const claims = JSON.parse(Buffer.from(pair.accessToken.split(".")[1]!, "base64url").toString()) as { amr: string[] };
		expect(claims.amr).toEqual(["pwd", "otp", "mfa"]);
		expect((await listUsers(pair.accessToken)).status).toBe(200);
		// The session keeps how it was signed in: a refreshed token still passes.
		const refreshed = (await (await fetch(`${strict}/api/v1/auth/refresh`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refreshToken: pair.refreshToken }) })).json()) as { accessToken: string };
		expect((await listUsers(refreshed.accessToken)).status).toBe(200);
	});
});
