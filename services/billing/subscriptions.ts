/**
 * Subscriptions: the trial started at sign-up, plan changes with proration, cancel (now or at
 * the period's end), pause and resume. Every change is one version-guarded update of the
 * subscription document that also appends its events (the outbox), and every status change
 * passes the transition table (status.ts). A subscription Stripe bills is changed in Stripe
 * first (idempotently); Stripe's webhooks then confirm.
 */
import type { Db, Filter, UpdateFilter } from "mongodb";
import type { SubscriptionData } from "../../lib/events/catalog.ts";
import { MalformedEventError } from "../../lib/events/cloudevents.ts";
import { initialOutbox, lockKey, WITHOUT_OUTBOX, withDocumentLock, withEvents } from "../../lib/events/mongo-outbox.ts";
import type { OutboxFields } from "../../lib/events/mongo-outbox.ts";
import { AppError, notFound } from "../../lib/errors.ts";
import { customers, ensureCustomer } from "./customers.ts";
import { findPrice, findPriceById, getPlan } from "./plans.ts";
import type { Plan } from "./plans.ts";
import { addInterval, licensedAmount } from "./pricing.ts";
import type { Interval } from "./pricing.ts";
import { prorate } from "./proration.ts";
import type { Proration } from "./proration.ts";
import { assertOperation, assertTransition, isLive, SUBSCRIPTION_STATUSES } from "./status.ts";
import type { SubscriptionStatus } from "./status.ts";
import { billingEvent, DAY_MS, documentChecker, isDuplicateKey, withOptimisticRetry } from "./store.ts";
import { createCheckoutSession, pushCancel, pushPause, pushPriceChange, pushResume } from "./stripe.ts";
import type { StripeClient } from "./stripe.ts";

/** A charge or credit waiting for the subscription's next invoice (prorations of local subscriptions). */
export interface PendingItem {
	description: string;
	amount: number;
	periodStart: Date;
	periodEnd: Date;
}

export interface Subscription extends OutboxFields {
	_id: string;
	userId: string;
	/** The user id while live (unique: one live subscription per user), `<user>:ended:<id>` after. */
	liveKey: string;
	planId: string;
	priceId: string;
	currency: string;
	interval: Interval;
	quantity: number;
	status: SubscriptionStatus;
	trialStart: Date | null;
	trialEnd: Date | null;
	currentPeriodStart: Date;
	currentPeriodEnd: Date;
	cancelAtPeriodEnd: boolean;
	canceledAt: Date | null;
	endedAt: Date | null;
	pausedAt: Date | null;
	trialWillEndNotifiedAt: Date | null;
	trialEndedAt: Date | null;
	stripeSubscriptionId: string | null;
	stripeItemId: string | null;
	/** `created` (Unix seconds) of the newest Stripe event applied: older ones are stale. */
	stripeEventAt: number | null;
	pendingItems: PendingItem[];
	version: number;
	createdAt: Date;
	updatedAt: Date;
}

export const subscriptions = (db: Db) => db.collection<Subscription>("subscriptions");

const date = { type: "date" } as const;
const nullableDate = { type: "date", nullable: true } as const;
const checkSubscription = documentChecker<Subscription>("subscription", {
	_id: { type: "string", min: 1, max: 200 },
	userId: { type: "string", min: 1, max: 100 },
	liveKey: { type: "string", min: 1, max: 400 },
	planId: "string",
	priceId: "string",
	currency: { type: "string", pattern: /^[a-z]{3}$/ },
	interval: { type: "enum", values: ["month", "year"] },
	quantity: { type: "number", integer: true, min: 0 },
	status: { type: "enum", values: [...SUBSCRIPTION_STATUSES] },
	trialStart: nullableDate,
	trialEnd: nullableDate,
	currentPeriodStart: date,
	currentPeriodEnd: date,
	cancelAtPeriodEnd: "boolean",
	version: { type: "number", integer: true, min: 1 },
	pendingItems: { type: "array", items: { type: "object", props: { description: "string", amount: { type: "number", integer: true }, periodStart: date, periodEnd: date } } },
});

export interface OpContext {
	now: Date;
	requestId?: string | null;
}

export const signupSubscriptionId = (userId: string) => `sub_${userId}`;

export function subscriptionData(sub: Subscription): SubscriptionData {
	return {
		subscriptionId: sub._id,
		userId: sub.userId,
		planId: sub.planId,
		status: sub.status,
		trialEnd: sub.trialEnd?.toISOString() ?? null,
		currentPeriodEnd: sub.currentPeriodEnd.toISOString(),
		cancelAtPeriodEnd: sub.cancelAtPeriodEnd,
	};
}

type SubscriptionEventType = "subscription.created" | "subscription.updated" | "subscription.canceled" | "subscription.trial_will_end" | "trial.ended";

