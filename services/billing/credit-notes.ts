/**
 * Credit notes: money given back on a paid invoice, in full or in part, as Stripe and Lago model
 * it. Each note has its own number per calendar year without gaps (`CN-2026-000007`), a reason,
 * and the refund that returned the money: a Refund on the PaymentIntent that paid one of our
 * invoices, or a Stripe credit note on an invoice Stripe billed (so Stripe's books agree).
 *
 * Exactly once without transactions: the note is written first (`pending`, under the invoice's
 * lock, which also bounds the total credited to what was paid), then Stripe is called with the
 * note's id as idempotency key, then the note becomes `issued` with its event in the same update.
 * A crash or an outage between the two leaves a pending note that the scheduler finishes with the
 * same key: Stripe answers with the refund it already made, never a second one. Stripe forgets a
 * key after 24 hours, so a note still pending after 23 becomes `unconfirmed` (still counted as
 * credited) for a person to check in Stripe. A refund Stripe refuses (already refunded elsewhere,
 * say) leaves the note `failed`, and its amount creditable again. The administrator's request
 * carries an idempotency key of its own: a retry after a timeout answers the same note.
 *
 * A refund can still fail after Stripe accepted it: the card was closed, or the bank sent the
 * money back days later (Stripe's `refund.failed`, or `refund.updated` to `failed`/`canceled`).
 * The note then becomes `reversed`: no longer credited, its amount creditable again, and the
 * user is told (`credit_note.refund_failed`), since they were told the money was on its way.
 */
import { randomUUID } from "node:crypto";
import type { Db } from "mongodb";
import type { CreditNoteData } from "../../lib/events/catalog.ts";
import { initialOutbox, lockKey, WITHOUT_OUTBOX, withDocumentLock, withEvents } from "../../lib/events/mongo-outbox.ts";
import type { OutboxFields } from "../../lib/events/mongo-outbox.ts";
import type { OutboxEntry } from "../../lib/events/outbox-relay.ts";
import { AppError, badRequest, notFound } from "../../lib/errors.ts";
import { invoices, locked } from "./invoices.ts";
import type { Invoice } from "./invoices.ts";
import { billingEvent, documentChecker, isDuplicateKey } from "./store.ts";
import type { RefundInput, RefundResult } from "./stripe.ts";

export const CREDIT_NOTE_REASONS = ["duplicate", "fraudulent", "order_change", "product_unsatisfactory"] as const;
export type CreditNoteReason = (typeof CREDIT_NOTE_REASONS)[number];
export type CreditNoteStatus = "pending" | "issued" | "failed" | "unconfirmed" | "reversed";
/** Stripe keeps idempotency keys 24 hours; a note pending longer than this is not retried blindly. */
const RETRY_WINDOW_MS = 23 * 3_600_000;

export interface CreditNote extends OutboxFields {
	_id: string;
	number: string;
	invoiceId: string;
	invoiceNumber: string | null;
	userId: string;
	currency: string;
	/** Minor units, > 0. */
	amount: number;
	reason: CreditNoteReason;
	memo: string | null;
	status: CreditNoteStatus;
	/** `<invoice>:<the request's idempotency key>`: a retried request finds its note. */
	requestKey: string;
	refundId: string | null;
	/** Why Stripe refused the refund (status `failed`), or why the bank returned it (`reversed`). */
	failure: string | null;
	/** The administrator who issued it, or the operator's name. */
	issuedBy: string;
	createdAt: Date;
	issuedAt: Date | null;
	/** When the refund of an issued note was reported failed (status `reversed`). */
	reversedAt?: Date | null;
}

/** Gives money back through the payment provider (stripe.ts `refundPayment` bound to the client). */
export type Refund = (input: RefundInput) => Promise<RefundResult>;

interface Ctx {
	now: Date;
	requestId?: string | null;
}

export const creditNotes = (db: Db) => db.collection<CreditNote>("credit_notes");
/** Failed refunds no note knew of yet (a dashboard refund whose success Stripe is still retrying). */
const refundFailures = (db: Db) => db.collection<{ _id: string; reason: string; at: Date }>("refund_failures");
const counters = (db: Db) => db.collection<{ _id: string; seq: number }>("counters");

