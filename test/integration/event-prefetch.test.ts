/**
 * Each event subscription gets the prefetch (messages in flight per node) its handlers ask for
 * with `maxInFlight`, read back from RabbitMQ's management API, and keeps it when the adapter
 * subscribes everything again after a reconnect. @moleculer/channels alone gave every queue the
 * adapter-wide value.
 */
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventHandlersMixin, eventQueueNames } from "../../mixins/events.mixin.ts";
import { brokerOptions } from "../../moleculer.config.ts";
import { rabbitmqManagement } from "../support/chaos.ts";
import { eventually, testConfig, testEnv, uniqueId } from "../support/infra.ts";

interface ConsumerInfo {
	queue: { name: string };
	prefetch_count: number;
}

async function prefetchByQueue(): Promise<Map<string, number>> {
	const { base, auth } = rabbitmqManagement();
	const res = await fetch(`${base}/api/consumers`, { headers: { authorization: auth } });
	if (!res.ok) throw new Error(`RabbitMQ management: ${res.status}`);
	return new Map(((await res.json()) as ConsumerInfo[]).map((c) => [c.queue.name, c.prefetch_count]));
}

describe("event subscriptions' prefetch", () => {
	const namespace = uniqueId("prefetch");
	let broker: ServiceBroker;
	const few = eventQueueNames(namespace, "few", "user.created").queue;
	const many = eventQueueNames(namespace, "many", "user.deleted").queue;
	const noop = async () => undefined;

	beforeAll(async () => {
		broker = new ServiceBroker(brokerOptions(testConfig(testEnv(namespace)), { logger: false }));
		broker.createService({ name: "few", mixins: [eventHandlersMixin({ handlers: { "user.created": "onCreated" }, maxInFlight: 3 })], methods: { onCreated: noop } });
		broker.createService({ name: "many", mixins: [eventHandlersMixin({ handlers: { "user.deleted": "onDeleted" }, maxInFlight: 25 })], methods: { onDeleted: noop } });
		await broker.start();
	});
	afterAll(async () => {
		await broker?.stop();
	});

	it("is each subscription's own maxInFlight, before and after the adapter subscribes again", async () => {
		const expected = (prefetch: Map<string, number>) => prefetch.get(few) === 3 && prefetch.get(many) === 25;
		await eventually(async () => expected(await prefetchByQueue()), 10_000, "both consumers with their prefetch");
		// What the adapter does when RabbitMQ comes back (amqp.js tryConnect -> resubscribeAllChannels).
		await (broker as unknown as { channelAdapter: { resubscribeAllChannels(): Promise<void> } }).channelAdapter.resubscribeAllChannels();
		const after = await eventually(async () => {
			const prefetch = await prefetchByQueue();
			return expected(prefetch) && prefetch;
		}, 10_000, "both consumers again with their prefetch");
		expect([after.get(few), after.get(many)]).toEqual([3, 25]);
	});
});
