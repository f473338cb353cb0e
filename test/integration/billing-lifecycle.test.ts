/**
 * The lifecycle scheduler with two billing nodes sharing one moved clock: trial_will_end three
 * days before the end and trial.ended at the end, each exactly once, then the conversion the
 * payment method or the plan decides; and a scheduled cancellation taking effect at period end.
 */
import { MongoClient } from "mongodb";
import type { Db } from "mongodb";
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { AmqpEventPublisher } from "../../lib/events/publisher.ts";
import { ensureIndexes } from "../../services/billing/store.ts";
import { runLifecycle } from "../../services/billing/lifecycle.ts";
import { getPlan, seedPlans } from "../../services/billing/plans.ts";
import { startSignupSubscription } from "../../services/billing/subscriptions.ts";
import { eventually, infra, testEnv, uniqueId } from "../support/infra.ts";
import { notPushedDown, recordFilters } from "../support/pushdown.ts";
import { billingEnv, startBillingNode, startCardNetwork, tapEvents, TestClock } from "../support/stripe.ts";

const DAY = 86_400_000;
const SETTLE_MS = 1_500; // 15 sweeps of each node at 100 ms: time enough for a duplicate to show

describe("billing lifecycle across two nodes", () => {
	const namespace = uniqueId("billlife");
	const clock = new TestClock(Date.parse("2026-05-01T12:00:00Z"));
	const nodes: ServiceBroker[] = [];
	let tap: Awaited<ReturnType<typeof tapEvents>>;
	let publisher: AmqpEventPublisher;
	let mongo: MongoClient;
	let db: Db;
	let network: Awaited<ReturnType<typeof startCardNetwork>>;
	const withCard = uniqueId("card-");
	const withoutCard = uniqueId("nocard-");

	beforeAll(async () => {
		network = await startCardNetwork();
		const env = billingEnv(namespace, { STRIPE_API_BASE: network.url });
		tap = await tapEvents(namespace, ["subscription.created", "subscription.trial_will_end", "trial.ended", "subscription.updated", "subscription.canceled"]);
		nodes.push(await startBillingNode(env, clock, "billing-a"), await startBillingNode(env, clock, "billing-b"));
		publisher = new AmqpEventPublisher(infra.rabbitmqUrl, namespace);
		mongo = new MongoClient(env.MONGO_URL!, { retryWrites: false });
		db = mongo.db();
		await publisher.publish([withCard, withoutCard].map((userId) => ({ event: createCloudEvent({ type: "user.created", source: "/backplane/auth", subject: userId, data: { userId, email: `${userId}@example.com`, name: null } }) })));
		await eventually(async () => (await db.collection("subscriptions").countDocuments({ userId: { $in: [withCard, withoutCard] } })) === 2, 10_000, "two trials");
		// As a completed Checkout would (covered by the webhook tests).
		await db.collection("customers").updateOne({ _id: withCard as never }, { $set: { paymentMethodOnFile: true, stripeCustomerId: "cus_123" } });
	});

	afterAll(async () => {
		await Promise.all(nodes.map((n) => n.stop()));
		await publisher?.close();
		await tap?.close();
		await db?.dropDatabase().catch(() => undefined);
		await mongo?.close();
		await network?.close();
	});

	const ids = (type: string, userId: string) => new Set(tap.of(type, userId).map((e) => e.id));

	it("says nothing while the trial's end is more than three days away", async () => {
		clock.advance(10 * DAY);
		await new Promise((r) => setTimeout(r, 600));
		expect(tap.of("subscription.trial_will_end")).toHaveLength(0);
	});

	it("sends subscription.trial_will_end once per trial, three days ahead, though both nodes sweep", async () => {
		clock.advance(1 * DAY + 60_000); // 2 days 23 h 59 min before the end
		await eventually(async () => ids("subscription.trial_will_end", withCard).size === 1 && ids("subscription.trial_will_end", withoutCard).size === 1, 10_000, "trial_will_end for both");
		await new Promise((r) => setTimeout(r, SETTLE_MS));
		expect(tap.of("subscription.trial_will_end")).toHaveLength(2);
		expect(tap.of("trial.ended")).toHaveLength(0);
		const sub = await db.collection("subscriptions").findOne({ userId: withCard });
		expect(sub?.trialWillEndNotifiedAt).toEqual(clock.now());
	});

	it("ends each trial once: active with a card, downgraded to free as the plan says without", async () => {
		clock.advance(3 * DAY);
		await eventually(async () => ids("trial.ended", withCard).size === 1 && ids("trial.ended", withoutCard).size === 1, 10_000, "trial.ended for both");
		await new Promise((r) => setTimeout(r, SETTLE_MS));
		expect(tap.of("trial.ended")).toHaveLength(2);
		expect(tap.of("subscription.trial_will_end")).toHaveLength(2);
		expect(tap.of("trial.ended", withCard)[0]!.data).toMatchObject({ status: "active", planId: "pro" });
		expect(tap.of("trial.ended", withoutCard)[0]!.data).toMatchObject({ status: "active", planId: "free" });

		const paying = await db.collection("subscriptions").findOne({ userId: withCard });
		expect(paying).toMatchObject({ status: "active", planId: "pro", currentPeriodStart: paying!.trialEnd as Date, pendingEvents: [] });
		expect((paying!.trialEnd as Date).toISOString()).toBe("2026-05-15T12:00:00.000Z");
		expect((paying!.currentPeriodEnd as Date).toISOString()).toBe("2026-06-15T12:00:00.000Z");
		expect(await db.collection("subscriptions").findOne({ userId: withoutCard })).toMatchObject({ status: "active", planId: "free", priceId: "free-usd-month" });
		// Every change went through exactly one version step per event, on whichever node won.
		expect(paying!.version).toBe(3);
		// The first paid period is invoiced and charged once, though both nodes swept.
		const first = await eventually(async () => (await db.collection<{ _id: string }>("invoices").findOne({ userId: withCard, status: "paid" })) ?? undefined, 10_000, "the first period's invoice paid");
		expect(first).toMatchObject({ number: "2026-000001", total: 2_900, paymentAttempts: 1 });
		expect(network.charges.filter((c) => c.idempotencyKey.startsWith(`invoice-payment:${first._id}:`))).toHaveLength(1);
	});

	it("prorates a mid-period upgrade of a subscription billed here onto the next invoice", async () => {
		const caller = { meta: { caller: { userId: withCard, sessionId: "s", roles: [], permissions: [] } } };
		// One minute into a 31-day period: 2,678,340 of 2,678,400 seconds remain.
		const { proration } = await nodes[1]!.call<{ proration: Record<string, number> }, object>("billing.changePlan", { planId: "pro", quantity: 3 }, caller);
		expect(proration).toMatchObject({ credit: 2_900, charge: 8_700, net: 5_800 });
		const sub = await db.collection("subscriptions").findOne({ userId: withCard });
		expect(sub).toMatchObject({ quantity: 3, planId: "pro" });
		expect((sub!.pendingItems as { amount: number }[]).map((i) => i.amount)).toEqual([-2_900, 8_700]);
	});

	it("cancels at the end of the period what the user scheduled, once", async () => {
		const caller = { meta: { caller: { userId: withoutCard, sessionId: "s", roles: [], permissions: [] } } };
		await nodes[0]!.call("billing.cancel", { atPeriodEnd: true }, caller);
		clock.advance(31 * DAY);
		await eventually(async () => ids("subscription.canceled", withoutCard).size === 1, 10_000, "subscription.canceled");
		await new Promise((r) => setTimeout(r, SETTLE_MS));
		expect(tap.of("subscription.canceled", withoutCard)).toHaveLength(1);
		expect(await db.collection("subscriptions").findOne({ userId: withoutCard })).toMatchObject({ status: "canceled", cancelAtPeriodEnd: true });
		// The paying subscription renewed instead: the next period for three seats plus the prorations.
		const invoice = await eventually(async () => (await db.collection("invoices").findOne({ userId: withCard, number: "2026-000002", status: "paid" })) ?? undefined, 10_000, "the renewal invoice, paid");
		expect(invoice).toMatchObject({ currency: "usd", subtotal: 14_500, total: 14_500 });
		expect((invoice.lines as { amount: number; proration: boolean }[]).map((l) => [l.amount, l.proration])).toEqual([[8_700, false], [-2_900, true], [8_700, true]]);
		expect(await db.collection("subscriptions").findOne({ userId: withCard })).toMatchObject({ pendingItems: [], status: "active" });
		await eventually(async () => tap.of("subscription.updated", withCard).length === 2, 10_000, "the plan change and the trial end");
	});
});

