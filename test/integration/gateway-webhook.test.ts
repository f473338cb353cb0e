/**
 * Stripe webhooks through the gateway: the signature is checked against the exact bytes Stripe
 * sent (so the gateway must pass them on untouched), a bad signature is refused and stores
 * nothing, and a replayed event has no second effect.
 */
import Stripe from "stripe";
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayUrl, startNode, uniqueId } from "../support/infra.ts";
import { billingEnv, stripeEvent, WEBHOOK_SECRET } from "../support/stripe.ts";

describe("Stripe webhooks through the gateway", () => {
	const nodes: ServiceBroker[] = [];
	let url: string;

	beforeAll(async () => {
		const env = billingEnv(uniqueId("hook"));
		nodes.push(await startNode(["billing"], env));
		const gateway = await startNode(["gateway"], env);
		nodes.push(gateway);
		await gateway.waitForServices(["billing"], 15_000);
		url = `${gatewayUrl(gateway)}/api/v1/billing/webhooks/stripe`;
	});
	afterAll(async () => {
		await Promise.all(nodes.map((n) => n.stop()));
	});

	// Pretty-printed with odd spacing: re-serialising the JSON would break the signature.
	const body = (type: string) => JSON.stringify(stripeEvent(type, { id: `cus_${uniqueId("")}`, object: "customer" }, Math.floor(Date.now() / 1000)), null, 3) + "\n";
	const sign = (payload: string, secret = WEBHOOK_SECRET) => Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: Math.floor(Date.now() / 1000) });
	const send = (payload: string, signature: string) => fetch(url, { method: "POST", headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": signature }, body: payload });

	it("accepts a correctly signed event byte for byte, once", async () => {
		const payload = body("customer.created");
		const first = await send(payload, sign(payload));
		expect(first.status).toBe(200);
		const result = (await first.json()) as { outcome: string; type: string };
		expect(result.type).toBe("customer.created");
		expect(result.outcome).not.toBe("duplicate");
		const again = await send(payload, sign(payload));
		expect(again.status).toBe(200);
		expect(((await again.json()) as { outcome: string }).outcome).toBe("duplicate");
	});

	it("refuses a bad signature with 400 problem+json", async () => {
		const payload = body("customer.created");
		for (const signature of [sign(payload, "whsec_someone_else"), sign(payload.replace("customer", "customer ")), "t=1,v1=deadbeef"]) {
			const res = await send(payload, signature);
			expect(res.status).toBe(400);
			expect(res.headers.get("content-type")).toContain("application/problem+json");
		}
		// Nothing was stored for it: the same event with a good signature is new, not a duplicate.
		const ok = await send(payload, sign(payload));
		expect(((await ok.json()) as { outcome: string }).outcome).not.toBe("duplicate");
	});
});
