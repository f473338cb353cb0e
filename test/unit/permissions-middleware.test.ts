/** middlewares/permissions.ts on a broker of its own: the rule every node applies to actions that declare permissions. */
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../lib/caller.ts";
import { permissionsMiddleware } from "../../middlewares/permissions.ts";

const caller = (permissions: string[], amr?: string[]): Caller => ({ userId: "u1", sessionId: "s1", roles: [], permissions, ...(amr ? { amr } : {}) });

describe("permissions middleware", () => {
	const brokers: ServiceBroker[] = [];
	const start = async (adminRequiresMfa: boolean) => {
		const broker = new ServiceBroker({ logger: false, middlewares: [permissionsMiddleware({ adminRequiresMfa })] });
		broker.createService({ name: "svc", actions: { open: () => "open", guarded: { permissions: ["billing:admin"], handler: () => "done" } } as never });
		await broker.start();
		brokers.push(broker);
		return broker;
	};
	let lax: ServiceBroker;
	let strict: ServiceBroker;
	beforeAll(async () => {
		[lax, strict] = [await start(false), await start(true)];
	});
	afterAll(async () => {
		await Promise.all(brokers.map((b) => b.stop()));
	});

	it("lets anyone call an action without permissions, and needs a caller holding them otherwise", async () => {
		expect(await lax.call("svc.open")).toBe("open");
		await expect(lax.call("svc.guarded")).rejects.toMatchObject({ code: 401 });
		await expect(lax.call("svc.guarded", {}, { meta: { caller: { userId: "u1", permissions: "billing:admin" } } })).rejects.toMatchObject({ code: 401 });
		await expect(lax.call("svc.guarded", {}, { meta: { caller: caller(["users:read"]) } })).rejects.toMatchObject({ code: 403, type: "MISSING_PERMISSION" });
		expect(await lax.call("svc.guarded", {}, { meta: { caller: caller(["billing:admin"], ["pwd"]) } })).toBe("done");
	});

	it("refuses to start a service whose permissions are not an array of strings (a typo must not leave it open)", async () => {
		const broker = new ServiceBroker({ logger: false, middlewares: [permissionsMiddleware({ adminRequiresMfa: false })] });
		try {
			expect(() => broker.createService({ name: "typo", actions: { guarded: { permissions: "billing:admin", handler: () => "done" } } as never })).toThrow("permissions must be an array of strings");
		} finally {
			await broker.stop();
		}
	});

	it("with ADMIN_REQUIRES_MFA, refuses an edge session signed in without a second factor", async () => {
		await expect(strict.call("svc.guarded", {}, { meta: { caller: caller(["billing:admin"], ["pwd"]) } })).rejects.toMatchObject({ code: 403, type: "SECOND_FACTOR_REQUIRED" });
		expect(await strict.call("svc.guarded", {}, { meta: { caller: caller(["billing:admin"], ["pwd", "otp", "mfa"]) } })).toBe("done");
		// No amr: not an edge session (an operator at the REPL).
		expect(await strict.call("svc.guarded", {}, { meta: { caller: caller(["billing:admin"]) } })).toBe("done");
	});
});
