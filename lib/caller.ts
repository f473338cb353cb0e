/**
 * Who is calling: set by the gateway in `ctx.meta.caller` after it verified the access token,
 * never taken from a client header. Services read it; they never parse tokens themselves.
 */
import { forbidden, unauthorized } from "./errors.ts";

export interface Caller {
	userId: string;
	sessionId: string;
	roles: string[];
	permissions: string[];
	/** How the session was authenticated (RFC 8176): "mfa" in it when a second factor was used. */
	amr?: string[];
}

export interface CallerMeta {
	caller?: Caller;
}

const isStrings = (v: unknown, max = Infinity): v is string[] => Array.isArray(v) && v.length <= max && v.every((s) => typeof s === "string");
/** A caller passed along is bounded: it travels with every call. */
const MAX_GRANTS = 200;

/** The caller in a context's meta, if it has the expected shape (a service never trusts it blindly). */
export function callerFrom(value: unknown): Caller | undefined {
	const c = value as Partial<Caller> | null | undefined;
	if (!c || typeof c !== "object" || typeof c.userId !== "string" || typeof c.sessionId !== "string" || !isStrings(c.roles, MAX_GRANTS) || !isStrings(c.permissions, MAX_GRANTS)) return undefined;
	if (c.amr !== undefined && !isStrings(c.amr, MAX_GRANTS)) return undefined;
	return { userId: c.userId, sessionId: c.sessionId, roles: c.roles, permissions: c.permissions, ...(c.amr ? { amr: c.amr } : {}) };
}

/**
 * The grants an access token carries (`roles`, `permissions`, `amr`), if its payload has them in
 * shape; what both verifiers (auth's and the gateway's) read. Tokens signed before sessions
 * recorded `amr` were all password-only.
 */
export function grantClaims(payload: Record<string, unknown>): Pick<Caller, "roles" | "permissions"> & { amr: string[] } | undefined {
	const { roles, permissions } = payload;
	const amr = payload.amr === undefined ? ["pwd"] : payload.amr;
	return isStrings(roles) && isStrings(permissions) && isStrings(amr) ? { roles, permissions, amr } : undefined;
}

/** Which sessions must have been signed in with a second factor (`amr` with "mfa"). */
export interface MfaPolicy {
	/** ADMIN_REQUIRES_MFA: routes that need a permission (the administration). */
	admins: boolean;
	/** USERS_REQUIRE_MFA: every route that needs a caller, but those that set a second factor up. */
	everyone: boolean;
}

/** What a route (or an action) needs of its caller. */
export interface RouteNeeds {
	auth?: "required" | "none";
	permissions?: readonly string[];
	/**
	 * Open to a session without a second factor while USERS_REQUIRE_MFA holds: `true` for setting
	 * one up (auth refuses it to an account that has one already: it signs in with it instead),
	 * `"always"` for /me, logging out and the passkey list.
	 */
	enrolment?: boolean | "always";
}

/**
 * The one rule for a route, at the gateway and on every node: 401 without a caller, 403
 * MISSING_PERMISSION without a permission it needs, and 403 SECOND_FACTOR_REQUIRED for an edge
 * session (one with `amr`) signed in without a second factor where the policy asks for one. A
 * caller without `amr` (an operator at the REPL) is not an edge session.
 */
export function assertPermitted(caller: Caller | undefined, route: RouteNeeds, mfa: MfaPolicy): void {
	const needed = route.permissions ?? [];
	if (needed.length) {
		if (!caller) throw unauthorized();
		const missing = needed.filter((p) => !caller.permissions.includes(p));
		if (missing.length) throw forbidden(`This needs the permission${missing.length > 1 ? "s" : ""} ${missing.join(", ")}.`, "MISSING_PERMISSION");
	}
	if (!caller?.amr || caller.amr.includes("mfa")) return;
	if (needed.length && mfa.admins) {
		throw forbidden("The administration needs a session signed in with two-step login: turn it on in your account, then log in again.", "SECOND_FACTOR_REQUIRED");
	}
	if (mfa.everyone && route.auth !== "none" && !route.enrolment) {
		throw forbidden("Every account here needs two-step login or a passkey: set one up in your account to continue.", "SECOND_FACTOR_REQUIRED");
	}
}

/** Whether this caller's session must still set up a second factor (USERS_REQUIRE_MFA). */
export const secondFactorMissing = (caller: Caller | undefined, mfa: MfaPolicy) => Boolean(mfa.everyone && caller?.amr && !caller.amr.includes("mfa"));
