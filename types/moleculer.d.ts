/**
 * Our own keys on an action, declared once. The gateway enforces them for REST calls:
 *   auth: "required" (default for published actions) | "none"
 *   permissions: all of these must be in the caller's token (e.g. ["roles:write"])
 *   rateLimit: the named limit that applies (see the gateway's rate-limit policies)
 *   enrolment: open to a session without a second factor under USERS_REQUIRE_MFA (lib/caller.ts):
 *     true while the account has none (setting one up), "always" (/me, logout, the passkey list)
 */
import "moleculer";

declare module "moleculer" {
	interface ActionSchema {
		auth?: "required" | "none";
		permissions?: string[];
		rateLimit?: string;
		enrolment?: boolean | "always";
		/**
		 * OpenAPI summary and description of the REST operation; `created`: it answers 201 with a
		 * `Location` header (the action sets `ctx.meta.$statusCode` and `ctx.meta.$location`).
		 */
		openapi?: { summary?: string; description?: string; tags?: string[]; responses?: Record<string, unknown>; created?: boolean };
	}
}
