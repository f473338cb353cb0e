/**
 * Runs the node's health server (lib/health-server.ts) for as long as the broker runs, so every
 * node, whatever services it hosts, has /livez and /readyz for its probes. Readiness is this
 * node's own view: its transporter, whether it has finished starting and is not stopping, and
 * the `health` action (mixins/health.mixin.ts) of each service it hosts. The port it listens on
 * is in the node's metadata (`healthPort`), which matters when HEALTH_PORT is 0.
 */
import type { Middleware, ServiceBroker } from "moleculer";
import { runChecks } from "../lib/health.ts";
import type { HealthReport } from "../lib/health.ts";
import { startHealthServer } from "../lib/health-server.ts";
import type { HealthServer, NodeReadiness } from "../lib/health-server.ts";

const CHECK_TIMEOUT_MS = 1_000;
/** Longer than a service's own checks (CHECK_TIMEOUT_MS each, in parallel) take at most. */
const SERVICE_HEALTH_TIMEOUT_MS = 2_000;

type Phase = "starting" | "running" | "stopping";

export function nodeHealthMiddleware(port: number): Middleware {
	let server: HealthServer | undefined;
	let phase: Phase = "starting";

	async function readiness(broker: ServiceBroker): Promise<NodeReadiness> {
		const node = runChecks({
			rabbitmq: async () => {
				if (!broker.transit?.connected) throw new Error("transporter is not connected");
			},
			lifecycle: async () => {
				if (phase !== "running") throw new Error(`node is ${phase}`);
			},
		}, CHECK_TIMEOUT_MS);
		// Our services with a health action; "$node" (Moleculer's internal service) has one of another kind.
		const withHealth = broker.services.filter((svc) => !svc.name.startsWith("$") && typeof (svc.schema.actions as Record<string, unknown> | undefined)?.health === "object");
		const services = await Promise.all(
			withHealth.map(async (svc): Promise<[string, HealthReport]> => {
				try {
					const { status, checks } = await broker.call<HealthReport, object>(`${svc.fullName}.health`, {}, { nodeID: broker.nodeID, timeout: SERVICE_HEALTH_TIMEOUT_MS, retries: 0 });
					return [svc.fullName, { status, checks }];
				} catch (err) {
					const error = err instanceof Error ? err.message : String(err);
					return [svc.fullName, { status: "down", checks: { health: { status: "down", latencyMs: SERVICE_HEALTH_TIMEOUT_MS, error } } }];
				}
			}),
		);
		const checks = { node: await node, ...Object.fromEntries(services) };
		const status = Object.values(checks).every((r) => r.status === "up") ? "up" : "down";
		return { status, nodeId: broker.nodeID, checks };
	}

	return {
		name: "NodeHealth",
		// Listening before the services start: /livez answers and /readyz says "starting" while a
		// slow dependency holds up a service's started().
		async starting(broker: ServiceBroker) {
			server = await startHealthServer({ port, readiness: () => readiness(broker) });
			broker.metadata.healthPort = server.port;
		},
		async started() {
			phase = "running";
		},
		// Unready at once: a Service or load balancer stops sending new work while in-flight work drains.
		async stopping() {
			phase = "stopping";
		},
		async stopped() {
			await server?.close();
		},
	};
}
