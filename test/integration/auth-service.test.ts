/**
 * The auth service as the gateway sees it: every rpc of auth.v1 called through a real
 * grpcClientMixin on a second broker (RabbitMQ transporter, discovery through node metadata),
 * the caller and client IP passed as gRPC metadata, AppErrors back, `auth.session.revoked`
 * broadcasts; bad input answered with 4xx; and no event lost when the node that committed a
 * registration dies before relaying it.
 */
import { createLocalJWKSet, jwtVerify } from "jose";
import { ServiceBroker } from "moleculer";
import type { Context, ServiceSchema } from "moleculer";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../lib/caller.ts";
import type { AppError } from "../../lib/errors.ts";
import type { CloudEvent } from "../../lib/events/cloudevents.ts";
import { eventHandlersMixin } from "../../mixins/events.mixin.ts";
import { grpcClientMixin } from "../../mixins/grpc.mixin.ts";
import type { GrpcClientMethods } from "../../mixins/grpc.mixin.ts";
import { brokerOptions } from "../../moleculer.config.ts";
import { registerUser } from "../../services/auth/accounts.ts";
import { lastLinkToken, MIGRATIONS_DIR, TEST_LOCKOUT, TEST_SETTINGS, TestClock } from "../support/auth.ts";
import { migrateUp } from "../../lib/migrations.ts";
import { KeyRing } from "../../services/auth/keys.ts";
import { createTestDatabase, eventually, failure, startNode, testConfig, testEnv, uniqueId } from "../support/infra.ts";

const PASSWORD = "violet staple kettle";
type Rpc = (method: string, request: object, meta?: { caller?: Caller; clientIp?: string }) => Promise<Record<string, unknown>>;

/** A gateway stand-in: calls auth over gRPC with the caller and client IP in ctx.meta, records broadcasts. */
function gatewayStandIn(revoked: unknown[], created: CloudEvent[]): ServiceSchema<Record<string, never>, GrpcClientMethods> {
	return {
		name: "standin",
		mixins: [
			grpcClientMixin({ clients: { auth: { proto: "auth/v1/auth.proto", service: "auth.v1.AuthService" } }, deadlineMs: 5_000 }),
			eventHandlersMixin({ handlers: { "user.created": "onUserCreated" } }),
		],
		actions: {
			rpc(ctx: Context<{ method: string; request: object }>) {
				return this.grpcCall("auth", ctx.params.method, ctx.params.request, ctx);
			},
		},
		events: {
			"auth.session.revoked"(ctx: Context<unknown>) {
				revoked.push(ctx.params);
			},
		},
		methods: {
			async onUserCreated(event: CloudEvent) {
				created.push(event);
			},
		},
	} as ServiceSchema<Record<string, never>, GrpcClientMethods>;
}