describe("lifecycle sweeps racing on one database", () => {
	it("change each subscription once however many run at the same moment", async () => {
		const mongo = new MongoClient(testEnv(uniqueId("billrace")).MONGO_URL!, { retryWrites: false });
		const db = mongo.db();
		try {
			const start = new Date("2026-05-01T12:00:00Z");
			await ensureIndexes(db);
			await seedPlans(db, start);
			const plan = await getPlan(db, "pro");
			const users = Array.from({ length: 8 }, (_, i) => `racer-${i}`);
			for (const userId of users) await startSignupSubscription(db, { userId, plan, trialDays: 14 }, { now: start });
			const collection = { dunning: { retryDays: [], finalStatus: "canceled" as const }, charge: () => Promise.reject(new Error("nothing here is charged: the trials end on the free plan")) };
			const sweep = (now: Date) => runLifecycle(db, { now, batchSize: 100, seller: { name: "Seller" }, taxRates: [], collection });
			const warned = await Promise.all(Array.from({ length: 6 }, () => sweep(new Date(start.getTime() + 12 * DAY))));
			expect(warned.reduce((n, r) => n + r.trialWillEnd, 0)).toBe(users.length);
			const ended = await Promise.all(Array.from({ length: 6 }, () => sweep(new Date(start.getTime() + 15 * DAY))));
			expect(ended.reduce((n, r) => n + r.trialEnded, 0)).toBe(users.length);
			for (const sub of await db.collection("subscriptions").find({}).toArray()) {
				const types = (sub.pendingEvents as { event: { type: string } }[]).map((e) => e.event.type);
				expect(types).toEqual(["subscription.created", "subscription.trial_will_end", "trial.ended", "subscription.updated"]);
				expect(sub).toMatchObject({ version: 3, status: "active", planId: "free" });
			}
		} finally {
			await db.dropDatabase().catch(() => undefined);
			await mongo.close();
		}
	});
});

