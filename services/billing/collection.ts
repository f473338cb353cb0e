/**
 * Collecting the invoices we issue ourselves (Stripe collects the ones it issues) and dunning,
 * as Stripe Billing's retry schedule does it: a finalized invoice is charged at once; a failed
 * charge makes the subscription past_due and schedules a retry after each of the policy's
 * delays; when they are exhausted the subscription becomes unpaid (the invoice stays open, the
 * user can still pay it) or canceled (the invoice is written off as uncollectible). A payment
 * that succeeds makes the subscription active again. Every step is an event.
 *
 * Exactly once without transactions: the charge of attempt N carries the idempotency key
 * `invoice-payment:<invoice>:<N>`, so a node that crashed after charging, or two nodes racing,
 * get Stripe's first answer again; the subscription's change depends only on that answer (a
 * repeat finds it already made); the invoice records attempt N once (its failure key), with its
 * event, last.
 */
import type { Db } from "mongodb";
import { WITHOUT_OUTBOX } from "../../lib/events/mongo-outbox.ts";
import { AppError } from "../../lib/errors.ts";
import { customers } from "./customers.ts";
import { getUserInvoice, invoices, recordPaymentFailure, transitionInvoice } from "./invoices.ts";
import type { Invoice } from "./invoices.ts";
import { canTransition } from "./status.ts";
import type { SubscriptionStatus } from "./status.ts";
import { DAY_MS, withOptimisticRetry } from "./store.ts";
import type { ChargeInput, ChargeResult } from "./stripe.ts";
import { commitChange, subscriptions } from "./subscriptions.ts";
import type { Change } from "./subscriptions.ts";

export interface DunningPolicy {
	/** Days to wait before each retry after a failed charge; the attempts are 1 + retryDays.length. */
	retryDays: number[];
	finalStatus: "unpaid" | "canceled";
}

export interface CollectionContext {
	now: Date;
	requestId?: string | null;
	dunning: DunningPolicy;
	/** Charges a card (stripe.ts `chargeInvoice` bound to the client); throws when the provider is unreachable. */
	charge: (input: ChargeInput) => Promise<ChargeResult>;
}

export type CollectionOutcome = "paid" | "retry_scheduled" | "exhausted" | "already_settled";

/** When attempt `attempt` (1-based) failed at `now`: the next attempt's time, or null when none is left. */
export function nextAttemptAfter(policy: DunningPolicy, attempt: number, now: Date): Date | null {
	const days = policy.retryDays[attempt - 1];
	return days === undefined ? null : new Date(now.getTime() + days * DAY_MS);
}

/** Our open invoices whose next charge is due, oldest first. */
export async function dueForCollection(db: Db, now: Date, limit: number): Promise<Invoice[]> {
	return invoices(db).find({ status: "open", stripeInvoiceId: null, nextPaymentAttemptAt: { $lte: now } }, { projection: WITHOUT_OUTBOX }).sort({ nextPaymentAttemptAt: 1 }).limit(limit).toArray();
}

