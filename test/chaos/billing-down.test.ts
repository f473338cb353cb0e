/**
 * Reliability scenario 2: billing down. kill -9 of the only billing node (no goodbye: the cluster
 * learns of it only from the heartbeat timeout, 6 s); billing routes must fail fast (503
 * problem+json within 1 s once the circuit is open, nothing slower than the gateway's billing
 * timeout before that), auth routes keep answering, and billing routes recover by themselves,
 * without restarting the gateway, once a billing node is back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessCluster, sleep } from "../support/chaos.ts";
import { createTestDatabase, eventually, testEnv, uniqueId } from "../support/infra.ts";

interface Sample {
	at: number;
	route: "billing" | "auth";
	status: number | string;
	ms: number;
	problem: boolean;
	code?: string;
}

describe("chaos: billing down, circuit open, recovery", () => {
	const namespace = uniqueId("chaosbd");
	let cluster: ProcessCluster;
	let base: string;
	let token: string;

	beforeAll(async () => {
		const env = testEnv(namespace, { DATABASE_URL: await createTestDatabase(), RATE_LIMIT_ANONYMOUS: "1000000/60s", RATE_LIMIT_USER: "1000000/60s", RATE_LIMIT_AUTH_STRICT: "1000000/60s" });
		cluster = new ProcessCluster(namespace, env);
		await Promise.all([cluster.add("auth", "auth"), cluster.add("billing", "billing")]);
		const gateway = await cluster.add("gateway", "gateway");
		base = `http://127.0.0.1:${gateway.port}`;
		await eventually(async () => (await fetch(`${base}/api/v1/billing/plans`)).status === 200, 30_000, "billing plans through the gateway");
		const email = `${uniqueId("ada")}@example.com`;
		const password = "quiet river lantern 81";
		const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
		expect((await post("/api/v1/auth/register", { email, password })).status).toBe(201);
		token = ((await (await post("/api/v1/auth/login", { email, password })).json()) as { accessToken: string }).accessToken;
	}, 120_000);

	afterAll(async () => {
		await cluster?.stopAll();
	}, 60_000);

	async function sample(route: "billing" | "auth", t0: number): Promise<Sample> {
		const started = Date.now();
		const url = route === "billing" ? `${base}/api/v1/billing/subscription` : `${base}/api/v1/auth/me`;
		try {
			const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000) });
			const problem = (res.headers.get("content-type") ?? "").includes("application/problem+json");
			const body = (await res.json()) as { code?: string };
			return { at: started - t0, route, status: res.status, ms: Date.now() - started, problem, code: body.code };
		} catch (err) {
			return { at: started - t0, route, status: err instanceof Error ? err.name : "error", ms: Date.now() - started, problem: false };
		}
	}

	/** Fires a billing and an auth request every `everyMs` for `forMs` (bounded), not waiting on answers. */
	async function probe(t0: number, forMs: number, everyMs: number): Promise<Sample[]> {
		const pending: Promise<Sample>[] = [];
		const end = Date.now() + forMs;
		while (Date.now() < end && pending.length < 400) {
			pending.push(sample("billing", t0), sample("auth", t0));
			await sleep(everyMs);
		}
		return Promise.all(pending);
	}

	const summary = (samples: Sample[]) => {
		const byStatus = new Map<string, number>();
		for (const s of samples) byStatus.set(String(s.status), (byStatus.get(String(s.status)) ?? 0) + 1);
		const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
		return `${samples.length} requests, ${[...byStatus].map(([k, v]) => `${k}x${v}`).join(" ")} (${[...new Set(samples.map((s) => s.code).filter(Boolean))].join(",")}), latency p50 ${ms[Math.floor(ms.length / 2)] ?? 0} ms max ${ms.at(-1) ?? 0} ms`;
	};

	it("fails billing routes fast with 503 problem+json, keeps auth up, recovers without a gateway restart", async () => {
		expect((await sample("billing", Date.now())).status).toBe(200);

		await cluster.kill9("billing");
		const killedAt = Date.now();
		const down = await probe(killedAt, 12_000, 200);
		const billing = down.filter((s) => s.route === "billing");
		const auth = down.filter((s) => s.route === "auth");
		const firstFast503 = billing.find((s) => s.status === 503 && s.ms < 1_000);
		const openFrom = firstFast503?.at ?? Infinity;
		const afterOpen = billing.filter((s) => s.at >= openFrom);
		const beforeOpen = billing.filter((s) => s.at < openFrom);

		await cluster.start("billing");
		const restartedAt = Date.now();
		const back = await eventually(async () => {
			const s = await sample("billing", restartedAt);
			return s.status === 200 ? s : undefined;
		}, 30_000, "billing routes to answer again");
		const recoveredMs = Date.now() - restartedAt;

		console.log(
			[
				`===== billing down (${namespace}) =====`,
				`billing routes before the first fast 503 (first ${Math.round(openFrom)} ms after kill -9): ${summary(beforeOpen)}`,
				`billing routes from then on: ${summary(afterOpen)}; problem+json ${afterOpen.filter((s) => s.problem).length}/${afterOpen.length}; codes ${[...new Set(afterOpen.map((s) => s.code))].join(",")}`,
				`auth routes meanwhile: ${summary(auth)}`,
				`billing timeline (ms after kill: status/latency): ${billing.map((s) => `${s.at}:${s.status}/${s.ms}`).join(" ")}`,
				`billing node restarted: billing routes answer 200 again ${recoveredMs} ms after it started (gateway not restarted; status ${back.status})`,
			].join("\n"),
		);

		// Before the circuit opens, nobody waits longer than the gateway's billing timeout.
		expect(Math.max(...beforeOpen.map((s) => s.ms), 0)).toBeLessThan(2_500);
		// The circuit opens within seconds, not after the heartbeat timeout.
		expect(openFrom).toBeLessThan(5_000);
		expect(afterOpen.length).toBeGreaterThan(10);
		for (const s of afterOpen) {
			expect(s.status).toBe(503);
			expect(s.problem).toBe(true);
			expect(s.ms).toBeLessThan(1_000);
		}
		for (const s of auth) {
			expect(s.status).toBe(200);
			expect(s.ms).toBeLessThan(1_000);
		}
		expect(recoveredMs).toBeLessThan(15_000);
	}, 120_000);
});
