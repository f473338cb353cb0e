/**
 * Durable events, both directions, in one place.
 *
 * - outboxMixin: a publishing service writes events into its own database in the same
 *   transaction as the change (see lib/events/pg-outbox.ts); this mixin runs the relay that
 *   moves them to RabbitMQ with publisher confirms, and exposes `this.relayOutbox()` to call
 *   right after a commit so events leave at once instead of at the next poll.
 * - eventHandlersMixin: a consuming service declares `{ "user.created": "onUserCreated" }`;
 *   each becomes a @moleculer/channels subscription (durable queue per service, ack after the
 *   handler succeeds, retries with back-off, then a dead-letter queue). Delivery is at least
 *   once, so every handler must be idempotent by the event id or its own natural key.
 */
import type { Context, Service, ServiceSchema } from "moleculer";
import { isDependencyOutage } from "../lib/errors.ts";
import { parseCloudEvent } from "../lib/events/cloudevents.ts";
import type { CloudEvent } from "../lib/events/cloudevents.ts";
import { OutboxRelay, RELAY_DEFAULTS } from "../lib/events/outbox-relay.ts";
import type { OutboxStore } from "../lib/events/outbox-relay.ts";
import { AmqpEventPublisher } from "../lib/events/publisher.ts";

export interface OutboxMixinOptions {
	rabbitmqUrl: string;
	/** Called in `started()`, once the service's database client exists. */
	store: () => OutboxStore;
}

export interface OutboxMethods {
	relayOutbox(): void;
}

const PENDING_GAUGE_EVERY_MS = 10_000;

export function outboxMixin(opts: OutboxMixinOptions): ServiceSchema {
	let relay: OutboxRelay | undefined;
	let publisher: AmqpEventPublisher | undefined;
	let gaugeTimer: NodeJS.Timeout | undefined;

	return {
		name: "outbox-mixin",
		methods: {
			relayOutbox() {
				relay?.nudge();
			},
		},
		created() {
			const metrics = this.broker.metrics;
			if (!this.broker.isMetricsEnabled()) return;
			metrics.register({ name: "events.outbox.published.total", type: "counter", labelNames: ["service"], description: "Events relayed to RabbitMQ and confirmed" });
			metrics.register({ name: "events.outbox.errors.total", type: "counter", labelNames: ["service"], description: "Failed relay attempts" });
			metrics.register({ name: "events.outbox.pending", type: "gauge", labelNames: ["service"], description: "Events committed but not yet relayed" });
		},
		async started() {
			const store = opts.store();
			const service = this.name;
			publisher = new AmqpEventPublisher(opts.rabbitmqUrl, this.broker.namespace);
			const pub = publisher;
			relay = new OutboxRelay(
				store,
				(entries) => pub.publish(entries),
				{
					published: (count) => {
						this.broker.metrics.increment("events.outbox.published.total", { service }, count);
						this.logger.debug(`outbox: relayed ${count} event(s)`);
					},
					failed: (err, consecutive) => {
						this.broker.metrics.increment("events.outbox.errors.total", { service });
						// Log the first failure and then every tenth, not every retry.
						if (consecutive === 1 || consecutive % 10 === 0) this.logger.warn(`outbox: relay failed (${consecutive} in a row), retrying with back-off`, errorMessage(err));
					},
				},
				RELAY_DEFAULTS,
			);
			relay.start();
			gaugeTimer = setInterval(() => {
				store.countPending().then(
					(n) => this.broker.metrics.set("events.outbox.pending", n, { service }),
					() => undefined,
				);
			}, PENDING_GAUGE_EVERY_MS);
			gaugeTimer.unref();
			this.logger.info("outbox relay started");
		},
		async stopped() {
			clearInterval(gaugeTimer);
			await relay?.stop();
			await publisher?.close();
		},
	};
}

export interface EventHandlersOptions {
	/** Event type -> name of a method of the service: `(event, ctx) => Promise<void>`. */
	handlers: Record<string, string>;
	/**
	 * Messages handled at once per node and event type: its queue's prefetch. Default 50; lower it
	 * for handlers that call a rate-limited API.
	 */
	maxInFlight?: number;
	/** Attempts before the message goes to the dead-letter queue. */
	maxAttempts?: number;
}

/**
 * With 10, RabbitMQ handed the consumer a message per ack (one in, one out): relay + consume ran at
 * 6,600-8,100 events/s, 0.48-0.54x of raw amqplib; with 50, 8,800-9,600 events/s, 0.59-0.70x
 * (three alternating runs of each, docs/benchmarks.md).
 */
