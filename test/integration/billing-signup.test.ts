/**
 * Sign-up to trial on the real servers: `user.created` through RabbitMQ to billing, however often
 * it arrives, and the caller-scoped subscription actions the gateway maps under /api/v1/billing.
 */
import { MongoClient } from "mongodb";
import type { Db } from "mongodb";
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../lib/caller.ts";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { lockKey, withDocumentLock } from "../../lib/events/mongo-outbox.ts";
import { AmqpEventPublisher } from "../../lib/events/publisher.ts";
import { eventually, infra, uniqueId } from "../support/infra.ts";
import { billingEnv, startBillingNode, tapEvents, TestClock } from "../support/stripe.ts";

const DAY = 86_400_000;

describe("billing: sign-up trial and subscription actions", () => {
	const namespace = uniqueId("billsignup");
	const clock = new TestClock();
	let node: ServiceBroker;
	let tap: Awaited<ReturnType<typeof tapEvents>>;
	let publisher: AmqpEventPublisher;
	let mongo: MongoClient;
	let db: Db;

	const as = (userId: string, permissions: string[] = []) => ({ meta: { caller: { userId, sessionId: "s", roles: [], permissions } satisfies Caller } });
	const handledUserCreated = () => (node.metrics.getMetric("events.consumed.total")?.get({ service: "billing", type: "user.created", result: "ok" })?.value as number | undefined) ?? 0;
	async function signUp(userId: string) {
		await publisher.publish([{ event: createCloudEvent({ type: "user.created", source: "/backplane/auth", subject: userId, data: { userId, email: `${userId}@example.com`, name: "Ada" } }) }]);
		return eventually(async () => (await db.collection("subscriptions").findOne({ userId })) ?? undefined, 10_000, "the trial");
	}

	beforeAll(async () => {
		const env = billingEnv(namespace);
		tap = await tapEvents(namespace, ["subscription.created", "subscription.updated", "subscription.canceled"]);
		node = await startBillingNode(env, clock);
		publisher = new AmqpEventPublisher(infra.rabbitmqUrl, namespace);
		mongo = new MongoClient(env.MONGO_URL!, { retryWrites: false });
		db = mongo.db();
	});

	afterAll(async () => {
		await node?.stop();
		await publisher?.close();
		await tap?.close();
		await db?.dropDatabase().catch(() => undefined);
		await mongo?.close();
	});

	it("creates one customer and one trial however often user.created arrives", async () => {
		const userId = uniqueId("u-");
		const data = { userId, email: `${userId}@example.com`, name: "Ada" };
		const first = createCloudEvent({ type: "user.created", source: "/backplane/auth", subject: userId, data });
		// The same event redelivered, and the same user announced again under a new event id.
		const republished = createCloudEvent({ type: "user.created", source: "/backplane/auth", subject: userId, data });
		const handledBefore = handledUserCreated();
		await publisher.publish([{ event: first }, { event: first }, { event: republished }]);

		await eventually(async () => handledUserCreated() >= handledBefore + 3, 10_000, "all three deliveries handled");
		expect(await db.collection("customers").countDocuments({ _id: userId as never })).toBe(1);
		const subs = await db.collection("subscriptions").find({ userId }).toArray();
		expect(subs).toHaveLength(1);
		expect(subs[0]).toMatchObject({ status: "trialing", planId: "pro", priceId: "pro-usd-month", currency: "usd", quantity: 1 });
		expect((subs[0]!.trialEnd as Date).getTime() - clock.now().getTime()).toBeLessThanOrEqual(14 * DAY);
		expect((subs[0]!.trialEnd as Date).getTime() - clock.now().getTime()).toBeGreaterThan(14 * DAY - 60_000);

		const created = await eventually(async () => tap.of("subscription.created", userId).length > 0 && tap.of("subscription.created", userId), 10_000, "subscription.created");
		await new Promise((r) => setTimeout(r, 1_000));
		expect(tap.of("subscription.created", userId)).toHaveLength(1);
		expect(created[0]).toMatchObject({ source: "/backplane/billing", subject: subs[0]!._id, data: { userId, planId: "pro", status: "trialing", cancelAtPeriodEnd: false } });
	});

	it("applies a new address that arrives before user.created once the customer exists, and ignores an older one", async () => {
		const userId = uniqueId("u-");
		const at = (ms: number) => new Date(Date.now() + ms);
		const contact = (type: string, email: string, time: Date) => createCloudEvent({ type, source: "/backplane/auth", subject: userId, time, data: { userId, email, name: "Ada", previousEmail: `${userId}@example.com`, changedAt: time.toISOString(), revertUrl: null } });
		// The move comes first (queues of different event types keep no order between them), an older update after it.
		await publisher.publish([{ event: contact("user.email_changed", `${userId}@moved.example.com`, at(2_000)) }, { event: contact("user.updated", `${userId}@example.com`, at(1_000)) }]);
		await eventually(async () => ((await db.collection("pending_contacts").findOne({ _id: userId as never })) ? true : undefined), 10_000, "the pending contact");
		await signUp(userId);
		const customer = await eventually(async () => {
			const c = await db.collection<{ email: string }>("customers").findOne({ _id: userId as never });
			return c?.email === `${userId}@moved.example.com` ? c : undefined;
		}, 10_000, "the moved address on the customer");
		expect(customer.email).toBe(`${userId}@moved.example.com`);
		expect(await db.collection("pending_contacts").findOne({ _id: userId as never })).toBeNull();
	});

	it("lists the seeded catalog to anyone, in integer minor units", async () => {
		const { plans } = await node.call<{ plans: { id: string; prices: { unitAmount?: number; currency: string }[] }[] }, object>("billing.listPlans", {});
		expect(plans.map((p) => p.id)).toEqual(["free", "starter", "pro", "scale"]);
		for (const price of plans.flatMap((p) => p.prices)) if (price.unitAmount !== undefined) expect(Number.isInteger(price.unitAmount)).toBe(true);
		const eur = await node.call<{ plans: { id: string; prices: { currency: string }[] }[] }, object>("billing.listPlans", { currency: "eur" });
		expect(eur.plans.flatMap((p) => p.prices.map((x) => x.currency))).toEqual(["eur", "eur", "eur"]);
	});

	it("shows a caller only their own subscription, and nobody's without a caller", async () => {
		const userId = uniqueId("u-");
		await signUp(userId);
		const mine = await node.call<{ status: string; planId: string; trialEnd: string }, object>("billing.getSubscription", {}, as(userId));
		expect(mine).toMatchObject({ status: "trialing", planId: "pro", billedByStripe: false });
		await expect(node.call("billing.getSubscription", {})).rejects.toMatchObject({ code: 401, type: "UNAUTHORIZED" });
		await expect(node.call("billing.getSubscription", {}, as(uniqueId("stranger-")))).rejects.toMatchObject({ code: 404 });
	});

	it("changes plan in the trial without charge, schedules and takes back a cancellation, then cancels", async () => {
		const userId = uniqueId("u-");
		const sub = await signUp(userId);
		const changed = await node.call<{ subscription: { planId: string; priceId: string; status: string }; proration: unknown }, object>("billing.changePlan", { planId: "starter" }, as(userId));
		expect(changed).toMatchObject({ subscription: { planId: "starter", priceId: "starter-usd-month", status: "trialing" }, proration: null });
		await expect(node.call("billing.changePlan", { planId: "nope" }, as(userId))).rejects.toMatchObject({ code: 404 });
		await expect(node.call("billing.changePlan", { planId: "Bad Id!" }, as(userId))).rejects.toMatchObject({ code: 422 });

		expect(await node.call("billing.cancel", {}, as(userId))).toMatchObject({ status: "trialing", cancelAtPeriodEnd: true });
		expect(await node.call("billing.resume", {}, as(userId))).toMatchObject({ status: "trialing", cancelAtPeriodEnd: false });
		await expect(node.call("billing.pause", {}, as(userId))).rejects.toMatchObject({ code: 409, type: "SUBSCRIPTION_STATE_CONFLICT" });
		expect(await node.call("billing.cancel", { atPeriodEnd: false }, as(userId))).toMatchObject({ status: "canceled", cancelAtPeriodEnd: false });
		await expect(node.call("billing.cancel", {}, as(userId))).rejects.toMatchObject({ code: 404 });

		const updates = await eventually(async () => tap.of("subscription.updated", userId).length === 3 && tap.of("subscription.updated", userId), 10_000, "three subscription.updated");
		expect(updates.map((e) => [e.data.planId, e.data.cancelAtPeriodEnd])).toEqual([["starter", false], ["starter", true], ["starter", false]]);
		await eventually(async () => tap.of("subscription.canceled", userId).length === 1, 10_000, "subscription.canceled");
		const stored = await db.collection("subscriptions").findOne({ _id: sub._id });
		expect(stored).toMatchObject({ status: "canceled", liveKey: `${userId}:ended:${String(sub._id)}`, pendingEvents: [] });
	});

	it("lets only valid plans in through the admin actions", async () => {
		const admin = as("admin-1", ["billing:admin"]);
		const plan = await node.call<{ id: string; prices: unknown[] }, object>("billing.upsertPlan", { id: "team", name: "Team", prices: [{ id: "team-usd-month", currency: "usd", interval: "month", model: "per_seat", unitAmount: 1_500 }] }, admin);
		expect(plan).toMatchObject({ id: "team", active: true, trialEndBehavior: "pause" });
		await expect(node.call("billing.upsertPlan", { id: "broken", name: "Broken", prices: [{ id: "b", currency: "usd", interval: "month", model: "flat", unitAmount: 9.99 }] }, admin)).rejects.toMatchObject({ code: 422 });
		expect(await node.call("billing.archivePlan", { id: "team" }, admin)).toMatchObject({ active: false });
		const { plans } = await node.call<{ plans: { id: string }[] }, object>("billing.listPlans", {});
		expect(plans.map((p) => p.id)).not.toContain("team");
	});

	it("records usage on a metered plan once per key, shows its cost, and pays invoices only when open", async () => {
		const userId = uniqueId("u-");
		await signUp(userId);
		await expect(node.call("billing.recordUsage", { quantity: 1, idempotencyKey: "k" }, as(userId))).rejects.toMatchObject({ code: 409, type: "PRICE_NOT_METERED" });
		// The scale plan is metered: nothing to pay up front, so the move needs no card.
		await node.call("billing.changePlan", { planId: "scale" }, as(userId));
		// Under the document lock, as every writer of an outbox aggregate: on FerretDB the relay's
		// concurrent removal of the plan change's event would otherwise write the old status back.
		const sub = await db.collection("subscriptions").findOne({ userId });
		await withDocumentLock(db, lockKey("subscriptions", sub!._id), () => db.collection("subscriptions").updateOne({ _id: sub!._id }, { $set: { status: "active" } }));
		expect(await node.call("billing.recordUsage", { quantity: "12", idempotencyKey: "batch-1" }, as(userId))).toMatchObject({ quantity: 12, duplicate: false });
		expect(await node.call("billing.recordUsage", { quantity: 12, idempotencyKey: "batch-1" }, as(userId))).toMatchObject({ duplicate: true });
		await expect(node.call("billing.recordUsage", { quantity: -1, idempotencyKey: "batch-2" }, as(userId))).rejects.toMatchObject({ code: 422 });
		await expect(node.call("billing.recordUsage", { quantity: 1, idempotencyKey: "not a key!" }, as(userId))).rejects.toMatchObject({ code: 422 });
		// 10 units in the first tier (flat 49.00), 2 at 2.00.
		expect(await node.call("billing.getUsage", {}, as(userId))).toMatchObject({ quantity: 12, amount: 5_300, currency: "usd" });
		await expect(node.call("billing.payInvoice", { id: "in_nope" }, as(userId))).rejects.toMatchObject({ code: 404 });
		await expect(node.call("billing.getUsage", {})).rejects.toMatchObject({ code: 401 });
	});
	it("starts the next sign-up on a default plan changed on this node, without waiting for the plan cache", async () => {
		const admin = as("admin-1", ["billing:admin"]);
		const pro = await db.collection("plans").findOne({ _id: "pro" as never }, { projection: { _id: 0, version: 0, createdAt: 0, updatedAt: 0 } });
		await signUp(uniqueId("u-")); // the default plan is now in the cache
		await node.call("billing.upsertPlan", { ...pro, id: "pro", trialDays: 3 }, admin);
		try {
			const sub = await signUp(uniqueId("u-"));
			expect((sub.trialEnd as Date).getTime() - clock.now().getTime()).toBeLessThanOrEqual(3 * DAY);
		} finally {
			await node.call("billing.upsertPlan", { ...pro, id: "pro" }, admin);
		}
	});
});
