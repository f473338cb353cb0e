/**
 * Our own invoice documents: seller and buyer, line items, tax lines, totals in integer minor
 * units. A draft gets its number when it is finalized: per calendar year, sequential, without
 * gaps, even across nodes and crashes (see `assignNumber`). Status moves only forward through
 * INVOICE_TRANSITIONS; each step that matters to a user is an event in the same update.
 */
import type { Db } from "mongodb";
import type { InvoiceData } from "../../lib/events/catalog.ts";
import { initialOutbox, lockKey, WITHOUT_OUTBOX, withDocumentLock, withEvents } from "../../lib/events/mongo-outbox.ts";
import type { OutboxFields } from "../../lib/events/mongo-outbox.ts";
import { badRequest, notFound } from "../../lib/errors.ts";
import { recordRevenue } from "./metrics.ts";
import { applyBps, sumMinor } from "./money.ts";
import { billingEvent, documentChecker, isDuplicateKey } from "./store.ts";

export type InvoiceStatus = "draft" | "open" | "paid" | "void" | "uncollectible";

/** Stripe's invoice lifecycle: drafts are finalized; open invoices are paid, voided or written off. */
export const INVOICE_TRANSITIONS: Readonly<Record<InvoiceStatus, readonly InvoiceStatus[]>> = {
	draft: ["open"],
	open: ["paid", "void", "uncollectible"],
	uncollectible: ["paid", "void"],
	paid: [],
	void: [],
};

export interface InvoiceLine {
	description: string;
	quantity: number;
	/** Minor units; amount = unitAmount * quantity unless it is a proration. */
	unitAmount: number;
	amount: number;
	periodStart: Date | null;
	periodEnd: Date | null;
	proration: boolean;
	/** Usage of a metered price, priced when the invoice is finalized (usage.ts). */
	metered?: boolean;
}

export interface TaxLine {
	name: string;
	/** Basis points (2000 = 20 %); null when the provider gave only the amount. */
	rateBps: number | null;
	taxableAmount: number;
	amount: number;
}

export interface Party {
	name: string;
	email?: string | null;
	address?: string | null;
	taxId?: string | null;
}

export interface Invoice extends OutboxFields {
	_id: string;
	/** "2026-000042" once finalized. */
	number: string | null;
	/** The number, or a unique placeholder while a draft (unique index, no partial indexes needed). */
	numberKey: string;
	userId: string;
	subscriptionId: string | null;
	status: InvoiceStatus;
	currency: string;
	seller: Party;
	buyer: Party;
	lines: InvoiceLine[];
	subtotal: number;
	discount: number;
	taxLines: TaxLine[];
	tax: number;
	total: number;
	amountPaid: number;
	amountDue: number;
	createdAt: Date;
	updatedAt: Date;
	finalizedAt: Date | null;
	paidAt: Date | null;
	voidedAt: Date | null;
	/** A draft not finalized by then (a crash in between) is finalized by the scheduler. */
	autoFinalizeAt: Date | null;
	stripeInvoiceId: string | null;
	/** The PaymentIntent that paid one of our invoices (what a credit note refunds); absent on older documents. */
	stripePaymentIntentId?: string | null;
	stripeEventAt: number | null;
	hostedInvoiceUrl: string | null;
	/** Keys of payment failures already reported (one event each). */
	paymentFailures: string[];
	/** Charges of an invoice we collect ourselves (collection.ts): attempts made, when the next is due, why the last failed. */
	paymentAttempts: number;
	nextPaymentAttemptAt: Date | null;
	lastPaymentError: string | null;
	/** The metered period this invoice bills in arrears; its usage line is priced at finalization. */
	usagePeriod: UsagePeriod | null;
	version: number;
}

export interface UsagePeriod {
	subscriptionId: string;
	planId: string;
	priceId: string;
	start: Date;
	end: Date;
}