describe("auth service over the gRPC bridge", () => {
	const revoked: { sessionId: string; userId: string; expiresAt: string }[] = [];
	const created: CloudEvent[] = [];
	let auth: ServiceBroker;
	let client: ServiceBroker;
	let pool: pg.Pool;
	let rpc: Rpc;

	const callerOf = async (accessToken: string): Promise<Caller> => {
		const r = (await rpc("Introspect", { token: accessToken })) as { sub: string; sid: string; roles: string[]; permissions: string[] };
		return { userId: r.sub, sessionId: r.sid, roles: r.roles, permissions: r.permissions };
	};

	beforeAll(async () => {
		const env = testEnv(uniqueId("authsvc"), { DATABASE_URL: await createTestDatabase(), AUTH_ISSUER: "http://auth.test" });
		auth = await startNode(["auth"], env);
		client = new ServiceBroker(brokerOptions(testConfig({ ...env, NODE_ID: uniqueId("standin-") }), { logger: false }));
		client.createService(gatewayStandIn(revoked, created));
		await client.start();
		await eventually(async () => (client.registry.nodes.get(auth.nodeID)?.metadata?.grpc as Record<string, string> | undefined)?.["auth.v1.AuthService"], 10_000, "auth's gRPC address");
		// auth must know the stand-in's event subscriptions before it broadcasts to it.
		await auth.waitForServices(["standin"], 10_000);
		rpc = (method, request, meta = {}) => client.call("standin.rpc", { method, request }, { meta });
		pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 2 });
	});

	afterAll(async () => {
		await pool?.end();
		await Promise.allSettled([client?.stop(), auth?.stop()]);
	});

	it("registers, refuses the same e-mail again, and publishes user.created through the outbox", async () => {
		const email = `${uniqueId("ada")}@example.com`;
		const { user } = (await rpc("Register", { email, password: PASSWORD, name: "Ada" })) as { user: { id: string; email: string; name: string; emailVerified: boolean; createdAt: string } };
		expect(user).toMatchObject({ email, name: "Ada", emailVerified: false });
		const dup = await failure(rpc("Register", { email: email.toUpperCase(), password: PASSWORD, name: "" }));
		expect([dup.code, dup.type]).toEqual([409, "EMAIL_ALREADY_REGISTERED"]);
		const event = await eventually(async () => created.find((e) => e.subject === user.id), 10_000, "user.created at the consumer");
		expect(event.data).toEqual({ userId: user.id, email, name: "Ada" });
	});

	it("answers malformed, oversized and invalid input with 4xx VALIDATION_ERROR naming the fields, never a 500", async () => {
		const fieldsOf = (err: AppError) => ((err.data as { errors?: { field: string }[] } | undefined)?.errors ?? []).map((e) => e.field).sort();
		const badEmail = await failure(rpc("Register", { email: "not-an-email", password: PASSWORD }));
		expect([badEmail.code, badEmail.type, fieldsOf(badEmail)]).toEqual([422, "VALIDATION_ERROR", ["email"]]);
		const huge = await failure(rpc("Register", { email: `${uniqueId("big")}@example.com`, password: "x".repeat(10_240) }));
		expect([huge.code, huge.type, fieldsOf(huge)]).toEqual([422, "VALIDATION_ERROR", ["password"]]);
		expect(JSON.stringify(huge.data)).not.toContain("xxxxxxxx");
		const empty = await failure(rpc("Login", {}));
		expect([empty.code, fieldsOf(empty)]).toEqual([422, ["email", "password"]]);
		const policy = await failure(rpc("Register", { email: `${uniqueId("pol")}@example.com`, password: "password123" }));
		expect([policy.code, policy.type, fieldsOf(policy)]).toEqual([400, "VALIDATION_ERROR", ["password"]]);
		// The same actions as plain Moleculer calls, with the wrong types and a 1 MB field.
		for (const params of [{ email: 42, password: ["x"] }, { email: "a@b.c", password: PASSWORD, name: "n".repeat(1 << 20) }, null]) {
			const err = await failure(client.call("auth.register", params));
			expect(err.code).toBeGreaterThanOrEqual(400);
			expect(err.code).toBeLessThan(500);
		}
		const badUuid = await failure(rpc("SetUserRoles", { userId: "nope", roles: ["user"] }, { caller: { userId: "u", sessionId: "s", roles: [], permissions: ["roles:write"] } }));
		expect([badUuid.code, fieldsOf(badUuid)]).toEqual([422, ["userId"]]);
	});

	it("logs in, refreshes, serves Me to the authenticated caller, verifies with GetJwks, and broadcasts a revoked family", async () => {
		const email = `${uniqueId("grace")}@example.com`;
		await rpc("Register", { email, password: PASSWORD, name: "Grace" });
		const pair = (await rpc("Login", { email, password: PASSWORD }, { clientIp: "203.0.113.50" })) as { accessToken: string; refreshToken: string; tokenType: string; expiresIn: number; refreshTokenExpiresIn: number };
		expect(pair).toMatchObject({ tokenType: "Bearer", expiresIn: 900, refreshTokenExpiresIn: 7 * 86_400 });

		const jwks = (await rpc("GetJwks", {})) as { keys: Record<string, string>[] };
		const { payload } = await jwtVerify(pair.accessToken, createLocalJWKSet(jwks as never), { issuer: "http://auth.test", audience: "backplane-api", algorithms: ["EdDSA"] });
		expect(payload).toMatchObject({ roles: ["user"], permissions: [] });

		const caller = await callerOf(pair.accessToken);
		const me = await rpc("Me", {}, { caller });
		expect(me).toEqual({ id: caller.userId, email, name: "Grace", emailVerified: false, createdAt: expect.any(String) as unknown, roles: ["user"], permissions: [], mfaEnabled: false, recoveryCodesLeft: 0, secondFactorRequired: false });
		const anonymous = await failure(rpc("Me", {}));
		expect([anonymous.code, anonymous.type]).toEqual([401, "UNAUTHORIZED"]);

		const { rows } = await pool.query<{ client_ip: string }>("SELECT host(client_ip) AS client_ip FROM audit_log WHERE action = 'login' AND user_id = $1", [caller.userId]);
		expect(rows).toEqual([{ client_ip: "203.0.113.50" }]);

		const next = (await rpc("Refresh", { refreshToken: pair.refreshToken })) as { refreshToken: string; accessToken: string };
		expect(next.refreshToken).not.toBe(pair.refreshToken);
		const replay = await failure(rpc("Refresh", { refreshToken: pair.refreshToken }));
		expect([replay.code, replay.type]).toEqual([401, "INVALID_REFRESH_TOKEN"]);
		const notice = await eventually(async () => revoked.find((r) => r.sessionId === caller.sessionId), 5_000, "auth.session.revoked");
		expect(notice.userId).toBe(caller.userId);
		expect(Date.parse(notice.expiresAt)).toBeGreaterThan(Date.now());
		expect(await rpc("Introspect", { token: next.accessToken })).toMatchObject({ active: false });
	});

	it("verifies e-mail, resends, resets and changes passwords, and ends sessions on logout", async () => {
		const email = `${uniqueId("lin")}@example.com`;
		const { user } = (await rpc("Register", { email, password: PASSWORD })) as { user: { id: string } };
		const pair = (await rpc("Login", { email, password: PASSWORD })) as { accessToken: string; refreshToken: string };
		const caller = await callerOf(pair.accessToken);
		const tooSoon = await failure(rpc("ResendVerification", {}, { caller }));
		expect([tooSoon.code, tooSoon.type]).toEqual([429, "TOO_MANY_REQUESTS"]);
		expect(await rpc("VerifyEmail", { token: await lastLinkToken(pool, "user.email_verification_requested", user.id) })).toEqual({ userId: user.id });
		expect(await rpc("ResendVerification", {}, { caller })).toEqual({ sent: false });

		expect(await rpc("ForgotPassword", { email: `${uniqueId("nobody")}@example.com` })).toEqual({});
		expect(await rpc("ForgotPassword", { email })).toEqual({});
		const token = await lastLinkToken(pool, "user.password_reset_requested", user.id);
		expect(await rpc("ResetPassword", { token, password: "reset passphrase one" })).toEqual({});
		expect((await failure(rpc("ResetPassword", { token, password: "reset passphrase two" }))).type).toBe("INVALID_OR_EXPIRED_TOKEN");
		expect((await rpc("Introspect", { token: pair.accessToken })).active).toBe(false);

		const a = (await rpc("Login", { email, password: "reset passphrase one" })) as { accessToken: string };
		await rpc("Login", { email, password: "reset passphrase one" });
		const callerA = await callerOf(a.accessToken);
		const wrong = await failure(rpc("ChangePassword", { currentPassword: "nope nope nope", newPassword: "changed passphrase" }, { caller: callerA }));
		expect([wrong.code, wrong.type]).toEqual([400, "VALIDATION_ERROR"]);
		expect(await rpc("ChangePassword", { currentPassword: "reset passphrase one", newPassword: "changed passphrase" }, { caller: callerA })).toEqual({});
		expect((await rpc("Introspect", { token: a.accessToken })).active).toBe(true);
		const b = (await rpc("Login", { email, password: "changed passphrase" })) as { accessToken: string };
		expect(await rpc("Logout", { allSessions: true }, { caller: callerA })).toEqual({ revokedSessions: 2 });
		expect((await rpc("Introspect", { token: b.accessToken })).active).toBe(false);
		// An edge session (one with amr) that ended is refused by auth itself, before any gateway heard of it.
		const ended = await failure(rpc("Me", {}, { caller: { ...callerA, amr: ["pwd"] } }));
		expect([ended.code, ended.type]).toEqual([401, "INVALID_TOKEN"]);
	});

	it("lets only callers with roles:write set roles, and the new permissions land in the next token", async () => {
		const adminEmail = `${uniqueId("root")}@example.com`;
		const memberEmail = `${uniqueId("member")}@example.com`;
		await rpc("Register", { email: adminEmail, password: PASSWORD });
		const { user: member } = (await rpc("Register", { email: memberEmail, password: PASSWORD })) as { user: { id: string } };
		await auth.call("auth.bootstrapAdmin", { email: adminEmail });
		const admin = await callerOf(((await rpc("Login", { email: adminEmail, password: PASSWORD })) as { accessToken: string }).accessToken);
		expect(admin.permissions).toContain("roles:write");
		const plain = await callerOf(((await rpc("Login", { email: memberEmail, password: PASSWORD })) as { accessToken: string }).accessToken);
		const denied = await failure(rpc("SetUserRoles", { userId: member.id, roles: ["admin"] }, { caller: plain }));
		expect([denied.code, denied.type]).toEqual([403, "MISSING_PERMISSION"]);
		expect(await rpc("SetUserRoles", { userId: member.id, roles: ["admin", "user"] }, { caller: admin })).toMatchObject({ userId: member.id, roles: ["admin", "user"] });
		const promoted = await callerOf(((await rpc("Login", { email: memberEmail, password: PASSWORD })) as { accessToken: string }).accessToken);
		expect(promoted.permissions).toEqual(expect.arrayContaining(["roles:write", "billing:admin", "notifications:admin", "users:read"]));

		// A user sees their sessions; an administrator (users:write) ends all of someone's sessions.
		const { items: sessions } = await client.call<{ items: { id: string; current: boolean }[] }, object>("auth.sessions", {}, { meta: { caller: promoted } });
		expect(sessions.map((x) => x.id)).toContain(promoted.sessionId);
		expect(sessions.find((x) => x.id === promoted.sessionId)!.current).toBe(true);
		const refused = await failure(client.call("auth.revokeUserSessions", { userId: member.id }, { meta: { caller: plain } }));
		expect(refused.code).toBe(403);
		const ended = await client.call<{ revokedSessions: number }, object>("auth.revokeUserSessions", { userId: member.id }, { meta: { caller: admin } });
		expect(ended.revokedSessions).toBe(2);
		expect(await client.call("auth.sessions", {}, { meta: { caller: promoted } })).toEqual({ items: [] });
	});
});

