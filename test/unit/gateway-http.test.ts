import type { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { bearerToken, clientIpResolver, requestIdOf, requireJsonBody } from "../../services/gateway/http.ts";
import { parsePolicy, rateLimitHeaders } from "../../services/gateway/rate-limit.ts";

function req(headers: Record<string, string>, remote = "203.0.113.9"): IncomingMessage {
	const socket = new Socket();
	Object.defineProperty(socket, "remoteAddress", { value: remote });
	return { headers, socket, connection: socket } as unknown as IncomingMessage;
}

describe("edge HTTP helpers", () => {
	it("keeps a well-formed request id and replaces anything else with a new trace id", () => {
		expect(requestIdOf(req({ "x-request-id": "req-12345678" }))).toBe("req-12345678");
		expect(requestIdOf(req({ "x-request-id": "bad id\nwith newline" }))).toMatch(/^[0-9a-f]{32}$/);
		expect(requestIdOf(req({}))).toMatch(/^[0-9a-f]{32}$/);
	});

	it("joins the caller's trace: a valid traceparent's trace id wins over X-Request-Id", () => {
		const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
		expect(requestIdOf(req({ traceparent, "x-request-id": "req-12345678" }))).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
		expect(requestIdOf(req({ traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "x-request-id": "req-12345678" }))).toBe("req-12345678");
	});

	it("believes X-Forwarded-For only from trusted proxies", () => {
		const headers = { "x-forwarded-for": "198.51.100.7" };
		expect(clientIpResolver([])(req(headers, "10.0.0.2"))).toBe("10.0.0.2");
		expect(clientIpResolver(["10.0.0.0/8"])(req(headers, "10.0.0.2"))).toBe("198.51.100.7");
		expect(clientIpResolver(["10.0.0.0/8"])(req(headers, "203.0.113.9"))).toBe("203.0.113.9");
	});

	it("accepts only JSON bodies", () => {
		expect(() => requireJsonBody(req({ "content-length": "10", "content-type": "text/plain" }))).toThrow(expect.objectContaining({ code: 415 }));
		expect(() => requireJsonBody(req({ "content-length": "10", "content-type": "application/json; charset=utf-8" }))).not.toThrow();
		expect(() => requireJsonBody(req({}))).not.toThrow();
	});

	it("reads a bearer token and rejects other schemes", () => {
		expect(bearerToken(req({ authorization: "Bearer abc.def.ghi" }))).toBe("abc.def.ghi");
		expect(bearerToken(req({}))).toBeUndefined();
		expect(() => bearerToken(req({ authorization: "Basic dXNlcjpwdw==" }))).toThrow(expect.objectContaining({ code: 401 }));
	});

	it("parses rate limit specs and renders the IETF headers", () => {
		expect(parsePolicy("user", "600/1m")).toEqual({ name: "user", limit: 600, windowMs: 60_000 });
		expect(() => parsePolicy("x", "lots")).toThrow();
		const policy = parsePolicy("auth-strict", "10/60s");
		expect(rateLimitHeaders({ allowed: false, policy, remaining: 0, resetS: 42, retryAfterS: 6 })).toEqual({
			"RateLimit-Policy": '"auth-strict";q=10;w=60',
			RateLimit: '"auth-strict";r=0;t=42',
			"Retry-After": "6",
		});
	});
});