const DEFAULT_MAX_IN_FLIGHT = 50;

export type EventHandler = (event: CloudEvent, ctx: Context) => Promise<void>;

/**
 * The RabbitMQ queues behind one subscription, as @moleculer/channels names them: the channel
 * and the dead-letter queue are prefixed with the namespace; the consumer group is the service.
 */
export function eventQueueNames(namespace: string, service: string, type: string): { queue: string; deadLetter: string } {
	const prefixed = (name: string) => (namespace ? `${namespace}.${name}` : name);
	return { queue: `${service}.${prefixed(type)}`, deadLetter: prefixed(`dead-letter.${type}`) };
}

/**
 * How long a failed attempt waits before it hands the message back for redelivery: exponential
 * with jitter. A database or server that is down or restarting (`isDependencyOutage`) gets a
 * longer ladder (about 30 s over the attempts instead of 6 s), so a failover or a restart does
 * not send good events to the dead-letter queue; a bug still gets there quickly.
 */
export function redeliveryDelayMs(attempt: number, outage: boolean, random: () => number = Math.random): number {
	const [baseMs, capMs] = outage ? [1_000, 15_000] : [200, 5_000];
	return Math.round(Math.min(capMs, baseMs * 2 ** attempt * (0.5 + random() / 2)));
}

export function eventHandlersMixin(opts: EventHandlersOptions): ServiceSchema {
	const maxAttempts = opts.maxAttempts ?? 5;
	const channels: Record<string, unknown> = {};

	for (const [type, method] of Object.entries(opts.handlers)) {
		channels[type] = {
			context: true,
			maxInFlight: opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
			maxRetries: maxAttempts,
			deadLettering: { enabled: true, queueName: `dead-letter.${type}`, exchangeName: `dead-letter.${type}` },
			async handler(this: Service & Record<string, unknown>, ctx: Context<unknown>, raw: { properties?: { headers?: Record<string, unknown> } }) {
				const attempt = Number(raw?.properties?.headers?.["x-redelivered-count"] ?? 0) + 1;
				let event: CloudEvent;
				try {
					event = parseCloudEvent(ctx.params);
				} catch (err) {
					// Can never succeed: no back-off, it reaches the dead-letter queue after maxAttempts.
					this.logger.error(`event ${type}: malformed envelope`, errorMessage(err));
					throw err;
				}
				const handle = this[method] as EventHandler;
				// Commit in the publisher's database -> handler start: relay, broker and queue wait together.
				const lagMs = Date.now() - Date.parse(event.time);
				if (attempt === 1 && lagMs >= 0) this.broker.metrics.observe("events.delivery.lag", lagMs, { service: this.name, type });
				const started = performance.now();
				try {
					await handle.call(this, event, ctx);
					this.broker.metrics.increment("events.consumed.total", { service: this.name, type, result: "ok" });
					this.broker.metrics.observe("events.handler.duration", performance.now() - started, { service: this.name, type });
				} catch (err) {
					this.broker.metrics.increment("events.consumed.total", { service: this.name, type, result: "error" });
					const final = attempt >= maxAttempts;
					this.logger.warn(`event ${type} ${event.id}: attempt ${attempt}/${maxAttempts} failed${final ? ", moving to dead-letter queue" : ""}`, errorMessage(err));
					// Back off before handing the message back for redelivery.
					if (!final) await sleep(redeliveryDelayMs(attempt, isDependencyOutage(err)));
					throw err;
				}
			},
		};
	}

	return {
		name: "event-handlers-mixin",
		// In the registry, so an operator's node can find every queue (eventQueueNames) without asking.
		metadata: { eventTypes: Object.keys(opts.handlers) },
		channels,
		created() {
			if (!this.broker.isMetricsEnabled()) return;
			const metrics = this.broker.metrics;
			if (!metrics.getMetric("events.consumed.total")) {
				metrics.register({ name: "events.consumed.total", type: "counter", labelNames: ["service", "type", "result"], description: "Events handled" });
				metrics.register({ name: "events.delivery.lag", type: "histogram", labelNames: ["service", "type"], unit: "millisecond", description: "From the event's commit to its handler's first attempt", buckets: [10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000] });
				metrics.register({ name: "events.handler.duration", type: "histogram", labelNames: ["service", "type"], unit: "millisecond", description: "Event handler duration", buckets: [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] });
			}
		},
	} as ServiceSchema;
}

function errorMessage(err: unknown): string {
	return err instanceof Error ? err.message : String(err);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
