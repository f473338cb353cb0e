/**
 * Signing keys on real PostgreSQL: rotation with an overlap window, JWKS contents, encryption at
 * rest with the key-encryption key, several nodes rotating at once, and housekeeping.
 */
import { randomBytes } from "node:crypto";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerUser } from "../../services/auth/accounts.ts";
import { housekeeping, outboxLagSeconds } from "../../services/auth/housekeeping.ts";
import { CLOCK_SKEW_S, KEY_CACHE_S, KeyRing } from "../../services/auth/keys.ts";
import { introspect, login } from "../../services/auth/login.ts";
import { forgotPassword } from "../../services/auth/recovery.ts";
import { authKit, TEST_SETTINGS } from "../support/auth.ts";
import type { AuthKit } from "../support/auth.ts";

const PASSWORD = "violet staple kettle";
const req = { clientIp: "203.0.113.9" };
const KEK = randomBytes(32);
const DAY = 86_400;

let kit: AuthKit;

beforeAll(async () => {
	kit = await authKit({ kek: KEK, rotationDays: 30 });
});
afterAll(async () => {
	await kit?.close();
});

/** What the gateway does: verify locally against the published JWKS. */
async function verifyWithJwks(token: string, at: Date): Promise<string> {
	const jwks = createLocalJWKSet(await kit.deps.keys.jwks());
	return jwtVerify(token, jwks, { issuer: TEST_SETTINGS.issuer, audience: TEST_SETTINGS.audience, currentDate: at, algorithms: ["EdDSA"] }).then(
		() => "valid",
		(err: Error) => err.constructor.name,
	);
}

describe("signing keys", () => {
	it("rotate with an overlap: a token of the old key verifies until it expires; the old key leaves the JWKS after the overlap", async () => {
		const keys = kit.deps.keys;
		const first = (await keys.ensureCurrent())!;
		expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
		expect(await keys.ensureCurrent()).toBeUndefined();
		const user = await registerUser(kit.deps, { email: `keys.${Date.now()}@example.com`, password: PASSWORD }, req);

		kit.clock.advance(30 * DAY - 1);
		const old = await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		expect(decodeProtectedHeader(old.accessToken).kid).toBe(first);
		kit.clock.advance(1);
		const second = (await keys.ensureCurrent())!;
		expect(second).toBeDefined();
		expect(second).not.toBe(first);
		const jwks = await keys.jwks();
		expect(jwks.keys.map((k) => k.kid).sort()).toEqual([first, second].sort());
		expect(jwks.keys.every((k) => k.kty === "OKP" && k.crv === "Ed25519" && k.alg === "EdDSA" && k.use === "sig" && !("d" in k))).toBe(true);

		const fresh = await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		expect(decodeProtectedHeader(fresh.accessToken).kid).toBe(second);
		expect(await verifyWithJwks(old.accessToken, kit.clock.now())).toBe("valid");
		expect(await verifyWithJwks(fresh.accessToken, kit.clock.now())).toBe("valid");
		expect((await introspect(kit.deps, old.accessToken)).active).toBe(true);

		kit.clock.advance(TEST_SETTINGS.accessTokenTtlS - 2);
		expect(await verifyWithJwks(old.accessToken, kit.clock.now())).toBe("valid");
		expect((await introspect(kit.deps, old.accessToken)).active).toBe(true);
		kit.clock.advance(10);
		expect(await verifyWithJwks(old.accessToken, kit.clock.now())).toBe("JWTExpired");
		expect((await introspect(kit.deps, old.accessToken)).active).toBe(false);

		// Published until rotation + ttl + cache + skew: nodes that still signed with it are covered.
		const overlap = TEST_SETTINGS.accessTokenTtlS + KEY_CACHE_S + CLOCK_SKEW_S;
		kit.clock.advance(overlap - (TEST_SETTINGS.accessTokenTtlS + 8) - 1);
		expect((await keys.jwks()).keys.map((k) => k.kid)).toContain(first);
		kit.clock.advance(1);
		expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([second]);
		expect(await keys.publicKey(first)).toBeUndefined();
	});

	it("keep private keys only encrypted, with the fingerprint of the key-encryption key that sealed them", async () => {
		const { rows } = await kit.pool.query<{ kid: string; public_jwk: Record<string, string>; private_key_ciphertext: Buffer; kek_id: string }>(
			"SELECT kid, public_jwk, private_key_ciphertext, kek_id FROM signing_keys",
		);
		expect(rows.length).toBeGreaterThan(0);
		for (const row of rows) {
			expect(Object.keys(row.public_jwk).sort()).toEqual(["crv", "kty", "x"]);
			// A PKCS#8 Ed25519 key starts with this DER prefix; the ciphertext must not.
			expect(row.private_key_ciphertext.subarray(0, 4).toString("hex")).not.toBe("302e0201");
			expect(row.kek_id).toMatch(/^kek-[0-9a-f]{16}$/);
		}
	});

	it("are replaced when the key-encryption key changed, and rotations racing on several nodes leave one active key", async () => {
		const before = (await kit.deps.keys.jwks()).keys.map((k) => k.kid);
		const otherKek = new KeyRing(kit.pool, randomBytes(32), kit.clock, { rotationDays: 30, accessTokenTtlS: 900 });
		const resealed = (await otherKek.signingKey()).kid;
		expect(before).not.toContain(resealed);

		const nodes = Array.from({ length: 4 }, () => new KeyRing(kit.pool, KEK, kit.clock, { rotationDays: 30, accessTokenTtlS: 900 }));
		const kids = await Promise.all(nodes.map((n) => n.rotate()));
		expect(new Set(kids).size).toBe(4);
		const active = await kit.pool.query<{ kid: string }>("SELECT kid FROM signing_keys WHERE retired_at IS NULL");
		expect(active.rows).toHaveLength(1);
		expect(kids).toContain(active.rows[0]!.kid);
		// Every retired key stays published (a fresh node reads the table; the kit's ring caches it for KEY_CACHE_S).
		const reader = new KeyRing(kit.pool, KEK, kit.clock, { rotationDays: 30, accessTokenTtlS: 900 });
		expect((await reader.jwks()).keys.map((k) => k.kid)).toEqual(expect.arrayContaining([resealed, ...kids]));
	});
});

