/**
 * Applies Stripe's view of a subscription or an invoice to ours. Each apply is idempotent (the
 * same snapshot twice changes nothing and emits nothing) and order-safe: a subscription takes a
 * snapshot only if it is not older (`created`) than the last one applied and the transition
 * table allows it; an invoice only moves forward through its statuses, so a late "open" never
 * undoes "paid". Fields are read from both the current and older Stripe API shapes.
 */
import type { Db } from "mongodb";
import { WITHOUT_OUTBOX } from "../../lib/events/mongo-outbox.ts";
import { unavailable } from "../../lib/errors.ts";
import { customers, findCustomerByStripeId } from "./customers.ts";
import { createDraft, finalizeInvoice, recordPaymentFailure, transitionInvoice, updateDraft } from "./invoices.ts";
import type { InvoiceLine, InvoiceStatus, Party, TaxLine } from "./invoices.ts";
import { mulDiv } from "./money.ts";
import { plans } from "./plans.ts";
import { canTransition, fromStripeStatus } from "./status.ts";
import { withOptimisticRetry } from "./store.ts";
import { commitChange, subscriptions } from "./subscriptions.ts";
import type { Change, Subscription } from "./subscriptions.ts";

export type Outcome = "applied" | "ignored" | "stale";

/** A Stripe object as JSON; read with `at`. */
export type StripeObject = Record<string, unknown>;

/** The value at `path` in a JSON object, or undefined. */
export function at(obj: unknown, ...path: (string | number)[]): unknown {
	let cur: unknown = obj;
	for (const key of path) {
		if (cur === null || typeof cur !== "object") return undefined;
		cur = (cur as Record<string | number, unknown>)[key];
	}
	return cur;
}
const str = (v: unknown) => (typeof v === "string" && v ? v : undefined);
/** An id field that may be expanded into an object. */
const idOf = (v: unknown) => str(v) ?? str(at(v, "id"));
const int = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) ? v : undefined);
const time = (v: unknown) => (int(v) !== undefined ? new Date(int(v)! * 1000) : undefined);

interface SyncContext {
	now: Date;
	requestId?: string | null;
	/** The Stripe event's id and `created` (Unix seconds). */
	eventId: string;
	created: number;
}

/** Our subscription for a Stripe subscription: linked by id, else by the metadata we gave Checkout. */
async function findLinked(db: Db, stripeSub: StripeObject): Promise<Subscription | null> {
	const byStripe = await subscriptions(db).findOne({ stripeSubscriptionId: idOf(stripeSub.id) }, { projection: WITHOUT_OUTBOX });
	if (byStripe) return byStripe;
	const ours = str(at(stripeSub, "metadata", "subscriptionId"));
	return ours ? subscriptions(db).findOne({ _id: ours }, { projection: WITHOUT_OUTBOX }) : null;
}

/**
 * Our plan and price for what Stripe bills: by the Stripe price id an administrator set on the
 * plan, else by the ids we put in the Checkout metadata (prices sent inline have no Stripe id).
 */
export async function termsFromStripe(db: Db, stripePriceId: string | undefined, metadata: unknown): Promise<Partial<Subscription>> {
	const byStripe = stripePriceId ? await plans(db).findOne({ "prices.stripePriceId": stripePriceId }) : null;
	const plan = byStripe ?? (str(at(metadata, "planId")) ? await plans(db).findOne({ _id: str(at(metadata, "planId")) }) : null);
	const price = plan?.prices.find((p) => (byStripe ? p.stripePriceId === stripePriceId : p.id === str(at(metadata, "priceId"))));
	return plan && price ? { planId: plan._id, priceId: price.id, interval: price.interval, currency: price.currency } : {};
}