export const invoices = (db: Db) => db.collection<Invoice>("invoices");
const counters = (db: Db) => db.collection<{ _id: string; seq: number; pending: { invoiceId: string } | null }>("counters");

const money = { type: "number", integer: true } as const;
const checkInvoice = documentChecker<Invoice>("invoice", {
	_id: { type: "string", min: 1, max: 200 },
	userId: { type: "string", min: 1, max: 100 },
	status: { type: "enum", values: Object.keys(INVOICE_TRANSITIONS) },
	currency: { type: "string", pattern: /^[a-z]{3}$/ },
	seller: { type: "object", props: { name: "string" } },
	buyer: { type: "object", props: { name: "string" } },
	lines: { type: "array", max: 500, items: { type: "object", props: { description: { type: "string", max: 500 }, quantity: { type: "number", integer: true, min: 0 }, unitAmount: money, amount: money, proration: "boolean" } } },
	taxLines: { type: "array", max: 20, items: { type: "object", props: { name: "string", taxableAmount: money, amount: money } } },
	subtotal: money, discount: { ...money, min: 0 }, tax: money, total: money, amountPaid: { ...money, min: 0 }, amountDue: money,
	version: { type: "number", integer: true, min: 1 },
});

/** Tax lines for a subtotal at the configured rates (none when the rate is 0 or there is nothing to tax). */
export function taxLinesFor(taxable: number, rates: { name: string; rateBps: number }[]): TaxLine[] {
	if (taxable <= 0) return [];
	return rates.filter((r) => r.rateBps > 0).map((r) => ({ name: r.name, rateBps: r.rateBps, taxableAmount: taxable, amount: applyBps(taxable, r.rateBps) }));
}

export interface DraftInput {
	/** Deterministic ids make creation idempotent (a retry finds the same draft). */
	id: string;
	userId: string;
	subscriptionId: string | null;
	currency: string;
	seller: Party;
	buyer: Party;
	lines: InvoiceLine[];
	/** Explicit tax lines (a provider's), or rates to compute them from. */
	taxLines?: TaxLine[];
	taxRates?: { name: string; rateBps: number }[];
	discount?: number;
	amountPaid?: number;
	stripeInvoiceId?: string | null;
	hostedInvoiceUrl?: string | null;
	/** Let the scheduler finalize it if nobody does (false for a provider's draft, finalized by its events). */
	autoFinalize?: boolean;
	usagePeriod?: UsagePeriod | null;
}

/** Totals of a draft: subtotal = sum of lines; total = subtotal - discount + tax. */
export function totals(lines: InvoiceLine[], discount: number, taxLines: TaxLine[]) {
	const subtotal = sumMinor(lines.map((l) => l.amount));
	const tax = sumMinor(taxLines.map((t) => t.amount));
	return { subtotal, discount, tax, total: subtotal - discount + tax };
}

const AUTO_FINALIZE_AFTER_MS = 60_000;

/** Creates the draft unless it exists; returns the stored invoice either way. */
export async function createDraft(db: Db, input: DraftInput, now: Date): Promise<Invoice> {
	const discount = input.discount ?? 0;
	const subtotal = sumMinor(input.lines.map((l) => l.amount));
	const taxLines = input.taxLines ?? taxLinesFor(subtotal - discount, input.taxRates ?? []);
	const t = totals(input.lines, discount, taxLines);
	if (t.total < 0) throw badRequest("An invoice total cannot be negative; record a credit instead.");
	const amountPaid = input.amountPaid ?? 0;
	const draft: Invoice = {
		_id: input.id, number: null, numberKey: `draft:${input.id}`, userId: input.userId, subscriptionId: input.subscriptionId, status: "draft", currency: input.currency,
		seller: input.seller, buyer: input.buyer, lines: input.lines, taxLines, ...t, amountPaid, amountDue: t.total - amountPaid,
		createdAt: now, updatedAt: now, finalizedAt: null, paidAt: null, voidedAt: null, autoFinalizeAt: input.autoFinalize === false ? null : new Date(now.getTime() + AUTO_FINALIZE_AFTER_MS),
		stripeInvoiceId: input.stripeInvoiceId ?? null, stripeEventAt: null, hostedInvoiceUrl: input.hostedInvoiceUrl ?? null, paymentFailures: [],
		paymentAttempts: 0, nextPaymentAttemptAt: null, lastPaymentError: null, usagePeriod: input.usagePeriod ?? null, version: 1,
		...initialOutbox([], now),
	};
	try {
		await invoices(db).insertOne(checkInvoice(draft));
	} catch (err) {
		if (!isDuplicateKey(err)) throw err;
	}
	return (await invoices(db).findOne({ _id: draft._id }, { projection: WITHOUT_OUTBOX }))!;
}