describe("housekeeping", () => {
	it("scrubs published one-time links, deletes expired tokens and retired keys, and reports the outbox lag", async () => {
		const user = await registerUser(kit.deps, { email: `house.${Date.now()}@example.com`, password: PASSWORD }, req);
		await forgotPassword(kit.deps, user.email, req);
		expect(await outboxLagSeconds(kit.pool)).toBeGreaterThanOrEqual(0);
		// Nothing is published yet: links stay readable for the relay.
		await housekeeping(kit.pool, kit.clock.now());
		const links = async () =>
			(await kit.pool.query<{ url: string }>("SELECT coalesce(envelope->'data'->>'resetUrl', envelope->'data'->>'verifyUrl') AS url FROM outbox_events WHERE envelope->>'subject' = $1 AND type <> 'user.created'", [user.id])).rows.map((r) => r.url);
		expect((await links()).every((u) => u.startsWith("http://app.test/"))).toBe(true);
		await kit.pool.query("UPDATE outbox_events SET published_at = now() WHERE published_at IS NULL");
		expect(await outboxLagSeconds(kit.pool)).toBe(0);
		const report = await housekeeping(kit.pool, kit.clock.now());
		expect(report.scrubbedEvents).toBeGreaterThanOrEqual(2);
		expect(await links()).toEqual(["[redacted]", "[redacted]"]);

		kit.clock.advance(40 * DAY);
		const later = await housekeeping(kit.pool, kit.clock.now());
		expect(later.deleted.password_reset_tokens).toBeGreaterThanOrEqual(1);
		expect(later.deleted.signing_keys).toBeGreaterThanOrEqual(1);
		const left = await kit.pool.query("SELECT 1 FROM password_reset_tokens WHERE user_id = $1", [user.id]);
		expect(left.rowCount).toBe(0);
	});
});
