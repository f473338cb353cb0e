/**
 * The gateway in front of auth over gRPC, on real PostgreSQL, Redis and RabbitMQ: tokens issued
 * by auth are verified at the edge by public key, permissions enforced, rotated keys picked up
 * and revoked sessions refused without a call to auth.
 */
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, gatewayUrl, startNode, testEnv, uniqueId } from "../support/infra.ts";
import { SoftAuthenticator } from "../support/soft-authenticator.ts";

describe("gateway + auth over gRPC", () => {
	let auth: ServiceBroker;
	let gateway: ServiceBroker;
	let base: string;
	const password = "a perfectly long passphrase";

	const post = (path: string, body: unknown, token?: string) =>
		fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
	const get = (path: string, token?: string) => fetch(`${base}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
	async function login(email: string): Promise<{ accessToken: string; refreshToken: string }> {
		const res = await post("/api/v1/auth/login", { email, password });
		expect(res.status).toBe(200);
		return (await res.json()) as { accessToken: string; refreshToken: string };
	}
	/** GET /me with a revoked session's token until it stops answering 200 (the revocation is broadcast), for up to 3 s. */
	async function statusOnceRevoked(accessToken: string): Promise<number> {
		const deadline = Date.now() + 3_000;
		let status = 200;
		while (status === 200 && Date.now() < deadline) {
			status = (await get("/api/v1/auth/me", accessToken)).status;
			if (status === 200) await new Promise((r) => setTimeout(r, 50));
		}
		return status;
	}
	async function newUser(): Promise<{ id: string; email: string }> {
		const email = `${uniqueId("u")}@example.com`;
		const res = await post("/api/v1/auth/register", { email, password });
		expect(res.status).toBe(201);
		return ((await res.json()) as { user: { id: string; email: string } }).user;
	}

	beforeAll(async () => {
		const env = testEnv(uniqueId("gwauth"), { DATABASE_URL: await createTestDatabase() });
		auth = await startNode(["auth"], env);
		gateway = await startNode(["gateway"], env);
		await gateway.waitForServices(["auth"], 10_000);
		base = gatewayUrl(gateway);
	});
	afterAll(async () => {
		await Promise.all([gateway?.stop(), auth?.stop()]);
	});

	it("logs in and answers /me with the identity from the verified token", async () => {
		const user = await newUser();
		const { accessToken } = await login(user.email);
		const me = await get("/api/v1/auth/me", accessToken);
		expect(me.status).toBe(200);
		expect(await me.json()).toMatchObject({ id: user.id, email: user.email, roles: ["user"] });
		const jwks = (await (await get("/.well-known/jwks.json")).json()) as { keys: { kid: string; kty: string }[] };
		expect(jwks.keys.length).toBeGreaterThan(0);
		expect(jwks.keys[0]).toMatchObject({ kty: "OKP" });
	});

	it("adds a passkey and signs in with it over REST, the browser's JSON passing the gRPC contract unchanged", async () => {
		const user = await newUser();
		const { accessToken } = await login(user.email);
		// PUBLIC_URL is on 127.0.0.1: passkeys are bound to "localhost", as browsers require a domain.
		const origin = "http://localhost:4000";
		const started = await post("/api/v1/auth/passkeys/registration", { password }, accessToken);
		expect(started.status).toBe(200);
		const { flowId, options } = (await started.json()) as { flowId: string; options: Parameters<SoftAuthenticator["create"]>[0] & Record<string, unknown> };
		expect(options).toMatchObject({ rp: { id: "localhost", name: "Backplane" }, user: { name: user.email, displayName: user.email }, timeout: 300_000, attestation: "none", pubKeyCredParams: expect.arrayContaining([{ type: "public-key", alg: -7 }]) as unknown });
		// No field WebAuthn would refuse: every one a browser reads is set, none sent empty.
		expect(options.authenticatorSelection).toEqual({ residentKey: "required", requireResidentKey: true, userVerification: "required" });

		const device = new SoftAuthenticator();
		const added = await post("/api/v1/auth/passkeys", { flowId, name: "Laptop", credential: { ...device.create(options, { origin }), clientExtensionResults: {}, authenticatorAttachment: "platform" } }, accessToken);
		expect(added.status).toBe(201);
		const passkey = (await added.json()) as { id: string; name: string };
		expect(passkey).toMatchObject({ name: "Laptop", synced: false });
		expect(((await (await get("/api/v1/auth/passkeys", accessToken)).json()) as { items: { id: string }[] }).items.map((p) => p.id)).toEqual([passkey.id]);

		const loginOptions = (await (await post("/api/v1/auth/login/passkey/options", {})).json()) as { flowId: string; options: { challenge: string; rpId: string; allowCredentials: unknown[]; userVerification: string } };
		expect(loginOptions.options).toMatchObject({ rpId: "localhost", allowCredentials: [], userVerification: "required" });
		const signedIn = await post("/api/v1/auth/login/passkey", { flowId: loginOptions.flowId, credential: device.get(loginOptions.options, { origin }) });
		expect(signedIn.status).toBe(200);
		const pair = (await signedIn.json()) as { accessToken: string };
		const claims = JSON.parse(Buffer.from(pair.accessToken.split(".")[1]!, "base64url").toString()) as { sub: string; amr: string[] };
		expect(claims).toMatchObject({ sub: user.id, amr: ["pop", "mfa"] });
		expect((await get("/api/v1/auth/me", pair.accessToken)).status).toBe(200);

		// A bad answer is problem+json, never a 500; a malformed one never reaches auth's logic.
		const again = (await (await post("/api/v1/auth/login/passkey/options", {})).json()) as { flowId: string; options: { challenge: string; rpId: string } };
		const wrongSite = await post("/api/v1/auth/login/passkey", { flowId: again.flowId, credential: device.get(again.options, { origin: "https://evil.example" }) });
		expect([wrongSite.status, ((await wrongSite.json()) as { code: string }).code]).toEqual([401, "INVALID_PASSKEY"]);
		const malformed = await post("/api/v1/auth/login/passkey", { flowId: again.flowId, credential: { id: "not base64url!", rawId: "x", type: "password", response: {} } });
		expect([malformed.status, ((await malformed.json()) as { code: string }).code]).toEqual([400, "VALIDATION_ERROR"]);

		const removed = await fetch(`${base}/api/v1/auth/passkeys/${passkey.id}`, { method: "DELETE", headers: { authorization: `Bearer ${accessToken}` } });
		expect(removed.status).toBe(204);
		expect(((await (await get("/api/v1/auth/passkeys", accessToken)).json()) as { items: unknown[] }).items).toEqual([]);
	});

	it("serves public routes to a logged-in caller too (health probes, plans)", async () => {
		const { accessToken } = await login((await newUser()).email);
		expect((await get("/readyz", accessToken)).status).toBe(200);
		expect((await get("/api/openapi.json", accessToken)).status).toBe(200);
	});

	it("refuses a route without the permission it needs (403) and allows it once granted", async () => {
		const user = await newUser();
		const target = await newUser();
		const { accessToken } = await login(user.email);
		const denied = await fetch(`${base}/api/v1/auth/users/${target.id}/roles`, { method: "PUT", headers: { "content-type": "application/json", authorization: `Bearer ${accessToken}` }, body: JSON.stringify({ roles: ["admin"] }) });
		expect(denied.status).toBe(403);
		expect(((await denied.json()) as { code: string }).code).toBe("MISSING_PERMISSION");

		await auth.call("auth.bootstrapAdmin", { email: user.email });
		const admin = await login(user.email);
		const granted = await fetch(`${base}/api/v1/auth/users/${target.id}/roles`, { method: "PUT", headers: { "content-type": "application/json", authorization: `Bearer ${admin.accessToken}` }, body: JSON.stringify({ roles: ["admin"] }) });
		expect(granted.status).toBe(200);
		expect(await granted.json()).toMatchObject({ roles: ["admin"] });
	});

	it("accepts tokens signed with a rotated key without a restart", async () => {
		const user = await newUser();
		const before = await login(user.email);
		expect((await get("/api/v1/auth/me", before.accessToken)).status).toBe(200);
		const { kid } = await auth.call<{ kid: string }, object>("auth.rotateSigningKey", {});
		// The gateway refreshes its keys at most every 5 s when it meets an unknown key id.
		await new Promise((r) => setTimeout(r, 5_500));
		const after = await login(user.email);
		const header = JSON.parse(Buffer.from(after.accessToken.split(".")[0]!, "base64url").toString()) as { kid: string };
		expect(header.kid).toBe(kid);
		expect((await get("/api/v1/auth/me", after.accessToken)).status).toBe(200);
		expect((await get("/api/v1/auth/me", before.accessToken)).status).toBe(200);
	});

	it("refuses the access token of a session that logged out, before it expires", async () => {
		const user = await newUser();
		const { accessToken, refreshToken } = await login(user.email);
		expect((await get("/api/v1/auth/me", accessToken)).status).toBe(200); // now cached at the edge
		expect((await post("/api/v1/auth/logout", { refreshToken }, accessToken)).status).toBe(204);
		expect(await statusOnceRevoked(accessToken)).toBe(401);
	});

	it("lists where an account is signed in and ends another device's session, and only the owner can", async () => {
		const user = await newUser();
		const laptop = await login(user.email);
		const phone = await login(user.email);
		const del = (path: string, token: string) => fetch(`${base}${path}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
		type Session = { id: string; current: boolean; lastUsedAt: string; clientIp: string };
		const list = async (token: string) => {
			const res = await get("/api/v1/auth/sessions", token);
			expect(res.status).toBe(200);
			return ((await res.json()) as { items: Session[] }).items;
		};
		const seen = await list(laptop.accessToken);
		expect(seen).toHaveLength(2);
		expect(seen.filter((x) => x.current)).toHaveLength(1);
		const phoneSession = seen.find((x) => !x.current)!;

		// Nobody else can end it, or learn that it exists.
		const stranger = await login((await newUser()).email);
		expect((await del(`/api/v1/auth/sessions/${phoneSession.id}`, stranger.accessToken)).status).toBe(404);
		expect((await del("/api/v1/auth/sessions/not-a-session-id", laptop.accessToken)).status).toBe(400);

		expect((await del(`/api/v1/auth/sessions/${phoneSession.id}`, laptop.accessToken)).status).toBe(204);
		expect((await del(`/api/v1/auth/sessions/${phoneSession.id}`, laptop.accessToken)).status).toBe(404);
		expect((await post("/api/v1/auth/refresh", { refreshToken: phone.refreshToken })).status).toBe(401);
		// The phone's access token is refused at the edge once the revocation reached the gateway.
		expect(await statusOnceRevoked(phone.accessToken)).toBe(401);
		expect((await list(laptop.accessToken)).map((x) => x.current)).toEqual([true]);
		expect((await get("/api/v1/auth/me", laptop.accessToken)).status).toBe(200);

		// "Sign out everywhere else": every session but the caller's ends.
		const tablet = await login(user.email);
		const desktop = await login(user.email);
		expect(await list(laptop.accessToken)).toHaveLength(3);
		expect((await post("/api/v1/auth/logout", { otherSessions: true }, laptop.accessToken)).status).toBe(204);
		expect((await list(laptop.accessToken)).map((x) => x.current)).toEqual([true]);
		for (const other of [tablet, desktop]) expect((await post("/api/v1/auth/refresh", { refreshToken: other.refreshToken })).status).toBe(401);
		expect((await post("/api/v1/auth/refresh", { refreshToken: laptop.refreshToken })).status).toBe(200);
	});

	it("answers a wrong password with 401 problem+json and never reveals whether the account exists", async () => {
		const user = await newUser();
		const wrong = await post("/api/v1/auth/login", { email: user.email, password: "not the password at all" });
		const unknown = await post("/api/v1/auth/login", { email: `${uniqueId("nobody")}@example.com`, password: "not the password at all" });
		expect(wrong.status).toBe(401);
		expect(unknown.status).toBe(401);
		const [a, b] = (await Promise.all([wrong.json(), unknown.json()])) as { code: string; detail: string }[];
		expect(a!.code).toBe(b!.code);
		expect(a!.detail).toBe(b!.detail);
	});

	it("locks an account after repeated wrong passwords: 429 with Retry-After from auth's answer", async () => {
		const user = await newUser();
		for (let i = 0; i < 5; i++) expect((await post("/api/v1/auth/login", { email: user.email, password: "not the password at all" })).status).toBe(401);
		const locked = await post("/api/v1/auth/login", { email: user.email, password });
		expect(locked.status).toBe(429);
		expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(800);
		expect(await locked.json()).toMatchObject({ code: "TOO_MANY_LOGIN_ATTEMPTS", status: 429 });
	});
});
