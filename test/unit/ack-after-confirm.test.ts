/**
 * The channels adapter's re-publish (retry or dead letter) and the ack of the original: the ack
 * waits for RabbitMQ's confirm of the copy, and a refused copy sends the original back instead.
 */
import type { Message, Options } from "amqplib";
import { describe, expect, it } from "vitest";
import { ackAfterConfirm } from "../../lib/events/durable-amqp-adapter.ts";
import type { ConsumingChannel } from "../../lib/events/durable-amqp-adapter.ts";

const flush = () => new Promise((r) => setImmediate(r));
const message = (tag: number) => ({ fields: { deliveryTag: tag } }) as unknown as Message;

function channels(opts: { closed?: boolean } = {}) {
	const calls: string[] = [];
	const confirmCallbacks: ((err: unknown) => void)[] = [];
	const published: Options.Publish[] = [];
	const consumer: ConsumingChannel = {
		publish: () => {
			throw new Error("the library's own publish must not be used");
		},
		ack: (m) => {
			if (opts.closed) throw new Error("Channel closed");
			calls.push(`ack ${m.fields.deliveryTag}`);
		},
		nack: (m, _all, requeue) => {
			if (opts.closed) throw new Error("Channel closed");
			calls.push(`nack ${m.fields.deliveryTag} requeue=${requeue}`);
		},
	};
	const confirms = {
		publish: (_x: string, _k: string, _c: Buffer, options: Options.Publish, cb: (err: unknown) => void) => {
			published.push(options);
			confirmCallbacks.push(cb);
			return true;
		},
	};
	const refused: unknown[] = [];
	ackAfterConfirm(consumer, confirms, (err) => refused.push(err));
	return { consumer, calls, confirmCallbacks, published, refused };
}

describe("ackAfterConfirm", () => {
	it("acks a handled message at once when nothing was re-published", () => {
		const { consumer, calls } = channels();
		consumer.ack(message(1));
		expect(calls).toEqual(["ack 1"]);
	});

	it("acks the original of a re-published message only after the copy is confirmed, and the copy is persistent", async () => {
		const { consumer, calls, confirmCallbacks, published } = channels();
		expect(consumer.publish("", "billing.ns.user.created", Buffer.from("{}"), { headers: { "x-redelivered-count": 1 } })).toBe(true);
		consumer.ack(message(7));
		consumer.ack(message(8)); // another message, handled meanwhile: not held back
		await flush();
		expect(calls).toEqual(["ack 8"]);
		expect(published[0]).toMatchObject({ persistent: true, headers: { "x-redelivered-count": 1 } });
		confirmCallbacks[0]!(null);
		await flush();
		expect(calls).toEqual(["ack 8", "ack 7"]);
	});

	it("sends the original back to its queue when the copy is refused", async () => {
		const { consumer, calls, confirmCallbacks, refused } = channels();
		consumer.publish("dead-letter.user.created", "dead-letter.user.created", Buffer.from("{}"));
		consumer.ack(message(3));
		confirmCallbacks[0]!(new Error("nacked by the broker"));
		await flush();
		expect(calls).toEqual(["nack 3 requeue=true"]);
		expect(refused).toHaveLength(1);
	});

	it("leaves the original to the broker when the channel closed before the confirm (no unhandled error)", async () => {
		const unhandled: unknown[] = [];
		const onUnhandled = (err: unknown) => unhandled.push(err);
		process.on("unhandledRejection", onUnhandled);
		try {
			for (const outcome of [null, new Error("channel closed")]) {
				const { consumer, confirmCallbacks } = channels({ closed: true });
				consumer.publish("", "q", Buffer.from("{}"));
				consumer.ack(message(4));
				confirmCallbacks[0]!(outcome);
			}
			// A publish no ack follows (the library's sendToChannel), refused.
			const { consumer, confirmCallbacks } = channels();
			consumer.publish("", "q", Buffer.from("{}"));
			confirmCallbacks[0]!(new Error("nacked by the broker"));
			await flush();
			await flush();
		} finally {
			process.off("unhandledRejection", onUnhandled);
		}
		expect(unhandled).toEqual([]);
	});
});