/** Changes an invoice holding its lock (concurrent updates must not race, see lib/events/mongo-outbox.ts). */
export function locked<T>(db: Db, invoiceId: string, fn: (inv: Invoice | null) => Promise<T>): Promise<T> {
	return withDocumentLock(db, lockKey("invoices", invoiceId), async () => fn(await invoices(db).findOne({ _id: invoiceId }, { projection: WITHOUT_OUTBOX })));
}

/** Replaces a draft's content with a provider's newer snapshot (`eventAt`, Unix seconds); older ones are ignored. */
export async function updateDraft(db: Db, id: string, content: Pick<Invoice, "lines" | "taxLines" | "discount" | "amountPaid">, eventAt: number, now: Date): Promise<boolean> {
	const t = totals(content.lines, content.discount, content.taxLines);
	return locked(db, id, async (inv) => {
		if (!inv || inv.status !== "draft" || (inv.stripeEventAt !== null && inv.stripeEventAt > eventAt)) return false;
		await invoices(db).updateOne({ _id: id }, { $set: { ...content, ...t, amountDue: t.total - content.amountPaid, stripeEventAt: eventAt, updatedAt: now }, $inc: { version: 1 } });
		return true;
	});
}

export function invoiceData(inv: Invoice, nextPaymentAttempt?: Date | null): InvoiceData {
	return {
		invoiceId: inv._id, number: inv.number ?? "", userId: inv.userId, status: inv.status, currency: inv.currency, total: inv.total,
		...(nextPaymentAttempt !== undefined ? { nextPaymentAttempt: nextPaymentAttempt?.toISOString() ?? null } : {}),
	};
}

interface Ctx {
	now: Date;
	requestId?: string | null;
}

const formatNumber = (year: number, seq: number) => `${year}-${String(seq).padStart(6, "0")}`;

/** Gives the reserved number to its draft and opens it (idempotent: only a draft without a number changes). */
async function completeReservation(db: Db, key: string, year: number, seq: number, invoiceId: string, ctx: Ctx): Promise<void> {
	await locked(db, invoiceId, async (inv) => {
		if (!inv || inv.status !== "draft" || inv.number !== null) return;
		const number = formatNumber(year, seq);
		// Ours are charged at once (collection.ts); Stripe collects the ones it issued.
		const nextPaymentAttemptAt = inv.stripeInvoiceId === null ? ctx.now : null;
		const set = { number, numberKey: number, status: "open" as const, finalizedAt: ctx.now, autoFinalizeAt: null, nextPaymentAttemptAt, updatedAt: ctx.now };
		const opened: Invoice = { ...inv, ...set };
		await invoices(db).updateOne(
			{ _id: invoiceId, status: "draft", number: null },
			withEvents<Invoice>({ $set: set, $inc: { version: 1 } }, [billingEvent("invoice.created", invoiceId, invoiceData(opened), ctx.now, ctx.requestId)], ctx.now),
		);
	});
	await counters(db).updateOne({ _id: key, seq, "pending.invoiceId": invoiceId }, { $set: { pending: null } });
}

