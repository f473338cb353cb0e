/**
 * How many messages wait in named RabbitMQ queues, read with AMQP's passive declare (checkQueue),
 * so an operator needs only the AMQP URL, not the management API. A queue that does not exist
 * closes the channel it was checked on, so each check gets its own.
 */
import amqp from "amqplib";

export type QueueDepth = { name: string; messages: number; consumers: number } | { name: string; missing: true };

export async function queueDepths(rabbitmqUrl: string, names: string[], timeoutMs = 5_000): Promise<QueueDepth[]> {
	const connection = await amqp.connect(rabbitmqUrl, { timeout: timeoutMs });
	// A refused check also emits "error" on the connection's channel; the result already says so.
	connection.on("error", () => undefined);
	try {
		const depths: QueueDepth[] = [];
		for (const name of names) {
			const channel = await connection.createChannel();
			channel.on("error", () => undefined);
			try {
				const { messageCount, consumerCount } = await channel.checkQueue(name);
				depths.push({ name, messages: messageCount, consumers: consumerCount });
				await channel.close();
			} catch (err) {
				if ((err as { code?: number }).code !== 404) throw err;
				depths.push({ name, missing: true });
			}
		}
		return depths;
	} finally {
		await connection.close();
	}
}