const checkCreditNote = documentChecker<CreditNote>("credit note", {
	_id: { type: "string", min: 1, max: 100 },
	number: { type: "string", pattern: /^CN-\d{4}-\d{6}$/ },
	invoiceId: { type: "string", min: 1, max: 200 },
	userId: { type: "string", min: 1, max: 100 },
	currency: { type: "string", pattern: /^[a-z]{3}$/ },
	amount: { type: "number", integer: true, min: 1 },
	reason: { type: "enum", values: [...CREDIT_NOTE_REASONS] },
	status: { type: "enum", values: ["pending", "issued", "failed", "unconfirmed", "reversed"] },
	requestKey: { type: "string", min: 1, max: 400 },
});

export interface IssueInput {
	invoiceId: string;
	/** Minor units; the whole creditable amount when absent. */
	amount?: number;
	reason: CreditNoteReason;
	memo?: string;
	issuedBy: string;
	/** The administrator's request's own key: the same key on the same invoice answers the same note. */
	idempotencyKey: string;
}

/**
 * Issues a credit note on a paid invoice and refunds it; answers the note: `issued`, `failed`
 * with Stripe's reason, or `pending` when Stripe could not be reached (the scheduler finishes it).
 */
export async function issueCreditNote(db: Db, refund: Refund, input: IssueInput, ctx: Ctx): Promise<CreditNote> {
	const requestKey = `${input.invoiceId}:${input.idempotencyKey}`;
	const note = await locked(db, input.invoiceId, async (inv) => {
		const earlier = await creditNotes(db).findOne({ requestKey }, { projection: WITHOUT_OUTBOX });
		if (earlier) return earlier;
		if (!inv) throw notFound(`Invoice ${input.invoiceId}`);
		if (inv.status !== "paid") throw new AppError(409, "INVOICE_NOT_PAID", `The invoice is ${inv.status}; only a paid invoice can be credited.`, { status: inv.status });
		const creditable = await creditableAmount(db, inv);
		if (creditable <= 0) throw new AppError(409, "NOTHING_TO_CREDIT", "Everything paid on this invoice has been credited already (or nothing was paid by card).");
		const amount = input.amount ?? creditable;
		if (amount > creditable) throw badRequest(`At most ${creditable} (minor units) can still be credited on this invoice.`, [{ field: "amount", message: `must be at most ${creditable}`, type: "numberMax" }]);
		return createNumbered(db, inv, { amount, reason: input.reason, memo: input.memo ?? null, issuedBy: input.issuedBy, requestKey, status: "pending", refundId: null, issuedAt: null }, ctx);
	});
	try {
		return await completeCreditNote(db, refund, note._id, ctx);
	} catch {
		// The note exists: failing the request now would invite a retry, and a second refund.
		return (await creditNotes(db).findOne({ _id: note._id }, { projection: WITHOUT_OUTBOX })) ?? note;
	}
}

type NoteAmount = Pick<CreditNote, "amount" | "status">;
/** The sum of the notes in these statuses. */
const totalOf = (notes: NoteAmount[], statuses: readonly CreditNoteStatus[]) => notes.reduce((sum, n) => (statuses.includes(n.status) ? sum + n.amount : sum), 0);
/** Notes whose money has gone back, or may have (pending, unconfirmed). */
const OUTSTANDING: readonly CreditNoteStatus[] = ["pending", "issued", "unconfirmed"];
/** What issued notes gave back. */
export const amountCredited = (notes: NoteAmount[]) => totalOf(notes, ["issued"]);
const noteAmounts = (db: Db, invoiceId: string): Promise<NoteAmount[]> => creditNotes(db).find({ invoiceId }, { projection: { amount: 1, status: 1 } }).toArray();

const paidByCard = (inv: Invoice) => (inv.stripeInvoiceId || inv.stripePaymentIntentId ? inv.amountPaid : 0);

/**
 * What was paid by card (or through Stripe) on the invoice and is not credited yet: every note
 * counts but a failed one, and a reversed one on our own invoices. On an invoice Stripe billed,
 * Stripe's credit note stays after its refund came back: that money is returned by hand, never
 * credited again here (a second Stripe credit note would exceed the invoice).
 */
