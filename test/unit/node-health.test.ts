/**
 * The node health middleware on an in-process broker (Moleculer's in-memory transporter): not
 * ready while the node stops, and a hosted service's failing check makes it 503.
 */
import { ServiceBroker } from "moleculer";
import { afterEach, describe, expect, it } from "vitest";
import { healthMixin } from "../../mixins/health.mixin.ts";
import { nodeHealthMiddleware } from "../../middlewares/node-health.ts";

const readyz = async (broker: ServiceBroker) => {
	const res = await fetch(`http://127.0.0.1:${String(broker.metadata.healthPort)}/readyz`, { signal: AbortSignal.timeout(5_000) });
	return { status: res.status, body: (await res.json()) as { detail?: string } };
};

describe("node health middleware", () => {
	let broker: ServiceBroker | undefined;
	afterEach(async () => {
		await broker?.stop();
		broker = undefined;
	});

	function start(check: () => Promise<unknown>, onStopped: () => Promise<void> = async () => undefined) {
		broker = new ServiceBroker({ namespace: `nh-${process.pid}`, nodeID: "nh", transporter: "Fake", logger: false, middlewares: [nodeHealthMiddleware(0)] });
		broker.createService({ name: "store", mixins: [healthMixin()], methods: { healthChecks: () => ({ database: check }) }, stopped: onStopped });
		return broker.start().then(() => broker!);
	}

	it("is ready while the service's checks pass, 503 naming the one that fails", async () => {
		let up = true;
		const node = await start(async () => {
			if (!up) throw new Error("connection refused");
		});
		expect((await readyz(node)).status).toBe(200);
		up = false;
		const down = await readyz(node);
		expect(down.status).toBe(503);
		expect(down.body.detail).toBe("Not ready: store: database (connection refused).");
	});

	it("is not ready from the moment the node starts stopping", async () => {
		// The service's stopped() holds the node in "stopping" until the test has looked.
		let finishStop!: () => void;
		let reached!: () => void;
		const stopReached = new Promise<void>((resolve) => (reached = resolve));
		const node = await start(async () => undefined, () => new Promise<void>((resolve) => {
			finishStop = resolve;
			reached();
		}));
		expect((await readyz(node)).status).toBe(200);
		const stopping = node.stop();
		await stopReached;
		const during = await readyz(node);
		finishStop();
		await stopping;
		broker = undefined;
		expect(during.status).toBe(503);
		expect(during.body.detail).toContain("node: lifecycle (node is stopping)");
	});
});
