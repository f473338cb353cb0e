/**
 * Collecting the invoices billing issues itself, dunning, and metered usage, on the real
 * MongoDB-wire server through the real Stripe SDK: charges go to a card network in front of
 * stripe-mock that succeeds or declines as the test scripts (stripe-mock itself answers every
 * PaymentIntent with `requires_payment_method`, which is checked too). Time is moved by hand:
 * each sweep is what one scheduler pass of a billing node does at that moment.
 */
import type { Db } from "mongodb";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { DunningPolicy } from "../../services/billing/collection.ts";
import { payInvoiceNow } from "../../services/billing/collection.ts";
import { ensureCustomer } from "../../services/billing/customers.ts";
import { invoices } from "../../services/billing/invoices.ts";
import { renewIfDue, runLifecycle } from "../../services/billing/lifecycle.ts";
import { getPlan } from "../../services/billing/plans.ts";
import { chargeInvoice, createStripeClient } from "../../services/billing/stripe.ts";
import { pauseSubscription, resumeSubscription, startSignupSubscription, subscriptions } from "../../services/billing/subscriptions.ts";
import { currentUsage, recordUsage } from "../../services/billing/usage.ts";
import { uniqueId } from "../support/infra.ts";
import { openBillingDb } from "../support/billing-db.ts";
import { startCardNetwork, STRIPE_API_BASE } from "../support/stripe.ts";

const DAY = 86_400_000;
const START = Date.parse("2026-03-01T09:00:00Z");
const VAT = { name: "VAT", rateBps: 2_000 };