function creditableOf(inv: Invoice, notes: NoteAmount[]): number {
	return paidByCard(inv) - totalOf(notes, inv.stripeInvoiceId ? [...OUTSTANDING, "reversed"] : OUTSTANDING);
}

async function creditableAmount(db: Db, inv: Invoice): Promise<number> {
	return creditableOf(inv, await noteAmounts(db, inv._id));
}

/**
 * An invoice's credit in one read: what was given back, what can still be (0 unless paid), and
 * what refunds the bank returned (`reversed` notes: money the customer is still owed).
 */
export async function creditTotals(db: Db, inv: Invoice): Promise<{ amountCredited: number; creditable: number; amountReturned: number }> {
	const notes = await noteAmounts(db, inv._id);
	// Still owed: what came back, less what was given back again since (never below zero).
	const amountReturned = Math.max(0, Math.min(totalOf(notes, ["reversed"]), paidByCard(inv) - totalOf(notes, OUTSTANDING)));
	return { amountCredited: amountCredited(notes), creditable: inv.status === "paid" ? creditableOf(inv, notes) : 0, amountReturned };
}

type NewNote = Pick<CreditNote, "amount" | "reason" | "memo" | "issuedBy" | "requestKey" | "status" | "refundId" | "issuedAt">;

/**
 * Writes the note with the year's next number, holding the year's counter lock. The note is
 * inserted before the counter moves: a crash in between leaves the counter behind a number in
 * use, which the unique index reports to the next writer, who catches the counter up. No number
 * is ever skipped, none used twice.
 */
async function createNumbered(db: Db, inv: Invoice, fields: NewNote, ctx: Ctx): Promise<CreditNote> {
	const year = ctx.now.getUTCFullYear();
	const key = `credit_note:${year}`;
	return withDocumentLock(db, lockKey("counters", key), async () => {
		const counter = await counters(db).findOne({ _id: key });
		for (let seq = (counter?.seq ?? 0) + 1; ; seq++) {
			const note: CreditNote = checkCreditNote({
				_id: `cn_${randomUUID()}`,
				number: `CN-${year}-${String(seq).padStart(6, "0")}`,
				invoiceId: inv._id,
				invoiceNumber: inv.number,
				userId: inv.userId,
				currency: inv.currency,
				...fields,
				failure: null,
				createdAt: ctx.now,
			});
			// A note born issued (a refund Stripe already made) is announced with it.
			const events = note.status === "issued" ? [billingEvent("credit_note.issued", note._id, creditNoteData(note), ctx.now, ctx.requestId)] : [];
			try {
				await creditNotes(db).insertOne({ ...note, ...initialOutbox(events, ctx.now) });
			} catch (err) {
				if (!isDuplicateKey(err)) throw err;
				// The request's note exists already (its key is unique too); else the number was taken.
				const existing = await creditNotes(db).findOne({ requestKey: fields.requestKey }, { projection: WITHOUT_OUTBOX });
				if (existing) return existing;
				continue;
			}
			if (counter) await counters(db).updateOne({ _id: key }, { $set: { seq } });
			else await counters(db).insertOne({ _id: key, seq });
			return note;
		}
	}, { waitMs: 10_000 });
}

/**
 * Refunds a pending note and records the outcome with its event; a note already settled is
 * answered as it is. A provider outage throws and leaves the note pending for the scheduler.
 */
export async function completeCreditNote(db: Db, refund: Refund, creditNoteId: string, ctx: Ctx): Promise<CreditNote> {
	const note = await creditNotes(db).findOne({ _id: creditNoteId }, { projection: WITHOUT_OUTBOX });
	if (!note) throw notFound(`Credit note ${creditNoteId}`);
	if (note.status !== "pending") return note;
	if (ctx.now.getTime() - note.createdAt.getTime() > RETRY_WINDOW_MS) return settle(db, note, { status: "unconfirmed", failure: "pending for over 23 hours: check in Stripe whether a refund with metadata creditNoteId exists" }, ctx);
	const inv = await invoices(db).findOne({ _id: note.invoiceId }, { projection: { stripeInvoiceId: 1, stripePaymentIntentId: 1 } });
	const result = await refund({
		amount: note.amount,
		currency: note.currency,
		reason: note.reason,
		paymentIntentId: inv?.stripePaymentIntentId ?? null,
		stripeInvoiceId: inv?.stripeInvoiceId ?? null,
		creditNoteId: note._id,
		idempotencyKey: `credit-note:${note._id}`,
	});
	return settle(db, note, result.outcome === "refunded" ? { status: "issued", refundId: result.refundId, issuedAt: ctx.now } : { status: "failed", failure: result.reason }, ctx);
}