/** Applies a `customer.subscription.*` snapshot (`deleted` = canceled). */
export async function syncSubscription(db: Db, stripeSub: StripeObject, deleted: boolean, ctx: SyncContext): Promise<Outcome> {
	const item = at(stripeSub, "items", "data", 0);
	const stripePriceId = idOf(at(item, "price"));
	const mapped = fromStripeStatus(deleted ? "canceled" : (str(stripeSub.status) ?? ""));
	if (!mapped) return "ignored";
	// Stripe keeps a subscription with paused collection "active"; in our model it is paused.
	const status = mapped === "active" && at(stripeSub, "pause_collection") ? "paused" : mapped;
	const terms = await termsFromStripe(db, stripePriceId, at(stripeSub, "metadata"));

	return withOptimisticRetry(async () => {
		const sub = await findLinked(db, stripeSub);
		if (!sub) return "ignored";
		if (sub.stripeEventAt !== null && ctx.created < sub.stripeEventAt) return "stale";
		if (!canTransition(sub.status, status)) return "stale";
		const periodStart = time(at(item, "current_period_start")) ?? time(stripeSub.current_period_start) ?? sub.currentPeriodStart;
		const periodEnd = time(at(item, "current_period_end")) ?? time(stripeSub.current_period_end) ?? sub.currentPeriodEnd;
		const set: Partial<Subscription> = {
			status,
			stripeSubscriptionId: idOf(stripeSub.id)!,
			stripeItemId: idOf(item) ?? sub.stripeItemId,
			stripeEventAt: ctx.created,
			cancelAtPeriodEnd: stripeSub.cancel_at_period_end === true,
			currentPeriodStart: periodStart,
			currentPeriodEnd: periodEnd,
			trialEnd: time(stripeSub.trial_end) ?? sub.trialEnd,
			...terms,
			...(int(at(item, "quantity")) !== undefined ? { quantity: int(at(item, "quantity")) } : {}),
			...(status === "canceled" ? { canceledAt: time(stripeSub.canceled_at) ?? ctx.now, endedAt: time(stripeSub.ended_at) ?? ctx.now } : {}),
			...(status === "paused" && sub.status !== "paused" ? { pausedAt: ctx.now } : {}),
			...(status !== "paused" ? { pausedAt: null } : {}),
		};
		const visible = set.status !== sub.status || set.cancelAtPeriodEnd !== sub.cancelAtPeriodEnd || (set.planId ?? sub.planId) !== sub.planId || (set.quantity ?? sub.quantity) !== sub.quantity || set.stripeSubscriptionId !== sub.stripeSubscriptionId;
		const events: Change["events"] = !visible ? [] : status === "canceled" ? ["subscription.canceled"] : ["subscription.updated"];
		const guard = { $or: [{ stripeEventAt: null }, { stripeEventAt: { $lte: ctx.created } }] };
		const next = await commitChange(db, sub, { set, events, guard }, ctx);
		return next === "conflict" ? next : "applied";
	});
}

/** The user a Stripe invoice belongs to: by its customer, else by the subscription metadata we set. */
async function invoiceOwner(db: Db, inv: StripeObject): Promise<{ userId: string; subscriptionId: string | null } | null> {
	const stripeSubId = idOf(at(inv, "parent", "subscription_details", "subscription")) ?? idOf(inv.subscription);
	const sub = stripeSubId ? await subscriptions(db).findOne({ stripeSubscriptionId: stripeSubId }, { projection: { userId: 1 } }) : null;
	const metadata = at(inv, "parent", "subscription_details", "metadata") ?? at(inv, "subscription_details", "metadata");
	const customer = idOf(inv.customer) ? await findCustomerByStripeId(db, idOf(inv.customer)!) : null;
	const userId = sub?.userId ?? customer?._id ?? str(at(metadata, "userId"));
	if (!userId) return null;
	return { userId, subscriptionId: sub?._id ?? str(at(metadata, "subscriptionId")) ?? null };
}

