/**
 * @moleculer/channels' AMQP adapter, made to keep what it re-publishes. To retry a failed
 * message it publishes it back onto its queue, and to give up it publishes it to the dead-letter
 * queue, both with `channel.publish` and without the `persistent` flag; on a classic queue a
 * RabbitMQ restart would then drop exactly the messages waiting for a retry or an operator. Here
 * every publish on the adapter's channel is persistent. (Quorum queues keep every message anyway.)
 *
 * It also keeps the dead-letter names stable across reconnects: the library prefixes
 * `chan.deadLettering`'s queue and exchange names with the namespace in place on every subscribe,
 * so after a RabbitMQ restart (a resubscribe) dead letters went to `<ns>.<ns>.dead-letter.<type>`,
 * where neither the operator's REPL nor the replay looks.
 */
import Channels from "@moleculer/channels";
import type { Options } from "amqplib";

type Publish = (exchange: string, routingKey: string, content: Buffer, options?: Options.Publish) => boolean;

interface DeadLetterNames {
	queueName?: string;
	exchangeName?: string;
}
/** The part of a subscribed channel this adapter touches (the library's own type does not resolve here). */
interface SubscribedChannel {
	deadLettering?: DeadLetterNames & Record<string, unknown>;
}
const librarySubscribe = (Channels.Adapters.AMQP.prototype as unknown as { subscribe: (this: unknown, chan: SubscribedChannel) => Promise<void> }).subscribe;

export class DurableAmqpAdapter extends Channels.Adapters.AMQP {
	/** Each channel's dead-letter names as declared, before the library first prefixed them. */
	private readonly declaredDeadLetters = new WeakMap<object, DeadLetterNames>();

	async subscribe(chan: SubscribedChannel): Promise<void> {
		const current = chan.deadLettering;
		if (current) {
			const declared = this.declaredDeadLetters.get(chan) ?? { queueName: current.queueName, exchangeName: current.exchangeName };
			this.declaredDeadLetters.set(chan, declared);
			chan.deadLettering = { ...current, ...declared };
		}
		await librarySubscribe.call(this, chan);
	}

	override async tryConnect(): Promise<void> {
		await super.tryConnect();
		const channel = this.channel as { publish: Publish };
		const publish = channel.publish.bind(channel);
		channel.publish = (exchange, routingKey, content, options) => publish(exchange, routingKey, content, { ...options, persistent: true });
	}
}
