/**
 * Stripe through its SDK: the client (pointed at stripe-mock locally), customers, Checkout
 * Sessions, the Customer Portal, and the calls that mirror a local change onto a subscription
 * Stripe bills. Every mutating call carries an idempotency key derived from what it does, so a
 * retry (ours or the SDK's) never does it twice. Stripe failures become AppErrors.
 */
import Stripe from "stripe";
import type { Db } from "mongodb";
import { AppError, notFound, unavailable } from "../../lib/errors.ts";
import { customers } from "./customers.ts";
import type { Customer } from "./customers.ts";
import type { Plan } from "./plans.ts";
import type { Price } from "./pricing.ts";
import type { Subscription } from "./subscriptions.ts";

export type StripeClient = Stripe;

export interface StripeClientOptions {
	apiKey: string;
	/** e.g. http://127.0.0.1:52111 for stripe-mock; unset = api.stripe.com. */
	apiBase?: string;
	timeoutMs?: number;
}

export function createStripeClient(opts: StripeClientOptions): Stripe {
	const base = opts.apiBase ? new URL(opts.apiBase) : undefined;
	const protocol = base?.protocol === "http:" ? "http" : "https";
	return new Stripe(opts.apiKey, {
		timeout: opts.timeoutMs ?? 10_000,
		maxNetworkRetries: 2,
		telemetry: false,
		appInfo: { name: "backplane-billing" },
		...(base ? { host: base.hostname, port: Number(base.port || (protocol === "http" ? 80 : 443)), protocol } : {}),
	});
}

