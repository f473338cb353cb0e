/**
 * @moleculer/channels' AMQP adapter, made to keep what it re-publishes. To retry a failed
 * message it publishes it back onto its queue, and to give up it publishes it to the dead-letter
 * queue, both with `channel.publish` and without the `persistent` flag; on a classic queue a
 * RabbitMQ restart would then drop exactly the messages waiting for a retry or an operator. Here
 * every publish on the adapter's channel is persistent. (Quorum queues keep every message anyway.)
 *
 * It also acknowledges the original only once RabbitMQ confirmed the copy. The library acks
 * right after publishing on a plain channel, and RabbitMQ writes a persistent message to disk a
 * little later; a broker crash in between lost the message (the original acked, the copy not yet
 * stored). Here the copy goes out on a confirm channel and the ack waits for its confirm; if the
 * copy is refused, the original goes back to its queue instead (at least once, never lost).
 *
 * It also gives each subscription the prefetch its channel asks for (`maxInFlight`): the library
 * sets one prefetch for its whole AMQP channel, the adapter's `maxInFlight`, and ignores a
 * channel's own, so every queue got the same. RabbitMQ applies a per-consumer prefetch to the
 * consumers started after it, so each subscription sets its own just before its consumer starts,
 * one subscription at a time.
 *
 * It also keeps the dead-letter names stable across reconnects: the library prefixes
 * `chan.deadLettering`'s queue and exchange names with the namespace in place on every subscribe,
 * so after a RabbitMQ restart (a resubscribe) dead letters went to `<ns>.<ns>.dead-letter.<type>`,
 * where neither the operator's REPL nor the replay looks.
 */
import Channels from "@moleculer/channels";
import type { ChannelModel, ConfirmChannel, Message, Options } from "amqplib";

type Publish = (exchange: string, routingKey: string, content: Buffer, options?: Options.Publish) => boolean;

/** The adapter's consuming channel, as far as `ackAfterConfirm` changes it. */
export interface ConsumingChannel {
	publish: Publish;
	ack(message: Message, allUpTo?: boolean): void;
	nack(message: Message, allUpTo?: boolean, requeue?: boolean): void;
}

/**
 * Re-publishes go out persistent on `confirms`, and the ack that follows one waits for its
 * confirm; a refused copy (or a channel lost meanwhile) sends the original back to its queue.
 * The library publishes the copy and acks the original in the same synchronous step, so the
 * ack after a publish belongs to that publish.
 */
export function ackAfterConfirm(consumer: ConsumingChannel, confirms: Pick<ConfirmChannel, "publish">, onRefused: (err: unknown) => void): void {
	const ack = consumer.ack.bind(consumer);
	const nack = consumer.nack.bind(consumer);
	let unconfirmed: Promise<void> | undefined;
	consumer.publish = (exchange, routingKey, content, options) => {
		const copy = new Promise<void>((resolve, reject) => {
			confirms.publish(exchange, routingKey, content, { ...options, persistent: true }, (err) => (err ? reject(err as Error) : resolve()));
		});
		// The library's own `publish` (sendToChannel) is followed by no ack: its refusal must not go unhandled.
		copy.catch(() => undefined);
		unconfirmed = copy;
		return true;
	};
	consumer.ack = (message, allUpTo) => {
		const waiting = unconfirmed;
		unconfirmed = undefined;
		if (!waiting) return ack(message, allUpTo);
		// A channel closed meanwhile throws here; RabbitMQ then redelivers the original by itself.
		const settle = (fn: () => void) => {
			try {
				fn();
			} catch {
				/* redelivered by the broker */
			}
		};
		waiting.then(
			() => settle(() => ack(message, allUpTo)),
			(err: unknown) => {
				onRefused(err);
				settle(() => nack(message, false, true));
			},
		);
	};
}

interface DeadLetterNames {
	queueName?: string;
	exchangeName?: string;
}
/** The part of a subscribed channel this adapter touches (the library's own type does not resolve here). */
interface SubscribedChannel {
	maxInFlight?: number;
	deadLettering?: DeadLetterNames & Record<string, unknown>;
}
const librarySubscribe = (Channels.Adapters.AMQP.prototype as unknown as { subscribe: (this: unknown, chan: SubscribedChannel) => Promise<void> }).subscribe;

export class DurableAmqpAdapter extends Channels.Adapters.AMQP {
	/** Each channel's dead-letter names as declared, before the library first prefixed them. */
	private readonly declaredDeadLetters = new WeakMap<object, DeadLetterNames>();
	/** The subscription in progress: the next waits for it, so each consumer starts under its own prefetch. */
	private subscribing: Promise<void> = Promise.resolve();

	subscribe(chan: SubscribedChannel): Promise<void> {
		const run = this.subscribing.then(() => this.subscribeOne(chan));
		this.subscribing = run.catch(() => undefined);
		return run;
	}

	private async subscribeOne(chan: SubscribedChannel): Promise<void> {
		const current = chan.deadLettering;
		if (current) {
			const declared = this.declaredDeadLetters.get(chan) ?? { queueName: current.queueName, exchangeName: current.exchangeName };
			this.declaredDeadLetters.set(chan, declared);
			chan.deadLettering = { ...current, ...declared };
		}
		const prefetch = chan.maxInFlight ?? (this as unknown as { opts: { maxInFlight?: number } }).opts.maxInFlight;
		const channel = this.channel as { prefetch(count: number): Promise<unknown> } | null;
		if (channel && prefetch != null) await channel.prefetch(prefetch);
		await librarySubscribe.call(this, chan);
	}

	override async tryConnect(): Promise<void> {
		await super.tryConnect();
		// Fields of the library's adapter its own type does not declare.
		const { connection, logger } = this as unknown as { connection: ChannelModel; logger: { warn(...args: unknown[]): void } };
		const confirms = await connection.createConfirmChannel();
		// Without a listener a channel error would be thrown; the connection's own handling reconnects.
		confirms.on("error", (err: Error) => logger.warn("AMQP confirm channel error", err.message));
		ackAfterConfirm(this.channel as ConsumingChannel, confirms, (err) => logger.warn("AMQP: a re-published message was not confirmed; its original goes back to the queue", err));
	}
}
