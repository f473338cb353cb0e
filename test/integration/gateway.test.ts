/**
 * The edge on real Redis and RabbitMQ: two gateway nodes sharing one rate limit, problem+json for
 * every kind of bad request, request ids, security headers, the OpenAPI document and docs page.
 */
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayUrl, startNode, testEnv, uniqueId } from "../support/infra.ts";

describe("gateway rate limits", () => {
	const LIMIT = 200;
	const env = testEnv(uniqueId("gwrl"), { RATE_LIMIT_ANONYMOUS: `${LIMIT}/1h` });
	let a: ServiceBroker;
	let b: ServiceBroker;
	let urlA: string;
	let urlB: string;

	beforeAll(async () => {
		[a, b] = await Promise.all([startNode(["gateway"], env), startNode(["gateway"], env)]);
		urlA = gatewayUrl(a);
		urlB = gatewayUrl(b);
	});
	afterAll(async () => {
		await Promise.all([a?.stop(), b?.stop()]);
	});

	it("holds one global rate limit across two gateway nodes, with RateLimit headers and Retry-After on 429", async () => {
		const statuses: number[] = [];
		let refused: Response | undefined;
		// 2 x LIMIT requests, half to each node, 20 at a time per node.
		await Promise.all(
			[urlA, urlB].map(async (base) => {
				for (let batch = 0; batch < LIMIT / 20; batch++) {
					const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/api/docs`)));
					for (const res of answers) {
						statuses.push(res.status);
						if (res.status === 429) refused ??= res;
						await res.arrayBuffer();
					}
				}
			}),
		);
		const allowed = statuses.filter((s) => s === 200).length;
		expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
		expect(allowed).toBeGreaterThanOrEqual(LIMIT * 0.95);
		expect(allowed).toBeLessThanOrEqual(LIMIT * 1.05);
		expect(refused).toBeDefined();
		expect(refused!.headers.get("content-type")).toContain("application/problem+json");
		expect(refused!.headers.get("ratelimit-policy")).toBe(`"anonymous";q=${LIMIT};w=3600`);
		expect(refused!.headers.get("ratelimit")).toMatch(/^"anonymous";r=0;t=\d+$/);
		expect(Number(refused!.headers.get("retry-after"))).toBeGreaterThan(0);
	});

	it("never rate-limits the health probes", async () => {
		const answers = await Promise.all(Array.from({ length: 5 }, () => fetch(`${urlA}/readyz`)));
		expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
	});

});

describe("gateway strict limit on credential endpoints", () => {
	it("limits login attempts per client IP more tightly than other routes", async () => {
		const gw = await startNode(["gateway"], testEnv(uniqueId("gwstrict"), { RATE_LIMIT_AUTH_STRICT: "3/1h" }));
		try {
			const url = `${gatewayUrl(gw)}/api/v1/auth/login`;
			const statuses: number[] = [];
			let last: Response | undefined;
			for (let i = 0; i < 5; i++) {
				last = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "a@example.com", password: "whatever it is" }) });
				statuses.push(last.status);
			}
			// No auth node runs here: allowed attempts fail with 503, the rest are refused before any work.
			expect(statuses).toEqual([503, 503, 503, 429, 429]);
			expect(last!.headers.get("ratelimit-policy")).toBe('"auth-strict";q=3;w=3600');
		} finally {
			await gw.stop();
		}
	});
});

describe("gateway edge behaviour", () => {
	let gw: ServiceBroker;
	let urlA: string;
	const urlB = () => urlA;

	beforeAll(async () => {
		gw = await startNode(["gateway"], testEnv(uniqueId("gw")));
		urlA = gatewayUrl(gw);
	});
	afterAll(async () => {
		await gw?.stop();
	});

	it("answers problem+json for unknown routes, missing tokens, non-JSON, oversized and malformed bodies", async () => {
		const cases: [string, RequestInit, number, string][] = [
			["/api/v1/nothing-here", {}, 404, "NOT_FOUND"],
			["/api/v1/auth/me", {}, 401, "UNAUTHORIZED"],
			["/api/v1/auth/me", { headers: { authorization: "Basic eDp5" } }, 401, "INVALID_TOKEN"],
			["/api/v1/auth/me", { headers: { authorization: "Bearer not.a.jwt" } }, 401, "INVALID_TOKEN"],
			["/api/v1/auth/login", { method: "POST", headers: { "content-type": "text/plain" }, body: "email=x" }, 415, "UNSUPPORTED_MEDIA_TYPE"],
			["/api/v1/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: '{"email": ' }, 400, "MALFORMED_JSON"],
			["/api/v1/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ password: "x".repeat(70_000) }) }, 413, "PAYLOAD_TOO_LARGE"],
		];
		for (const [path, init, status, code] of cases) {
			const res = await fetch(`${urlB()}${path}`, init);
			expect({ path, status: res.status }).toEqual({ path, status });
			expect(res.headers.get("content-type")).toContain("application/problem+json");
			const body = (await res.json()) as { code: string; status: number; detail: string; requestId: string };
			expect(body).toMatchObject({ code, status });
			expect(body.detail).not.toMatch(/\s+at\s+\S+:\d+/); // no stack trace
			expect(body.requestId).toBe(res.headers.get("x-request-id"));
		}
	});

	it("echoes a well-formed X-Request-Id, replaces a bad one, and sets security headers", async () => {
		const good = await fetch(`${urlA}/readyz`, { headers: { "x-request-id": "client-req-00001" } });
		expect(good.headers.get("x-request-id")).toBe("client-req-00001");
		expect(good.headers.get("x-content-type-options")).toBe("nosniff");
		expect(good.headers.get("content-security-policy")).toContain("default-src 'none'");
		const bad = await fetch(`${urlA}/readyz`, { headers: { "x-request-id": "<script>" } });
		// Replaced by a new W3C trace id, which traceresponse carries too.
		expect(bad.headers.get("x-request-id")).toMatch(/^[0-9a-f]{32}$/);
		expect(bad.headers.get("traceresponse")?.split("-")[1]).toBe(bad.headers.get("x-request-id"));
	});

	it("counts requests per route template and status code", async () => {
		await fetch(`${urlA}/readyz`);
		await fetch(`${urlA}/api/v1/auth/me`);
		const metric = gw.metrics.getMetric("http.requests.total")!;
		const values = (metric as unknown as { snapshot(): { labels: { route: string; status: number }; value: number }[] }).snapshot();
		expect(values.find((v) => v.labels.route === "/readyz" && v.labels.status === 200)?.value).toBeGreaterThan(0);
		expect(values.find((v) => v.labels.route === "/api/v1/auth/me" && v.labels.status === 401)?.value).toBeGreaterThan(0);
		expect(values.some((v) => v.labels.route.includes("?"))).toBe(false);
	});

	it("serves an OpenAPI 3.1 document of the routes and a docs page with its assets from this origin", async () => {
		const spec = (await (await fetch(`${urlA}/api/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, { security: unknown[] }>> };
		expect(spec.openapi).toBe("3.1.0");
		expect(spec.paths["/api/v1/auth/login"]?.post?.security).toEqual([]);
		expect(spec.paths["/api/v1/auth/me"]?.get?.security).toEqual([{ bearerAuth: [] }]);
		expect(spec.paths["/.well-known/jwks.json"]?.get).toBeDefined();
		const page = await fetch(`${urlA}/api/docs`);
		expect(page.headers.get("content-type")).toContain("text/html");
		const html = await page.text();
		for (const src of html.match(/(?:src|href)="([^"]+)"/g)!.map((m) => m.split('"')[1]!)) {
			const asset = await fetch(`${urlA}${src}`);
			expect({ src, status: asset.status }).toEqual({ src, status: 200 });
		}
	});
});
