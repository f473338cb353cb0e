/**
 * Overload at the edge, on real RabbitMQ, Redis, PostgreSQL and FerretDB: billing turns slow
 * (a delay injected into its listPlans action) while clients keep sending it requests. The gateway
 * keeps answering auth routes fast, answers billing routes within a bounded time (504 for the
 * few it let through, 503 OVERLOADED with Retry-After at once for the rest) and gives every slot
 * back afterwards (docs/reliability.md, overload). And a flood of connections on a gateway process:
 * it holds at most GATEWAY_MAX_CONNECTIONS, closes the others at once, counts them in /metrics, and
 * its memory stays bounded.
 */
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import type { ActionHandler, ActionSchema, Context, Middleware, Service, ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, ProcessCluster, sleep } from "../support/chaos.ts";
import { createTestDatabase, eventually, gatewayUrl, startNode, testEnv, uniqueId } from "../support/infra.ts";

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

describe("a gateway process under a connection flood holds at most GATEWAY_MAX_CONNECTIONS", () => {
	const MAX_CONNECTIONS = 50;
	const SILENT = 200;
	const CLIENTS = 1_000;
	const FLOOD_MS = 3_000;
	/**
	 * A ceiling on the growth of the gateway's peak RSS during the flood: a leak would go past it.
	 * Measured here: +19-53 MB with the cap of 50, once +137 MB in a run that answered 7,271
	 * requests (three times the usual: more garbage before the collector caught up); +69-148 MB
	 * without the cap (1,000 connections open). Too noisy to tell the two apart on its own: the
	 * open-connections gauge is what fails without the cap.
	 */
	const MAX_RSS_GROWTH_MB = 200;
	const namespace = uniqueId("gwcap");
	let cluster: ProcessCluster;
	let port: number;
	let pid: number;
	let metricsUrl: string;
	const held: net.Socket[] = [];

	/** A sample of the gateway's /metrics (the Prometheus text a scrape reads), summed over labels. */
	async function metric(name: string): Promise<number> {
		const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) })).text();
		const lines = text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
		return lines.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
	}

	/** The gateway process's resident memory now (VmRSS) or at its peak since the last reset (VmHWM), in MB. */
	function memoryMb(field: "VmRSS" | "VmHWM"): number {
		return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
	}

	/** GET /readyz through `agent`: the status, or the code of the connection's failure. */
	function readyz(agent: http.Agent | false): Promise<number | string> {
		return new Promise((resolve) => {
			const req = http.get({ hostname: "127.0.0.1", port, path: "/readyz", agent, timeout: 10_000 }, (res) => {
				res.resume();
				res.on("end", () => resolve(res.statusCode ?? 0));
			});
			req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })));
			req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
		});
	}

	beforeAll(async () => {
		const metricsPort = await freePort();
		metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
		cluster = new ProcessCluster(namespace, testEnv(namespace, { RATE_LIMIT_ANONYMOUS: "1000000/60s" }));
		const node = await cluster.add("gateway", "gateway", { GATEWAY_MAX_CONNECTIONS: String(MAX_CONNECTIONS), METRICS_PORT: String(metricsPort) });
		port = node.port!;
		pid = node.child!.pid!;
		await eventually(async () => (await readyz(false)) === 200, 10_000, "the gateway ready");
	}, 60_000);
	afterAll(async () => {
		for (const s of held) s.destroy();
		await cluster?.stopAll();
	});

	it("holds at most the cap of silent connections and closes the rest at once", async () => {
		const refusedBefore = await metric("gateway_connections_refused_total");
		let closedByGateway = 0;
		for (let i = 0; i < SILENT; i++) {
			const socket = net.connect(port, "127.0.0.1");
			socket.on("error", () => undefined);
			socket.on("close", () => closedByGateway++);
			held.push(socket);
		}
		await sleep(500);
		const closed = closedByGateway;
		const open = await metric("gateway_connections_open");
		const refused = (await metric("gateway_connections_refused_total")) - refusedBefore;
		for (const s of held.splice(0)) s.destroy();
		console.log(`cap ${MAX_CONNECTIONS}, ${SILENT} clients connect and send nothing: ${open} open, ${closed} closed by the gateway at once, refused counter +${refused}`);

		expect(open).toBeLessThanOrEqual(MAX_CONNECTIONS);
		expect(open).toBeGreaterThan(MAX_CONNECTIONS - 5);
		expect(closed).toBeGreaterThanOrEqual(SILENT - MAX_CONNECTIONS);
		expect(refused).toBeGreaterThanOrEqual(SILENT - MAX_CONNECTIONS);
		// The silent ones are gone (destroyed here): the gateway answers again.
		await eventually(async () => (await readyz(false)) === 200, 5_000, "an answer after the silent flood");
	});

	it("keeps answering while it refuses the rest of a flood, with memory bounded and one warning", async () => {
		const refusedBefore = await metric("gateway_connections_refused_total");
		// VmHWM is the peak since the process started (start-up, the silent flood before): reset it
		// (Linux: "5" to clear_refs), so the peak read afterwards is this flood's.
		writeFileSync(`/proc/${pid}/clear_refs`, "5");
		const rssBefore = memoryMb("VmRSS");
		let sampling = true;
		let peakOpen = 0;
		const sampler = (async () => {
			while (sampling) {
				peakOpen = Math.max(peakOpen, await metric("gateway_connections_open"));
				await sleep(50);
			}
		})();
		// Each client keeps one keep-alive connection and sends again as soon as it has an answer;
		// a refused one connects again 50 ms later, until the flood ends.
		const until = Date.now() + FLOOD_MS;
		const clients = await Promise.all(
			Array.from({ length: CLIENTS }, async () => {
				const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
				const tally = { ok: 0, refused: 0, other: [] as (number | string)[] };
				while (Date.now() < until) {
					const outcome = await readyz(agent);
					if (outcome === 200) tally.ok++;
					else if (outcome === "ECONNRESET" || outcome === "EPIPE") tally.refused++;
					else tally.other.push(outcome);
					if (outcome !== 200) await sleep(50);
				}
				agent.destroy();
				return tally;
			}),
		);
		sampling = false;
		await sampler;
		const rssGrowth = memoryMb("VmHWM") - rssBefore;
		const refusedCount = (await metric("gateway_connections_refused_total")) - refusedBefore;
		const ok = clients.reduce((n, c) => n + c.ok, 0);
		const refused = clients.reduce((n, c) => n + c.refused, 0);
		const other = clients.flatMap((c) => c.other);
		const warnings = readFileSync(path.join(cluster.logDir, "gateway.log"), "utf8").split("\n").filter((l) => l.includes("refusing connections"));
		console.log(
			`cap ${MAX_CONNECTIONS}, ${CLIENTS} keep-alive clients for ${FLOOD_MS} ms: ${ok} x 200, ${refused} connections refused, other ${other.length} ` +
				`(${[...new Set(other)].join("/")}); peak open ${peakOpen}; refused counter +${refusedCount}; ` +
				`RSS ${rssBefore.toFixed(0)} MB before, peak +${rssGrowth.toFixed(0)} MB; "refusing connections" logged ${warnings.length}x`,
		);

		expect(peakOpen).toBeLessThanOrEqual(MAX_CONNECTIONS);
		expect(ok).toBeGreaterThan(MAX_CONNECTIONS);
		expect(refused).toBeGreaterThan(CLIENTS - MAX_CONNECTIONS);
		expect(other).toEqual([]);
		expect(refusedCount).toBeGreaterThanOrEqual(refused);
		expect(rssGrowth).toBeLessThan(MAX_RSS_GROWTH_MB);
		// Thousands refused, one line (the next one, a summary, comes 10 s after it).
		expect(warnings).toHaveLength(1);
		await eventually(async () => (await readyz(false)) === 200, 5_000, "an answer after the flood");
	}, 30_000);
});
