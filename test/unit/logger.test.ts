import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { consoleStyle, toPinoCall } from "../../lib/logger.ts";

describe("toPinoCall", () => {
	it("joins words and keeps objects and errors as fields", () => {
		const err = new Error("boom");
		expect(toPinoCall(["Connected to", "host", 5672, { nodeID: "n1" }, err])).toEqual([{ nodeID: "n1", err }, "Connected to host 5672"]);
	});
});

describe("consoleStyle", () => {
	it("writes enabled levels as pino lines and does not even read the arguments of disabled ones", () => {
		const lines: Record<string, unknown>[] = [];
		const sink = new Writable({ write: (chunk, _enc, done) => void (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), done()) });
		const log = consoleStyle(pino({ level: "info" }, sink));
		log.info("Connected to", "host", { nodeID: "n1" });
		const watched = { get nodeID() { throw new Error("a disabled level read its arguments"); } };
		log.debug("Call action locally.", watched);
		return new Promise<void>((resolve) => setImmediate(() => {
			expect(lines).toHaveLength(1);
			expect(lines[0]).toMatchObject({ level: 30, nodeID: "n1", msg: "Connected to host" });
			resolve();
		}));
	});
});
