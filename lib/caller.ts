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
