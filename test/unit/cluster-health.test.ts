import { describe, expect, it } from "vitest";
import { clusterHealth } from "../../lib/cluster-health.ts";

const up = { status: "up" as const, checks: {} };

describe("clusterHealth", () => {
	it("is up when every service has a healthy node, and says which node failed", async () => {
		const h = await clusterHealth({ auth: ["a1", "a2"], billing: ["b1"] }, async (_, node) => {
			if (node === "a2") throw new Error("Request timed out");
			return up;
		});
		expect(h.status).toBe("up");
		expect(h.services.auth!.nodes).toEqual([{ nodeId: "a1", ...up }, { nodeId: "a2", status: "down", error: "Request timed out" }]);
	});

	it("is degraded when a service has no healthy node, down when none has", async () => {
		const degraded = await clusterHealth({ auth: ["a1"], billing: [] }, async () => up);
		expect(degraded.status).toBe("degraded");
		expect(degraded.services.billing).toEqual({ status: "down", nodes: [] });
		const down = await clusterHealth({ auth: [], billing: [] }, async () => up);
		expect(down.status).toBe("down");
	});

	it("counts a node that answers with a failed dependency as down", async () => {
		const h = await clusterHealth({ billing: ["b1"] }, async () => ({ status: "down", checks: { mongodb: { status: "down", latencyMs: 1000, error: "no answer" } } }));
		expect(h.services.billing!.status).toBe("down");
	});
});
