/**
 * The batching AMQP transporter without a broker: the framing (packets come back out of a batch
 * exactly as they went in; a batch whose frames run past its end is refused rather than read out
 * of bounds), and what it hands amqplib's channel, recorded: one message per queue per turn,
 * packets in the order they were sent even when a broadcast comes between, nothing left behind at
 * disconnect, and one packet per message for a node that did not announce batching.
 */
import { describe, expect, it } from "vitest";
import { BATCH_HEADER, BatchingAmqpTransporter, packBatch, unpackBatch } from "../../lib/batching-amqp-transporter.ts";

describe("packet batches", () => {
	it("unpacks the packets it packed, in order, including empty ones", () => {
		const packets = [Buffer.from('{"ver":"5","sender":"gw"}'), Buffer.alloc(0), Buffer.from("ü".repeat(300))];
		const batch = packBatch(packets);
		expect(batch.length).toBe(packets.reduce((sum, p) => sum + 4 + p.length, 0));
		expect(unpackBatch(batch).map((p) => p.toString())).toEqual(packets.map((p) => p.toString()));
	});

	it("refuses a frame that claims more bytes than are left", () => {
		const batch = packBatch([Buffer.from("abc"), Buffer.from("defgh")]);
		expect(() => unpackBatch(batch.subarray(0, batch.length - 1))).toThrow(/runs past the end/);
	});

	it("refuses a header cut short", () => {
		const batch = Buffer.concat([packBatch([Buffer.from("abc")]), Buffer.from([0, 0])]);
		expect(() => unpackBatch(batch)).toThrow(/truncated frame header/);
	});
});

/** What the transporter handed the channel, each message as the packets it carries. */
type Sent = { queue: string; packets: string[] };

function recordingTransporter(batchingNodes: string[]) {
	const sent: Sent[] = [];
	const record = (queue: string, content: Buffer, options?: { headers?: Record<string, unknown> }) =>
		sent.push({ queue, packets: options?.headers?.[BATCH_HEADER] ? unpackBatch(content).map(String) : [String(content)] });
	const transporter = new BatchingAmqpTransporter({});
	Object.assign(transporter, {
		channel: { sendToQueue: (queue: string, content: Buffer, options?: { headers?: Record<string, unknown> }) => record(queue, content, options), publish: (exchange: string, _key: string, content: Buffer) => record(exchange, content) },
		broker: {
			Promise,
			isMetricsEnabled: () => false,
			registry: { nodes: { get: (id: string) => ({ metadata: batchingNodes.includes(id) ? { amqpBatch: 1 } : {} }) } },
		},
	});
	const send = (queue: string, text: string, target: string | null) => transporter.send(queue, Buffer.from(text), { packet: { target } });
	return { transporter, sent, send };
}

const nextTurn = () => new Promise((r) => setImmediate(r));

describe("BatchingAmqpTransporter's sends", () => {
	it("sends what one turn addressed to a queue as one message, at the end of the turn", async () => {
		const { sent, send } = recordingTransporter(["b"]);
		for (const n of [1, 2, 3]) await send("MOL.REQ.b", `req${n}`, "b");
		await send("MOL.RES.b", "res1", "b");
		expect(sent).toEqual([]);
		await nextTurn();
		expect(sent).toEqual([
			{ queue: "MOL.REQ.b", packets: ["req1", "req2", "req3"] },
			{ queue: "MOL.RES.b", packets: ["res1"] },
		]);
	});

	it("sends what is pending before a broadcast, so packets leave in the order they were sent", async () => {
		const { sent, send } = recordingTransporter(["b"]);
		await send("MOL.RES.b", "answer", "b");
		await send("MOL.DISCONNECT", "goodbye", null);
		expect(sent).toEqual([
			{ queue: "MOL.RES.b", packets: ["answer"] },
			{ queue: "MOL.DISCONNECT", packets: ["goodbye"] },
		]);
	});

	it("sends one packet per message to a node that did not announce batching", async () => {
		const { sent, send } = recordingTransporter(["b"]);
		await send("MOL.REQ.old", "one", "old");
		await send("MOL.REQ.old", "two", "old");
		expect(sent).toEqual([
			{ queue: "MOL.REQ.old", packets: ["one"] },
			{ queue: "MOL.REQ.old", packets: ["two"] },
		]);
	});

	it("sends what is pending when it disconnects", async () => {
		const { transporter, sent, send } = recordingTransporter(["b"]);
		await send("MOL.RES.b", "last answer", "b");
		await transporter.disconnect();
		expect(sent).toEqual([{ queue: "MOL.RES.b", packets: ["last answer"] }]);
	});
});