describe("lifecycle sweep queries", () => {
	// Every billing node sweeps every BILLING_SWEEP_INTERVAL_MS: a filter FerretDB cannot hand to
	// PostgreSQL reads every subscription or invoice each time (test/support/pushdown.ts).
	it("are all filters the MongoDB-wire server can hand to its database (FerretDB pushdown)", async () => {
		const url = testEnv(uniqueId("billsweep")).MONGO_URL!;
		const mongo = new MongoClient(url, { retryWrites: false });
		const db = mongo.db();
		try {
			const start = new Date("2026-05-01T12:00:00Z");
			await ensureIndexes(db);
			await seedPlans(db, start);
			await startSignupSubscription(db, { userId: "sweeper", plan: await getPlan(db, "pro"), trialDays: 14 }, { now: start });
			const collection = { dunning: { retryDays: [], finalStatus: "canceled" as const }, charge: () => Promise.reject(new Error("nothing is charged here")) };
			const filters = await recordFilters(url, db.databaseName, async (mdb) => {
				await runLifecycle(mdb, { now: new Date(start.getTime() + 40 * DAY), batchSize: 100, seller: { name: "Seller" }, taxRates: [], collection });
			});
			const sweepQueries = filters.filter((f) => f.command === "find" && ["subscriptions", "invoices"].includes(f.collection));
			expect(sweepQueries.length).toBeGreaterThanOrEqual(5);
			expect(await notPushedDown(db, sweepQueries)).toEqual([]);
		} finally {
			await db.dropDatabase().catch(() => undefined);
			await mongo.close();
		}
	});
});
