/**
 * The gateway's view of the platform: which services have at least one healthy node.
 * Plain module: it receives a function that asks one node for its health report.
 */
import type { HealthReport, HealthStatus } from "./health.ts";

export interface NodeHealth extends Partial<HealthReport> {
	nodeId: string;
	status: HealthStatus;
	error?: string;
}

export interface ServiceHealth {
	status: HealthStatus;
	nodes: NodeHealth[];
}

export interface ClusterHealth {
	status: "up" | "degraded" | "down";
	services: Record<string, ServiceHealth>;
}

/**
 * @param hosts the node ids that host each service, as the registry currently knows them
 * @param ask   asks one node for its health report; rejects when the node does not answer
 */
export async function clusterHealth(
	hosts: Record<string, string[]>,
	ask: (service: string, nodeId: string) => Promise<HealthReport>,
): Promise<ClusterHealth> {
	const services: Record<string, ServiceHealth> = {};
	await Promise.all(
		Object.entries(hosts).map(async ([service, nodeIds]) => {
			const nodes = await Promise.all(
				nodeIds.map(async (nodeId): Promise<NodeHealth> => {
					try {
						return { nodeId, ...(await ask(service, nodeId)) };
					} catch (err) {
						return { nodeId, status: "down", error: err instanceof Error ? err.message : String(err) };
					}
				}),
			);
			const up = nodes.some((n) => n.status === "up");
			services[service] = { status: up ? "up" : "down", nodes: nodes.sort((a, b) => a.nodeId.localeCompare(b.nodeId)) };
		}),
	);
	const statuses = Object.values(services).map((s) => s.status);
	const status = statuses.every((s) => s === "up") ? "up" : statuses.some((s) => s === "up") ? "degraded" : "down";
	return { status, services };
}
