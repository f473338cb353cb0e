/**
 * Event dead letters: messages a consumer failed on every attempt, parked by @moleculer/channels
 * in `<namespace>.dead-letter.<type>` with the consumer they came from (`x-original-group`, the
 * service, and `x-original-channel`). Operators look at them and, once the cause is fixed, send
 * them back to that consumer's own queue only; handlers are idempotent by event id, so a replay
 * of an event that was partly applied is safe.
 */
import amqp from "amqplib";
import type { ChannelModel, GetMessage } from "amqplib";

const ORIGINAL_GROUP = "x-original-group";
const ORIGINAL_CHANNEL = "x-original-channel";

export interface DeadLetter {
	eventId: string;
	type: string;
	/** The consumer that failed on it (a service name). */
	consumer: string;
	/** The queue it is replayed to: `<consumer>.<channel>`. */
	queue: string;
}

async function withConnection<T>(rabbitmqUrl: string, work: (connection: ChannelModel) => Promise<T>): Promise<T> {
	const connection = await amqp.connect(rabbitmqUrl, { timeout: 5_000 });
	connection.on("error", () => undefined);
	try {
		return await work(connection);
	} finally {
		await connection.close();
	}
}

const text = (value: unknown, fallback: string) => (typeof value === "string" ? value : fallback);

function deadLetterOf(msg: GetMessage): DeadLetter {
	const headers = (msg.properties.headers ?? {}) as Record<string, unknown>;
	const consumer = text(headers[ORIGINAL_GROUP], "");
	const channel = text(headers[ORIGINAL_CHANNEL], "");
	let event: { id?: unknown; type?: unknown } = {};
	try {
		event = JSON.parse(msg.content.toString()) as typeof event;
	} catch {
		// Not JSON: shown without an id; it can still be replayed (its consumer will refuse it again).
	}
	return { eventId: text(event.id, "?"), type: text(event.type, "?"), consumer, queue: consumer && channel ? `${consumer}.${channel}` : "" };
}

/** The queue's depth and up to `limit` of its messages, left where they are. */
export async function peekDeadLetters(rabbitmqUrl: string, queue: string, limit: number): Promise<{ total: number; items: DeadLetter[] }> {
	return withConnection(rabbitmqUrl, async (connection) => {
		const channel = await connection.createChannel();
		channel.on("error", () => undefined);
		const messageCount = await channel.checkQueue(queue).then(
			(q) => q.messageCount,
			(err: { code?: number }) => {
				// Declared with the first consumer: no queue yet means nothing was ever dead-lettered.
				if (err.code === 404) return 0;
				throw err;
			},
		);
		if (messageCount === 0) return { total: 0, items: [] };
		const items: DeadLetter[] = [];
		for (let i = 0; i < Math.min(limit, messageCount); i++) {
			const msg = await channel.get(queue, { noAck: false });
			if (!msg) break;
			items.push(deadLetterOf(msg));
		}
		// Unacknowledged: back in the queue, in their order.
		channel.nackAll(true);
		return { total: messageCount, items };
	});
}

/**
 * Moves up to `max` messages back to the queue of the consumer that failed on them, each removed
 * from the dead-letter queue only once RabbitMQ confirmed the copy. A message whose consumer
 * queue no longer exists stays where it is. Answers how many were replayed and how many stayed.
 */
export async function replayDeadLetters(rabbitmqUrl: string, queue: string, max: number): Promise<{ replayed: number; kept: number }> {
	return withConnection(rabbitmqUrl, async (connection) => {
		const confirm = await connection.createConfirmChannel();
		const exists = new Map<string, boolean>();
		const queueExists = async (name: string) => {
			if (!exists.has(name)) {
				// A failed passive declare closes its channel: check on a throwaway one.
				const probe = await connection.createChannel();
				probe.on("error", () => undefined);
				exists.set(name, await probe.checkQueue(name).then(() => true, () => false));
				if (exists.get(name)) await probe.close();
			}
			return exists.get(name)!;
		};
		let replayed = 0;
		let kept = 0;
		while (replayed + kept < max) {
			const msg = await confirm.get(queue, { noAck: false });
			if (!msg) break;
			const { queue: target } = deadLetterOf(msg);
			if (!target || !(await queueExists(target))) {
				kept++;
				continue;
			}
			confirm.sendToQueue(target, msg.content, { persistent: true, messageId: msg.properties.messageId as string | undefined, contentType: msg.properties.contentType as string | undefined });
			await confirm.waitForConfirms();
			confirm.ack(msg);
			replayed++;
		}
		confirm.nackAll(true);
		return { replayed, kept };
	});
}
