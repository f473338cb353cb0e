/**
 * Credit notes on the real MongoDB-wire server through the real Stripe SDK: money given back on
 * a paid invoice, in part or in full, never more than was paid, numbered per year without gaps,
 * refunded exactly once even when two administrators click at once or a crash falls between the
 * refund and its record; the user is told once per note. Refunds go to the card network in
 * front of stripe-mock (test/support/stripe.ts), which counts them by idempotency key.
 */
import type { Db } from "mongodb";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { completeCreditNote, creditNotes, creditTotals, issueCreditNote, recordRefundFailure } from "../../services/billing/credit-notes.ts";
import type { IssueInput, Refund } from "../../services/billing/credit-notes.ts";
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
	/** An administrator's request: a fresh idempotency key unless the test retries one. */
	const credit = (fields: Omit<IssueInput, "issuedBy" | "idempotencyKey"> & { idempotencyKey?: string }, when = PAID_AT + DAY, refundWith = refund) =>
		issueCreditNote(db, refundWith, { issuedBy: "admin-1", idempotencyKey: uniqueId("req-"), ...fields }, at(when));

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
	const eventsOf = async (noteId: string, type: string) =>
		((await creditNotes(db).findOne({ _id: noteId }))?.pendingEvents ?? []).map((e) => (e.event as { type: string; data: Record<string, unknown> })).filter((e) => e.type === type);
	const issuedEvents = (noteId: string) => eventsOf(noteId, "credit_note.issued");

	it("gives back part of a paid invoice, then the rest, never more than was paid; numbered without gaps; each note told once", async () => {
		const invoice = await paidInvoice();
		const first = await credit({ invoiceId: invoice._id, amount: 1_000, reason: "product_unsatisfactory", memo: "two days of outage" });
		expect(first).toMatchObject({ status: "issued", number: "CN-2026-000001", amount: 1_000, currency: "usd", refundId: expect.stringMatching(/^re_/) as unknown });
		expect(refundsOf(first._id)).toEqual([{ amount: 1_000, idempotencyKey: `credit-note:${first._id}`, paymentIntent: invoice.stripePaymentIntentId }]);
		expect(await issuedEvents(first._id)).toEqual([expect.objectContaining({ data: expect.objectContaining({ number: "CN-2026-000001", invoiceId: invoice._id, invoiceNumber: invoice.number, amount: 1_000 }) as unknown })]);

		const tooMuch = await failure(credit({ invoiceId: invoice._id, amount: 2_481, reason: "order_change" }));
		expect([tooMuch.code, tooMuch.type]).toEqual([400, "VALIDATION_ERROR"]);
		const rest = await credit({ invoiceId: invoice._id, reason: "order_change" });
		expect(rest).toMatchObject({ status: "issued", number: "CN-2026-000002", amount: 2_480 });
		const none = await failure(credit({ invoiceId: invoice._id, reason: "duplicate" }));
		expect([none.code, none.type]).toEqual([409, "NOTHING_TO_CREDIT"]);
		expect(network.refunds.filter((r) => r.paymentIntent === invoice.stripePaymentIntentId).reduce((sum, r) => sum + r.amount, 0)).toBe(3_480);
	});

	it("refunds once when two administrators credit the same invoice in full at the same moment", async () => {
		const invoice = await paidInvoice();
		const outcomes = await Promise.allSettled([0, 1].map(() => credit({ invoiceId: invoice._id, reason: "duplicate" })));
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
		// The request answers the note as it stands (pending), not an error a person would retry.
		expect(await credit({ invoiceId: invoice._id, amount: 500, reason: "order_change" }, PAID_AT + DAY, crashAfterRefund)).toMatchObject({ status: "pending" });
		const [pending] = await creditNotes(db).find({ invoiceId: invoice._id }).toArray();
		expect(pending).toMatchObject({ status: "pending", number: "CN-2026-000001" });
		// Counted as credited already: a second note cannot take the same money meanwhile.
		expect((await failure(credit({ invoiceId: invoice._id, amount: 2_981, reason: "order_change" }))).type).toBe("VALIDATION_ERROR");

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

	it("answers a retried request (same idempotency key, after a timeout) with its note: refunded once", async () => {
		const invoice = await paidInvoice();
		const timedOut: Refund = async (input) => {
			await refund(input);
			throw new Error("socket hang up");
		};
		const first = await credit({ invoiceId: invoice._id, amount: 1_000, reason: "duplicate", idempotencyKey: "ticket-4711-refund" }, PAID_AT + DAY, timedOut);
		expect(first.status).toBe("pending");
		const retried = await credit({ invoiceId: invoice._id, amount: 1_000, reason: "duplicate", idempotencyKey: "ticket-4711-refund" });
		expect(retried).toMatchObject({ _id: first._id, number: first.number, status: "issued" });
		expect(refundsOf(first._id)).toHaveLength(1);
		expect(await creditNotes(db).countDocuments({ invoiceId: invoice._id })).toBe(1);
	});

	it("leaves a note still pending after 23 hours unconfirmed (Stripe forgets keys after 24), still counted as credited", async () => {
		const invoice = await paidInvoice();
		const down: Refund = () => Promise.reject(new Error("connect ECONNREFUSED"));
		const note = await credit({ invoiceId: invoice._id, reason: "order_change" }, PAID_AT + DAY, down);
		expect(note.status).toBe("pending");
		await sweep(PAID_AT + DAY + 24 * 3_600_000, refund);
		expect(await creditNotes(db).findOne({ _id: note._id })).toMatchObject({ status: "unconfirmed", failure: expect.stringContaining("check in Stripe") as unknown });
		expect(refundsOf(note._id)).toEqual([]);
		expect((await failure(credit({ invoiceId: invoice._id, reason: "order_change" }))).type).toBe("NOTHING_TO_CREDIT");
	});

	it("keeps a note Stripe refuses as failed, with its reason, and its amount creditable again", async () => {
		const invoice = await paidInvoice();
		const refused: Refund = () => Promise.resolve({ outcome: "refused", reason: "charge_already_refunded" });
		const note = await credit({ invoiceId: invoice._id, reason: "fraudulent" }, PAID_AT + DAY, refused);
		expect(note).toMatchObject({ status: "failed", failure: "charge_already_refunded", number: "CN-2026-000001" });
		expect(await issuedEvents(note._id)).toEqual([]);
		expect(await credit({ invoiceId: invoice._id, reason: "fraudulent" })).toMatchObject({ status: "issued", amount: 3_480, number: "CN-2026-000002" });
	});

	it("takes back an issued note whose refund the bank returned later: no longer credited, creditable again, the user told once", async () => {
		const invoice = await paidInvoice();
		const note = await credit({ invoiceId: invoice._id, amount: 1_000, reason: "order_change" });
		expect(note).toMatchObject({ status: "issued", refundId: expect.stringMatching(/^re_/) as unknown });
		expect(await creditTotals(db, invoice)).toEqual({ amountCredited: 1_000, creditable: 2_480, amountReturned: 0 });

		// Stripe's refund.failed names the refund (and our note, in its metadata).
		const failed = { id: note.refundId!, creditNoteId: note._id, reason: "expired_or_canceled_card" };
		expect(await recordRefundFailure(db, failed, at(PAID_AT + 5 * DAY))).toBe("applied");
		expect(await creditNotes(db).findOne({ _id: note._id })).toMatchObject({ status: "reversed", failure: "expired_or_canceled_card", reversedAt: new Date(PAID_AT + 5 * DAY) });
		expect(await creditTotals(db, invoice)).toEqual({ amountCredited: 0, creditable: 3_480, amountReturned: 1_000 });
		expect(await eventsOf(note._id, "credit_note.refund_failed")).toEqual([expect.objectContaining({ data: expect.objectContaining({ number: note.number, amount: 1_000, failureReason: "expired_or_canceled_card" }) as unknown })]);
		// Stripe sends refund.updated and refund.failed for the same failure: the second changes nothing.
		expect(await recordRefundFailure(db, failed, at(PAID_AT + 5 * DAY + 1_000))).toBe("ignored");
		expect(await eventsOf(note._id, "credit_note.refund_failed")).toHaveLength(1);
		// A refund no note knows yet (a dashboard refund whose success comes later) is remembered once.
		expect(await recordRefundFailure(db, { id: "re_unknown", creditNoteId: null, reason: "declined" }, at(PAID_AT + 5 * DAY))).toBe("applied");
		expect(await recordRefundFailure(db, { id: "re_unknown", creditNoteId: null, reason: "declined" }, at(PAID_AT + 5 * DAY))).toBe("ignored");
		// Our metadata naming a note that does not exist: nothing to take back.
		expect(await recordRefundFailure(db, { id: "re_other", creditNoteId: "cn_missing", reason: "declined" }, at(PAID_AT + 5 * DAY))).toBe("ignored");
		// The money can be given back again, in full; then nothing is owed any more.
		expect(await credit({ invoiceId: invoice._id, reason: "order_change" })).toMatchObject({ status: "issued", amount: 3_480 });
		expect(await creditTotals(db, invoice)).toEqual({ amountCredited: 3_480, creditable: 0, amountReturned: 0 });
	});

	it("fails an unconfirmed note whose refund Stripe reports failed, without telling the user of a refund they never heard of", async () => {
		const invoice = await paidInvoice();
		const down: Refund = () => Promise.reject(new Error("connect ECONNREFUSED"));
		const note = await credit({ invoiceId: invoice._id, reason: "order_change" }, PAID_AT + DAY, down);
		await sweep(PAID_AT + DAY + 24 * 3_600_000, refund);
		expect(await creditNotes(db).findOne({ _id: note._id })).toMatchObject({ status: "unconfirmed" });
		expect(await recordRefundFailure(db, { id: "re_found_later", creditNoteId: note._id, reason: "declined" }, at(PAID_AT + 3 * DAY))).toBe("applied");
		expect(await creditNotes(db).findOne({ _id: note._id })).toMatchObject({ status: "failed", refundId: "re_found_later", failure: "declined" });
		expect(await eventsOf(note._id, "credit_note.refund_failed")).toEqual([]);
		expect(await creditTotals(db, invoice)).toEqual({ amountCredited: 0, creditable: 3_480, amountReturned: 0 });
	});

	it("keeps a returned refund on an invoice Stripe billed owed but not creditable again (Stripe's credit note stays)", async () => {
		const invoice = await paidInvoice();
		await invoices(db).updateOne({ _id: invoice._id }, { $set: { stripeInvoiceId: "in_1MtHbELkdIwHu7ixl4OzzPMv", stripePaymentIntentId: null } });
		const billed = (await invoices(db).findOne({ _id: invoice._id }))!;
		const note = await credit({ invoiceId: invoice._id, amount: 700, reason: "order_change" });
		expect(note.status).toBe("issued");
		expect(await recordRefundFailure(db, { id: note.refundId!, creditNoteId: null, reason: "expired_or_canceled_card" }, at(PAID_AT + 3 * DAY))).toBe("applied");
		expect(await creditNotes(db).findOne({ _id: note._id })).toMatchObject({ status: "reversed" });
		expect(await creditTotals(db, billed)).toEqual({ amountCredited: 0, creditable: 2_780, amountReturned: 700 });
	});

	it("fails a pending note whose refund Stripe reports failed, without telling the user, and the scheduler leaves it so", async () => {
		const invoice = await paidInvoice();
		const lostAnswer: Refund = async (input) => {
			await refund(input);
			throw new Error("socket hang up");
		};
		const note = await credit({ invoiceId: invoice._id, amount: 900, reason: "duplicate" }, PAID_AT + DAY, lostAnswer);
		expect(note.status).toBe("pending");
		const [made] = refundsOf(note._id);
		expect(made).toBeDefined();
		// Known only by the metadata our refunds carry: the note never learned the refund's id.
		expect(await recordRefundFailure(db, { id: "re_from_webhook", creditNoteId: note._id, reason: "declined" }, at(PAID_AT + DAY + 60_000))).toBe("applied");
		expect(await creditNotes(db).findOne({ _id: note._id })).toMatchObject({ status: "failed", failure: "declined", refundId: "re_from_webhook" });
		await sweep(PAID_AT + DAY + 120_000, refund);
		expect(await creditNotes(db).findOne({ _id: note._id })).toMatchObject({ status: "failed" });
		expect(await issuedEvents(note._id)).toEqual([]);
		expect(await eventsOf(note._id, "credit_note.refund_failed")).toEqual([]);
	});

	it("credits only a paid invoice, and one Stripe billed through a Stripe credit note", async () => {
		const invoice = await paidInvoice();
		await invoices(db).updateOne({ _id: invoice._id }, { $set: { status: "open" } });
		const open = await failure(credit({ invoiceId: invoice._id, reason: "duplicate" }));
		expect([open.code, open.type]).toEqual([409, "INVOICE_NOT_PAID"]);
		expect((await failure(credit({ invoiceId: "in_nope", reason: "duplicate" }))).code).toBe(404);

		// Billed by Stripe: the money goes back through Stripe's credit note on its invoice, once, even when retried.
		const stripeInvoice = "in_1MtHbELkdIwHu7ixl4OzzPMv";
		await invoices(db).updateOne({ _id: invoice._id }, { $set: { status: "paid", stripeInvoiceId: stripeInvoice, stripePaymentIntentId: null } });
		const lostAnswer: Refund = async (input) => {
			await refund(input);
			throw new Error("socket hang up");
		};
		const note = await credit({ invoiceId: invoice._id, amount: 700, reason: "order_change" }, PAID_AT + DAY, lostAnswer);
		expect(note.status).toBe("pending");
		await sweep(PAID_AT + DAY + 120_000, refund);
		expect(await creditNotes(db).findOne({ _id: note._id })).toMatchObject({ status: "issued", amount: 700, refundId: expect.stringMatching(/^re_/) as unknown });
		expect(network.creditNotes.filter((c) => c.idempotencyKey === `credit-note:${note._id}`)).toEqual([{ amount: 700, refundAmount: 700, idempotencyKey: `credit-note:${note._id}`, invoice: stripeInvoice }]);
		expect(refundsOf(note._id)).toEqual([]);
	});
});
