/**
 * Distributed rate limits shared by every gateway node: GCRA (the generic cell rate algorithm,
 * as in Stripe's and Envoy's limiters) in one Redis script, so a decision is one atomic round
 * trip and uses Redis' clock, not the nodes'. Answers carry what the IETF RateLimit headers need.
 */
import type { Redis } from "ioredis";

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

// KEYS[1] = bucket; ARGV = emission interval (ms), burst. Stores the theoretical arrival time (TAT).
const GCRA = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return {1, math.floor((now - allow_at) / interval), new_tat - now, 0}`;

export class RateLimiter {
	private readonly redis: Redis;
	private readonly prefix: string;

	constructor(redis: Redis, prefix: string) {
		this.redis = redis;
		this.prefix = prefix;
		redis.defineCommand("gcra", { numberOfKeys: 1, lua: GCRA });
	}

	async take(policy: RatePolicy, subject: string): Promise<RateDecision> {
		const interval = policy.windowMs / policy.limit;
		const key = `${this.prefix}:rl:${policy.name}:${subject}`;
		const [allowed, remaining, resetMs, retryMs] = (await (this.redis as unknown as Gcra).gcra(key, interval, policy.limit)).map(Number);
		return {
			allowed: allowed === 1,
			policy,
			remaining: remaining ?? 0,
			resetS: Math.ceil((resetMs ?? 0) / 1000),
			retryAfterS: Math.max(1, Math.ceil((retryMs ?? 0) / 1000)),
		};
	}
}

interface Gcra {
	gcra(key: string, interval: number, burst: number): Promise<(number | string)[]>;
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