/** Makes one charge attempt of an open invoice of ours and applies what it came to. */
export async function collectInvoice(db: Db, inv: Invoice, ctx: CollectionContext): Promise<CollectionOutcome> {
	if (inv.status !== "open" || inv.stripeInvoiceId !== null) return "already_settled";
	const attempt = (inv.paymentAttempts ?? 0) + 1;
	// Nothing to charge (credits covered it): paid as it is, as Stripe does with a zero invoice.
	const result: ChargeResult = inv.amountDue <= 0 ? { outcome: "succeeded", paymentId: null } : await charge(db, inv, attempt, ctx);

	if (result.outcome === "succeeded") {
		await settleSubscription(db, inv.subscriptionId, "active", ctx);
		const paid = await transitionInvoice(db, inv._id, { to: "paid", event: "invoice.paid", set: { paymentAttempts: attempt, nextPaymentAttemptAt: null, lastPaymentError: null, stripePaymentIntentId: result.paymentId } }, ctx);
		return paid ? "paid" : "already_settled";
	}
	const nextAttemptAt = nextAttemptAfter(ctx.dunning, attempt, ctx.now);
	const writeOff = nextAttemptAt === null && ctx.dunning.finalStatus === "canceled";
	await settleSubscription(db, inv.subscriptionId, nextAttemptAt ? "past_due" : ctx.dunning.finalStatus, ctx);
	const set: Partial<Invoice> = { paymentAttempts: attempt, nextPaymentAttemptAt: nextAttemptAt, lastPaymentError: result.reason, ...(writeOff ? { status: "uncollectible" as const } : {}) };
	const recorded = await recordPaymentFailure(db, inv._id, `attempt:${attempt}`, nextAttemptAt, ctx, set);
	if (!recorded) return "already_settled";
	return nextAttemptAt ? "retry_scheduled" : "exhausted";
}

/** Charges what the invoice owes to the customer's card, with the key of this attempt. */
async function charge(db: Db, inv: Invoice, attempt: number, ctx: CollectionContext): Promise<ChargeResult> {
	const customer = await customers(db).findOne({ _id: inv.userId }, { projection: { stripeCustomerId: 1 } });
	return ctx.charge({ stripeCustomerId: customer?.stripeCustomerId ?? null, amount: inv.amountDue, currency: inv.currency, invoiceId: inv._id, description: `Invoice ${inv.number ?? inv._id}`, idempotencyKey: `invoice-payment:${inv._id}:${attempt}` });
}

/**
 * Moves the invoice's subscription to where the charge leaves it, if it is not there yet and
 * the move is one dunning makes (a subscription the user canceled meanwhile stays canceled).
 */
async function settleSubscription(db: Db, subscriptionId: string | null, target: SubscriptionStatus, ctx: CollectionContext): Promise<void> {
	if (!subscriptionId) return;
	const from: Record<string, SubscriptionStatus[]> = { active: ["past_due", "unpaid"], past_due: ["active"], unpaid: ["active", "past_due"], canceled: ["active", "past_due", "unpaid"] };
	await withOptimisticRetry(async () => {
		const sub = await subscriptions(db).findOne({ _id: subscriptionId }, { projection: WITHOUT_OUTBOX });
		if (!sub || sub.stripeSubscriptionId || !from[target]!.includes(sub.status) || !canTransition(sub.status, target)) return "unchanged";
		const change: Change = target === "canceled"
			? { set: { status: "canceled", canceledAt: ctx.now, endedAt: ctx.now }, events: ["subscription.canceled"] }
			: { set: { status: target }, events: ["subscription.updated"] };
		const next = await commitChange(db, sub, change, ctx);
		return next === "conflict" ? next : "changed";
	});
}

/**
 * The user pays an open invoice now (after updating their card in the portal): one attempt,
 * counted like the scheduled ones. A decline is a 402 with the reason.
 */
export async function payInvoiceNow(db: Db, userId: string, invoiceId: string, ctx: CollectionContext): Promise<Invoice> {
	const inv = await getUserInvoice(db, userId, invoiceId);
	if (inv.stripeInvoiceId) throw new AppError(409, "PAID_THROUGH_STRIPE", "Stripe collects this invoice: pay it on its hosted page.", { hostedInvoiceUrl: inv.hostedInvoiceUrl });
	if (inv.status !== "open") throw new AppError(409, "INVOICE_NOT_OPEN", `The invoice is ${inv.status}; only an open invoice can be paid.`, { status: inv.status });
	const outcome = await collectInvoice(db, inv, ctx);
	const after = await getUserInvoice(db, userId, invoiceId);
	if (outcome === "retry_scheduled" || outcome === "exhausted") throw new AppError(402, "PAYMENT_FAILED", "The payment was declined. Update your card in the billing portal and try again.", { reason: after.lastPaymentError });
	return after;
}