/**
 * Finalizes a draft: takes the year's next number and opens it. Gap-free without transactions:
 * numbering holds the year's counter lock, and the counter records the number it hands out
 * (`pending`) before the draft gets it; whoever finds a reservation completes it first (the
 * number goes to that draft, which can only be opened), so a crash between taking the number and
 * writing it leaves work for the next finalizer, never a hole.
 */
export async function finalizeInvoice(db: Db, invoiceId: string, ctx: Ctx): Promise<Invoice> {
	const year = ctx.now.getUTCFullYear();
	const key = `invoice:${year}`;
	await withDocumentLock(db, lockKey("counters", key), async () => {
		const counter = await counters(db).findOne({ _id: key });
		if (counter?.pending) await completeReservation(db, key, year, counter.seq, counter.pending.invoiceId, ctx);
		const inv = await invoices(db).findOne({ _id: invoiceId }, { projection: { status: 1 } });
		if (!inv) throw notFound(`Invoice ${invoiceId}`);
		if (inv.status !== "draft") return;
		const seq = (counter?.seq ?? 0) + 1;
		if (counter) await counters(db).updateOne({ _id: key }, { $set: { seq, pending: { invoiceId } } });
		else await counters(db).insertOne({ _id: key, seq, pending: { invoiceId } });
		await completeReservation(db, key, year, seq, invoiceId, ctx);
	}, { waitMs: 10_000 });
	return (await invoices(db).findOne({ _id: invoiceId }, { projection: WITHOUT_OUTBOX }))!;
}

export interface StatusChange {
	to: InvoiceStatus;
	set?: Partial<Invoice>;
	/** Emit `invoice.paid` etc. with the change. */
	event?: "invoice.paid";
}

/** Moves an invoice along INVOICE_TRANSITIONS; false when it is already there or the move is not allowed. */
export async function transitionInvoice(db: Db, invoiceId: string, change: StatusChange, ctx: Ctx): Promise<boolean> {
	return locked(db, invoiceId, async (inv) => {
	if (!inv || !INVOICE_TRANSITIONS[inv.status].includes(change.to)) return false;
	const set: Partial<Invoice> = { ...change.set, status: change.to, updatedAt: ctx.now };
	if (change.to === "paid") Object.assign(set, { paidAt: set.paidAt ?? ctx.now, amountPaid: inv.total, amountDue: 0 });
	if (change.to === "void") set.voidedAt = ctx.now;
	const next = { ...inv, ...set };
	const events = change.event ? [billingEvent(change.event, inv._id, invoiceData(next), ctx.now, ctx.requestId)] : [];
	await invoices(db).updateOne({ _id: inv._id, version: inv.version }, withEvents<Invoice>({ $set: set, $inc: { version: 1 } }, events, ctx.now));
	if (change.to === "paid") recordRevenue(db, inv.total, inv.currency);
	return true;
	});
}

/**
 * Reports a failed payment attempt once per `failureKey` (the Stripe event id, or our attempt
 * number), with what else the failure changes (`set`: the next attempt, or uncollectible).
 */
export async function recordPaymentFailure(db: Db, invoiceId: string, failureKey: string, nextAttempt: Date | null, ctx: Ctx, set: Partial<Invoice> = {}): Promise<boolean> {
	return locked(db, invoiceId, async (inv) => {
		if (!inv || inv.status !== "open" || inv.paymentFailures.includes(failureKey)) return false;
		const event = billingEvent("invoice.payment_failed", inv._id, invoiceData({ ...inv, ...set }, nextAttempt), ctx.now, ctx.requestId);
		await invoices(db).updateOne({ _id: inv._id }, withEvents<Invoice>({ $push: { paymentFailures: failureKey }, $set: { ...set, updatedAt: ctx.now }, $inc: { version: 1 } }, [event], ctx.now));
		return true;
	});
}

