/**
 * The trace id crosses durable events: an event published through the outbox path with a
 * request id reaches its consumer on the real RabbitMQ with the same requestId and traceId in the
 * log context as the request that caused it.
 */
import { ServiceBroker } from "moleculer";
import type { Service } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import type { CloudEvent } from "../../lib/events/cloudevents.ts";
import { AmqpEventPublisher } from "../../lib/events/publisher.ts";
import { traceIdOf } from "../../lib/trace-context.ts";
import { logContext } from "../../middlewares/request-context.ts";
import { eventHandlersMixin } from "../../mixins/events.mixin.ts";
import { brokerOptions } from "../../moleculer.config.ts";
import { eventually, infra, testConfig, testEnv, uniqueId } from "../support/infra.ts";

describe("trace id across events", () => {
	const namespace = uniqueId("traceev");
	const seen = new Map<string, Record<string, string>>();
	let broker: ServiceBroker;
	let publisher: AmqpEventPublisher;

	beforeAll(async () => {
		broker = new ServiceBroker(brokerOptions(testConfig({ ...testEnv(namespace), NODE_ID: `${namespace}-consumer` }), { logger: false }));
		broker.createService({
			name: "tracer",
			mixins: [eventHandlersMixin({ handlers: { "trace.checked": "onChecked" } })],
			methods: {
				async onChecked(this: Service, event: CloudEvent) {
					seen.set(event.id, logContext());
				},
			},
		});
		await broker.start();
		publisher = new AmqpEventPublisher(infra.rabbitmqUrl, namespace);
	});

	afterAll(async () => {
		await publisher?.close();
		await broker?.stop();
	});

	it("carries the request's trace id to the consumer's log lines", async () => {
		const traced = createCloudEvent({ type: "trace.checked", source: "/test", data: {} });
		const named = createCloudEvent({ type: "trace.checked", source: "/test", data: {} });
		await publisher.publish([
			{ event: traced, requestId: "4bf92f3577b34da6a3ce929d0e0e4736" },
			{ event: named, requestId: "req-12345678" },
		]);
		await eventually(async () => seen.size === 2, 10_000, "both events handled");
		expect(seen.get(traced.id)).toMatchObject({ requestId: "4bf92f3577b34da6a3ce929d0e0e4736", traceId: "4bf92f3577b34da6a3ce929d0e0e4736" });
		expect(seen.get(named.id)).toMatchObject({ requestId: "req-12345678", traceId: traceIdOf("req-12345678") });
	});
});
