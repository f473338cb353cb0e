/**
 * Publishes CloudEvents to RabbitMQ on a confirm channel: a publish counts only once the broker
 * has taken responsibility for the message. (@moleculer/channels publishes without confirms.)
 * The topology matches @moleculer/channels' AMQP adapter, so its consumers receive these:
 * one durable fanout exchange per event type, named `<namespace>.<type>`.
 */
import amqp from "amqplib";
import type { ChannelModel, ConfirmChannel } from "amqplib";
import { withTimeout } from "../timeout.ts";
import type { CloudEvent } from "./cloudevents.ts";

export interface EventToPublish {
	event: CloudEvent<unknown>;
	/** Request id of the request that caused the event; consumers log it. */
	requestId?: string;
}

export class AmqpEventPublisher {
	private connection?: ChannelModel;
	private channel?: ConfirmChannel;
	private connecting?: Promise<ConfirmChannel>;
	private readonly assertedExchanges = new Set<string>();
	private readonly url: string;
	private readonly namespace: string;
	private readonly timeoutMs: number;

	constructor(url: string, namespace: string, timeoutMs = 5_000) {
		this.url = url;
		this.namespace = namespace;
		this.timeoutMs = timeoutMs;
	}

	/** The exchange (and @moleculer/channels channel) name for an event type. */
	exchangeFor(type: string): string {
		return this.namespace ? `${this.namespace}.${type}` : type;
	}

	/** Resolves once RabbitMQ confirmed every event; rejects if any was not confirmed in time. */
	async publish(events: EventToPublish[]): Promise<void> {
		const channel = await this.open();
		for (const { event, requestId } of events) {
			const exchange = this.exchangeFor(event.type);
			if (!this.assertedExchanges.has(exchange)) {
				await channel.assertExchange(exchange, "fanout", { durable: true });
				this.assertedExchanges.add(exchange);
			}
			channel.publish(exchange, "", Buffer.from(JSON.stringify(event)), {
				persistent: true,
				messageId: event.id,
				correlationId: event.id,
				type: event.type,
				contentType: "application/cloudevents+json",
				timestamp: Math.floor(Date.parse(event.time) / 1000),
				headers: requestId ? { $requestID: requestId } : {},
			});
		}
		try {
			await withTimeout(channel.waitForConfirms(), this.timeoutMs, "RabbitMQ did not confirm the published events");
		} catch (err) {
			// Unknown state: start over on a fresh channel; the events will be published again.
			await this.close();
			throw err;
		}
	}

	async close(): Promise<void> {
		const connection = this.connection;
		this.reset();
		await connection?.close().catch(() => undefined);
	}

	private async open(): Promise<ConfirmChannel> {
		if (this.channel) return this.channel;
		this.connecting ??= (async () => {
			try {
				const connection = await amqp.connect(this.url, { timeout: this.timeoutMs, noDelay: true });
				const channel = await connection.createConfirmChannel();
				// A closed connection or channel is re-opened on the next publish.
				connection.on("error", () => undefined);
				connection.on("close", () => this.reset());
				channel.on("error", () => undefined);
				channel.on("close", () => this.reset());
				this.connection = connection;
				this.channel = channel;
				return channel;
			} finally {
				this.connecting = undefined;
			}
		})();
		return this.connecting;
	}

	private reset(): void {
		this.connection = undefined;
		this.channel = undefined;
		this.assertedExchanges.clear();
	}
}