describe("collecting our invoices and dunning", () => {
	let network: Awaited<ReturnType<typeof startCardNetwork>>;
	let billingDb: Awaited<ReturnType<typeof openBillingDb>>;
	let db: Db;
	let charge: Parameters<typeof runLifecycle>[1]["collection"]["charge"];

	beforeAll(async () => {
		network = await startCardNetwork();
		const stripe = createStripeClient({ apiKey: "sk_test_123", apiBase: network.url });
		charge = (input) => chargeInvoice(stripe, input);
	});

	// A database per test: a sweep works on every subscription in it, and each test scripts its own charges.
	beforeEach(async () => {
		network.script.length = 0;
		billingDb = await openBillingDb("billdun", new Date(START));
		db = billingDb.db;
	});

	afterEach(async () => {
		await billingDb?.close();
	});

	afterAll(async () => {
		await network?.close();
	});

	const sweep = (at: number, dunning: DunningPolicy = { retryDays: [3, 5], finalStatus: "canceled" }) =>
		runLifecycle(db, { now: new Date(at), batchSize: 100, seller: { name: "Seller" }, taxRates: [VAT], collection: { dunning, charge } });

	/** A user on a 14-day trial of `plan` with a card on file (a Stripe customer stripe-mock knows). */
	async function subscriber(planId = "pro", trialDays = 14) {
		const userId = uniqueId("payer-");
		await ensureCustomer(db, { userId, email: `${userId}@example.com`, name: "Ada" }, "evt", new Date(START));
		await db.collection("customers").updateOne({ _id: userId as never }, { $set: { stripeCustomerId: "cus_123", paymentMethodOnFile: true } });
		await startSignupSubscription(db, { userId, plan: await getPlan(db, planId), trialDays }, { now: new Date(START) });
		return userId;
	}
	const subscription = (userId: string) => subscriptions(db).findOne({ userId });
	const invoicesOf = (userId: string) => invoices(db).find({ userId }).sort({ createdAt: 1 }).toArray();
	const events = (doc: { pendingEvents?: { event: unknown }[] } | null | undefined) => (doc?.pendingEvents ?? []).map((e) => e.event as { type: string; data: Record<string, unknown> });
	const chargesOf = (invoiceId: string) => network.charges.filter((c) => c.idempotencyKey.startsWith(`invoice-payment:${invoiceId}:`));

	it("invoices the first paid period when a trial ends with a card, and charges it at once", async () => {
		const userId = await subscriber();
		await sweep(START + 14 * DAY + 1_000);
		const [invoice] = await invoicesOf(userId);
		// 29.00 per seat + 20 % VAT, in cents.
		expect(invoice).toMatchObject({ status: "paid", subtotal: 2_900, tax: 580, total: 3_480, amountDue: 0, paymentAttempts: 1, nextPaymentAttemptAt: null });
		expect(chargesOf(invoice!._id)).toEqual([{ amount: 3_480, idempotencyKey: `invoice-payment:${invoice!._id}:1`, outcome: "succeeded" }]);
		expect(events(invoice).map((e) => e.type)).toEqual(["invoice.created", "invoice.paid"]);
		const sub = await subscription(userId);
		expect(sub).toMatchObject({ status: "active" });
		expect(invoice!.lines[0]).toMatchObject({ periodStart: sub!.currentPeriodStart, periodEnd: sub!.currentPeriodEnd });
	});

	it("moves a declined renewal through past_due and the retry schedule to canceled, each step an event", async () => {
		const userId = await subscriber();
		await sweep(START + 14 * DAY + 1_000);
		const renewal = START + 14 * DAY + 31 * DAY + 1_000;
		network.script.push("declined", "declined", "declined");

		await sweep(renewal);
		let [, invoice] = await invoicesOf(userId);
		expect(invoice).toMatchObject({ status: "open", paymentAttempts: 1, lastPaymentError: "insufficient_funds", nextPaymentAttemptAt: new Date(renewal + 3 * DAY) });
		expect(await subscription(userId)).toMatchObject({ status: "past_due" });

		await sweep(renewal + 2 * DAY); // not due yet: no charge
		expect(chargesOf(invoice!._id)).toHaveLength(1);
		await sweep(renewal + 3 * DAY);
		[, invoice] = await invoicesOf(userId);
		expect(invoice).toMatchObject({ status: "open", paymentAttempts: 2, nextPaymentAttemptAt: new Date(renewal + 8 * DAY) });
		await sweep(renewal + 8 * DAY);
		[, invoice] = await invoicesOf(userId);
		expect(invoice).toMatchObject({ status: "uncollectible", paymentAttempts: 3, nextPaymentAttemptAt: null });
		expect(chargesOf(invoice!._id).map((c) => c.idempotencyKey.split(":").pop())).toEqual(["1", "2", "3"]);

		const failures = events(invoice).filter((e) => e.type === "invoice.payment_failed").map((e) => e.data.nextPaymentAttempt);
		expect(failures).toEqual([new Date(renewal + 3 * DAY).toISOString(), new Date(renewal + 8 * DAY).toISOString(), null]);
		const sub = await subscription(userId);
		expect(sub).toMatchObject({ status: "canceled" });
		expect(events(sub).map((e) => [e.type, e.data.status])).toEqual(expect.arrayContaining([["subscription.updated", "past_due"], ["subscription.canceled", "canceled"]]));
	});

	it("makes the subscription active again when a retry succeeds", async () => {
		const userId = await subscriber();
		await sweep(START + 14 * DAY + 1_000);
		const renewal = START + 45 * DAY + 1_000;
		network.script.push("declined");
		await sweep(renewal);
		expect(await subscription(userId)).toMatchObject({ status: "past_due" });
		await sweep(renewal + 3 * DAY);
		const [, invoice] = await invoicesOf(userId);
		expect(invoice).toMatchObject({ status: "paid", paymentAttempts: 2, lastPaymentError: null });
		expect(events(invoice).map((e) => e.type)).toEqual(["invoice.created", "invoice.payment_failed", "invoice.paid"]);
		const sub = await subscription(userId);
		expect(sub).toMatchObject({ status: "active" });
		expect(events(sub).filter((e) => e.type === "subscription.updated").map((e) => e.data.status).slice(-2)).toEqual(["past_due", "active"]);
	});

	it("leaves an exhausted invoice open with the subscription unpaid, and the user can pay it later", async () => {
		const userId = await subscriber();
		const unpaidPolicy: DunningPolicy = { retryDays: [], finalStatus: "unpaid" };
		network.script.push("declined");
		await sweep(START + 14 * DAY + 1_000, unpaidPolicy);
		const [invoice] = await invoicesOf(userId);
		expect(invoice).toMatchObject({ status: "open", paymentAttempts: 1, nextPaymentAttemptAt: null });
		expect(await subscription(userId)).toMatchObject({ status: "unpaid" });
		await sweep(START + 30 * DAY, unpaidPolicy); // nothing scheduled: no charge
		expect(chargesOf(invoice!._id)).toHaveLength(1);

		network.script.push("declined");
		const ctx = { now: new Date(START + 31 * DAY), dunning: unpaidPolicy, charge };
		await expect(payInvoiceNow(db, userId, invoice!._id, ctx)).rejects.toMatchObject({ code: 402, type: "PAYMENT_FAILED", data: { reason: "insufficient_funds" } });
		const paid = await payInvoiceNow(db, userId, invoice!._id, ctx);
		expect(paid).toMatchObject({ status: "paid", paymentAttempts: 3 });
		expect(await subscription(userId)).toMatchObject({ status: "active" });
		await expect(payInvoiceNow(db, userId, invoice!._id, ctx)).rejects.toMatchObject({ code: 409, type: "INVOICE_NOT_OPEN" });
		await expect(payInvoiceNow(db, "someone-else", invoice!._id, ctx)).rejects.toMatchObject({ code: 404 });
	});

	it("charges each attempt once though sweeps race and a node crashed after charging", async () => {
		const userId = await subscriber();
		// The crash: attempt 1 was charged (declined) by a node that died before writing it down.
		network.script.push("declined");
		const trialEnd = START + 14 * DAY + 1_000;
		const at = new Date(trialEnd);
		const racing = await Promise.all(Array.from({ length: 5 }, () => sweep(trialEnd)));
		const [invoice] = await invoicesOf(userId);
		expect(racing.reduce((n, r) => n + r.paymentsFailed, 0)).toBe(1);
		expect(chargesOf(invoice!._id)).toHaveLength(1);
		expect(events(invoice).filter((e) => e.type === "invoice.payment_failed")).toHaveLength(1);
		// Attempt 2 charged by hand with the key the scheduler will use, then "crash": the sweep gets the same answer.
		await charge({ stripeCustomerId: "cus_123", amount: invoice!.amountDue, currency: "usd", invoiceId: invoice!._id, description: "x", idempotencyKey: `invoice-payment:${invoice!._id}:2` });
		await sweep(at.getTime() + 3 * DAY);
		expect(chargesOf(invoice!._id)).toHaveLength(2);
		expect((await invoicesOf(userId))[0]).toMatchObject({ status: "paid", paymentAttempts: 2 });
	});

	it("invoices the new period of a resumed subscription at once", async () => {
		const userId = await subscriber();
		await sweep(START + 14 * DAY + 1_000);
		const stripe = createStripeClient({ apiKey: "sk_test_123", apiBase: network.url });
		await pauseSubscription(db, stripe, { userId }, { now: new Date(START + 20 * DAY) });
		const resumedAt = new Date(START + 30 * DAY);
		const resumed = await resumeSubscription(db, stripe, { userId }, { now: resumedAt });
		const options = { now: resumedAt, batchSize: 100, seller: { name: "Seller" }, taxRates: [VAT], collection: { dunning: { retryDays: [], finalStatus: "canceled" as const }, charge } };
		expect(await renewIfDue(db, resumed._id, options)).toBe(true);
		expect(await renewIfDue(db, resumed._id, options)).toBe(false);
		const [, second] = await invoicesOf(userId);
		expect(second).toMatchObject({ status: "open", total: 3_480, nextPaymentAttemptAt: resumedAt });
		// March 31 plus a month is April 30.
		expect(second!.lines[0]).toMatchObject({ periodStart: resumedAt, periodEnd: new Date("2026-04-30T09:00:00Z") });
		expect(await subscription(userId)).toMatchObject({ status: "active", currentPeriodStart: resumedAt, currentPeriodEnd: new Date("2026-04-30T09:00:00Z") });
		await sweep(resumedAt.getTime() + 1_000);
		expect((await invoicesOf(userId))[1]).toMatchObject({ status: "paid" });
	});

	it("counts stripe-mock's requires_payment_method and a customer without a card as failed attempts", async () => {
		const stripe = createStripeClient({ apiKey: "sk_test_123", apiBase: STRIPE_API_BASE });
		const input = { amount: 1_000, currency: "usd", invoiceId: "in_x", description: "x", idempotencyKey: uniqueId("key-") };
		expect(await chargeInvoice(stripe, { ...input, stripeCustomerId: "cus_123" })).toMatchObject({ outcome: "failed", reason: "requires_payment_method" });
		expect(await chargeInvoice(stripe, { ...input, stripeCustomerId: null })).toEqual({ outcome: "failed", reason: "no_payment_method", paymentId: null });
	});

	it("bills metered usage in arrears: each report once, priced by the plan's tiers at the period's end", async () => {
		const userId = await subscriber("scale", 0);
		const sub = await subscription(userId);
		expect(sub).toMatchObject({ status: "active", priceId: "scale-usd-month" });
		const now = new Date(START + DAY);
		await recordUsage(db, { userId, quantity: 20, idempotencyKey: "batch-1" }, now);
		await recordUsage(db, { userId, quantity: 5, idempotencyKey: "batch-2" }, now);
		expect(await recordUsage(db, { userId, quantity: 20, idempotencyKey: "batch-1" }, now)).toMatchObject({ duplicate: true });
		// 10 units in the first tier (flat 49.00), 15 at 2.00.
		expect(await currentUsage(db, userId, now)).toMatchObject({ quantity: 25, amount: 7_900, currency: "usd" });
		await expect(recordUsage(db, { userId, quantity: 1, idempotencyKey: "early", timestamp: new Date(START - DAY) }, now)).rejects.toMatchObject({ code: 400 });

		const periodEnd = (sub!.currentPeriodEnd).getTime();
		await sweep(periodEnd + 1_000);
		const [invoice] = await invoicesOf(userId);
		expect(invoice!.lines).toEqual([expect.objectContaining({ description: "Usage (25 units)", quantity: 25, unitAmount: 316, amount: 7_900, metered: true, periodStart: new Date(START), periodEnd: new Date(periodEnd) })]);
		expect(invoice).toMatchObject({ status: "paid", subtotal: 7_900, tax: 1_580, total: 9_480 });
		// The period is closed: a late report for it is refused; the next period starts from zero.
		await expect(recordUsage(db, { userId, quantity: 1, idempotencyKey: "late", timestamp: new Date(periodEnd - 1_000) }, new Date(periodEnd + 2_000))).rejects.toMatchObject({ code: 400 });
		expect(await currentUsage(db, userId, new Date(periodEnd + 2_000))).toMatchObject({ quantity: 0, amount: 0 });
	});
});