export interface Change {
	set: Partial<Subscription>;
	events: SubscriptionEventType[];
	/** More operators for the same update ($push, $pullAll). */
	extra?: UpdateFilter<Subscription>;
	/** More conditions the document must still meet. */
	guard?: Filter<Subscription>;
}

/**
 * Applies `change` if nobody changed the subscription since it was read (its version) and the
 * guard still holds, with its events in the same update. Returns the new state, or "conflict".
 * Under the document lock: the version check must not race (see lib/events/mongo-outbox.ts).
 */
export async function commitChange(db: Db, sub: Subscription, change: Change, ctx: OpContext): Promise<Subscription | "conflict"> {
	const set: Partial<Subscription> = { ...change.set, updatedAt: ctx.now };
	if (set.status && set.status !== sub.status) assertTransition(sub.status, set.status);
	if (set.status && !isLive(set.status)) set.liveKey = `${sub.userId}:ended:${sub._id}`;
	const next: Subscription = { ...sub, ...set, version: sub.version + 1 };
	const events = change.events.map((type) => billingEvent(type, sub._id, subscriptionData(next), ctx.now, ctx.requestId));
	const update = withEvents<Subscription>({ ...change.extra, $set: set, $inc: { version: 1 } }, events, ctx.now);
	const filter = { ...change.guard, _id: sub._id, version: sub.version };
	return withDocumentLock(db, lockKey("subscriptions", sub._id), async () => {
		if (!(await subscriptions(db).findOne(filter, { projection: { _id: 1 } }))) return "conflict" as const;
		await subscriptions(db).updateOne(filter, update);
		return next;
	});
}

/**
 * The subscription a new user starts with: a trial of `plan` (or, with no trial, the plan
 * itself). Its id derives from the user id, so however often sign-up is replayed there is one.
 */
export async function startSignupSubscription(db: Db, input: { userId: string; plan: Plan; trialDays: number }, ctx: OpContext): Promise<{ created: boolean; subscription: Subscription }> {
	const { userId, plan, trialDays } = input;
	const price = findPrice(plan, plan.prices[0]!.currency);
	const trial = trialDays > 0;
	const periodEnd = trial ? new Date(ctx.now.getTime() + trialDays * DAY_MS) : addInterval(ctx.now, price.interval);
	const status: SubscriptionStatus = trial ? "trialing" : licensedAmount(price, 1) === 0 ? "active" : "incomplete";
	const sub: Subscription = {
		_id: signupSubscriptionId(userId), userId, liveKey: userId, planId: plan._id, priceId: price.id, currency: price.currency, interval: price.interval, quantity: 1, status,
		trialStart: trial ? ctx.now : null, trialEnd: trial ? periodEnd : null, currentPeriodStart: ctx.now, currentPeriodEnd: periodEnd,
		cancelAtPeriodEnd: false, canceledAt: null, endedAt: null, pausedAt: null, trialWillEndNotifiedAt: null, trialEndedAt: null,
		stripeSubscriptionId: null, stripeItemId: null, stripeEventAt: null, pendingItems: [], version: 1, createdAt: ctx.now, updatedAt: ctx.now,
	};
	const created = billingEvent("subscription.created", sub._id, subscriptionData(sub), ctx.now, ctx.requestId);
	try {
		await subscriptions(db).insertOne(checkSubscription({ ...sub, ...initialOutbox([created], ctx.now) }));
		return { created: true, subscription: sub };
	} catch (err) {
		if (!isDuplicateKey(err)) throw err;
		// Replayed sign-up, or the user already has another live subscription.
		// Two equality finds, not one $or: FerretDB reads the whole collection for an $or.
		const existing = (await subscriptions(db).findOne({ _id: sub._id }, { projection: WITHOUT_OUTBOX })) ?? (await subscriptions(db).findOne({ liveKey: userId }, { projection: WITHOUT_OUTBOX }));
		return { created: false, subscription: existing ?? sub };
	}
}

/**
 * `user.created`: the billing customer and the sign-up subscription on the default plan, each
 * keyed by the user id, so a redelivered or replayed event changes nothing: both inserts meet
 * their unique `_id`. No processed-event marker: it would add two operations to every sign-up
 * and guard nothing the keys do not (and it would be forgotten after a while, the keys never).
 * `opts.plan` reads a plan (the service passes its short-lived plan cache).
 */