function invoiceLines(inv: StripeObject): InvoiceLine[] {
	const data = at(inv, "lines", "data");
	return (Array.isArray(data) ? data : []).map((line: unknown) => {
		const amount = int(at(line, "amount")) ?? 0;
		const quantity = int(at(line, "quantity")) ?? 1;
		const decimal = str(at(line, "pricing", "unit_amount_decimal")) ?? str(at(line, "price", "unit_amount_decimal"));
		const unit = int(at(line, "price", "unit_amount")) ?? (decimal && /^-?\d+$/.test(decimal) ? Number(decimal) : undefined) ?? (quantity ? mulDiv(amount, 1, quantity) : amount);
		const proration = at(line, "proration") === true || at(line, "parent", "subscription_item_details", "proration") === true;
		return { description: str(at(line, "description")) ?? "Subscription", quantity, unitAmount: unit, amount, periodStart: time(at(line, "period", "start")) ?? null, periodEnd: time(at(line, "period", "end")) ?? null, proration };
	});
}

function invoiceTaxes(inv: StripeObject): TaxLine[] {
	const list = at(inv, "total_taxes") ?? at(inv, "total_tax_amounts");
	if (Array.isArray(list)) return list.map((t: unknown) => ({ name: "Tax", rateBps: null, taxableAmount: int(at(t, "taxable_amount")) ?? 0, amount: int(at(t, "amount")) ?? 0 }));
	const tax = int(inv.tax);
	return tax ? [{ name: "Tax", rateBps: null, taxableAmount: int(inv.subtotal) ?? 0, amount: tax }] : [];
}

/** Our statuses a Stripe invoice status implies, in the order to apply them. */
const STEPS: Record<string, InvoiceStatus[]> = { draft: [], open: ["open"], paid: ["open", "paid"], void: ["open", "void"], uncollectible: ["open", "uncollectible"] };

/** Mirrors a Stripe invoice into our invoice document, numbering it when Stripe finalizes it. */
export async function mirrorInvoice(db: Db, inv: StripeObject, opts: { seller: Party; failed: boolean; ctx: SyncContext }): Promise<Outcome> {
	const { ctx } = opts;
	const stripeId = idOf(inv.id);
	const currency = str(inv.currency);
	// A negative total is a credit Stripe keeps on the customer's balance; our invoices are never negative.
	if (!stripeId || !currency || (int(inv.total) ?? 0) < 0) return "ignored";
	const owner = await invoiceOwner(db, inv);
	// Possibly the checkout that links this customer has not been applied yet: let Stripe retry.
	if (!owner) throw unavailable(`Stripe invoice ${stripeId} belongs to no known customer yet.`, "WEBHOOK_NOT_READY");
	const id = `stripe_${stripeId}`;
	const lines = invoiceLines(inv);
	const taxLines = invoiceTaxes(inv);
	const subtotal = lines.reduce((a, l) => a + l.amount, 0);
	const tax = taxLines.reduce((a, t) => a + t.amount, 0);
	// Whatever makes Stripe's total differ from lines + tax is its discounts.
	const discount = Math.max(0, subtotal + tax - (int(inv.total) ?? subtotal + tax));
	const amountPaid = int(inv.amount_paid) ?? 0;
	const customer = await customers(db).findOne({ _id: owner.userId });
	const buyer: Party = { name: customer?.name ?? customer?.email ?? owner.userId, email: customer?.email ?? null };
	const hostedInvoiceUrl = str(inv.hosted_invoice_url) ?? null;

	const existing = await createDraft(db, { id, userId: owner.userId, subscriptionId: owner.subscriptionId, currency, seller: opts.seller, buyer, lines, taxLines, discount, amountPaid, stripeInvoiceId: stripeId, hostedInvoiceUrl, autoFinalize: false }, ctx.now);
	if (existing.status === "draft") await updateDraft(db, id, { lines, taxLines, discount, amountPaid }, ctx.created, ctx.now);
	for (const step of STEPS[str(inv.status) ?? "draft"] ?? []) {
		if (step === "open") await finalizeInvoice(db, id, ctx);
		else await transitionInvoice(db, id, { to: step, ...(step === "paid" ? { event: "invoice.paid" as const, set: { paidAt: time(at(inv, "status_transitions", "paid_at")) ?? ctx.now } } : {}) }, ctx);
	}
	if (opts.failed) await recordPaymentFailure(db, id, ctx.eventId, time(inv.next_payment_attempt) ?? null, ctx);
	return "applied";
}
