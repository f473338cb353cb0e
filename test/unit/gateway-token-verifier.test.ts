/** Access-token checks at the edge, with keys made in the test (the JWKS source is injected). */
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import type { JSONWebKeySet, JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { TokenVerifier } from "../../services/gateway/token-verifier.ts";

const ISSUER = "http://127.0.0.1:4000";
const AUDIENCE = "backplane-api";
type Key = Awaited<ReturnType<typeof generateKeyPair>>;

async function keyWithId(kid: string): Promise<{ key: Key; jwk: JWK }> {
	const key = await generateKeyPair("EdDSA", { crv: "Ed25519" });
	return { key, jwk: { ...(await exportJWK(key.publicKey)), kid, alg: "EdDSA", use: "sig" } };
}

function sign(key: Key, kid: string, claims: Record<string, unknown> = {}, opts: { exp?: string | number; aud?: string; iss?: string } = {}) {
	return new SignJWT({ sid: "s1", roles: ["user"], permissions: ["billing:read"], ...claims })
		.setProtectedHeader({ alg: "EdDSA", kid, typ: "at+jwt" })
		.setSubject("u1")
		.setIssuer(opts.iss ?? ISSUER)
		.setAudience(opts.aud ?? AUDIENCE)
		.setIssuedAt()
		.setExpirationTime(opts.exp ?? "15m")
		.sign(key.privateKey);
}

describe("TokenVerifier", () => {
	let k1: { key: Key; jwk: JWK };
	let k2: { key: Key; jwk: JWK };
	let jwks: JSONWebKeySet;
	let fetches = 0;
	let now = Date.now();
	const verifier = () => new TokenVerifier({ issuer: ISSUER, audience: AUDIENCE, fetchJwks: async () => (fetches++, jwks), now: () => now, minRefreshIntervalMs: 1_000 });

	beforeAll(async () => {
		k1 = await keyWithId("k1");
		k2 = await keyWithId("k2");
		jwks = { keys: [k1.jwk] };
	});

	it("accepts a good token and returns the caller", async () => {
		const caller = await verifier().verify(await sign(k1.key, "k1"));
		expect(caller).toMatchObject({ userId: "u1", sessionId: "s1", roles: ["user"], permissions: ["billing:read"] });
	});

	it.each([
		["expired", () => sign(k1.key, "k1", {}, { exp: Math.floor(Date.now() / 1000) - 120 }), "TOKEN_EXPIRED"],
		["wrong audience", () => sign(k1.key, "k1", {}, { aud: "someone-else" }), "INVALID_TOKEN"],
		["wrong issuer", () => sign(k1.key, "k1", {}, { iss: "https://evil.example" }), "INVALID_TOKEN"],
		["alg none", async () => new UnsecuredJWT({ sid: "s1", roles: [], permissions: [] }).setSubject("u1").setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime("5m").encode(), "INVALID_TOKEN"],
		["tampered payload", async () => {
			const [h, p, s] = (await sign(k1.key, "k1")).split(".");
			const claims = JSON.parse(Buffer.from(p!, "base64url").toString()) as Record<string, unknown>;
			claims.permissions = ["roles:write"];
			return `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${s}`;
		}, "INVALID_TOKEN"],
		["not an access token (typ)", async () => new SignJWT({ sid: "s1", roles: [], permissions: [] }).setProtectedHeader({ alg: "EdDSA", kid: "k1", typ: "JWT" }).setSubject("u1").setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime("5m").sign(k1.key.privateKey), "INVALID_TOKEN"],
		["missing claims", async () => new SignJWT({}).setProtectedHeader({ alg: "EdDSA", kid: "k1", typ: "at+jwt" }).setSubject("u1").setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime("5m").sign(k1.key.privateKey), "INVALID_TOKEN"],
	])("refuses a token that is %s with 401 %s", async (_, make, type) => {
		await expect(verifier().verify(await make())).rejects.toMatchObject({ code: 401, type });
	});

	it("refuses a token signed by an unknown key, after one bounded refresh", async () => {
		const stranger = await keyWithId("k9");
		const v = verifier();
		fetches = 0;
		await v.verify(await sign(k1.key, "k1")); // first load
		now += 2_000;
		await expect(v.verify(await sign(stranger.key, "k9"))).rejects.toMatchObject({ code: 401 });
		expect(fetches).toBe(2); // an unknown key id triggers one refresh...
		await expect(v.verify(await sign(stranger.key, "k9"))).rejects.toMatchObject({ code: 401 });
		expect(fetches).toBe(2); // ...and not another within the refresh interval
	});

	it("picks up a rotated key without restart, and old tokens keep working while their key is published", async () => {
		const v = verifier();
		const old = await sign(k1.key, "k1");
		await v.verify(old);
		jwks = { keys: [k2.jwk, k1.jwk] };
		now += 2_000;
		await expect(v.verify(await sign(k2.key, "k2"))).resolves.toMatchObject({ userId: "u1" });
		await expect(v.verify(old)).resolves.toMatchObject({ userId: "u1" });
	});

	it("refuses tokens of a revoked session even when cached", async () => {
		const v = verifier();
		const token = await sign(k1.key, "k1", { sid: "s-revoked" });
		await v.verify(token);
		v.revokeSession("s-revoked", now / 1000 + 900);
		await expect(v.verify(token)).rejects.toMatchObject({ code: 401, type: "INVALID_TOKEN" });
	});
});
