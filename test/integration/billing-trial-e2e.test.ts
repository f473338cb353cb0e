/**
 * The trial, end to end through the gateway: sign-up creates a trial subscription that the user
 * sees at /api/v1/billing/subscription; moving the (injected) clock makes two billing nodes emit
 * `subscription.trial_will_end` and `trial.ended` once each, and the user gets the e-mails.
 */
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteMessages, messagesTo } from "../support/mailpit.ts";
import { createTestDatabase, eventually, gatewayUrl, startNode, uniqueId, waitForCluster } from "../support/infra.ts";
import { billingEnv, startBillingNode, tapEvents, TestClock } from "../support/stripe.ts";

const DAY = 86_400_000;

describe("trial lifecycle through the gateway", () => {
	const namespace = uniqueId("trial");
	const clock = new TestClock();
	const nodes: ServiceBroker[] = [];
	let base: string;
	let tap: Awaited<ReturnType<typeof tapEvents>>;
	const mails: string[] = [];

	beforeAll(async () => {
		const env = billingEnv(namespace, { DATABASE_URL: await createTestDatabase(), BILLING_TRIAL_DAYS: "14" });
		tap = await tapEvents(namespace, ["subscription.created", "subscription.trial_will_end", "trial.ended"]);
		nodes.push(await startNode(["auth"], env), await startNode(["notification"], env));
		nodes.push(await startBillingNode(env, clock), await startBillingNode(env, clock));
		const gateway = await startNode(["gateway"], env);
		nodes.push(gateway);
		await waitForCluster(nodes);
		base = gatewayUrl(gateway);
	});
	afterAll(async () => {
		await tap?.close();
		await Promise.all(nodes.map((n) => n.stop()));
		await deleteMessages([...new Set(mails)]);
	});

	it("stores the trial at sign-up and ends it once, with its e-mails, when time passes", async () => {
		const email = `${uniqueId("trial")}@example.com`;
		const password = "correct horse battery staple 42";
		const json = { "content-type": "application/json" };
		const reg = await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: json, body: JSON.stringify({ email, password }) });
		expect(reg.status).toBe(201);
		const userId = ((await reg.json()) as { user: { id: string } }).user.id;
		const { accessToken } = (await (await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: json, body: JSON.stringify({ email, password }) })).json()) as { accessToken: string };
		const subscription = () => fetch(`${base}/api/v1/billing/subscription`, { headers: { authorization: `Bearer ${accessToken}` } });

		const trial = await eventually(async () => {
			const res = await subscription();
			return res.status === 200 ? ((await res.json()) as { status: string; trialEnd: string; planId: string }) : undefined;
		}, 10_000, "the trial subscription");
		expect(trial.status).toBe("trialing");
		expect(Date.parse(trial.trialEnd) - clock.now().getTime()).toBeGreaterThan(13 * DAY);

		clock.advance(11 * DAY + 60_000); // inside the last three days
		await eventually(async () => tap.of("subscription.trial_will_end", userId).length > 0 || undefined, 10_000, "trial_will_end");
		clock.advance(3 * DAY + 60_000); // past the end
		await eventually(async () => tap.of("trial.ended", userId).length > 0 || undefined, 10_000, "trial.ended");
		await new Promise((r) => setTimeout(r, 1_000)); // a few more sweeps on both nodes
		expect(tap.of("subscription.created", userId)).toHaveLength(1);
		expect(tap.of("subscription.trial_will_end", userId)).toHaveLength(1);
		expect(tap.of("trial.ended", userId)).toHaveLength(1);

		const after = (await (await subscription()).json()) as { status: string };
		expect(after.status).not.toBe("trialing");
		const received = await eventually(async () => {
			const list = await messagesTo(email);
			return list.some((m) => /trial/i.test(m.Subject) && /end/i.test(m.Subject)) && list.length >= 3 ? list : undefined;
		}, 15_000, "the welcome and trial e-mails");
		mails.push(...received.map((m) => m.ID));
	});
});
