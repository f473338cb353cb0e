/**
 * Distributed rate limits shared by every gateway node: GCRA (the generic cell rate algorithm,
 * as in Stripe's and Envoy's limiters) in one Redis script, atomic and on Redis' clock, not the
 * nodes'. A node does not ask Redis for every request: it leases a few tokens at once (at most
 * 1 % of the limit, spent within a second, one lease in flight per subject) and spends them
 * locally, and it remembers a refusal until the time Redis gave. Every token spent was taken from
 * the shared bucket, so the limit holds across nodes; a lease left unspent only makes it
 * stricter. Answers carry what the IETF RateLimit headers need.
 */
import type { Redis } from "ioredis";
import { runScript } from "../../lib/redis.ts";
import type { LuaScript } from "../../lib/redis.ts";

export interface RatePolicy {
	name: string;
	/** Requests allowed per window (also the burst). */
	limit: number;
	windowMs: number;
}

export interface RateDecision {
	allowed: boolean;
	policy: RatePolicy;
	remaining: number;
	/** Seconds until the bucket is full again. */
	resetS: number;
	/** Seconds to wait before retrying, when refused. */
	retryAfterS: number;
}

// KEYS[1] = bucket; ARGV = emission interval (ms), burst, tokens wanted. Stores the theoretical
// arrival time (TAT); grants up to the wanted tokens that are available now.
// Returns {granted, remaining after, ms until full, ms until the next token when none granted}.
const GCRA: LuaScript = { numberOfKeys: 1, lua: `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local available = math.floor((now + burst * interval - tat) / interval)
if available < 1 then
  return {0, 0, tat - now, tat + interval - burst * interval - now}
end
local granted = math.min(want, available)
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return {granted, available - granted, new_tat - now, 0}` };

/** A lease is at most this share of the limit (so the error it can cause stays small)... */
const LEASE_SHARE = 0.01;
/** ...and at most this many tokens. */
const MAX_LEASE = 50;
/** Unspent tokens of a lease are dropped after this long (they never come back to the bucket). */
const LEASE_TTL_MS = 1_000;
/** Subjects remembered per node; expired entries are swept beyond this. */
const MAX_SUBJECTS = 10_000;
/** Rounds of waiting for another request's lease before taking one of its own. */
const MAX_LEASE_WAITS = 10;

interface Lease {
	tokens: number;
	/** Remaining in the shared bucket when leased. */
	remaining: number;
	resetS: number;
	/** Local time (ms) until which the tokens may be spent, or the refusal holds. */
	until: number;
	refused: boolean;
	retryAfterS: number;
}

export class RateLimiter {
	private readonly redis: Redis;
	private readonly prefix: string;
	private readonly now: () => number;
	private readonly leases = new Map<string, Lease>();
	private readonly leasing = new Map<string, Promise<RateDecision>>();

	constructor(redis: Redis, prefix: string, now: () => number = Date.now) {
		this.redis = redis;
		this.prefix = prefix;
		this.now = now;
	}

	async take(policy: RatePolicy, subject: string): Promise<RateDecision> {
		const key = `${this.prefix}:rl:${policy.name}:${subject}`;
		for (let waits = 0; waits < MAX_LEASE_WAITS; waits++) {
			const local = this.spend(key, policy);
			if (local) return local;
			// One lease in flight per subject: concurrent requests share it instead of each taking one.
			const pending = this.leasing.get(key);
			if (!pending) break;
			await pending.catch(() => undefined);
		}
		const leasing = this.lease(key, policy).finally(() => {
			if (this.leasing.get(key) === leasing) this.leasing.delete(key);
		});
		this.leasing.set(key, leasing);
		return leasing;
	}

	/** A decision from this node's lease or remembered refusal, if it has a valid one. */
	private spend(key: string, policy: RatePolicy): RateDecision | undefined {
		const lease = this.leases.get(key);
		if (!lease || lease.until <= this.now()) return undefined;
		if (lease.refused) return { allowed: false, policy, remaining: 0, resetS: lease.resetS, retryAfterS: lease.retryAfterS };
		if (lease.tokens === 0) return undefined;
		lease.tokens--;
		return { allowed: true, policy, remaining: lease.remaining + lease.tokens, resetS: lease.resetS, retryAfterS: 0 };
	}

	/** Takes tokens from the shared bucket; the first is this request's, the rest are kept. */
	private async lease(key: string, policy: RatePolicy): Promise<RateDecision> {
		const interval = policy.windowMs / policy.limit;
		const want = Math.max(1, Math.min(MAX_LEASE, Math.floor(policy.limit * LEASE_SHARE)));
		const [granted = 0, remaining = 0, resetMs = 0, retryMs = 0] = (await runScript<(number | string)[]>(this.redis, GCRA, key, interval, policy.limit, want)).map(Number);
		const now = this.now();
		if (this.leases.size >= MAX_SUBJECTS) this.sweep(now);
		// Tokens of a lease taken meanwhile (a request that stopped waiting) are kept, not dropped.
		const previous = this.leases.get(key);
		const carried = previous && !previous.refused && previous.until > now ? previous.tokens : 0;
		const lease: Lease = {
			tokens: Math.max(0, granted - 1) + carried,
			remaining,
			resetS: Math.ceil(resetMs / 1000),
			// A refusal holds exactly until the bucket has a token again; nothing another node does can refill it sooner.
			until: granted > 0 ? now + LEASE_TTL_MS : now + retryMs,
			refused: granted === 0,
			retryAfterS: Math.max(1, Math.ceil(retryMs / 1000)),
		};
		this.leases.set(key, lease);
		if (lease.refused) return { allowed: false, policy, remaining: 0, resetS: lease.resetS, retryAfterS: lease.retryAfterS };
		return { allowed: true, policy, remaining: remaining + lease.tokens, resetS: lease.resetS, retryAfterS: 0 };
	}

	private sweep(now: number): void {
		for (const [key, lease] of this.leases) if (lease.until <= now) this.leases.delete(key);
		// Still full (many live subjects): forget the oldest; they lease again when they come back.
		for (const key of this.leases.keys()) {
			if (this.leases.size < MAX_SUBJECTS) break;
			this.leases.delete(key);
		}
	}
}

/** `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers), plus `Retry-After` on refusal. */
export function rateLimitHeaders(d: RateDecision): Record<string, string> {
	const headers: Record<string, string> = {
		"RateLimit-Policy": `"${d.policy.name}";q=${d.policy.limit};w=${Math.round(d.policy.windowMs / 1000)}`,
		RateLimit: `"${d.policy.name}";r=${d.remaining};t=${d.resetS}`,
	};
	if (!d.allowed) headers["Retry-After"] = String(d.retryAfterS);
	return headers;
}

/** Parses "100/60s", "10/1m", "5000/1h" into a policy. */
export function parsePolicy(name: string, spec: string): RatePolicy {
	const m = /^(\d+)\/(\d+)(s|m|h)$/.exec(spec.trim());
	if (!m) throw new Error(`rate limit "${spec}" must look like 100/60s, 10/1m or 5000/1h`);
	const unit = { s: 1_000, m: 60_000, h: 3_600_000 }[m[3] as "s" | "m" | "h"];
	const limit = Number(m[1]);
	const windowMs = Number(m[2]) * unit;
	if (limit < 1 || windowMs < 1_000) throw new Error(`rate limit "${spec}" must allow at least 1 request per second-long window`);
	return { name, limit, windowMs };
}
