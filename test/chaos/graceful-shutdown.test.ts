/**
 * Graceful shutdown: SIGTERM to a gateway with requests in flight lets them complete; a rolling
 * replacement of two gateway nodes behind a round-robin load balancer (as a Kubernetes rolling
 * update does: new pod ready, old pod out of the endpoints, then SIGTERM) fails no request.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHAOS_SCALE, ProcessCluster, RoundRobinProxy, sleep } from "../support/chaos.ts";
import { createTestDatabase, eventually, testEnv, uniqueId } from "../support/infra.ts";

const PASSWORD = "quiet river lantern 81";

describe("chaos: graceful shutdown and rolling replacement of gateways", () => {
	const namespace = uniqueId("chaosgs");
	let cluster: ProcessCluster;
	const proxy = new RoundRobinProxy();
	let email: string;

	const post = (base: string, path: string, body: unknown) =>
		fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });

	beforeAll(async () => {
		// bcrypt at cost 10 makes a login take tens of milliseconds: requests are really in flight.
		const env = testEnv(namespace, { DATABASE_URL: await createTestDatabase(), BCRYPT_COST: "10", RATE_LIMIT_ANONYMOUS: "1000000/60s", RATE_LIMIT_USER: "1000000/60s", RATE_LIMIT_AUTH_STRICT: "1000000/60s" });
		cluster = new ProcessCluster(namespace, env);
		await Promise.all([cluster.add("auth", "auth"), cluster.add("billing", "billing")]);
		await Promise.all([cluster.add("gateway-1", "gateway"), cluster.add("gateway-2", "gateway")]);
		for (const g of ["gateway-1", "gateway-2"]) {
			const base = `http://127.0.0.1:${cluster.nodes.get(g)!.port}`;
			await eventually(async () => (await fetch(`${base}/api/v1/billing/plans`)).status === 200, 30_000, `${g} serving billing`);
		}
		email = `${uniqueId("ada")}@example.com`;
		const base = `http://127.0.0.1:${cluster.nodes.get("gateway-1")!.port}`;
		expect((await post(base, "/api/v1/auth/register", { email, password: PASSWORD })).status).toBe(201);
	}, 120_000);

	afterAll(async () => {
		await proxy.close();
		await cluster?.stopAll();
	}, 60_000);

	it("SIGTERM: requests in flight complete, the process exits 0", async () => {
		const base = `http://127.0.0.1:${cluster.nodes.get("gateway-2")!.port}`;
		const inFlight = Array.from({ length: 20 }, () =>
			post(base, "/api/v1/auth/login", { email, password: PASSWORD }).then(
				async (r) => ({ status: r.status, ok: r.status === 200 && typeof ((await r.json()) as { accessToken?: string }).accessToken === "string" }),
				(err: Error) => ({ status: err.name, ok: false }),
			),
		);
		await sleep(150);
		const exit = await cluster.terminate("gateway-2");
		const results = await Promise.all(inFlight);
		const refused = await fetch(`${base}/healthz`).then(
			() => "answered",
			() => "refused",
		);
		console.log(`===== graceful shutdown (${namespace}) =====\nSIGTERM with 20 logins in flight: ${results.filter((r) => r.ok).length}/20 answered 200; exit code ${exit.code} (signal ${exit.signal}) after ${exit.ms} ms; new connections afterwards: ${refused}`);
		expect(results.filter((r) => !r.ok)).toEqual([]);
		expect(exit.code).toBe(0);
		expect(refused).toBe("refused");
		await cluster.start("gateway-2");
		await eventually(async () => (await fetch(`${base}/readyz`)).status === 200, 20_000, "gateway-2 ready again");
	}, 60_000);

	it("rolling replacement of both gateways behind a load balancer fails no request", async () => {
		proxy.backends = ["gateway-1", "gateway-2"].map((n) => cluster.nodes.get(n)!.port!);
		await proxy.listen();
		const base = `http://127.0.0.1:${proxy.port}`;
		let running = true;
		const t0 = Date.now();
		const tally = new Map<string, number>();
		const failures: string[] = [];
		const record = (what: string, status: number | string, ok: boolean) => {
			tally.set(`${what} ${status}`, (tally.get(`${what} ${status}`) ?? 0) + 1);
			if (!ok && failures.length < 20) failures.push(`${what}: ${status} at +${Date.now() - t0} ms`);
		};
		// Four clients with keep-alive connections, as browsers and other services have.
		const clients = Array.from({ length: 4 }, async (_, i) => {
			for (let n = 0; running && n < 5_000; n++) {
				const login = i === 0;
				try {
					const res = login
						? await post(base, "/api/v1/auth/login", { email, password: PASSWORD })
						: await fetch(`${base}/api/v1/billing/plans`, { signal: AbortSignal.timeout(20_000) });
					const text = await res.text();
					const code = res.status === 200 ? "" : `/${(/"code":"([A-Z_]+)"/.exec(text) ?? [])[1] ?? "?"}`;
					record(login ? "login" : "plans", `${res.status}${code}`, res.status === 200);
				} catch (err) {
					const cause = err instanceof Error && err.cause instanceof Error && "code" in err.cause ? String(err.cause.code) : err instanceof Error ? err.name : "error";
					record(login ? "login" : "plans", cause, false);
				}
				await sleep(20);
			}
		});

		const steps: string[] = [];
		const rounds = Math.min(3, CHAOS_SCALE);
		for (let round = 0; round < rounds; round++) {
			for (const old of ["gateway-1", "gateway-2"]) {
				await sleep(1_000);
				// The replacement: same name (a new process, a new node id), a new port.
				const fresh = `${old}-r${round}`;
				await cluster.add(fresh, "gateway");
				const freshPort = cluster.nodes.get(fresh)!.port!;
				await eventually(async () => (await fetch(`http://127.0.0.1:${freshPort}/readyz`)).status === 200, 20_000, `${fresh} ready`);
				const oldName = round === 0 ? old : `${old}-r${round - 1}`;
				const oldPort = cluster.nodes.get(oldName)!.port!;
				proxy.backends = [...proxy.backends.filter((p) => p !== oldPort), freshPort];
				const exit = await cluster.terminate(oldName);
				steps.push(`+${Date.now() - t0} ms: ${fresh} in, ${oldName} out (SIGTERM, exit ${exit.code} after ${exit.ms} ms)`);
			}
		}
		await sleep(1_000);
		running = false;
		await Promise.all(clients);
		const total = [...tally.values()].reduce((a, b) => a + b, 0);
		console.log(`===== rolling replacement (${namespace}) =====\n${steps.join("\n")}\n${total} requests: ${[...tally].map(([k, v]) => `${k} x${v}`).join(", ")}; failed: ${failures.length}${failures.length ? ` (${failures.join("; ")})` : ""}`);
		expect(failures).toEqual([]);
		expect(total).toBeGreaterThan(100);
	}, 180_000);
});
