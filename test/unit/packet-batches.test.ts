/**
 * The framing of the batching AMQP transporter: packets come back out of a batch exactly as they
 * went in, and a batch whose frames run past its end is refused rather than read out of bounds.
 */
import { describe, expect, it } from "vitest";
import { packBatch, unpackBatch } from "../../lib/batching-amqp-transporter.ts";

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