/** Runs a Stripe call, turning its failures into the project's error vocabulary. */
export async function stripeCall<T>(what: string, call: () => Promise<T>): Promise<T> {
	try {
		return await call();
	} catch (err) {
		if (err instanceof Stripe.errors.StripeCardError) throw new AppError(402, "PAYMENT_FAILED", err.message, { declineCode: err.decline_code ?? null });
		if (err instanceof Stripe.errors.StripeConnectionError || err instanceof Stripe.errors.StripeAPIError || err instanceof Stripe.errors.StripeRateLimitError) {
			throw unavailable(`The payment provider is not reachable (${what}). Try again shortly.`, "PAYMENT_PROVIDER_UNAVAILABLE");
		}
		throw err;
	}
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

/** The user's Stripe customer id, creating the Stripe customer on first use. */
export async function ensureStripeCustomer(db: Db, stripe: Stripe, userId: string, now: Date): Promise<string> {
	const customer = await customers(db).findOne({ _id: userId });
	if (!customer) throw notFound("Billing customer");
	if (customer.stripeCustomerId) return customer.stripeCustomerId;
	const created = await stripeCall("create customer", () =>
		stripe.customers.create({ email: customer.email, ...(customer.name ? { name: customer.name } : {}), metadata: { userId } }, { idempotencyKey: `customer-create:${userId}` }),
	);
	// The first writer wins; a concurrent request that created another one reads the winner.
	await customers(db).updateOne({ _id: userId, stripeCustomerId: null }, { $set: { stripeCustomerId: created.id, updatedAt: now } });
	const saved = await customers(db).findOne({ _id: userId }, { projection: { stripeCustomerId: 1 } });
	return saved?.stripeCustomerId ?? created.id;
}

/** Mirrors the customer's current e-mail address and name onto its Stripe customer, if it has one. */
export async function syncStripeCustomer(stripe: Stripe, customer: Pick<Customer, "stripeCustomerId" | "email" | "name">): Promise<void> {
	if (!customer.stripeCustomerId) return;
	const id = customer.stripeCustomerId;
	await stripeCall("update customer", () => stripe.customers.update(id, { email: customer.email, name: customer.name ?? "" }));
}

export interface CheckoutInput {
	userId: string;
	plan: Plan;
	price: Price;
	quantity: number;
	subscription: Subscription;
	returnUrl: string;
	now: Date;
}

/** Stripe refuses a trial that ends less than 48 hours from now. */
const MIN_STRIPE_TRIAL_MS = 48 * 3_600_000;

function lineItem(plan: Plan, price: Price, quantity: number): Stripe.Checkout.SessionCreateParams.LineItem {
	const metered = price.model === "metered";
	if (price.stripePriceId) return { price: price.stripePriceId, ...(metered ? {} : { quantity }) };
	if (price.model === "tiered" || metered) throw new AppError(409, "PRICE_NOT_IN_STRIPE", `Price ${price.id} needs a Stripe price id (set stripePriceId on the plan) before it can be sold.`);
	const unitAmount = price.unitAmount ?? 0;
	return {
		price_data: { currency: price.currency, unit_amount: unitAmount, recurring: { interval: price.interval }, product_data: { name: plan.name } },
		quantity: price.model === "per_seat" ? quantity : 1,
	};
}

/** A Checkout Session (subscription mode) that collects a payment method and starts the plan in Stripe. */
export async function createCheckoutSession(db: Db, stripe: Stripe, input: CheckoutInput): Promise<{ id: string; url: string }> {
	const { userId, plan, price, quantity, subscription, now } = input;
	const customer = await ensureStripeCustomer(db, stripe, userId, now);
	const metadata = { userId, subscriptionId: subscription._id, planId: plan._id, priceId: price.id, quantity: String(quantity) };
	const trialEnd = subscription.status === "trialing" && subscription.trialEnd && subscription.trialEnd.getTime() - now.getTime() > MIN_STRIPE_TRIAL_MS ? seconds(subscription.trialEnd) : undefined;
	const success = new URL(input.returnUrl);
	success.searchParams.set("checkout", "success");
	const cancel = new URL(input.returnUrl);
	cancel.searchParams.set("checkout", "canceled");
	const session = await stripeCall("create checkout session", () =>
		stripe.checkout.sessions.create(
			{
				mode: "subscription",
				customer,
				client_reference_id: userId,
				line_items: [lineItem(plan, price, quantity)],
				success_url: success.toString(),
				cancel_url: cancel.toString(),
				metadata,
				subscription_data: { metadata, ...(trialEnd ? { trial_end: trialEnd } : {}) },
			},
			{ idempotencyKey: `checkout:${subscription._id}:v${subscription.version}:${price.id}:${quantity}` },
		),
	);
	if (!session.url) throw unavailable("The payment provider returned no Checkout URL.", "PAYMENT_PROVIDER_UNAVAILABLE");
	return { id: session.id, url: session.url };
}

/** A Customer Portal session where the user manages payment methods and sees Stripe's receipts. */
export async function createPortalSession(db: Db, stripe: Stripe, userId: string, returnUrl: string, now: Date): Promise<{ url: string }> {
	const customer = await ensureStripeCustomer(db, stripe, userId, now);
	const session = await stripeCall("create portal session", () => stripe.billingPortal.sessions.create({ customer, return_url: returnUrl }));
	return { url: session.url };
}

/**
 * Moves a Stripe-billed subscription to another price; Stripe invoices the proration now (to
 * the second, as `prorate` computes it; a change of interval restarts the cycle there too).
 */
export async function pushPriceChange(stripe: Stripe, sub: Subscription, price: Price, quantity: number, at: Date): Promise<void> {
	if (!price.stripePriceId) throw new AppError(409, "PRICE_NOT_IN_STRIPE", `Price ${price.id} has no Stripe price id; an administrator must set one before subscriptions billed by Stripe can move to it.`);
	const itemId = sub.stripeItemId ?? (await stripeCall("read subscription", () => stripe.subscriptions.retrieve(sub.stripeSubscriptionId!))).items.data[0]?.id;
	if (!itemId) throw new AppError(409, "STRIPE_SUBSCRIPTION_EMPTY", "The Stripe subscription has no item to change.");
	await stripeCall("change subscription price", () =>
		stripe.subscriptions.update(
			sub.stripeSubscriptionId!,
			{
				items: [{ id: itemId, price: price.stripePriceId!, ...(price.model === "metered" ? {} : { quantity }) }],
				proration_behavior: sub.status === "trialing" ? "none" : "always_invoice",
				proration_date: seconds(at),
			},
			{ idempotencyKey: `change:${sub._id}:v${sub.version}` },
		),
	);
}

export async function pushCancel(stripe: Stripe, sub: Subscription, atPeriodEnd: boolean): Promise<void> {
	const id = sub.stripeSubscriptionId!;
	const idempotencyKey = `cancel:${sub._id}:v${sub.version}:${atPeriodEnd ? "period-end" : "now"}`;
	if (atPeriodEnd) await stripeCall("cancel at period end", () => stripe.subscriptions.update(id, { cancel_at_period_end: true }, { idempotencyKey }));
	else await stripeCall("cancel subscription", () => stripe.subscriptions.cancel(id, {}, { idempotencyKey }));
}

export async function pushPause(stripe: Stripe, sub: Subscription): Promise<void> {
	await stripeCall("pause subscription", () =>
		stripe.subscriptions.update(sub.stripeSubscriptionId!, { pause_collection: { behavior: "void" } }, { idempotencyKey: `pause:${sub._id}:v${sub.version}` }),
	);
}

/** Undoes a pause or a scheduled cancellation. */
export async function pushResume(stripe: Stripe, sub: Subscription): Promise<void> {
	await stripeCall("resume subscription", () =>
		stripe.subscriptions.update(
			sub.stripeSubscriptionId!,
			sub.status === "paused" ? { pause_collection: "" } : { cancel_at_period_end: false },
			{ idempotencyKey: `resume:${sub._id}:v${sub.version}` },
		),
	);
}

/** What a charge of one of our invoices came to; `failed` is a decline, not an outage (that throws). */
export type ChargeResult = { outcome: "succeeded"; paymentId: string | null } | { outcome: "failed"; reason: string; paymentId: string | null };

export interface ChargeInput {
	stripeCustomerId: string | null;
	amount: number;
	currency: string;
	invoiceId: string;
	description: string;
	/** The same key for the same attempt: a retried call after a crash charges at most once. */
	idempotencyKey: string;
}

/** The card Stripe would charge for the customer: the default for invoices, else the first attached one. */
async function defaultPaymentMethod(stripe: Stripe, customerId: string): Promise<string | null> {
	const customer = await stripeCall("read customer", () => stripe.customers.retrieve(customerId));
	if (customer.deleted) return null;
	const preferred = customer.invoice_settings?.default_payment_method;
	if (preferred) return typeof preferred === "string" ? preferred : preferred.id;
	const attached = await stripeCall("list payment methods", () => stripe.paymentMethods.list({ customer: customerId, limit: 1 }));
	return attached.data[0]?.id ?? null;
}

/**
 * Charges the customer's card off-session with a PaymentIntent (cards only: a payment that
 * settles later, like a bank debit, belongs on a subscription Stripe bills). A decline, a card
 * that needs the customer present (3-D Secure) or no card at all is a failed attempt.
 */
export async function chargeInvoice(stripe: Stripe, input: ChargeInput): Promise<ChargeResult> {
	const paymentMethod = input.stripeCustomerId ? await defaultPaymentMethod(stripe, input.stripeCustomerId) : null;
	if (!input.stripeCustomerId || !paymentMethod) return { outcome: "failed", reason: "no_payment_method", paymentId: null };
	try {
		const intent = await stripeCall("charge invoice", () =>
			stripe.paymentIntents.create(
				{ amount: input.amount, currency: input.currency, customer: input.stripeCustomerId!, payment_method: paymentMethod, off_session: true, confirm: true, description: input.description, metadata: { invoiceId: input.invoiceId } },
				{ idempotencyKey: input.idempotencyKey },
			),
		);
		if (intent.status === "succeeded") return { outcome: "succeeded", paymentId: intent.id };
		const error = intent.last_payment_error;
		return { outcome: "failed", reason: error?.decline_code ?? error?.code ?? intent.status, paymentId: intent.id };
	} catch (err) {
		if (!(err instanceof AppError && err.type === "PAYMENT_FAILED")) throw err;
		const declineCode = err.data?.declineCode;
		return { outcome: "failed", reason: typeof declineCode === "string" ? declineCode : "card_declined", paymentId: null };
	}
}

export interface RefundInput {
	amount: number;
	currency: string;
	reason: "duplicate" | "fraudulent" | "order_change" | "product_unsatisfactory";
	/** The PaymentIntent that paid one of our invoices. */
	paymentIntentId: string | null;
	/** An invoice Stripe billed: refunded through a Stripe credit note on it. */
	stripeInvoiceId: string | null;
	creditNoteId: string;
	/** The credit note's id: a retried call after a crash refunds at most once. */
	idempotencyKey: string;
}

/** What a refund came to; `refused` is Stripe saying no (already refunded, nothing to refund), not an outage (that throws). */
export type RefundResult = { outcome: "refunded"; refundId: string } | { outcome: "refused"; reason: string };

/**
 * Gives money back: a Refund on the PaymentIntent of one of our invoices, or a Stripe credit note
 * (with its refund) on an invoice Stripe billed, so Stripe's own books agree.
 */
export async function refundPayment(stripe: Stripe, input: RefundInput): Promise<RefundResult> {
	const metadata = { creditNoteId: input.creditNoteId };
	try {
		if (input.stripeInvoiceId) {
			const note = await stripeCall("credit an invoice", () =>
				stripe.creditNotes.create({ invoice: input.stripeInvoiceId!, amount: input.amount, refund_amount: input.amount, reason: input.reason, metadata }, { idempotencyKey: input.idempotencyKey }),
			);
			const refund = note.refunds?.[0]?.refund;
			return { outcome: "refunded", refundId: typeof refund === "string" ? refund : (refund?.id ?? note.id) };
		}
		if (!input.paymentIntentId) return { outcome: "refused", reason: "no_payment" };
		// Stripe's refund reasons are fewer than a credit note's: the others were the customer's request.
		const reason = input.reason === "duplicate" || input.reason === "fraudulent" ? input.reason : "requested_by_customer";
		const refund = await stripeCall("refund a payment", () =>
			stripe.refunds.create({ payment_intent: input.paymentIntentId!, amount: input.amount, reason, metadata }, { idempotencyKey: input.idempotencyKey }),
		);
		if (refund.status === "failed" || refund.status === "canceled") return { outcome: "refused", reason: refund.failure_reason ?? refund.status };
		return { outcome: "refunded", refundId: refund.id };
	} catch (err) {
		if (err instanceof Stripe.errors.StripeInvalidRequestError) return { outcome: "refused", reason: err.code ?? "invalid_request" };
		// Our key may not refund (a restricted key, a revoked one): an outage of ours, retried once it is fixed.
		if (err instanceof Stripe.errors.StripePermissionError || err instanceof Stripe.errors.StripeAuthenticationError) {
			throw unavailable("The payment provider refused our credentials for refunds; check STRIPE_API_KEY.", "PAYMENT_PROVIDER_UNAVAILABLE");
		}
		throw err;
	}
}
