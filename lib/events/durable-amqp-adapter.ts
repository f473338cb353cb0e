/**
 * @moleculer/channels' AMQP adapter, made to keep what it re-publishes. To retry a failed
 * message it publishes it back onto its queue, and to give up it publishes it to the dead-letter
 * queue, both with `channel.publish` and without the `persistent` flag; on a classic queue a
 * RabbitMQ restart would then drop exactly the messages waiting for a retry or an operator. Here
 * every publish on the adapter's channel is persistent. (Quorum queues keep every message anyway.)
 */
import Channels from "@moleculer/channels";
import type { Options } from "amqplib";

type Publish = (exchange: string, routingKey: string, content: Buffer, options?: Options.Publish) => boolean;

export class DurableAmqpAdapter extends Channels.Adapters.AMQP {
	override async tryConnect(): Promise<void> {
		await super.tryConnect();
		const channel = this.channel as { publish: Publish };
		const publish = channel.publish.bind(channel);
		channel.publish = (exchange, routingKey, content, options) => publish(exchange, routingKey, content, { ...options, persistent: true });
	}
}
