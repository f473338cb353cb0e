/**
 * USERS_REQUIRE_MFA on a gateway and an auth node: a session signed in with the password alone
 * can only set up a second factor (an authenticator app or a passkey), read /me, log out or
 * delete the account; the gateway refuses the rest at the edge and auth refuses it again on its
 * own node. Confirming the app's code lifts the session on its next refresh; a passkey signs in
 * with two factors at once.
 */
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, gatewayUrl, startNode, testEnv, uniqueId } from "../support/infra.ts";
import { SoftAuthenticator } from "../support/soft-authenticator.ts";
import { totpCode } from "../support/totp.ts";

describe("two-step login required of every user (USERS_REQUIRE_MFA)", () => {
	let auth: ServiceBroker;
	let notification: ServiceBroker;
	let gateway: ServiceBroker;
	let base: string;
	const password = "a perfectly long passphrase";

	const call = (method: string, path: string, token?: string, body?: unknown) =>
		fetch(`${base}${path}`, { method, headers: { ...(body ? { "content-type": "application/json" } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body ? JSON.stringify(body) : undefined });
	const json = async <T>(res: Response, status: number): Promise<T> => {
		expect(res.status, await res.clone().text()).toBe(status);
		return (await res.json()) as T;
	};
	const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { sub: string; sid: string; amr: string[] };
	const amrOf = (token: string) => claimsOf(token).amr;
	async function signedUp(): Promise<{ email: string; accessToken: string; refreshToken: string }> {
		const email = `${uniqueId("mfapol")}@example.com`;
		await json(await call("POST", "/api/v1/auth/register", undefined, { email, password }), 201);
		return { email, ...(await json<{ accessToken: string; refreshToken: string }>(await call("POST", "/api/v1/auth/login", undefined, { email, password }), 200)) };
	}

	beforeAll(async () => {
		const env = testEnv(uniqueId("mfapol"), { DATABASE_URL: await createTestDatabase(), USERS_REQUIRE_MFA: "true" });
		auth = await startNode(["auth"], env);
		notification = await startNode(["notification"], env);
		gateway = await startNode(["gateway"], env);
		await gateway.waitForServices(["auth", "notification"], 10_000);
		base = gatewayUrl(gateway);
	});
	afterAll(async () => {
		await Promise.all([gateway?.stop(), notification?.stop(), auth?.stop()]);
	});

	it("lets a password-only session set up the app's code and nothing else, then lifts it on the next refresh", async () => {
		const ada = await signedUp();
		expect(amrOf(ada.accessToken)).toEqual(["pwd"]);
		expect(await json(await call("GET", "/api/v1/auth/me", ada.accessToken), 200)).toMatchObject({ email: ada.email, mfaEnabled: false, secondFactorRequired: true });
		for (const [method, path] of [["GET", "/api/v1/auth/sessions"], ["GET", "/api/v1/notifications"], ["POST", "/api/v1/auth/password/change"]]) {
			const refused = await json<{ code: string }>(await call(method!, path!, ada.accessToken, method === "POST" ? { currentPassword: password, newPassword: `${password}!` } : undefined), 403);
			expect(refused.code, path).toBe("SECOND_FACTOR_REQUIRED");
		}
		// Routes open to anyone stay open.
		await json(await call("GET", "/.well-known/jwks.json", ada.accessToken), 200);
		// Auth holds the rule on its own node too, whoever calls it.
		const claims = claimsOf(ada.accessToken);
		const direct = await gateway.call("auth.sessions", {}, { meta: { caller: { userId: claims.sub, sessionId: claims.sid, roles: ["user"], permissions: [], amr: ["pwd"] } } }).catch((err: { type?: string; code?: number }) => err);
		expect(direct).toMatchObject({ code: 403, type: "SECOND_FACTOR_REQUIRED" });

		const { secret } = await json<{ secret: string }>(await call("POST", "/api/v1/auth/mfa/totp", ada.accessToken, { password }), 200);
		await json(await call("POST", "/api/v1/auth/mfa/totp/confirm", ada.accessToken, { code: totpCode(secret) }), 200);
		// The access token in hand still says "pwd"; the refresh gives one that says the session has both factors.
		expect((await call("GET", "/api/v1/auth/sessions", ada.accessToken)).status).toBe(403);
		const refreshed = await json<{ accessToken: string }>(await call("POST", "/api/v1/auth/refresh", undefined, { refreshToken: ada.refreshToken }), 200);
		expect(amrOf(refreshed.accessToken)).toEqual(["pwd", "otp", "mfa"]);
		await json(await call("GET", "/api/v1/auth/sessions", refreshed.accessToken), 200);
		expect(await json(await call("GET", "/api/v1/auth/me", refreshed.accessToken), 200)).toMatchObject({ mfaEnabled: true, secondFactorRequired: false });
	});

	it("lets a password-only session add a passkey, which then signs in with two factors; logging out stays open", async () => {
		const bob = await signedUp();
		const { flowId, options } = await json<{ flowId: string; options: Parameters<SoftAuthenticator["create"]>[0] }>(await call("POST", "/api/v1/auth/passkeys/registration", bob.accessToken, { password }), 200);
		const device = new SoftAuthenticator();
		await json(await call("POST", "/api/v1/auth/passkeys", bob.accessToken, { flowId, credential: device.create(options, { origin: "http://localhost:4000" }) }), 201);
		const login = await json<{ flowId: string; options: { challenge: string; rpId: string } }>(await call("POST", "/api/v1/auth/login/passkey/options", undefined, {}), 200);
		const pair = await json<{ accessToken: string }>(await call("POST", "/api/v1/auth/login/passkey", undefined, { flowId: login.flowId, credential: device.get(login.options, { origin: "http://localhost:4000" }) }), 200);
		await json(await call("GET", "/api/v1/auth/sessions", pair.accessToken), 200);
		// With a passkey, the password alone no longer sets anything up (nor deletes the account): sign in with the passkey.
		for (const [method, path, body] of [["POST", "/api/v1/auth/mfa/totp", { password }], ["POST", "/api/v1/auth/passkeys/registration", { password }], ["DELETE", "/api/v1/auth/me", { password }]] as const) {
			const refused = await json<{ code: string; detail: string }>(await call(method, path, bob.accessToken, body), 403);
			expect([refused.code, refused.detail], path).toEqual(["SECOND_FACTOR_REQUIRED", "This account has a passkey: sign in with it to continue."]);
		}
		expect(await json(await call("GET", "/api/v1/auth/me", bob.accessToken), 200)).toMatchObject({ secondFactorRequired: true });
		expect((await call("POST", "/api/v1/auth/logout", bob.accessToken, {})).status).toBe(204);
	});
});
