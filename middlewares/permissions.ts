/**
 * Permissions checked where the action runs, on every node: an action that declares
 * `permissions` answers 401 without a caller in `ctx.meta.caller`, and 403 when the caller lacks
 * one (`MISSING_PERMISSION`), or, with ADMIN_REQUIRES_MFA, when the caller's session was signed in
 * without two-step login (`SECOND_FACTOR_REQUIRED`). The gateway refuses the same at the edge;
 * this is the same rule again for any way a call reaches a service (defence in depth). Callers
 * without `amr` are not edge sessions (an operator at the REPL) and are not held to the second
 * factor.
 */
import type { Context, Middleware } from "moleculer";
import { assertPermitted, callerFrom } from "../lib/caller.ts";

type Handler = (ctx: Context) => unknown;

export function permissionsMiddleware(opts: { adminRequiresMfa: boolean }): Middleware {
	return {
		name: "Permissions",
		localAction(next: Handler, action: { name?: string; permissions?: unknown }): Handler {
			// A misspelt declaration must not leave the action open: refuse to start instead.
			if (action.permissions !== undefined && !(Array.isArray(action.permissions) && action.permissions.every((p) => typeof p === "string"))) {
				throw new Error(`action ${action.name ?? "?"}: permissions must be an array of strings`);
			}
			const needed = (action.permissions) ?? [];
			if (!needed.length) return next;
			// Async: a refusal must be a rejected promise, as a handler's would be, not a throw out of `call`.
			return async (ctx: Context) => {
				// USERS_REQUIRE_MFA is the edge's and auth's to hold (users reach billing and notification only through the gateway).
				assertPermitted(callerFrom((ctx.meta as { caller?: unknown }).caller), { permissions: needed }, { admins: opts.adminRequiresMfa, everyone: false });
				return next(ctx);
			};
		},
	};
}
