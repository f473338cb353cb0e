/**
 * Who is calling: set by the gateway in `ctx.meta.caller` after it verified the access token,
 * never taken from a client header. Services read it; they never parse tokens themselves.
 */
export interface Caller {
	userId: string;
	sessionId: string;
	roles: string[];
	permissions: string[];
}

export interface CallerMeta {
	caller?: Caller;
}
