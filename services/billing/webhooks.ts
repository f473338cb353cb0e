/**
 * Stripe webhooks, as handed over by the gateway: the raw body (exact bytes, base64 or text) and
 * the `Stripe-Signature` header. The signature is checked before anything is stored (tolerance
 * 300 s, measured on our clock); each event is recorded in an inbox keyed by its id, applied by
 * idempotent, order-safe updates (stripe-sync.ts), then marked done, so a replay has no second
 * effect and a crash half-way is repaired by Stripe's own redelivery. Unknown types are
 * acknowledged (Stripe stops retrying) and reported to the caller for a log line.
 */
import Stripe from "stripe";
import type { Db } from "mongodb";
import { WITHOUT_OUTBOX } from "../../lib/events/mongo-outbox.ts";
import { AppError } from "../../lib/errors.ts";
import { recordRefundFailure, recordStripeRefund } from "./credit-notes.ts";
import { findCustomerByStripeId, customers, markPaymentMethodOnFile } from "./customers.ts";
import type { Party } from "./invoices.ts";
import { isDuplicateKey, withOptimisticRetry } from "./store.ts";
import { at, mirrorInvoice, syncSubscription, termsFromStripe } from "./stripe-sync.ts";
import type { Outcome, StripeObject } from "./stripe-sync.ts";
import { commitChange, subscriptions } from "./subscriptions.ts";

export const SIGNATURE_TOLERANCE_S = 300;

export interface StripeEventRecord {
	_id: string;
	type: string;
	created: Date;
	livemode: boolean;
	receivedAt: Date;
	/** received: being applied (or a crash left it so: the next delivery applies it again). */
	status: "received" | Outcome;
	attempts: number;
	processedAt: Date | null;
	/** The event as received, for audit and replay. */
	payload: string;
}

export const stripeEvents = (db: Db) => db.collection<StripeEventRecord>("stripe_events");

export interface WebhookInput {
	rawBody: string;
	signature: string;
	/** How rawBody is encoded; by default detected (a JSON body starts with "{"). */
	encoding?: "base64" | "utf8";
}

export interface WebhookDeps {
	db: Db;
	stripe: Stripe;
	secret: string | undefined;
	seller: Party;
	now: Date;
	requestId?: string | null;
}

export interface WebhookResult {
	eventId: string;
	type: string;
	outcome: Outcome | "duplicate";
}

export function decodeRawBody(input: Pick<WebhookInput, "rawBody" | "encoding">): Buffer {
	const encoding = input.encoding ?? (input.rawBody.trimStart().startsWith("{") ? "utf8" : "base64");
	return Buffer.from(input.rawBody, encoding);
}

function verify(deps: WebhookDeps, input: WebhookInput): Stripe.Event {
	if (!deps.secret) throw new AppError(503, "WEBHOOKS_NOT_CONFIGURED", "Stripe webhooks are not configured on this node (STRIPE_WEBHOOK_SECRET).", undefined, true);
	try {
		// receivedAt is in milliseconds: the age is measured on our (injectable) clock.
		return deps.stripe.webhooks.constructEvent(decodeRawBody(input), input.signature, deps.secret, SIGNATURE_TOLERANCE_S, undefined, deps.now.getTime());
	} catch (err) {
		if (err instanceof Stripe.errors.StripeSignatureVerificationError) throw new AppError(400, "STRIPE_SIGNATURE_INVALID", "The Stripe signature does not match the payload, or it is too old.");
		throw new AppError(400, "WEBHOOK_PAYLOAD_INVALID", "The webhook payload is not a Stripe event.");
	}
}

/** Records the event; false when it was already applied (a replay). */
async function admit(db: Db, event: Stripe.Event, raw: string, now: Date): Promise<boolean> {
	try {
		await stripeEvents(db).insertOne({ _id: event.id, type: event.type, created: new Date(event.created * 1000), livemode: event.livemode, receivedAt: now, status: "received", attempts: 1, processedAt: null, payload: raw });
		return true;
	} catch (err) {
		if (!isDuplicateKey(err)) throw err;
		const previous = await stripeEvents(db).findOneAndUpdate({ _id: event.id }, { $inc: { attempts: 1 } }, { returnDocument: "after" });
		return previous?.status === "received";
	}
}

export async function handleStripeWebhook(deps: WebhookDeps, input: WebhookInput): Promise<WebhookResult> {
	const event = verify(deps, input);
	const { db, now } = deps;
	if (!(await admit(db, event, decodeRawBody(input).toString("utf8"), now))) return { eventId: event.id, type: event.type, outcome: "duplicate" };
	const outcome = await apply(deps, event);
	await stripeEvents(db).updateOne({ _id: event.id }, { $set: { status: outcome, processedAt: now } });
	return { eventId: event.id, type: event.type, outcome };
}