/** Moves a pending note to its outcome, with `credit_note.issued` when it was refunded; a note already settled stays as it is. */
async function settle(db: Db, note: CreditNote, set: Partial<CreditNote>, ctx: Ctx): Promise<CreditNote> {
	const events = (settled: CreditNote) => (set.status === "issued" ? [billingEvent("credit_note.issued", note._id, creditNoteData(settled), ctx.now, ctx.requestId)] : []);
	return (await transition(db, note._id, ["pending"], set, events, ctx.now)).note ?? note;
}

/**
 * Changes a note's status under its lock, only from one of `from`, with the events made from the
 * note as it becomes; answers the note as it is afterwards, and whether this call changed it.
 */
function transition(db: Db, id: string, from: CreditNoteStatus[], set: Partial<CreditNote>, events: (next: CreditNote) => OutboxEntry[], now: Date): Promise<{ note: CreditNote | null; changed: boolean }> {
	return withDocumentLock(db, lockKey("credit_notes", id), async () => {
		const current = await creditNotes(db).findOne({ _id: id }, { projection: WITHOUT_OUTBOX });
		if (!current || !from.includes(current.status)) return { note: current, changed: false };
		const next = { ...current, ...set };
		await creditNotes(db).updateOne({ _id: id, status: current.status }, withEvents<CreditNote>({ $set: set }, events(next), now));
		return { note: next, changed: true };
	});
}

/**
 * Stripe reports that a refund failed after it accepted it (`refund.failed`, or `refund.updated`
 * to `failed` or `canceled`): the note it belongs to, found by the `creditNoteId` our refunds
 * carry or else by the refund's id (a dashboard refund), stops counting as credited. An issued
 * note becomes `reversed` and its user, told the money was on its way, is told it is not; a
 * pending or unconfirmed one, never announced, becomes `failed`. A failure that overtakes the
 * success of a dashboard refund (Stripe retries a webhook we failed to take for days) is kept, so
 * that refund is never recorded. "ignored" for a note already settled that way.
 */
export async function recordRefundFailure(db: Db, refund: { id: string; creditNoteId: string | null; reason: string }, ctx: Ctx): Promise<"applied" | "ignored"> {
	const note = await creditNotes(db).findOne(refund.creditNoteId ? { _id: refund.creditNoteId } : { refundId: refund.id }, { projection: { _id: 1 } });
	if (!note) {
		if (refund.creditNoteId) return "ignored";
		try {
			await refundFailures(db).insertOne({ _id: refund.id, reason: refund.reason, at: ctx.now });
			return "applied";
		} catch (err) {
			if (isDuplicateKey(err)) return "ignored";
			throw err;
		}
	}
	if ((await transition(db, note._id, ["pending", "unconfirmed"], { status: "failed", refundId: refund.id, failure: refund.reason }, () => [], ctx.now)).changed) return "applied";
	const reversed = await transition(db, note._id, ["issued"], { status: "reversed", failure: refund.reason, reversedAt: ctx.now }, (next) => [
		billingEvent("credit_note.refund_failed", next._id, { ...creditNoteData(next), failureReason: refund.reason }, ctx.now, ctx.requestId),
	], ctx.now);
	return reversed.changed ? "applied" : "ignored";
}

/**
 * A refund made outside the platform (in Stripe's dashboard) on one of our invoices, reported by
 * Stripe's `refund.created`/`refund.updated` webhooks once it succeeded: recorded as an issued
 * credit note, once per refund ("ignored" for a repeat or an invoice not ours), so our
 * invoices say what Stripe did. Refunds our notes made carry `metadata.creditNoteId` and are
 * skipped. Recorded even beyond what is creditable: the money has already gone back.
 */
