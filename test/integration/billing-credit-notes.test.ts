/**
 * Credit notes on the real MongoDB-wire server through the real Stripe SDK: money given back on
 * a paid invoice, in part or in full, never more than was paid, numbered per year without gaps,
 * refunded exactly once even when two administrators click at once or a crash falls between the
 * refund and its record; the user is told once per note. Refunds go to the card network in
 * front of stripe-mock (test/support/stripe.ts), which counts them by idempotency key.
 */
import type { Db } from "mongodb";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { completeCreditNote, creditNotes, issueCreditNote } from "../../services/billing/credit-notes.ts";
import type { Refund } from "../../services/billing/credit-notes.ts";
import { ensureCustomer } from "../../services/billing/customers.ts";
import { invoices } from "../../services/billing/invoices.ts";
import { runLifecycle } from "../../services/billing/lifecycle.ts";
import { getPlan } from "../../services/billing/plans.ts";
import { chargeInvoice, createStripeClient, refundPayment } from "../../services/billing/stripe.ts";
import { startSignupSubscription } from "../../services/billing/subscriptions.ts";
import { failure, uniqueId } from "../support/infra.ts";
import { openBillingDb } from "../support/billing-db.ts";
import { startCardNetwork } from "../support/stripe.ts";

const DAY = 86_400_000;
const START = Date.parse("2026-03-01T09:00:00Z");
const PAID_AT = START + 14 * DAY + 1_000;

