/**
 * Stripe on the real servers: Checkout and the Customer Portal against stripe-mock, and signed
 * webhooks handed over as the gateway does ({ rawBody, signature }): a bad signature stores
 * nothing, a replay has no second effect, and events out of order end in the right state.
 */
import { MongoClient } from "mongodb";
import type { Db } from "mongodb";
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../lib/caller.ts";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { AmqpEventPublisher } from "../../lib/events/publisher.ts";
import { eventually, infra, uniqueId } from "../support/infra.ts";
import { billingEnv, signed, startBillingNode, stripeEvent, tapEvents, TestClock } from "../support/stripe.ts";

describe("billing and Stripe", () => {
	const namespace = uniqueId("billstripe");
	const clock = new TestClock();
	let node: ServiceBroker;
	let tap: Awaited<ReturnType<typeof tapEvents>>;
	let mongo: MongoClient;
	let db: Db;
	const userId = uniqueId("u-");
	const subscriptionId = `sub_${userId}`;
	const caller = { meta: { caller: { userId, sessionId: "s", roles: [], permissions: [] } satisfies Caller } };
	const t0 = clock.seconds();

	type Result = { received: boolean; outcome: string; eventId: string };
	const deliver = (event: ReturnType<typeof stripeEvent>, opts: { timestamp?: number; secret?: string; base64?: boolean } = {}) => {
		const body = signed(event, opts.timestamp ?? clock.seconds(), opts.secret);
		return node.call<Result, object>("billing.handleStripeWebhook", { ...body, rawBody: opts.base64 ? Buffer.from(body.rawBody).toString("base64") : body.rawBody });
	};
	const stripeSub = (status: string, extra: Record<string, unknown> = {}) => ({
		id: "sub_stripe_1", object: "subscription", status, customer: "cus_stripe_1", cancel_at_period_end: false, pause_collection: null, trial_end: null,
		metadata: { userId, subscriptionId, planId: "pro", priceId: "pro-usd-month" },
		items: { object: "list", data: [{ id: "si_1", object: "subscription_item", price: { id: "price_not_in_catalog" }, quantity: 2, current_period_start: t0, current_period_end: t0 + 30 * 86_400 }] },
		...extra,
	});
	const stripeInvoice = (status: string) => ({
		id: "in_stripe_1", object: "invoice", status, customer: "cus_stripe_1", currency: "usd", subtotal: 5_800, total: 6_960, amount_paid: status === "paid" ? 6_960 : 0,
		total_taxes: [{ amount: 1_160, taxable_amount: 5_800 }], hosted_invoice_url: "https://invoice.stripe.com/i/test", next_payment_attempt: t0 + 86_400,
		lines: { object: "list", data: [{ id: "il_1", description: "2 × Pro (at $29.00 / month)", amount: 5_800, quantity: 2, period: { start: t0, end: t0 + 30 * 86_400 }, pricing: { unit_amount_decimal: "2900" } }] },
		parent: { type: "subscription_details", subscription_details: { subscription: "sub_stripe_1", metadata: { userId, subscriptionId } } },
		status_transitions: { paid_at: status === "paid" ? t0 + 60 : null },
	});
	const subscription = () => db.collection("subscriptions").findOne({ _id: subscriptionId as never });

	beforeAll(async () => {
		const env = billingEnv(namespace);
		tap = await tapEvents(namespace, ["subscription.updated", "subscription.canceled", "invoice.created", "invoice.paid", "invoice.payment_failed", "credit_note.issued", "credit_note.refund_failed"]);
		node = await startBillingNode(env, clock);
		mongo = new MongoClient(env.MONGO_URL!, { retryWrites: false });
		db = mongo.db();
		const publisher = new AmqpEventPublisher(infra.rabbitmqUrl, namespace);
		await publisher.publish([{ event: createCloudEvent({ type: "user.created", source: "/backplane/auth", subject: userId, data: { userId, email: `${userId}@example.com`, name: "Grace" } }) }]);
		await publisher.close();
		await eventually(async () => (await subscription()) ?? undefined, 10_000, "the trial");
	});

	afterAll(async () => {
		await node?.stop();
		await tap?.close();
		await db?.dropDatabase().catch(() => undefined);
		await mongo?.close();
	});

	it("opens a Checkout Session and a portal link on stripe-mock, creating the Stripe customer once", async () => {
		const { url } = await node.call<{ url: string }, object>("billing.checkout", { planId: "pro", quantity: 2 }, caller);
		expect(url).toMatch(/^https:\/\/checkout\.stripe\.com\//);
		const customer = await db.collection("customers").findOne({ _id: userId as never });
		expect(customer?.stripeCustomerId).toMatch(/^cus_/);
		const portal = await node.call<{ url: string }, object>("billing.portal", {}, caller);
		expect(portal.url).toMatch(/^https:\/\//);
		expect((await db.collection("customers").findOne({ _id: userId as never }))?.stripeCustomerId).toBe(customer?.stripeCustomerId);
		await expect(node.call("billing.checkout", { planId: "scale" }, caller)).rejects.toMatchObject({ code: 409, type: "PRICE_NOT_IN_STRIPE" });
		await expect(node.call("billing.checkout", { planId: "free" }, caller)).rejects.toMatchObject({ code: 409, type: "NO_PAYMENT_NEEDED" });
	});

	it("refuses a bad or stale signature with a 400 and stores nothing", async () => {
		const event = stripeEvent("checkout.session.completed", { id: "cs_1", object: "checkout.session", mode: "subscription" }, t0);
		await expect(deliver(event, { secret: "whsec_wrong" })).rejects.toMatchObject({ code: 400, type: "STRIPE_SIGNATURE_INVALID" });
		await expect(deliver(event, { timestamp: clock.seconds() - 301 })).rejects.toMatchObject({ code: 400, type: "STRIPE_SIGNATURE_INVALID" });
		const tampered = signed(event, clock.seconds());
		await expect(node.call("billing.handleStripeWebhook", { ...tampered, rawBody: tampered.rawBody.replace("cs_1", "cs_2") })).rejects.toMatchObject({ code: 400 });
		expect(await db.collection("stripe_events").countDocuments({})).toBe(0);
		expect(await subscription()).toMatchObject({ version: 1, stripeSubscriptionId: null });
	});

	it("links the checkout once, however often Stripe delivers it", async () => {
		const session = { id: "cs_1", object: "checkout.session", mode: "subscription", client_reference_id: userId, customer: "cus_stripe_1", subscription: "sub_stripe_1", metadata: { userId, subscriptionId, planId: "pro", priceId: "pro-usd-month", quantity: "2" } };
		const event = stripeEvent("checkout.session.completed", session, t0 + 1);
		expect(await deliver(event, { base64: true })).toMatchObject({ received: true, outcome: "applied", eventId: event.id });
		expect(await deliver(event)).toMatchObject({ received: true, outcome: "duplicate" });
		expect(await deliver(event)).toMatchObject({ outcome: "duplicate" });
		expect(await subscription()).toMatchObject({ version: 2, stripeSubscriptionId: "sub_stripe_1", quantity: 2, status: "trialing" });
		expect(await db.collection("customers").findOne({ _id: userId as never })).toMatchObject({ paymentMethodOnFile: true });
		expect(await db.collection("stripe_events").findOne({ _id: event.id as never })).toMatchObject({ status: "applied", attempts: 3 });
		await eventually(async () => tap.of("subscription.updated", userId).length === 1, 10_000, "subscription.updated");
		await expect(node.call("billing.checkout", { planId: "pro" }, caller)).rejects.toMatchObject({ code: 409, type: "ALREADY_BILLED_BY_STRIPE" });
	});

	it("ends in the newest state when subscription events arrive out of order", async () => {
		const pastDue = stripeEvent("customer.subscription.updated", stripeSub("past_due"), t0 + 20);
		const olderActive = stripeEvent("customer.subscription.updated", stripeSub("active"), t0 + 10);
		expect(await deliver(pastDue)).toMatchObject({ outcome: "applied" });
		expect(await deliver(olderActive)).toMatchObject({ outcome: "stale" });
		expect(await subscription()).toMatchObject({ status: "past_due", stripeEventAt: t0 + 20, stripeItemId: "si_1" });

		expect(await deliver(stripeEvent("customer.subscription.updated", stripeSub("active"), t0 + 30))).toMatchObject({ outcome: "applied" });
		// Active and billed by Stripe: a plan change is prorated to the second and pushed to Stripe (stripe-mock).
		await expect(node.call("billing.changePlan", { planId: "starter" }, caller)).rejects.toMatchObject({ code: 409, type: "PRICE_NOT_IN_STRIPE" });
		await node.call("billing.upsertPlan", { id: "starter", name: "Starter", trialEndBehavior: "downgrade", downgradePlanId: "free", prices: [{ id: "starter-usd-month", currency: "usd", interval: "month", model: "flat", unitAmount: 900, stripePriceId: "price_starter1" }] }, { meta: { caller: { ...caller.meta.caller, permissions: ["billing:admin"] } } });
		const changed = await node.call<{ subscription: { planId: string; status: string }; proration: Record<string, unknown> }, object>("billing.changePlan", { planId: "starter" }, caller);
		expect(changed).toMatchObject({ subscription: { planId: "starter", status: "active" }, proration: { credit: 5_800, charge: 900, net: -4_900, currency: "usd" } });
		const deleted = stripeEvent("customer.subscription.deleted", stripeSub("canceled", { canceled_at: t0 + 40, ended_at: t0 + 40 }), t0 + 40);
		const lateUpdate = stripeEvent("customer.subscription.updated", stripeSub("active", { cancel_at_period_end: true }), t0 + 35);
		expect(await deliver(deleted)).toMatchObject({ outcome: "applied" });
		expect(await deliver(lateUpdate)).toMatchObject({ outcome: "stale" });
		expect(await subscription()).toMatchObject({ status: "canceled", endedAt: new Date((t0 + 40) * 1000), cancelAtPeriodEnd: false });
		const updates = await eventually(async () => tap.of("subscription.updated", userId).length === 4 && tap.of("subscription.updated", userId), 10_000, "three more updates");
		expect(updates.map((e) => [e.data.status, e.data.planId])).toEqual([["trialing", "pro"], ["past_due", "pro"], ["active", "pro"], ["active", "starter"]]);
		await eventually(async () => tap.of("subscription.canceled", userId).length === 1, 10_000, "subscription.canceled");
	});

	it("mirrors a Stripe invoice, numbered once and paid once, whatever the delivery order", async () => {
		const paid = stripeEvent("invoice.paid", stripeInvoice("paid"), t0 + 50);
		const finalized = stripeEvent("invoice.finalized", stripeInvoice("open"), t0 + 45);
		const failed = stripeEvent("invoice.payment_failed", stripeInvoice("open"), t0 + 46);
		for (const event of [paid, finalized, failed, paid]) await deliver(event);
		const invoice = await db.collection("invoices").findOne({ _id: "stripe_in_stripe_1" as never });
		expect(invoice).toMatchObject({ status: "paid", number: `${clock.now().getUTCFullYear()}-000001`, userId, subtotal: 5_800, tax: 1_160, total: 6_960, amountPaid: 6_960, amountDue: 0, paymentFailures: [] });
		expect(invoice!.lines).toEqual([expect.objectContaining({ quantity: 2, unitAmount: 2_900, amount: 5_800 })]);
		// Revenue counted once, however often Stripe said it was paid.
		expect(node.metrics.getMetric("billing.revenue.minor_units.total")?.get({ currency: "usd" })?.value).toBe(6_960);
		await eventually(async () => tap.of("invoice.paid", userId).length === 1 && tap.of("invoice.created", userId).length === 1, 10_000, "invoice events");
		await new Promise((r) => setTimeout(r, 500));
		expect(tap.of("invoice.paid", userId)).toHaveLength(1);
		expect(tap.of("invoice.created", userId)).toHaveLength(1);
		expect(tap.of("invoice.payment_failed", userId)).toHaveLength(0);
		expect(tap.of("invoice.paid", userId)[0]!.data).toMatchObject({ number: invoice!.number as string, total: 6_960, currency: "usd", status: "paid" });
	});

	it("reports a failed payment on an open invoice once per Stripe event", async () => {
		const open = { ...stripeInvoice("open"), id: "in_stripe_2" };
		const failed = stripeEvent("invoice.payment_failed", open, t0 + 70);
		await deliver(failed);
		await deliver(failed);
		await deliver(stripeEvent("invoice.payment_failed", open, t0 + 80));
		await eventually(async () => tap.of("invoice.payment_failed", userId).length === 2, 10_000, "two failures");
		expect(tap.of("invoice.payment_failed", userId)[0]!.data).toMatchObject({ status: "open", nextPaymentAttempt: new Date((t0 + 86_400) * 1000).toISOString() });
	});

	it("acknowledges event types it does not handle, and remembers them", async () => {
		const event = stripeEvent("customer.discount.created", { id: "di_1", object: "discount" }, t0 + 90);
		expect(await deliver(event)).toMatchObject({ received: true, outcome: "ignored" });
		expect(await db.collection("stripe_events").findOne({ _id: event.id as never })).toMatchObject({ status: "ignored", type: "customer.discount.created" });
	});

	it("records a refund made in Stripe's dashboard on one of our invoices as an issued credit note, once; skips the refunds our notes made", async () => {
		const invoiceId = `in_ours_${userId}`;
		const paymentIntent = "pi_dashboard_1";
		await db.collection("invoices").insertOne({ _id: invoiceId as never, number: "2026-000900", numberKey: "2026-000900", userId, status: "paid", currency: "usd", amountPaid: 2_000, stripeInvoiceId: null, stripePaymentIntentId: paymentIntent, createdAt: clock.now() });
		const refund = (id: string, metadata: Record<string, string> = {}, status = "succeeded", type = "refund.created") => stripeEvent(type, { id, object: "refund", amount: 500, currency: "usd", payment_intent: paymentIntent, status, reason: "requested_by_customer", metadata }, clock.seconds());
		// Pending at first (the bank has not settled it): recorded only once it succeeded.
		expect(await deliver(refund("re_dashboard_1", {}, "pending"))).toMatchObject({ outcome: "ignored" });
		expect(await deliver(refund("re_dashboard_1", {}, "succeeded", "refund.updated"))).toMatchObject({ outcome: "applied" });
		// A redelivery under a new event id (Stripe retries with the same one; a replay tool may not) changes nothing.
		expect(await deliver(refund("re_dashboard_1"))).toMatchObject({ outcome: "ignored" });
		expect(await deliver(refund("re_ours_1", { creditNoteId: "cn_x" }))).toMatchObject({ outcome: "ignored" });
		const notes = await db.collection("credit_notes").find({ invoiceId }).toArray();
		expect(notes).toEqual([expect.objectContaining({ status: "issued", amount: 500, refundId: "re_dashboard_1", issuedBy: "stripe", number: expect.stringMatching(/^CN-\d{4}-\d{6}$/) as unknown })]);
		// The user is told once (the event relayed by the node's outbox).
		await eventually(async () => tap.of("credit_note.issued", userId).length === 1, 10_000, "credit_note.issued");
		await new Promise((r) => setTimeout(r, 500));
		expect(tap.of("credit_note.issued", userId)).toHaveLength(1);

		// Days later the bank sends that refund back: Stripe says so twice (refund.updated, refund.failed).
		const failed = (type: string) => stripeEvent(type, { id: "re_dashboard_1", object: "refund", amount: 500, currency: "usd", payment_intent: paymentIntent, status: "failed", failure_reason: "lost_or_stolen_card", metadata: {} }, clock.seconds());
		expect(await deliver(failed("refund.updated"))).toMatchObject({ outcome: "applied" });
		expect(await deliver(failed("refund.failed"))).toMatchObject({ outcome: "ignored" });
		expect(await db.collection("credit_notes").findOne({ refundId: "re_dashboard_1" })).toMatchObject({ status: "reversed", failure: "lost_or_stolen_card" });
		await eventually(async () => tap.of("credit_note.refund_failed", userId).length === 1, 10_000, "credit_note.refund_failed");
		expect(tap.of("credit_note.refund_failed", userId)[0]!.data).toMatchObject({ invoiceId, amount: 500, failureReason: "lost_or_stolen_card" });
		// The failure overtakes the success (Stripe still retrying a refund.created we failed to take): never recorded.
		expect(await deliver(stripeEvent("refund.failed", { id: "re_dashboard_3", object: "refund", amount: 300, payment_intent: paymentIntent, status: "failed", failure_reason: "declined", metadata: {} }, clock.seconds()))).toMatchObject({ outcome: "applied" });
		expect(await deliver(refund("re_dashboard_3"))).toMatchObject({ outcome: "ignored" });
		expect(await db.collection("credit_notes").countDocuments({ refundId: "re_dashboard_3" })).toBe(0);
		// A failure reason that is not one of Stripe's codes is not stored, nor mailed, as given.
		expect(await deliver(refund("re_dashboard_2"))).toMatchObject({ outcome: "applied" });
		const odd = stripeEvent("refund.failed", { id: "re_dashboard_2", object: "refund", amount: 500, payment_intent: paymentIntent, status: "failed", failure_reason: "<b>call us</b>", metadata: {} }, clock.seconds());
		expect(await deliver(odd)).toMatchObject({ outcome: "applied" });
		expect(await db.collection("credit_notes").findOne({ refundId: "re_dashboard_2" })).toMatchObject({ status: "reversed", failure: "failed" });
	});
});