describe("a registration committed by a node that died before relaying it", () => {
	it("reaches a consumer once another auth node starts on the same database", async () => {
		const databaseUrl = await createTestDatabase();
		await migrateUp(databaseUrl, MIGRATIONS_DIR, { info: () => undefined, warn: () => undefined, error: () => undefined });
		const env = testEnv(uniqueId("authcrash"), { DATABASE_URL: databaseUrl });
		const created: CloudEvent[] = [];
		const consumer = new ServiceBroker(brokerOptions(testConfig({ ...env, NODE_ID: uniqueId("consumer-") }), { logger: false }));
		consumer.createService(gatewayStandIn([], created));
		await consumer.start();
		const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
		let auth: ServiceBroker | undefined;
		try {
			// Exactly what register does, by a process with no relay running: committed, never published.
			const clock = new TestClock(Date.now());
			const kek = Buffer.alloc(32, 7);
			const keys = new KeyRing(pool, kek, clock, { rotationDays: 30, accessTokenTtlS: 900 });
			const user = await registerUser({ pool, clock, keys, kek, settings: TEST_SETTINGS, lockout: TEST_LOCKOUT }, { email: `${uniqueId("crash")}@example.com`, password: PASSWORD }, { requestId: "req-crash" });
			const pending = await pool.query<{ id: string; published_at: Date | null }>("SELECT id, published_at FROM outbox_events WHERE type = 'user.created'");
			expect(pending.rows).toEqual([{ id: expect.any(String) as unknown, published_at: null }]);
			await new Promise((r) => setTimeout(r, 300));
			expect(created).toHaveLength(0);

			auth = await startNode(["auth"], env);
			const event = await eventually(async () => created.find((e) => e.subject === user.id), 15_000, "the stranded user.created");
			expect(event.id).toBe(pending.rows[0]!.id);
			await eventually(async () => (await pool.query("SELECT 1 FROM outbox_events WHERE published_at IS NULL AND type = 'user.created'")).rowCount === 0, 5_000, "the row marked published");
			await new Promise((r) => setTimeout(r, 300));
			expect(created.filter((e) => e.subject === user.id)).toHaveLength(1);
		} finally {
			await pool.end();
			await Promise.allSettled([auth?.stop(), consumer.stop()]);
		}
	});
});
