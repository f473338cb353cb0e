/**
 * Introspection answers active sessions from memory (AUTH_SESSION_CACHE_MS), so a revocation on
 * one auth node must reach the others at once through the `auth.session.revoked` broadcast, not
 * after the cache's TTL (a minute here, so only the broadcast can explain a quick "inactive").
 */
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, eventually, startNode, testEnv, uniqueId, waitForCluster } from "../support/infra.ts";

describe("introspection's session cache across two auth nodes", () => {
	let a: ServiceBroker;
	let b: ServiceBroker;

	beforeAll(async () => {
		const env = testEnv(uniqueId("authcache"), { DATABASE_URL: await createTestDatabase(), AUTH_SESSION_CACHE_MS: "60000" });
		a = await startNode(["auth"], env);
		b = await startNode(["auth"], env);
		await waitForCluster([a, b]);
	});
	afterAll(async () => {
		await Promise.allSettled([a?.stop(), b?.stop()]);
	});

	it("answers inactive on the other node right after a logout", async () => {
		const email = `${uniqueId("cache")}@example.com`;
		const password = "a long enough passphrase";
		await a.call("auth.register", { email, password });
		const pair = await a.call<{ accessToken: string }, object>("auth.login", { email, password });
		// The local call stays on node b (preferLocal): b reads the session and remembers it.
		const introspectOnB = () => b.call<{ active: boolean; sub?: string; sid?: string; roles?: string[]; permissions?: string[] }, object>("auth.introspect", { token: pair.accessToken });
		const before = await introspectOnB();
		expect(before.active).toBe(true);
		expect((await introspectOnB()).active).toBe(true);

		const caller = { userId: before.sub!, sessionId: before.sid!, roles: before.roles!, permissions: before.permissions! };
		const started = Date.now();
		await a.call("auth.logout", {}, { meta: { caller } });
		await eventually(async () => !(await introspectOnB()).active, 5_000, "node b answering inactive");
		expect(Date.now() - started).toBeLessThan(5_000);
	});
});
