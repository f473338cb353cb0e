/**
 * The invoices of the periods we bill ourselves (Stripe invoices the subscriptions it bills):
 * drafted before the change that starts the period is committed (a renewal, a trial converting,
 * a resume), finalized after it. The draft's id derives from the subscription and the period's
 * start, so a retry after a crash finds the same draft instead of invoicing twice, and a draft
 * whose finalization was interrupted is finalized by the scheduler (invoices.ts `dueDrafts`).
 */
import type { Db } from "mongodb";
import { customers } from "./customers.ts";
import { createDraft, finalizeInvoice } from "./invoices.ts";
import type { Invoice, InvoiceLine, Party } from "./invoices.ts";
import { findPriceById, getPlan } from "./plans.ts";
import { licensedAmount } from "./pricing.ts";
import type { Subscription } from "./subscriptions.ts";
import { settleUsage } from "./usage.ts";

export interface InvoicingOptions {
	now: Date;
	seller: Party;
	taxRates: { name: string; rateBps: number }[];
}

interface Period {
	start: Date;
	end: Date;
}

/**
 * Drafts the invoice of `period`: the licensed price in advance, the subscription's pending
 * prorations, and the metered usage of the period that just ended (`arrears`, priced when the
 * draft is finalized). Returns the draft's id, or null when there is nothing to bill.
 */
export async function draftPeriodInvoice(db: Db, sub: Subscription, period: Period, arrears: Period | null, opts: InvoicingOptions): Promise<string | null> {
	const plan = await getPlan(db, sub.planId);
	const price = findPriceById(plan, sub.priceId);
	const lines: InvoiceLine[] = [];
	const amount = licensedAmount(price, sub.quantity);
	if (amount > 0) lines.push({ description: `${plan.name} (${sub.interval}ly)`, quantity: sub.quantity, unitAmount: price.model === "per_seat" ? (price.unitAmount ?? 0) : amount, amount, periodStart: period.start, periodEnd: period.end, proration: false });
	lines.push(...sub.pendingItems.map((i) => ({ description: i.description, quantity: 1, unitAmount: i.amount, amount: i.amount, periodStart: i.periodStart, periodEnd: i.periodEnd, proration: true })));
	const usagePeriod = price.model === "metered" && arrears && arrears.start < arrears.end ? { subscriptionId: sub._id, planId: plan._id, priceId: price.id, ...arrears } : null;
	// A credit larger than what is owed waits for a later invoice rather than making a negative one.
	// A metered period is always invoiced (as Stripe does, even at zero): its usage is known only at finalization.
	const billable = usagePeriod !== null || (lines.length > 0 && lines.reduce((a, l) => a + l.amount, 0) >= 0);
	if (!billable) return null;
	const invoiceId = `in_${sub._id}_${period.start.getTime()}`;
	const customer = await customers(db).findOne({ _id: sub.userId });
	const buyer = { name: customer?.name ?? customer?.email ?? sub.userId, email: customer?.email ?? null };
	await createDraft(db, { id: invoiceId, userId: sub.userId, subscriptionId: sub._id, currency: sub.currency, seller: opts.seller, buyer, lines, taxRates: opts.taxRates, usagePeriod }, opts.now);
	return invoiceId;
}

/** Finalizes a draft (numbered, open, due for collection), pricing its metered usage first. */
export async function finalizePeriodInvoice(db: Db, invoiceId: string, opts: InvoicingOptions & { requestId?: string | null }): Promise<Invoice> {
	await settleUsage(db, invoiceId, opts.taxRates, opts.now);
	return finalizeInvoice(db, invoiceId, opts);
}