export async function onboardUser(db: Db, event: { id: string; data: { userId: string; email: string; name: string | null } }, opts: { defaultPlan: string; trialDays: number; plan: (id: string) => Promise<Plan> }, ctx: OpContext) {
	const { userId, email } = event.data ?? {};
	// Can never succeed: no retry will fix it, so it ends in the dead-letter queue.
	if (typeof userId !== "string" || !userId || userId.length > 100 || typeof email !== "string") throw new MalformedEventError("user.created needs data.userId and data.email");
	const newCustomer = await ensureCustomer(db, event.data, event.id, ctx.now);
	const plan = await opts.plan(opts.defaultPlan);
	const { created, subscription } = await startSignupSubscription(db, { userId: event.data.userId, plan, trialDays: plan.trialDays ?? opts.trialDays }, ctx);
	return { newCustomer, created, subscription };
}

/** The user's live subscription, else their most recent one. */
export async function findSubscription(db: Db, userId: string): Promise<Subscription | null> {
	return (await subscriptions(db).findOne({ liveKey: userId }, { projection: WITHOUT_OUTBOX })) ?? (await subscriptions(db).find({ userId }, { projection: WITHOUT_OUTBOX }).sort({ createdAt: -1 }).limit(1).next());
}

/** The user's live subscription; 404 when there is none. */
export async function liveSubscription(db: Db, userId: string): Promise<Subscription> {
	const sub = await subscriptions(db).findOne({ liveKey: userId }, { projection: WITHOUT_OUTBOX });
	if (!sub) throw notFound("Subscription");
	return sub;
}

async function hasPaymentMethod(db: Db, sub: Subscription): Promise<boolean> {
	if (sub.stripeSubscriptionId) return true;
	return (await customers(db).findOne({ _id: sub.userId }, { projection: { paymentMethodOnFile: 1 } }))?.paymentMethodOnFile === true;
}

const paymentMethodRequired = () => new AppError(409, "PAYMENT_METHOD_REQUIRED", "This plan needs a payment method: start a Checkout session (POST /billing/checkout) instead.");

export interface ChangePlanInput {
	userId: string;
	planId: string;
	interval?: Interval;
	quantity?: number;
}

/** Moves the user's subscription to another plan: free during a trial, prorated to the second after. */
export async function changePlan(db: Db, stripe: StripeClient, input: ChangePlanInput, ctx: OpContext): Promise<{ subscription: Subscription; proration: Proration | null }> {
	const plan = await getPlan(db, input.planId);
	if (!plan.active) throw new AppError(409, "PLAN_NOT_AVAILABLE", `Plan ${plan._id} is no longer offered.`);
	return withOptimisticRetry(async () => {
		const sub = await liveSubscription(db, input.userId);
		assertOperation("changePlan", sub.status);
		const price = findPrice(plan, sub.currency, input.interval ?? sub.interval);
		const quantity = input.quantity ?? sub.quantity;
		if (price.id === sub.priceId && quantity === sub.quantity) return { subscription: sub, proration: null };
		const newAmount = licensedAmount(price, quantity);
		const resetPeriod = price.interval !== sub.interval;
		const set: Partial<Subscription> = { planId: plan._id, priceId: price.id, interval: price.interval, quantity };
		if (sub.status === "trialing") {
			if (sub.stripeSubscriptionId) await pushPriceChange(stripe, sub, price, quantity, ctx.now);
			const next = await commitChange(db, sub, { set, events: ["subscription.updated"] }, ctx);
			return next === "conflict" ? next : { subscription: next, proration: null };
		}
		if (newAmount > 0 && !(await hasPaymentMethod(db, sub))) throw paymentMethodRequired();
		const oldPlan = await getPlan(db, sub.planId);
		const oldPrice = findPriceById(oldPlan, sub.priceId);
		const newPeriodEnd = resetPeriod ? addInterval(ctx.now, price.interval) : undefined;
		const proration = prorate({ oldAmount: licensedAmount(oldPrice, sub.quantity), newAmount, periodStart: sub.currentPeriodStart, periodEnd: sub.currentPeriodEnd, at: ctx.now, newPeriodEnd });
		if (resetPeriod) Object.assign(set, { currentPeriodStart: ctx.now, currentPeriodEnd: newPeriodEnd });
		let extra: UpdateFilter<Subscription> | undefined;
		if (sub.stripeSubscriptionId) await pushPriceChange(stripe, sub, price, quantity, ctx.now);
		else if (proration.lines.length) {
			const items: PendingItem[] = proration.lines.map((l) => ({ description: l.kind === "credit" ? `Unused time on ${oldPlan.name}` : `Remaining time on ${plan.name}`, amount: l.amount, periodStart: l.periodStart, periodEnd: l.periodEnd }));
			extra = { $push: { pendingItems: { $each: items } } };
		}
		const next = await commitChange(db, sub, { set, events: ["subscription.updated"], extra }, ctx);
		return next === "conflict" ? next : { subscription: next, proration };
	});
}

