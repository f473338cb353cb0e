/**
 * The shared rate limit on real Redis, as two gateway nodes use it: each node leases tokens in
 * small batches and spends them locally, yet together they never allow more than the limit, and
 * they ask Redis far less often than once per request.
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { RateLimiter } from "../../services/gateway/rate-limit.ts";
import type { RateDecision, RatePolicy } from "../../services/gateway/rate-limit.ts";
import { infra, uniqueId } from "../support/infra.ts";

/** A limiter on its own Redis connection (a gateway node) that counts its script calls. */
function node(prefix: string): { limiter: RateLimiter; calls: () => number; redis: Redis } {
	const redis = new Redis(infra.redisUrl);
	const limiter = new RateLimiter(redis, prefix);
	const send = redis.sendCommand.bind(redis);
	let calls = 0;
	// Scripts run by SHA (lib/redis.ts runScript); a first call answered NOSCRIPT is sent again as EVAL.
	redis.sendCommand = (command, ...rest) => {
		if (command.name === "evalsha" || command.name === "eval") calls++;
		return send(command, ...rest);
	};
	return { limiter, calls: () => calls, redis };
}

describe("rate limiter leases", () => {
	const prefix = uniqueId("rl");
	const nodes = [node(prefix), node(prefix)];
	afterAll(async () => {
		await Promise.all(nodes.map((n) => n.redis.quit()));
	});

	it("holds the limit across two nodes with one Redis call per lease, and remembers a refusal", async () => {
		const policy: RatePolicy = { name: "user", limit: 2_000, windowMs: 3_600_000 };
		const limiters = nodes.map((n) => n.limiter);
		// 3,000 requests of one subject, 50 at a time on each node.
		const decisions = await Promise.all(
			limiters.map(async (limiter) => {
				const allowed: boolean[] = [];
				for (let batch = 0; batch < 30; batch++) {
					const answers = await Promise.all(Array.from({ length: 50 }, () => limiter.take(policy, "user:ada")));
					allowed.push(...answers.map((d) => d.allowed));
				}
				return allowed;
			}),
		);
		const allowed = decisions.flat().filter(Boolean).length;
		const calls = nodes.map((n) => n.calls());
		console.log(`limit ${policy.limit}: ${allowed} of 3000 allowed; Redis calls per node: ${calls.join(", ")}`);
		expect(allowed).toBeLessThanOrEqual(policy.limit);
		expect(allowed).toBeGreaterThanOrEqual(policy.limit * 0.95);
		// Leases of 20 tokens: ~100 calls for 2,000 tokens, plus one per node once refused.
		expect(calls.reduce((a, b) => a + b)).toBeGreaterThan(50);
		expect(calls.reduce((a, b) => a + b)).toBeLessThan(200);

		// Refused: the node answers from memory until the bucket has a token again.
		const before = nodes[0]!.calls();
		const refused = await Promise.all(Array.from({ length: 20 }, () => limiters[0]!.take(policy, "user:ada")));
		expect(refused.every((d) => !d.allowed && d.retryAfterS >= 1)).toBe(true);
		expect(nodes[0]!.calls()).toBe(before);
	});

	it("asks Redis for every request of a strict limit (a lease of one)", async () => {
		const { limiter } = nodes[0]!;
		const policy: RatePolicy = { name: "auth-strict", limit: 10, windowMs: 60_000 };
		const decisions: RateDecision[] = [];
		for (let i = 0; i < 12; i++) decisions.push(await limiter.take(policy, "ip:127.0.0.1"));
		expect(decisions.map((d) => d.allowed)).toEqual([...Array.from({ length: 10 }, () => true), false, false]);
		expect(decisions.slice(0, 10).map((d) => d.remaining)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
	});
});
