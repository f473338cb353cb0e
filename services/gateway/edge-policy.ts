/**
 * What the edge decides for a request before any service sees it: which service it is for (its
 * admission compartment), which rate limit applies and to whom. Plain functions of the request's
 * path, the route's declared policy and the verified caller.
 */
import type { RatePolicy } from "./rate-limit.ts";

/** Declared on a gateway action (routes.ts for auth, the action schema for the others). */
export interface EdgePolicy {
	name?: string;
	auth?: "required" | "none";
	permissions?: string[];
	rateLimit?: string;
	/** Open to a session without a second factor under USERS_REQUIRE_MFA (lib/caller.ts). */
	enrolment?: boolean | "always";
}

/** Path prefix under /api/v1 -> the auto-aliased service that serves it (its `settings.rest`). */
export const AUTO_ALIASED_PREFIXES: Record<string, string> = { billing: "billing", notifications: "notification" };
/** Probes answer whatever the load: an orchestrator must always see the truth. */
const PROBES = new Set(["/healthz", "/readyz"]);
/** Long-lived by design (Server-Sent Events), bounded per user by AlertStreams instead. */
const STREAMS = new Set(["/api/v1/notifications/stream"]);

/** The service an /api/v1 path belongs to, or undefined for what the gateway serves itself. */
export function serviceOfPath(path: string): string | undefined {
	if (path.startsWith("/.well-known/")) return "auth";
	const prefix = /^\/api\/v1\/([^/?]+)/.exec(path)?.[1];
	if (!prefix) return undefined;
	return prefix === "auth" ? "auth" : AUTO_ALIASED_PREFIXES[prefix];
}

/** Requests that load shedding never refuses nor counts. */
export function exemptFromShedding(path: string): boolean {
	const bare = path.split("?", 1)[0]!;
	return PROBES.has(bare) || STREAMS.has(bare);
}

/**
 * The rate limit of a request: none for probes; a named limit (credential endpoints) per client
 * IP; otherwise the user's limit for a caller with a token, the anonymous one per IP.
 */
export function rateLimitOf(
	policy: EdgePolicy,
	caller: { userId: string } | undefined,
	clientIp: string | undefined,
	policies: Record<string, RatePolicy>,
): { policy: RatePolicy; subject: string } | undefined {
	if (policy.rateLimit === "none") return undefined;
	const named = policy.rateLimit ? policies[policy.rateLimit] : undefined;
	if (named) return { policy: named, subject: `ip:${clientIp}` };
	return caller ? { policy: policies.user!, subject: `user:${caller.userId}` } : { policy: policies.anonymous!, subject: `ip:${clientIp}` };
}