describe("credit notes", () => {
	let network: Awaited<ReturnType<typeof startCardNetwork>>;
	let billingDb: Awaited<ReturnType<typeof openBillingDb>>;
	let db: Db;
	let charge: Parameters<typeof runLifecycle>[1]["collection"]["charge"];
	let refund: Refund;

	beforeAll(async () => {
		network = await startCardNetwork();
		const stripe = createStripeClient({ apiKey: "sk_test_123", apiBase: network.url });
		charge = (input) => chargeInvoice(stripe, input);
		refund = (input) => refundPayment(stripe, input);
	});
	beforeEach(async () => {
		billingDb = await openBillingDb("billcn", new Date(START));
		db = billingDb.db;
	});
	afterEach(async () => {
		await billingDb?.close();
	});
	afterAll(async () => {
		await network?.close();
	});

	const sweep = (at: number, withRefund?: Refund) =>
		runLifecycle(db, { now: new Date(at), batchSize: 100, seller: { name: "Seller" }, taxRates: [{ name: "VAT", rateBps: 2_000 }], collection: { dunning: { retryDays: [3], finalStatus: "canceled" }, charge }, refund: withRefund });
	const at = (ms: number) => ({ now: new Date(ms) });

	/** A user whose first paid period (pro, $29.00 + 20 % VAT = $34.80) was charged to the card: the paid invoice. */
	async function paidInvoice() {
		const userId = uniqueId("cn-");
		await ensureCustomer(db, { userId, email: `${userId}@example.com`, name: "Ada" }, "evt", new Date(START));
		await db.collection("customers").updateOne({ _id: userId as never }, { $set: { stripeCustomerId: "cus_123", paymentMethodOnFile: true } });
		await startSignupSubscription(db, { userId, plan: await getPlan(db, "pro"), trialDays: 14 }, { now: new Date(START) });
		await sweep(PAID_AT);
		const invoice = (await invoices(db).findOne({ userId }))!;
		expect(invoice).toMatchObject({ status: "paid", amountPaid: 3_480, stripePaymentIntentId: expect.stringMatching(/^pi_/) as unknown });
		return invoice;
	}
	const refundsOf = (noteId: string) => network.refunds.filter((r) => r.idempotencyKey === `credit-note:${noteId}`);
	const issuedEvents = async (noteId: string) =>
		((await creditNotes(db).findOne({ _id: noteId }))?.pendingEvents ?? []).map((e) => (e.event as { type: string; data: Record<string, unknown> })).filter((e) => e.type === "credit_note.issued");

	it("gives back part of a paid invoice, then the rest, never more than was paid; numbered without gaps; each note told once", async () => {
		const invoice = await paidInvoice();
		const first = await issueCreditNote(db, refund, { invoiceId: invoice._id, amount: 1_000, reason: "product_unsatisfactory", memo: "two days of outage", issuedBy: "admin-1" }, at(PAID_AT + DAY));
		expect(first).toMatchObject({ status: "issued", number: "CN-2026-000001", amount: 1_000, currency: "usd", refundId: expect.stringMatching(/^re_/) as unknown });
		expect(refundsOf(first._id)).toEqual([{ amount: 1_000, idempotencyKey: `credit-note:${first._id}`, paymentIntent: invoice.stripePaymentIntentId }]);
		expect(await issuedEvents(first._id)).toEqual([expect.objectContaining({ data: expect.objectContaining({ number: "CN-2026-000001", invoiceId: invoice._id, invoiceNumber: invoice.number, amount: 1_000 }) as unknown })]);

		const tooMuch = await failure(issueCreditNote(db, refund, { invoiceId: invoice._id, amount: 2_481, reason: "order_change", issuedBy: "admin-1" }, at(PAID_AT + DAY)));
		expect([tooMuch.code, tooMuch.type]).toEqual([400, "VALIDATION_ERROR"]);
		const rest = await issueCreditNote(db, refund, { invoiceId: invoice._id, reason: "order_change", issuedBy: "admin-1" }, at(PAID_AT + DAY));
		expect(rest).toMatchObject({ status: "issued", number: "CN-2026-000002", amount: 2_480 });
		const none = await failure(issueCreditNote(db, refund, { invoiceId: invoice._id, reason: "duplicate", issuedBy: "admin-1" }, at(PAID_AT + DAY)));
		expect([none.code, none.type]).toEqual([409, "NOTHING_TO_CREDIT"]);
		expect(network.refunds.filter((r) => r.paymentIntent === invoice.stripePaymentIntentId).reduce((sum, r) => sum + r.amount, 0)).toBe(3_480);
	});

	it("refunds once when two administrators credit the same invoice in full at the same moment", async () => {
		const invoice = await paidInvoice();
		const outcomes = await Promise.allSettled([0, 1].map(() => issueCreditNote(db, refund, { invoiceId: invoice._id, reason: "duplicate", issuedBy: "admin-1" }, at(PAID_AT + DAY))));
		const issued = outcomes.filter((o) => o.status === "fulfilled");
		expect(issued).toHaveLength(1);
		expect((outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult).reason).toMatchObject({ type: "NOTHING_TO_CREDIT" });
		expect(network.refunds.filter((r) => r.paymentIntent === invoice.stripePaymentIntentId)).toHaveLength(1);
		expect(await creditNotes(db).countDocuments({ invoiceId: invoice._id })).toBe(1);
	});

	it("finishes a refund a crash cut short with the same idempotency key: Stripe refunds once, the note is issued once", async () => {
		const invoice = await paidInvoice();
		// Stripe refunded, then the node died before recording it.
		const crashAfterRefund: Refund = async (input) => {
			await refund(input);
			throw new Error("node killed");
		};
		await expect(issueCreditNote(db, crashAfterRefund, { invoiceId: invoice._id, amount: 500, reason: "order_change", issuedBy: "admin-1" }, at(PAID_AT + DAY))).rejects.toThrow("node killed");
		const [pending] = await creditNotes(db).find({ invoiceId: invoice._id }).toArray();
		expect(pending).toMatchObject({ status: "pending", number: "CN-2026-000001" });
		// Counted as credited already: a second note cannot take the same money meanwhile.
		expect((await failure(issueCreditNote(db, refund, { invoiceId: invoice._id, amount: 2_981, reason: "order_change", issuedBy: "admin-1" }, at(PAID_AT + DAY)))).type).toBe("VALIDATION_ERROR");

		// Too fresh for the scheduler (it may still be in flight), then completed.
		expect((await sweep(PAID_AT + DAY + 30_000, refund)).creditNotesCompleted).toBe(0);
		expect((await sweep(PAID_AT + DAY + 120_000, refund)).creditNotesCompleted).toBe(1);
		expect(await creditNotes(db).findOne({ _id: pending!._id })).toMatchObject({ status: "issued" });
		expect(refundsOf(pending!._id)).toHaveLength(1);
		expect(await issuedEvents(pending!._id)).toHaveLength(1);
		// Completing it again changes nothing.
		expect((await completeCreditNote(db, refund, pending!._id, at(PAID_AT + 2 * DAY))).status).toBe("issued");
		expect(await issuedEvents(pending!._id)).toHaveLength(1);
	});

	it("keeps a note Stripe refuses as failed, with its reason, and its amount creditable again", async () => {
		const invoice = await paidInvoice();
		const refused: Refund = () => Promise.resolve({ outcome: "refused", reason: "charge_already_refunded" });
		const note = await issueCreditNote(db, refused, { invoiceId: invoice._id, reason: "fraudulent", issuedBy: "admin-1" }, at(PAID_AT + DAY));
		expect(note).toMatchObject({ status: "failed", failure: "charge_already_refunded", number: "CN-2026-000001" });
		expect(await issuedEvents(note._id)).toEqual([]);
		expect(await issueCreditNote(db, refund, { invoiceId: invoice._id, reason: "fraudulent", issuedBy: "admin-1" }, at(PAID_AT + DAY))).toMatchObject({ status: "issued", amount: 3_480, number: "CN-2026-000002" });
	});

	it("credits only a paid invoice, and one Stripe billed through a Stripe credit note", async () => {
		const invoice = await paidInvoice();
		await invoices(db).updateOne({ _id: invoice._id }, { $set: { status: "open" } });
		const open = await failure(issueCreditNote(db, refund, { invoiceId: invoice._id, reason: "duplicate", issuedBy: "admin-1" }, at(PAID_AT + DAY)));
		expect([open.code, open.type]).toEqual([409, "INVOICE_NOT_PAID"]);
		expect((await failure(issueCreditNote(db, refund, { invoiceId: "in_nope", reason: "duplicate", issuedBy: "admin-1" }, at(PAID_AT + DAY)))).code).toBe(404);

		// Billed by Stripe: the money goes back through Stripe's credit note on its invoice (stripe-mock answers it).
		await invoices(db).updateOne({ _id: invoice._id }, { $set: { status: "paid", stripeInvoiceId: "in_1MtHbELkdIwHu7ixl4OzzPMv", stripePaymentIntentId: null } });
		const note = await issueCreditNote(db, refund, { invoiceId: invoice._id, amount: 700, reason: "order_change", issuedBy: "admin-1" }, at(PAID_AT + DAY));
		expect(note).toMatchObject({ status: "issued", amount: 700 });
		expect(note.refundId).toBeTruthy();
		expect(network.refunds.filter((r) => r.idempotencyKey === `credit-note:${note._id}`)).toEqual([]);
	});
});
