/**
 * Gives a service a `health` action that checks its own dependencies (databases, queues, the
 * transporter) and answers with a per-dependency report. The gateway aggregates these per node.
 */
import type { ServiceSchema } from "moleculer";
import { runChecks } from "../lib/health.ts";
import type { HealthCheck, HealthReport } from "../lib/health.ts";

const CHECK_TIMEOUT_MS = 1_000;

export interface HealthMixinMethods {
	/** Dependency checks of this service, added to the transporter check. */
	healthChecks(): Record<string, HealthCheck>;
}

export function healthMixin(): ServiceSchema {
	return {
		name: "health-mixin",
		actions: {
			health: {
				visibility: "public",
				// Health must answer even when the service is saturated or its breaker is open.
				bulkhead: { enabled: false },
				circuitBreaker: { enabled: false },
				async handler(): Promise<HealthReport & { service: string; nodeId: string }> {
					const transit = this.broker.transit;
					const checks: Record<string, HealthCheck> = {
						rabbitmq: async () => {
							if (!transit?.connected) throw new Error("transporter is not connected");
						},
						...(this as unknown as HealthMixinMethods).healthChecks(),
					};
					const report = await runChecks(checks, CHECK_TIMEOUT_MS);
					return { service: this.name, nodeId: this.broker.nodeID, ...report };
				},
			},
		},
	};
}
