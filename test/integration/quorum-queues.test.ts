/**
 * AMQP_QUEUE_TYPE=quorum: the durable event queues and their dead-letter queues are quorum queues
 * (RabbitMQ runs them on a single node too), events are still consumed, and a message that can
 * never succeed still reaches its dead-letter queue. Without the switch they stay classic.
 */
import amqp from "amqplib";
import type { ServiceBroker } from "moleculer";
import { afterAll, describe, expect, it } from "vitest";
import { namespaceQueues } from "../support/chaos.ts";
import { eventually, infra, startNode, testEnv, uniqueId } from "../support/infra.ts";

describe("AMQP_QUEUE_TYPE", () => {
	const quorumNs = uniqueId("quorum");
	const classicNs = uniqueId("classic");
	const nodes: ServiceBroker[] = [];

	afterAll(async () => {
		// Their queues go with the namespaces (test/support/leave-nothing-behind.ts).
		for (const node of nodes) await node.stop();
	});

	const eventQueues = async (namespace: string) => (await namespaceQueues(namespace)).filter((q) => !q.name.startsWith("MOL-"));

	/** Publishes what can never be handled (not a CloudEvent) to billing's user.created exchange of `namespace`. */
	const publishNotACloudEvent = async (namespace: string) => {
		const connection = await amqp.connect(infra.rabbitmqUrl);
		try {
			const channel = await connection.createConfirmChannel();
			channel.publish(`${namespace}.user.created`, "", Buffer.from(JSON.stringify({ not: "a cloud event" })), { persistent: true });
			await channel.waitForConfirms();
		} finally {
			await connection.close();
		}
	};

	it("quorum: billing's event and dead-letter queues are quorum queues, and dead-lettering still works", async () => {
		nodes.push(await startNode(["billing"], testEnv(quorumNs, { AMQP_QUEUE_TYPE: "quorum" })));
		const queues = await eventually(async () => {
			const qs = await eventQueues(quorumNs);
			return qs.some((q) => q.name.includes("dead-letter.user.created")) && qs;
		}, 10_000, "billing's queues");
		expect(queues.length).toBeGreaterThanOrEqual(4); // user.created and user.deleted, each with a dead-letter queue
		expect(queues.map((q) => [q.name, q.type])).toEqual(queues.map((q) => [q.name, "quorum"]));

		// A malformed envelope can never succeed: it must land in the (quorum) dead-letter queue.
		await publishNotACloudEvent(quorumNs);
		await eventually(async () => {
			const dead = (await eventQueues(quorumNs)).find((q) => q.name === `${quorumNs}.dead-letter.user.created`);
			return dead?.messages === 1;
		}, 20_000, "the message in the dead-letter queue");
	});

	it("after a reconnect (the adapter subscribes every channel again) dead letters still go to <ns>.dead-letter.<type>", async () => {
		const ns = uniqueId("resub");
		const node = await startNode(["billing"], testEnv(ns));
		nodes.push(node);
		await eventually(async () => (await eventQueues(ns)).some((q) => q.name === `${ns}.dead-letter.user.created`), 10_000, "billing's queues");
		// What the adapter does when RabbitMQ comes back (amqp.js tryConnect -> resubscribeAllChannels).
		await (node as unknown as { channelAdapter: { resubscribeAllChannels(): Promise<void> } }).channelAdapter.resubscribeAllChannels();
		await publishNotACloudEvent(ns);
		await eventually(async () => (await eventQueues(ns)).find((q) => q.name === `${ns}.dead-letter.user.created`)?.messages === 1, 20_000, "the dead letter where operators look");
		expect((await eventQueues(ns)).filter((q) => q.name.startsWith(`${ns}.${ns}.`))).toEqual([]);
	});

	it("classic (the default): the same queues are classic, and a dead letter is kept persistent there", async () => {
		nodes.push(await startNode(["billing"], testEnv(classicNs)));
		const queues = await eventually(async () => {
			const qs = await eventQueues(classicNs);
			return qs.length >= 4 && qs;
		}, 10_000, "billing's queues");
		expect(new Set(queues.map((q) => q.type))).toEqual(new Set(["classic"]));

		// The channels library re-publishes a dead letter itself; on a classic queue it must be persistent
		// (delivery mode 2) or a RabbitMQ restart drops it (lib/events/durable-amqp-adapter.ts).
		await publishNotACloudEvent(classicNs);
		const connection = await amqp.connect(infra.rabbitmqUrl);
		try {
			const channel = await connection.createChannel();
			const dead = await eventually(async () => (await channel.get(`${classicNs}.dead-letter.user.created`, { noAck: true })) || undefined, 20_000, "the dead letter");
			expect(dead.properties.deliveryMode).toBe(2);
		} finally {
			await connection.close();
		}
	});
});