export async function recordStripeRefund(db: Db, refund: { id: string; amount: number; paymentIntentId: string; reason: string | null }, ctx: Ctx): Promise<"applied" | "ignored"> {
	const inv = await invoices(db).findOne({ stripePaymentIntentId: refund.paymentIntentId }, { projection: { _id: 1 } });
	if (!inv || (await refundFailures(db).findOne({ _id: refund.id }, { projection: { _id: 1 } }))) return "ignored";
	const requestKey = `${inv._id}:stripe-refund:${refund.id}`;
	return locked(db, inv._id, async (current) => {
		if (!current || (await creditNotes(db).findOne({ requestKey }, { projection: { _id: 1 } }))) return "ignored";
		const reason: CreditNoteReason = refund.reason === "duplicate" || refund.reason === "fraudulent" ? refund.reason : "order_change";
		await createNumbered(db, current, { amount: refund.amount, reason, memo: "refunded in Stripe", issuedBy: "stripe", requestKey, status: "issued", refundId: refund.id, issuedAt: ctx.now }, ctx);
		return "applied";
	});
}

/** Notes whose refund a crash (or a provider outage) interrupted, older than `graceMs`: the scheduler completes them. */
export async function pendingCreditNotes(db: Db, now: Date, limit: number, graceMs = 60_000): Promise<string[]> {
	const docs = await creditNotes(db).find({ status: "pending", createdAt: { $lte: new Date(now.getTime() - graceMs) } }, { projection: { _id: 1 } }).sort({ createdAt: 1 }).limit(limit).toArray();
	return docs.map((d) => d._id);
}

/** What was given back on each of these invoices by issued notes (invoices without any are absent). */
export async function creditedAmounts(db: Db, invoiceIds: string[]): Promise<Map<string, number>> {
	const credited = new Map<string, number>();
	if (!invoiceIds.length) return credited;
	// One equality per invoice: FerretDB hands an equality to PostgreSQL (the index), not an $in.
	await Promise.all(invoiceIds.map(async (invoiceId) => {
		const sum = amountCredited(await noteAmounts(db, invoiceId));
		if (sum) credited.set(invoiceId, sum);
	}));
	return credited;
}

/** The issued notes of an invoice, as its documents show them (invoice-render.ts). */
export async function issuedCredits(db: Db, invoiceId: string): Promise<{ number: string; amount: number; issuedAt: Date }[]> {
	return (await creditNotesOf(db, invoiceId)).filter((n) => n.status === "issued").map((n) => ({ number: n.number, amount: n.amount, issuedAt: n.issuedAt ?? n.createdAt }));
}

/** The notes of an invoice, oldest first. */
export async function creditNotesOf(db: Db, invoiceId: string): Promise<CreditNote[]> {
	return creditNotes(db).find({ invoiceId }, { projection: WITHOUT_OUTBOX }).sort({ createdAt: 1, number: 1 }).toArray();
}

function creditNoteData(note: CreditNote): CreditNoteData {
	return {
		creditNoteId: note._id, number: note.number, invoiceId: note.invoiceId, invoiceNumber: note.invoiceNumber, userId: note.userId,
		currency: note.currency, amount: note.amount, reason: note.reason, issuedAt: (note.issuedAt ?? note.createdAt).toISOString(),
	};
}

/** What the invoice's owner sees of a note (not the administrator's memo, nor Stripe's reasons). */
export function creditNoteView(note: CreditNote) {
	return {
		id: note._id, number: note.number, invoiceId: note.invoiceId, status: note.status, currency: note.currency, amount: note.amount,
		reason: note.reason, createdAt: note.createdAt.toISOString(), issuedAt: note.issuedAt?.toISOString() ?? null,
	};
}

/** What the administrator who issued it sees. */
export function creditNoteAdminView(note: CreditNote) {
	return { ...creditNoteView(note), memo: note.memo, refundId: note.refundId, failure: note.failure, issuedBy: note.issuedBy };
}
