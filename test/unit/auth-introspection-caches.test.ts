import { describe, expect, it } from "vitest";
import { ActiveSessionCache } from "../../services/auth/session-cache.ts";
import { ExpiringCache, tokenCacheKey } from "../../lib/expiring-cache.ts";
import type { VerifiedClaims } from "../../services/auth/tokens.ts";

const at = (ms: number) => new Date(Date.UTC(2026, 10, 25) + ms);

describe("ActiveSessionCache", () => {
	it("answers a remembered session for the TTL, never past the session's own expiry", () => {
		const cache = new ActiveSessionCache(2_000);
		expect(cache.isActive("s1", at(0))).toBeUndefined();
		cache.remember("s1", at(60_000), at(0));
		cache.remember("s2", at(500), at(0));
		expect(cache.isActive("s1", at(1_999))).toBe(true);
		expect(cache.isActive("s1", at(2_000))).toBeUndefined();
		expect(cache.isActive("s2", at(499))).toBe(true);
		expect(cache.isActive("s2", at(500))).toBeUndefined();
	});

	it("forgets a revoked session, and a read from before the revocation cannot put it back for the TTL", () => {
		const cache = new ActiveSessionCache(2_000);
		cache.remember("s1", at(60_000), at(0));
		cache.forget("s1", at(100));
		expect(cache.isActive("s1", at(101))).toBeUndefined();
		cache.remember("s1", at(60_000), at(150)); // an introspection that read the row before the revocation committed
		expect(cache.isActive("s1", at(200))).toBeUndefined();
		cache.remember("s1", at(60_000), at(2_200)); // the tombstone is gone after the TTL
		expect(cache.isActive("s1", at(2_300))).toBe(true);
	});

	it("remembers nothing when off, and stays within its bound", () => {
		const off = new ActiveSessionCache(0);
		off.remember("s1", at(60_000), at(0));
		expect(off.isActive("s1", at(1))).toBeUndefined();
		const small = new ActiveSessionCache(2_000, 100);
		for (let i = 0; i < 1_000; i++) small.remember(`s${i}`, at(60_000), at(0));
		expect(small.size).toBeLessThanOrEqual(100);
		expect(small.isActive("s999", at(1))).toBe(true);
		expect(small.isActive("s0", at(1))).toBeUndefined();
	});
});

describe("introspection's verified-token cache (ExpiringCache by token hash)", () => {
	const claims = (exp: number): VerifiedClaims => ({ sub: "u", sid: "s", jti: "j", iss: "i", aud: "a", iat: 0, nbf: 0, exp, roles: [], permissions: [], amr: ["pwd"] });
	const remember = (cache: ExpiringCache<VerifiedClaims>, token: string, c: VerifiedClaims) => cache.set(tokenCacheKey(token), c, c.exp * 1000);

	it("answers a verified token until its exp, and only that token", () => {
		const cache = new ExpiringCache<VerifiedClaims>(10_000);
		const exp = at(60_000).getTime() / 1000;
		remember(cache, "token-a", claims(exp));
		expect(cache.get(tokenCacheKey("token-a"), at(59_999).getTime())).toMatchObject({ exp });
		expect(cache.get(tokenCacheKey("token-b"), at(0).getTime())).toBeUndefined();
		expect(cache.get(tokenCacheKey("token-a"), at(60_000).getTime())).toBeUndefined();
	});

	it("stays within its bound, dropping the oldest first", () => {
		const cache = new ExpiringCache<VerifiedClaims>(10);
		const exp = at(60_000).getTime() / 1000;
		for (let i = 0; i < 25; i++) remember(cache, `t${i}`, claims(exp));
		expect(cache.get(tokenCacheKey("t24"), at(0).getTime())).toBeDefined();
		expect(cache.get(tokenCacheKey("t14"), at(0).getTime())).toBeUndefined();
		expect(cache.size).toBe(10);
	});
});
