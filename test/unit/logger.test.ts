import { describe, expect, it } from "vitest";
import { toPinoCall } from "../../lib/logger.ts";

describe("toPinoCall", () => {
	it("joins words and keeps objects and errors as fields", () => {
		const err = new Error("boom");
		expect(toPinoCall(["Connected to", "host", 5672, { nodeID: "n1" }, err])).toEqual([{ nodeID: "n1", err }, "Connected to host 5672"]);
	});
});
