/**
 * Every node's own health server (middlewares/node-health.ts): a billing node is ready while
 * MongoDB answers, says 503 problem+json naming MongoDB while it does not, and is ready again
 * once MongoDB is back, without a restart. MongoDB is reached through a TCP proxy, so the outage
 * is this node's alone.
 */
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteNamespaceObjects } from "../support/chaos.ts";
import { eventually, healthUrl, infra, startNode, testEnv, uniqueId } from "../support/infra.ts";
import { TcpProxy } from "../support/tcp-proxy.ts";

async function get(url: string) {
	const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
	return { status: res.status, type: res.headers.get("content-type"), body: (await res.json()) as Record<string, unknown> };
}

describe("per-node /livez and /readyz", () => {
	const namespace = uniqueId("health");
	let mongoProxy: TcpProxy;
	let node: ServiceBroker;

	beforeAll(async () => {
		const mongo = new URL(infra.mongoUrl);
		mongoProxy = new TcpProxy({ host: mongo.hostname, port: Number(mongo.port) });
		await mongoProxy.up();
		const env = testEnv(namespace);
		const viaProxy = new URL(env.MONGO_URL!);
		viaProxy.host = `127.0.0.1:${mongoProxy.port}`;
		// Short server selection, so a ping during the outage fails instead of waiting.
		viaProxy.searchParams.set("serverSelectionTimeoutMS", "500");
		node = await startNode(["billing"], { ...env, MONGO_URL: viaProxy.toString() });
	});

	afterAll(async () => {
		await node?.stop();
		await mongoProxy?.down();
		await deleteNamespaceObjects(namespace);
	});

	it("answers /livez and a ready /readyz with the billing service's checks", async () => {
		expect(await get(`${healthUrl(node)}/livez`)).toMatchObject({ status: 200, body: { status: "up" } });
		const ready = await get(`${healthUrl(node)}/readyz`);
		expect(ready.status).toBe(200);
		expect(ready.type).toBe("application/json");
		expect(ready.body).toMatchObject({
			status: "up",
			nodeId: node.nodeID,
			checks: {
				node: { status: "up", checks: { rabbitmq: { status: "up" }, lifecycle: { status: "up" } } },
				billing: { status: "up", checks: { mongodb: { status: "up" }, rabbitmq: { status: "up" } } },
			},
		});
	});

	it("says 503 problem+json naming MongoDB while it is unreachable, and recovers without a restart", async () => {
		await mongoProxy.down();
		const down = await eventually(async () => {
			const r = await get(`${healthUrl(node)}/readyz`);
			return r.status === 503 && r;
		}, 10_000, "/readyz to say 503");
		expect(down.type).toBe("application/problem+json");
		expect(down.body).toMatchObject({ status: 503, code: "NOT_READY", type: "/problems/not-ready", nodeId: node.nodeID, checks: { billing: { status: "down", checks: { mongodb: { status: "down" } } } } });
		expect(down.body.detail).toMatch(/^Not ready: billing: mongodb/);
		// Liveness does not depend on MongoDB: the pod must not be restarted for an outage elsewhere.
		expect((await get(`${healthUrl(node)}/livez`)).status).toBe(200);

		await mongoProxy.up();
		await eventually(async () => (await get(`${healthUrl(node)}/readyz`)).status === 200, 20_000, "/readyz to say 200 again");
	});
});
