import { ServiceBroker } from "moleculer";
import type { Context } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logContext, RequestContextMiddleware } from "../../middlewares/request-context.ts";
import { newTraceId, traceIdFromTraceparent, traceIdOf, traceresponse } from "../../lib/trace-context.ts";

describe("W3C trace context", () => {
	it("takes the trace id of a valid traceparent only", () => {
		expect(traceIdFromTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
		// A later version may carry more fields; version 00 may not.
		expect(traceIdFromTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
		for (const bad of [
			"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
			"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
			"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
			"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
			"garbage",
			undefined,
		]) expect(traceIdFromTraceparent(bad)).toBeUndefined();
	});

	it("maps any request id to a stable trace id, keeping one that already is a trace id", () => {
		expect(traceIdOf("4bf92f3577b34da6a3ce929d0e0e4736")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
		expect(traceIdOf("req-12345678")).toMatch(/^[0-9a-f]{32}$/);
		expect(traceIdOf("req-12345678")).toBe(traceIdOf("req-12345678"));
		expect(traceIdOf("req-12345678")).not.toBe(traceIdOf("req-12345679"));
		expect(traceresponse("4bf92f3577b34da6a3ce929d0e0e4736")).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
	});

	it("makes new trace and span ids that never repeat, across refills of the random pool", () => {
		// 2,000 trace ids and 2,000 span ids draw 48 KB: the 8 KB pool refills several times.
		const traceIds = Array.from({ length: 2_000 }, () => newTraceId());
		const spanIds = Array.from({ length: 2_000 }, () => traceresponse(traceIds[0]!).split("-")[2]);
		for (const id of traceIds) expect(id).toMatch(/^[0-9a-f]{32}$/);
		expect(new Set([...traceIds, ...spanIds]).size).toBe(4_000);
	});
});

describe("traceId in the log context, across nodes", () => {
	// Two nodes on Moleculer's in-memory transporter: the request id travels with the call.
	const namespace = `trace-${process.pid}`;
	const caller = new ServiceBroker({ namespace, nodeID: "caller", transporter: "Fake", logger: false, middlewares: [RequestContextMiddleware] });
	const callee = new ServiceBroker({ namespace, nodeID: "callee", transporter: "Fake", logger: false, middlewares: [RequestContextMiddleware] });

	beforeAll(async () => {
		callee.createService({ name: "callee", actions: { context: () => logContext() } });
		caller.createService({
			name: "caller",
			actions: { relay: async (ctx: Context) => ({ here: logContext(), there: await ctx.call("callee.context") }) },
		});
		await Promise.all([caller.start(), callee.start()]);
		await caller.waitForServices(["callee"], 5_000);
	});
	afterAll(async () => {
		await Promise.all([caller.stop(), callee.stop()]);
	});

	it("logs the same traceId on both nodes: the request id itself when it is a trace id", async () => {
		const requestID = "4bf92f3577b34da6a3ce929d0e0e4736";
		const { here, there } = await caller.call<{ here: Record<string, string>; there: Record<string, string> }, object>("caller.relay", {}, { requestID });
		expect(here).toMatchObject({ requestId: requestID, traceId: requestID, handler: "caller.relay" });
		expect(there).toMatchObject({ requestId: requestID, traceId: requestID, handler: "callee.context" });
	});

	it("derives one traceId from any other request id, the same on every node", async () => {
		const { here, there } = await caller.call<{ here: Record<string, string>; there: Record<string, string> }, object>("caller.relay", {}, { requestID: "req-12345678" });
		expect(here.traceId).toBe(traceIdOf("req-12345678"));
		expect(there.traceId).toBe(here.traceId);
	});
});

describe("the request context around channel handlers", () => {
	it("passes every argument on: a channel handler gets the raw message too", async () => {
		type ChannelHandler = (ctx: Context, raw: unknown) => Promise<unknown>;
		const wrap = (RequestContextMiddleware as unknown as { localChannel: (h: ChannelHandler, c: { name: string }) => ChannelHandler }).localChannel;
		const raw = { properties: { headers: { "x-redelivered-count": 2 } } };
		const handler = wrap(async (_ctx, message) => ({ message, context: logContext() }), { name: "user.created" });
		const seen = (await handler({ requestID: "req-1", id: "ctx-1" } as unknown as Context, raw)) as { message: unknown; context: Record<string, string> };
		expect(seen.message).toBe(raw);
		expect(seen.context).toMatchObject({ requestId: "req-1", handler: "user.created" });
	});
});
