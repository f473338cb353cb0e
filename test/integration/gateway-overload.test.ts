/**
 * Overload at the edge, on real RabbitMQ, Redis, PostgreSQL and FerretDB: billing turns slow
 * (a delay injected into its listPlans action) while clients keep sending it requests. The gateway
 * keeps answering auth routes fast, answers billing routes within a bounded time (504 for the
 * few it let through, 503 OVERLOADED with Retry-After at once for the rest) and gives every slot
 * back afterwards (docs/reliability.md, overload).
 */
import type { ActionHandler, ActionSchema, Context, Middleware, Service, ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, gatewayUrl, startNode, testEnv, uniqueId } from "../support/infra.ts";

const PER_SERVICE = 10;
const BILLING_REQUESTS = 150;
const EDGE_TIMEOUT_MS = 2_000;
const SLOW_MS = 3 * EDGE_TIMEOUT_MS;

interface Timed {
	status: number;
	ms: number;
	code?: string;
	retryAfter: string | null;
	contentType: string | null;
}

async function timed(url: string): Promise<Timed> {
	const started = performance.now();
	const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
	const body = await res.text();
	const ms = performance.now() - started;
	const code = res.status >= 400 ? (JSON.parse(body) as { code?: string }).code : undefined;
	return { status: res.status, ms, code, retryAfter: res.headers.get("retry-after"), contentType: res.headers.get("content-type") };
}

describe("gateway under overload: a slow billing starves nothing else", () => {
	let billingDelayMs = 0;
	const slowBilling: Middleware = {
		name: "SlowBilling",
		localAction(next: ActionHandler, action: ActionSchema) {
			if (action.name !== "billing.listPlans") return next;
			return async function (this: Service, ctx: Context) {
				if (billingDelayMs) await new Promise((r) => setTimeout(r, billingDelayMs));
				return (await next.call(this, ctx)) as unknown;
			};
		},
	};
	const nodes: ServiceBroker[] = [];
	let base: string;

	beforeAll(async () => {
		const env = testEnv(uniqueId("gwovl"), {
			DATABASE_URL: await createTestDatabase(),
			RATE_LIMIT_ANONYMOUS: "100000/60s",
			GATEWAY_MAX_IN_FLIGHT_PER_SERVICE: String(PER_SERVICE),
		});
		nodes.push(await startNode(["auth"], env), await startNode(["billing"], env, [slowBilling]));
		const gateway = await startNode(["gateway"], env);
		nodes.push(gateway);
		await gateway.waitForServices(["auth", "billing"], 15_000);
		base = gatewayUrl(gateway);
		// Routes are mapped a moment after discovery.
		for (let i = 0; i < 50 && (await fetch(`${base}/readyz`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
	}, 60_000);
	afterAll(async () => {
		await Promise.all(nodes.map((n) => n.stop()));
	});

	it("keeps auth routes fast while billing answers 504 or 503 OVERLOADED within bounded time", async () => {
		expect((await timed(`${base}/api/v1/billing/plans`)).status).toBe(200);
		billingDelayMs = SLOW_MS;

		const billing = Promise.all(Array.from({ length: BILLING_REQUESTS }, () => timed(`${base}/api/v1/billing/plans`)));
		await new Promise((r) => setTimeout(r, 300));
		const auth: Timed[] = [];
		for (let i = 0; i < 20; i++) auth.push(await timed(`${base}/.well-known/jwks.json`));
		const billingAnswers = await billing;
		billingDelayMs = 0;

		const ms = (xs: Timed[]) => xs.map((x) => Math.round(x.ms)).sort((a, b) => a - b);
		const shed = billingAnswers.filter((a) => a.code === "OVERLOADED");
		const timedOut = billingAnswers.filter((a) => a.status === 504);
		console.log(
			`billing slow (${SLOW_MS} ms), ${BILLING_REQUESTS} requests at once, ${PER_SERVICE} slots: ` +
				`${shed.length} x 503 OVERLOADED (max ${Math.max(...ms(shed))} ms), ${timedOut.length} x 504 (max ${Math.max(...ms(timedOut))} ms); ` +
				`auth during it: ${auth.length} x ${[...new Set(auth.map((a) => a.status))].join("/")}, p50 ${ms(auth)[10]} ms, max ${Math.max(...ms(auth))} ms`,
		);

		expect(auth.map((a) => a.status)).toEqual(Array(20).fill(200));
		expect(Math.max(...ms(auth))).toBeLessThan(1_000);
		for (const a of billingAnswers) {
			expect([503, 504]).toContain(a.status);
			expect(a.contentType).toContain("application/problem+json");
			expect(a.ms).toBeLessThan(EDGE_TIMEOUT_MS + 1_000);
		}
		// The compartment holds PER_SERVICE requests; everything beyond is refused at once.
		expect(timedOut.length).toBeLessThanOrEqual(PER_SERVICE);
		expect(shed.length).toBeGreaterThanOrEqual(BILLING_REQUESTS - PER_SERVICE);
		for (const s of shed) expect(s.retryAfter).toBe("1");
		expect(Math.max(...ms(shed))).toBeLessThan(1_000);
	}, 30_000);

	it("gives every slot back once the requests are answered", async () => {
		const health = (await (await fetch(`${base}/healthz`)).json()) as { gateway: { inFlight: { total: number; perService: Record<string, number> } } };
		expect(health.gateway.inFlight.total).toBe(0);
		expect(Object.values(health.gateway.inFlight.perService).every((n) => n === 0)).toBe(true);
	});
});
