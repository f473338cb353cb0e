/**
 * amqplib's multiplexer, with coalesceAmqpWrites applied, hands the socket every queued frame
 * while it is corked, so they leave in one writev; without the patch each frame is its own write.
 */
import { createRequire } from "node:module";
import { PassThrough, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { coalesceAmqpWrites } from "../../lib/amqp-writes.ts";

const { Mux } = createRequire(import.meta.url)("amqplib/lib/mux.js") as { Mux: new (out: Writable) => { pipeFrom(readable: PassThrough): void } };

/** A socket stand-in that records each write call it receives from the stream machinery. */
function recordingSocket() {
	const calls: number[] = [];
	const out = new Writable({
		highWaterMark: 1 << 20,
		write(chunk: Buffer, _enc, done) {
			calls.push(1);
			done();
		},
		writev(chunks, done) {
			calls.push(chunks.length);
			done();
		},
	});
	return { out, calls };
}

async function drainThreeFrames(): Promise<number[]> {
	const { out, calls } = recordingSocket();
	const mux = new Mux(out);
	const channel = new PassThrough({ objectMode: true });
	mux.pipeFrom(channel);
	for (const frame of ["publish-1", "publish-2", "ack-1"]) channel.write(Buffer.from(frame));
	await new Promise((r) => setTimeout(r, 20));
	return calls;
}

describe("coalesceAmqpWrites", () => {
	it("sends the frames amqplib queued in one tick as one writev", async () => {
		expect(await drainThreeFrames()).toEqual([1, 1, 1]); // amqplib as published: one write each
		expect(coalesceAmqpWrites()).toBe(true);
		expect(coalesceAmqpWrites()).toBe(true); // once per process, however often it is called
		expect(await drainThreeFrames()).toEqual([3]);
	});
});