async function apply(deps: WebhookDeps, event: Stripe.Event): Promise<Outcome> {
	const { db } = deps;
	const object = event.data.object as unknown as StripeObject;
	const ctx = { now: deps.now, requestId: deps.requestId, eventId: event.id, created: event.created };
	switch (event.type) {
		case "checkout.session.completed":
			return checkoutCompleted(db, object, ctx);
		case "customer.subscription.created":
		case "customer.subscription.updated":
		case "customer.subscription.paused":
		case "customer.subscription.resumed":
		case "customer.subscription.deleted":
			return syncSubscription(db, object, event.type === "customer.subscription.deleted", ctx);
		case "invoice.created":
		case "invoice.updated":
		case "invoice.finalized":
		case "invoice.paid":
		case "invoice.payment_succeeded":
		case "invoice.payment_failed":
		case "invoice.voided":
		case "invoice.marked_uncollectible":
			return mirrorInvoice(db, object, { seller: deps.seller, failed: event.type === "invoice.payment_failed", ctx });
		// A refund made in Stripe's dashboard on one of our invoices becomes a credit note here, once
		// it succeeded (a pending one is recorded by its refund.updated). A refund that failed later,
		// ours or the dashboard's, takes its note back.
		case "refund.created":
		case "refund.updated":
		case "refund.failed": {
			const ours = at(object, "metadata", "creditNoteId");
			if (typeof object.id !== "string") return "ignored";
			if (object.status === "failed" || object.status === "canceled") {
				// Stripe's reasons are short snake_case codes; anything else is not put into a note or an e-mail.
				const reason = typeof object.failure_reason === "string" && /^[a-z_]{1,64}$/.test(object.failure_reason) ? object.failure_reason : object.status;
				return recordRefundFailure(db, { id: object.id, creditNoteId: typeof ours === "string" ? ours : null, reason }, ctx);
			}
			const paymentIntentId = typeof object.payment_intent === "string" ? object.payment_intent : (at(object, "payment_intent", "id") as string | undefined);
			if (ours || !paymentIntentId || typeof object.amount !== "number" || object.status !== "succeeded") return "ignored";
			return recordStripeRefund(db, { id: object.id, amount: object.amount, paymentIntentId, reason: typeof object.reason === "string" ? object.reason : null }, ctx);
		}
		case "payment_method.attached": {
			const customer = typeof object.customer === "string" ? await findCustomerByStripeId(db, object.customer) : null;
			if (!customer) return "ignored";
			await markPaymentMethodOnFile(db, customer._id, deps.now);
			return "applied";
		}
		default:
			return "ignored";
	}
}

/**
 * Checkout finished: the user has a payment method and a Stripe subscription. Link both to our
 * customer and subscription (the Stripe subscription's own events then keep its status in sync).
 */
async function checkoutCompleted(db: Db, session: StripeObject, ctx: { now: Date; requestId?: string | null }): Promise<Outcome> {
	const userId = (typeof session.client_reference_id === "string" && session.client_reference_id) || (at(session, "metadata", "userId") as string | undefined);
	const stripeCustomer = typeof session.customer === "string" ? session.customer : (at(session, "customer", "id") as string | undefined);
	const stripeSub = typeof session.subscription === "string" ? session.subscription : (at(session, "subscription", "id") as string | undefined);
	if (session.mode !== "subscription" || !userId || !stripeSub) return "ignored";
	await customers(db).updateOne({ _id: userId }, { $set: { paymentMethodOnFile: true, updatedAt: ctx.now } });
	if (stripeCustomer) await customers(db).updateOne({ _id: userId, stripeCustomerId: null }, { $set: { stripeCustomerId: stripeCustomer } });
	const ours = at(session, "metadata", "subscriptionId") as string | undefined;
	const terms = await termsFromStripe(db, undefined, at(session, "metadata"));
	return withOptimisticRetry(async () => {
		const sub = await subscriptions(db).findOne(ours ? { _id: ours, userId } : { liveKey: userId }, { projection: WITHOUT_OUTBOX });
		if (!sub || sub.status === "canceled") return "ignored";
		if (sub.stripeSubscriptionId === stripeSub) return "applied";
		const quantity = Number(at(session, "metadata", "quantity"));
		const set = { stripeSubscriptionId: stripeSub, ...terms, ...(Number.isSafeInteger(quantity) && quantity > 0 ? { quantity } : {}) };
		const next = await commitChange(db, sub, { set, events: ["subscription.updated"] }, ctx);
		return next === "conflict" ? next : "applied";
	});
}
