/**
 * The observability contract, proven with a real Prometheus (the Debian package, installed by
 * scripts/infra.sh install-tools): four in-process nodes, one per service, each on its own
 * metrics port; a Prometheus on a free port scrapes them with a generated static configuration
 * and loads observability/prometheus/rules/backplane.rules.yml. Every target must be up, every
 * rule must load and evaluate without error against the real series, and a stopped node must
 * put BackplaneNodeDown into the pending state.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceName } from "../../lib/config.ts";
import { freePort } from "../support/chaos.ts";
import { createTestDatabase, eventually, startNode, testEnv, uniqueId } from "../support/infra.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const PROMETHEUS = process.env.PROMETHEUS_BIN ?? "/usr/bin/prometheus";
const RULES = path.join(ROOT, "observability/prometheus/rules/backplane.rules.yml");
const SERVICES: ServiceName[] = ["auth", "billing", "notification", "gateway"];

interface Target {
	labels: Record<string, string>;
	health: string;
	lastError: string;
}
interface Rule {
	name: string;
	type: "alerting" | "recording";
	health: string;
	lastError?: string;
	state?: string;
}

describe("Prometheus scrapes every node and loads the alert rules", () => {
	const namespace = uniqueId("obs");
	const dir = path.join(ROOT, ".data", "prometheus-test", namespace);
	const nodes = new Map<ServiceName, ServiceBroker>();
	const ports = new Map<ServiceName, number>();
	let prometheus: ChildProcess | undefined;
	let promLog = "";
	let api = "";

	async function get<T>(pathAndQuery: string): Promise<T> {
		const res = await fetch(`${api}${pathAndQuery}`, { signal: AbortSignal.timeout(2_000) });
		const body = (await res.json()) as { status: string; data: T };
		if (body.status !== "success") throw new Error(`${pathAndQuery}: ${JSON.stringify(body)}`);
		return body.data;
	}
	const targets = async () => (await get<{ activeTargets: Target[] }>("/api/v1/targets?state=active")).activeTargets;
	const rules = async () => (await get<{ groups: { name: string; rules: Rule[] }[] }>("/api/v1/rules")).groups;

	beforeAll(async () => {
		if (!existsSync(PROMETHEUS)) throw new Error(`${PROMETHEUS} is missing: run scripts/infra.sh install-tools (installs the Debian package prometheus)`);
		// Lifecycle sweeps every second, so BackplaneBillingSchedulerStalled sees them within the test.
		const env = testEnv(namespace, { DATABASE_URL: await createTestDatabase(), BILLING_SWEEP_INTERVAL_MS: "1000" });
		for (const service of SERVICES) {
			const port = await freePort();
			ports.set(service, port);
			nodes.set(service, await startNode([service], { ...env, METRICS_PORT: String(port), NODE_ID: `${namespace}-${service}` }));
		}

		const promPort = await freePort();
		api = `http://127.0.0.1:${promPort}`;
		mkdirSync(path.join(dir, "data"), { recursive: true });
		const config = [
			"global:",
			"  scrape_interval: 1s",
			"  scrape_timeout: 1s",
			"  evaluation_interval: 1s",
			"rule_files:",
			`  - ${JSON.stringify(RULES)}`,
			"scrape_configs:",
			"  - job_name: backplane",
			"    static_configs:",
			...SERVICES.map((s) => `      - targets: ["127.0.0.1:${ports.get(s)}"]\n        labels: { app: ${s} }`),
		].join("\n");
		writeFileSync(path.join(dir, "prometheus.yml"), `${config}\n`);
		prometheus = spawn(
			PROMETHEUS,
			[
				`--config.file=${path.join(dir, "prometheus.yml")}`,
				`--storage.tsdb.path=${path.join(dir, "data")}`,
				"--storage.tsdb.retention.time=1h",
				"--storage.tsdb.retention.size=64MB",
				`--web.listen-address=127.0.0.1:${promPort}`,
				"--log.level=warn",
			],
			{ stdio: ["ignore", "pipe", "pipe"] },
		);
		const keep = (chunk: Buffer) => {
			promLog = (promLog + chunk.toString()).slice(-4_000);
		};
		prometheus.stdout?.on("data", keep);
		prometheus.stderr?.on("data", keep);
		await eventually(
			async () => prometheus?.exitCode === null && (await fetch(`${api}/-/ready`, { signal: AbortSignal.timeout(1_000) })).ok,
			20_000,
			`Prometheus ready on ${api} (log: ${promLog})`,
		);
	});

	afterAll(async () => {
		if (prometheus && prometheus.exitCode === null) {
			const exited = new Promise((resolve) => prometheus?.once("exit", resolve));
			prometheus.kill("SIGTERM");
			const timer = setTimeout(() => prometheus?.kill("SIGKILL"), 5_000);
			await exited;
			clearTimeout(timer);
		}
		await Promise.all([...nodes.values()].map((n) => n.stop().catch(() => undefined)));
		rmSync(dir, { recursive: true, force: true });
	});

	it("has every node's metrics endpoint up", async () => {
		const up = await eventually(
			async () => {
				const list = await targets();
				return list.length === SERVICES.length && list.every((t) => t.health === "up") ? list : undefined;
			},
			20_000,
			"every target up",
		);
		expect(up.map((t) => t.labels.app).sort()).toEqual([...SERVICES].sort());
		for (const service of SERVICES) {
			expect(up.find((t) => t.labels.app === service)?.labels.instance).toBe(`127.0.0.1:${ports.get(service)}`);
		}
		// The samples carry the nodes' own labels and our business families.
		const result = await get<{ result: { metric: Record<string, string> }[] }>(
			`/api/v1/query?query=${encodeURIComponent(`moleculer_broker_started{namespace="${namespace}"}`)}`,
		);
		expect(result.result.map((r) => r.metric.nodeID).sort()).toEqual(SERVICES.map((s) => `${namespace}-${s}`).sort());
		// The outbox gauges of both publishers appear once their relays have polled.
		const publishers = await eventually(
			async () => {
				const outbox = await get<{ result: { metric: Record<string, string> }[] }>(
					`/api/v1/query?query=${encodeURIComponent(`events_outbox_pending{namespace="${namespace}"}`)}`,
				);
				const names = outbox.result.map((r) => r.metric.service).sort();
				return names.length === 2 ? names : undefined;
			},
			15_000,
			"events_outbox_pending of auth and billing",
		);
		expect(publishers).toEqual(["auth", "billing"]);
	});

	it("loads every alert rule and evaluates it without error", async () => {
		const groups = await eventually(
			async () => {
				const g = await rules();
				const all = g.flatMap((x) => x.rules);
				return all.length > 0 && all.every((r) => r.health === "ok") ? g : undefined;
			},
			20_000,
			"every rule evaluated with health ok",
		);
		expect(groups.map((g) => g.name)).toEqual(
			expect.arrayContaining(["backplane.recording", "backplane.availability", "backplane.slo", "backplane.events", "backplane.notifications", "backplane.billing"]),
		);
		const alerts = groups.flatMap((g) => g.rules).filter((r) => r.type === "alerting").map((r) => r.name);
		expect(alerts).toEqual(
			expect.arrayContaining([
				"BackplaneNodeDown",
				"BackplaneHighErrorRate",
				"BackplaneHighLatencyP99",
				"BackplaneOutboxBacklog",
				"BackplaneOutboxLag",
				"BackplaneCircuitBreakerOpen",
				"BackplaneRabbitDeadLetters",
				"BackplaneNotificationDeadLetters",
			]),
		);
		// A healthy cluster fires nothing.
		const firing = groups.flatMap((g) => g.rules).filter((r) => r.type === "alerting" && r.state !== "inactive");
		expect(firing.map((r) => `${r.name}=${r.state}`)).toEqual([]);
	});

	it("notices a stopped node: its target goes down and BackplaneNodeDown becomes pending", async () => {
		await nodes.get("billing")?.stop();
		nodes.delete("billing");
		const instance = `127.0.0.1:${ports.get("billing")}`;
		await eventually(async () => (await targets()).find((t) => t.labels.instance === instance)?.health === "down", 15_000, "billing target down");
		const alert = await eventually(
			async () => {
				const { alerts } = await get<{ alerts: { labels: Record<string, string>; state: string }[] }>("/api/v1/alerts");
				return alerts.find((a) => a.labels.alertname === "BackplaneNodeDown" && a.labels.instance === instance);
			},
			15_000,
			"BackplaneNodeDown for the billing node",
		);
		expect(alert.state).toBe("pending"); // "for: 1m" keeps it pending; no flapping page
		expect(alert.labels.severity).toBe("critical");
	});
});
