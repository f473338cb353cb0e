/**
 * W3C Trace Context at the edge: a request with a `traceparent` joins that trace (its id is the
 * request id every node logs, and problem documents carry it); the `traceresponse` header tells
 * the client which trace its request belongs to, also when it sent none.
 */
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { traceIdOf } from "../../lib/trace-context.ts";
import { deleteNamespaceObjects } from "../support/chaos.ts";
import { gatewayUrl, startNode, testEnv, uniqueId } from "../support/infra.ts";

describe("gateway trace context", () => {
	const namespace = uniqueId("trace");
	let gateway: ServiceBroker;

	beforeAll(async () => {
		gateway = await startNode(["gateway"], testEnv(namespace));
	});
	afterAll(async () => {
		await gateway?.stop();
		await deleteNamespaceObjects(namespace);
	});

	const get = (path: string, headers: Record<string, string> = {}) => fetch(`${gatewayUrl(gateway)}${path}`, { headers, signal: AbortSignal.timeout(5_000) });

	it("joins the caller's trace and says so in traceresponse and in the problem's requestId", async () => {
		const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
		const res = await get("/api/v1/no-such-route", { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
		expect(res.status).toBe(404);
		expect(res.headers.get("traceresponse")).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
		expect(((await res.json()) as { requestId: string }).requestId).toBe(traceId);
	});

	it("starts a new trace without traceparent, and maps a client's X-Request-Id to its trace id", async () => {
		const fresh = await get("/readyz");
		expect(fresh.headers.get("traceresponse")).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
		const named = await get("/readyz", { "x-request-id": "req-12345678" });
		expect(named.headers.get("traceresponse")?.split("-")[1]).toBe(traceIdOf("req-12345678"));
	});
});
