/**
 * The batching AMQP transporter on real RabbitMQ: many concurrent calls between two nodes travel
 * in fewer messages than packets and every caller gets its own answer; a node of the stock
 * transporter (an older version mid rolling update) still calls and is called, one packet per
 * message; a malformed batch is dropped without taking the node down.
 */
import { connect } from "amqplib";
import { ServiceBroker } from "moleculer";
import type { BrokerOptions, Context, Service } from "moleculer";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { BATCH_HEADER, BatchingAmqpTransporter } from "../../lib/batching-amqp-transporter.ts";
import { eventually, waitForCluster } from "../support/infra.ts";
import { namespacesInUse } from "../support/namespaces.ts";

const RABBITMQ_URL = process.env.RABBITMQ_URL ?? "amqp://backplane:backplane@127.0.0.1:55672";
const NAMESPACE = `batching-${process.pid}-${Date.now().toString(36)}`;
const AMQP_OPTIONS = { url: RABBITMQ_URL, prefetch: 100, socketOptions: { noDelay: true } };

const options = (nodeID: string, transporter: BrokerOptions["transporter"]): BrokerOptions => ({
	namespace: NAMESPACE,
	nodeID,
	logger: false,
	transporter,
	metrics: { enabled: true },
});

const echo = {
	name: "echo",
	actions: {
		async echo(this: Service, ctx: Context<{ n: number }>) {
			// A little wait so that calls overlap and answers go back in batches too.
			await new Promise((r) => setImmediate(r));
			return { n: ctx.params.n, by: this.broker.nodeID };
		},
	},
};

const counter = (broker: ServiceBroker, name: string) => Number(broker.metrics.getMetric(name)?.values.get("")?.value ?? 0);

describe("BatchingAmqpTransporter", () => {
	let caller: ServiceBroker;
	let batching: ServiceBroker;
	let stock: ServiceBroker;

	beforeAll(async () => {
		namespacesInUse.add(NAMESPACE);
		caller = new ServiceBroker(options("caller", new BatchingAmqpTransporter(AMQP_OPTIONS)));
		batching = new ServiceBroker(options("batching", new BatchingAmqpTransporter(AMQP_OPTIONS)));
		stock = new ServiceBroker(options("stock", { type: "AMQP", options: AMQP_OPTIONS }));
		batching.createService({ ...echo, name: "echo-batching" });
		stock.createService({ ...echo, name: "echo-stock" });
		caller.createService({ ...echo, name: "echo-caller" });
		await Promise.all([caller.start(), batching.start(), stock.start()]);
		await waitForCluster([caller, batching, stock]);
		await caller.waitForServices(["echo-batching", "echo-stock"], 10_000);
		await stock.waitForServices(["echo-caller"], 10_000);
	});

	afterAll(async () => {
		await Promise.all([caller?.stop(), batching?.stop(), stock?.stop()]);
	});

	it("carries concurrent calls in fewer messages than packets, each answer to its own caller", async () => {
		const before = { messages: counter(caller, "transporter.batch.messages.total"), packets: counter(caller, "transporter.batch.packets.total") };
		const answers = await Promise.all(Array.from({ length: 500 }, (_, n) => caller.call("echo-batching.echo", { n })));
		expect(answers).toEqual(Array.from({ length: 500 }, (_, n) => ({ n, by: "batching" })));
		const messages = counter(caller, "transporter.batch.messages.total") - before.messages;
		const packets = counter(caller, "transporter.batch.packets.total") - before.packets;
		// 500 requests issued in one turn: a few messages of up to 128 packets, not 500 messages.
		expect(messages).toBeGreaterThan(0);
		expect(packets / messages).toBeGreaterThan(10);
		// The answers came back batched as well.
		expect(counter(batching, "transporter.batch.messages.total")).toBeGreaterThan(0);
	});

	it("sends one packet per message to a node that did not announce batching, and serves it", async () => {
		const before = counter(caller, "transporter.batch.packets.total");
		const toStock = await Promise.all(Array.from({ length: 50 }, (_, n) => caller.call("echo-stock.echo", { n })));
		expect(toStock.map((a) => (a as { by: string }).by)).toEqual(Array(50).fill("stock"));
		expect(counter(caller, "transporter.batch.packets.total")).toBe(before);
		const fromStock = await Promise.all(Array.from({ length: 50 }, (_, n) => stock.call("echo-caller.echo", { n })));
		expect(fromStock).toEqual(Array.from({ length: 50 }, (_, n) => ({ n, by: "caller" })));
	});

	it("drops a malformed batch and keeps serving", async () => {
		const warn = vi.spyOn((batching.transit!.tx as unknown as { logger: { warn: () => void } }).logger, "warn");
		const connection = await connect(RABBITMQ_URL);
		try {
			const channel = await connection.createConfirmChannel();
			// A frame that claims more bytes than the message holds, on the node's request queue.
			const bad = Buffer.alloc(8);
			bad.writeUInt32BE(1_000, 0);
			channel.sendToQueue(`MOL-${NAMESPACE}.REQ.batching`, bad, { headers: { [BATCH_HEADER]: 2 } });
			await channel.waitForConfirms();
		} finally {
			await connection.close();
		}
		await eventually(async () => warn.mock.calls.length > 0, 5_000, "the malformed batch to be read");
		expect(warn).toHaveBeenCalledWith("Dropped a malformed packet batch.", expect.objectContaining({ error: expect.stringMatching(/runs past the end/) as unknown }));
		await expect(caller.call("echo-batching.echo", { n: 7 })).resolves.toEqual({ n: 7, by: "batching" });
	});
});