/** Cancels now (status canceled, the user may start a new subscription) or at the period's end. */
export async function cancelSubscription(db: Db, stripe: StripeClient, input: { userId: string; atPeriodEnd: boolean }, ctx: OpContext): Promise<Subscription> {
	return withOptimisticRetry(async () => {
		const sub = await liveSubscription(db, input.userId);
		assertOperation("cancel", sub.status);
		if (input.atPeriodEnd && sub.cancelAtPeriodEnd) return sub;
		if (sub.stripeSubscriptionId) await pushCancel(stripe, sub, input.atPeriodEnd);
		const change: Change = input.atPeriodEnd
			? { set: { cancelAtPeriodEnd: true }, events: ["subscription.updated"] }
			: { set: { status: "canceled", canceledAt: ctx.now, endedAt: ctx.now }, events: ["subscription.canceled"] };
		return commitChange(db, sub, change, ctx);
	});
}

/** Pauses collection: no invoices until resumed. */
export async function pauseSubscription(db: Db, stripe: StripeClient, input: { userId: string }, ctx: OpContext): Promise<Subscription> {
	return withOptimisticRetry(async () => {
		const sub = await liveSubscription(db, input.userId);
		assertOperation("pause", sub.status);
		if (sub.stripeSubscriptionId) await pushPause(stripe, sub);
		return commitChange(db, sub, { set: { status: "paused", pausedAt: ctx.now }, events: ["subscription.updated"] }, ctx);
	});
}

/** Resumes a paused subscription (a new period starts now), or takes back a scheduled cancellation. */
export async function resumeSubscription(db: Db, stripe: StripeClient, input: { userId: string }, ctx: OpContext): Promise<Subscription> {
	return withOptimisticRetry(async () => {
		const sub = await liveSubscription(db, input.userId);
		assertOperation("resume", sub.status);
		if (sub.status !== "paused" && !sub.cancelAtPeriodEnd) throw new AppError(409, "NOTHING_TO_RESUME", "The subscription is neither paused nor scheduled to cancel.");
		let set: Partial<Subscription> = { cancelAtPeriodEnd: false };
		if (sub.status === "paused") {
			const price = findPriceById(await getPlan(db, sub.planId), sub.priceId);
			if (licensedAmount(price, sub.quantity) > 0 && !(await hasPaymentMethod(db, sub))) throw paymentMethodRequired();
			// One we bill starts a period that has already ended: the renewal (lifecycle.ts) invoices the new one, crash-safe.
			const end = sub.stripeSubscriptionId ? addInterval(ctx.now, sub.interval) : ctx.now;
			set = { status: "active", pausedAt: null, currentPeriodStart: ctx.now, currentPeriodEnd: end };
		}
		if (sub.stripeSubscriptionId) await pushResume(stripe, sub);
		return commitChange(db, sub, { set, events: ["subscription.updated"] }, ctx);
	});
}

/** A Stripe Checkout Session that collects a payment method and moves the live subscription to a paid plan. */
export async function startCheckout(db: Db, stripe: StripeClient, input: ChangePlanInput & { returnUrl: string }, ctx: OpContext): Promise<{ id: string; url: string }> {
	const subscription = await liveSubscription(db, input.userId);
	assertOperation("checkout", subscription.status);
	if (subscription.stripeSubscriptionId) throw new AppError(409, "ALREADY_BILLED_BY_STRIPE", "The subscription is already paid through Stripe: change its plan, or manage payment in the portal.");
	const plan = await getPlan(db, input.planId);
	if (!plan.active) throw new AppError(409, "PLAN_NOT_AVAILABLE", `Plan ${plan._id} is no longer offered.`);
	const price = findPrice(plan, subscription.currency, input.interval);
	const quantity = input.quantity ?? subscription.quantity;
	if (price.model !== "metered" && licensedAmount(price, quantity) === 0) throw new AppError(409, "NO_PAYMENT_NEEDED", "This plan is free: change to it directly.");
	return createCheckoutSession(db, stripe, { userId: input.userId, plan, price, quantity, subscription, returnUrl: input.returnUrl, now: ctx.now });
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

/** What clients see of a subscription. */
export function subscriptionView(sub: Subscription) {
	return {
		id: sub._id, planId: sub.planId, priceId: sub.priceId, status: sub.status, currency: sub.currency, interval: sub.interval, quantity: sub.quantity,
		trialStart: iso(sub.trialStart), trialEnd: iso(sub.trialEnd), currentPeriodStart: iso(sub.currentPeriodStart), currentPeriodEnd: iso(sub.currentPeriodEnd),
		cancelAtPeriodEnd: sub.cancelAtPeriodEnd, canceledAt: iso(sub.canceledAt), pausedAt: iso(sub.pausedAt), billedByStripe: sub.stripeSubscriptionId !== null,
		createdAt: iso(sub.createdAt),
	};
}
