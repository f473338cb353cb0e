/**
 * Who is calling: set by the gateway in `ctx.meta.caller` after it verified the access token,
 * never taken from a client header. Services read it; they never parse tokens themselves.
 */
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

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.length <= 200 && v.every((s) => typeof s === "string");

/** The caller in a context's meta, if it has the expected shape (a service never trusts it blindly). */
export function callerFrom(value: unknown): Caller | undefined {
	const c = value as Partial<Caller> | null | undefined;
	if (!c || typeof c !== "object" || typeof c.userId !== "string" || typeof c.sessionId !== "string" || !isStrings(c.roles) || !isStrings(c.permissions)) return undefined;
	if (c.amr !== undefined && !isStrings(c.amr)) return undefined;
	return { userId: c.userId, sessionId: c.sessionId, roles: c.roles, permissions: c.permissions, ...(c.amr ? { amr: c.amr } : {}) };
}