/** Replaces a draft's metered line (none when `line` is null), recomputing totals and tax at `rates`. */
export async function replaceMeteredLine(db: Db, invoiceId: string, line: InvoiceLine | null, rates: { name: string; rateBps: number }[], now: Date): Promise<boolean> {
	return locked(db, invoiceId, async (inv) => {
		if (!inv || inv.status !== "draft") return false;
		const lines = [...inv.lines.filter((l) => !l.metered), ...(line ? [line] : [])];
		const taxLines = taxLinesFor(sumMinor(lines.map((l) => l.amount)) - inv.discount, rates);
		const t = totals(lines, inv.discount, taxLines);
		await invoices(db).updateOne({ _id: invoiceId, version: inv.version }, { $set: { lines, taxLines, ...t, amountDue: t.total - inv.amountPaid, updatedAt: now }, $inc: { version: 1 } });
		return true;
	});
}

/** Drafts whose finalization was interrupted; the scheduler finalizes them. */
export async function dueDrafts(db: Db, now: Date, limit: number): Promise<string[]> {
	const docs = await invoices(db).find({ status: "draft", autoFinalizeAt: { $lte: now } }, { projection: { _id: 1 } }).sort({ autoFinalizeAt: 1 }).limit(limit).toArray();
	return docs.map((d) => d._id);
}

/** A user's finalized invoices, newest first, by opaque cursor. */
export async function listInvoices(db: Db, userId: string, opts: { limit: number; cursor?: string }): Promise<{ invoices: Invoice[]; nextCursor: string | null }> {
	const filter: Record<string, unknown> = { userId, status: { $ne: "draft" } };
	if (opts.cursor) {
		const [ms, id] = Buffer.from(opts.cursor, "base64url").toString().split("|");
		const at = new Date(Number(ms));
		if (!id || Number.isNaN(at.getTime())) throw badRequest("The cursor is not valid.", [{ field: "cursor", message: "is not a cursor from a previous page" }]);
		filter.$or = [{ createdAt: { $lt: at } }, { createdAt: at, _id: { $lt: id } }];
	}
	const page = await invoices(db).find(filter, { projection: WITHOUT_OUTBOX }).sort({ createdAt: -1, _id: -1 }).limit(opts.limit + 1).toArray();
	const more = page.length > opts.limit;
	const items = page.slice(0, opts.limit);
	const last = items[items.length - 1];
	return { invoices: items, nextCursor: more && last ? Buffer.from(`${last.createdAt.getTime()}|${last._id}`).toString("base64url") : null };
}

/** One of the user's invoices; another user's (or a draft) is "not found". */
export async function getUserInvoice(db: Db, userId: string, invoiceId: string): Promise<Invoice> {
	const inv = await invoices(db).findOne({ _id: invoiceId, userId, status: { $ne: "draft" } }, { projection: WITHOUT_OUTBOX });
	if (!inv) throw notFound("Invoice");
	return inv;
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

export function invoiceView(inv: Invoice) {
	return {
		id: inv._id, number: inv.number, status: inv.status, currency: inv.currency, subscriptionId: inv.subscriptionId, seller: inv.seller, buyer: inv.buyer,
		lines: inv.lines.map((l) => ({ ...l, periodStart: iso(l.periodStart), periodEnd: iso(l.periodEnd) })),
		subtotal: inv.subtotal, discount: inv.discount, taxLines: inv.taxLines, tax: inv.tax, total: inv.total, amountPaid: inv.amountPaid, amountDue: inv.amountDue,
		createdAt: iso(inv.createdAt), finalizedAt: iso(inv.finalizedAt), paidAt: iso(inv.paidAt), voidedAt: iso(inv.voidedAt), hostedInvoiceUrl: inv.hostedInvoiceUrl,
		paymentAttempts: inv.paymentAttempts ?? 0, nextPaymentAttemptAt: iso(inv.nextPaymentAttemptAt ?? null), lastPaymentError: inv.lastPaymentError ?? null,
	};
}
