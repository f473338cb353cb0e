/**
 * Small HTTP concerns of the edge: request ids, client IPs from trusted proxies only, security
 * headers, JSON-only bodies. Plain functions over node:http objects.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import proxyAddr from "proxy-addr";
import { AppError } from "../../lib/errors.ts";
import { PROBLEM_CONTENT_TYPE, toProblem } from "../../lib/problem.ts";
import { newTraceId, traceIdFromTraceparent } from "../../lib/trace-context.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * The request id every node logs: the trace id of a valid W3C `traceparent` (the request joins the
 * caller's trace), else the client's X-Request-Id when it is well-formed, else a new trace id
 * (never a client's arbitrary bytes in our logs).
 */
export function requestIdOf(req: IncomingMessage): string {
	const traceId = traceIdFromTraceparent(req.headers.traceparent);
	if (traceId) return traceId;
	const given = req.headers["x-request-id"];
	return typeof given === "string" && REQUEST_ID.test(given) ? given : newTraceId();
}

/**
 * The client's address: X-Forwarded-For is believed only for hops that come from a configured
 * trusted proxy (CIDRs, or "loopback", "linklocal", "uniquelocal"). With none configured, the socket address.
 */
export function clientIpResolver(trusted: string[]): (req: IncomingMessage) => string {
	const trust = proxyAddr.compile(trusted);
	return (req) => proxyAddr(req, trust);
}

const API_HEADERS: Record<string, string> = {
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options": "DENY",
	"Referrer-Policy": "no-referrer",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	"Cache-Control": "no-store",
};

export function setSecurityHeaders(res: ServerResponse, hsts: boolean): void {
	for (const [k, v] of Object.entries(API_HEADERS)) res.setHeader(k, v);
	if (hsts) res.setHeader("Strict-Transport-Security", "max-age=31536000; includeSubDomains");
}

/** Refuses a request body that is not declared as JSON (415), before any parser reads it. */
export function requireJsonBody(req: IncomingMessage): void {
	const hasBody = Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined;
	if (!hasBody) return;
	const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
	if (type !== "application/json" && !type.endsWith("+json")) {
		throw new AppError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the request body as application/json.");
	}
}

/** Connect-style middleware form of requireJsonBody. */
export function jsonBodiesOnly(req: IncomingMessage, _res: ServerResponse, next: (err?: unknown) => void): void {
	try {
		requireJsonBody(req);
		next();
	} catch (err) {
		next(err);
	}
}

/** A refusal (load shedding) written straight to the socket: no request id, context or log line. */
export function writeRefusal(res: ServerResponse, err: AppError, path: string, opts: { hsts: boolean; retryAfterS: number }): void {
	setSecurityHeaders(res, opts.hsts);
	res.writeHead(err.code, { "Content-Type": PROBLEM_CONTENT_TYPE, "Retry-After": String(opts.retryAfterS) });
	res.end(JSON.stringify(toProblem(err, path)));
}

export function bearerToken(req: IncomingMessage): string | undefined {
	const header = req.headers.authorization;
	if (!header) return undefined;
	const m = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(header);
	if (!m) throw new AppError(401, "INVALID_TOKEN", "The Authorization header must be `Bearer <access token>`.");
	return m[1];
}
