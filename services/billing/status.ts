/**
 * The subscription status model (Stripe Billing's statuses) and the one table of allowed
 * transitions. Every change of a subscription's status, whether asked by the user, made by the
 * lifecycle scheduler or reported by a Stripe webhook, goes through `assertTransition`.
 */
import { AppError } from "../../lib/errors.ts";

export const SUBSCRIPTION_STATUSES = ["trialing", "active", "past_due", "canceled", "unpaid", "incomplete", "paused"] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];

/**
 * from -> the statuses it may move to. Staying in the same status is always allowed (a plan
 * change, a renewal) except for `canceled`, which is final: a new subscription starts over.
 */
export const TRANSITIONS: Readonly<Record<SubscriptionStatus, readonly SubscriptionStatus[]>> = {
	// First payment pending (Checkout without trial): paid, or expired.
	incomplete: ["active", "canceled"],
	// Trial ends: paid/payment method on file, first charge failed, no payment method (plan says pause or cancel).
	trialing: ["active", "past_due", "paused", "canceled", "incomplete"],
	// unpaid straight from active: dunning with no retries configured.
	active: ["past_due", "unpaid", "paused", "canceled"],
	// Dunning: a retry succeeds, retries are exhausted (unpaid or canceled, as configured).
	past_due: ["active", "unpaid", "canceled"],
	unpaid: ["active", "canceled"],
	paused: ["active", "canceled"],
	canceled: [],
};

export function canTransition(from: SubscriptionStatus, to: SubscriptionStatus): boolean {
	if (from === to) return from !== "canceled";
	return TRANSITIONS[from].includes(to);
}

export function assertTransition(from: SubscriptionStatus, to: SubscriptionStatus): void {
	if (!canTransition(from, to)) {
		throw new AppError(409, "INVALID_STATUS_TRANSITION", `A subscription cannot go from ${from} to ${to}.`, { from, to });
	}
}

/** Operations a user (or the gateway on their behalf) can ask for, and the statuses that allow them. */
export type SubscriptionOperation = "changePlan" | "cancel" | "pause" | "resume" | "checkout";

const OPERATIONS: Readonly<Record<SubscriptionOperation, readonly SubscriptionStatus[]>> = {
	changePlan: ["trialing", "active"],
	cancel: ["trialing", "active", "past_due", "unpaid", "incomplete", "paused"],
	pause: ["active"],
	// Resume a paused subscription, or take back a cancellation scheduled for the period's end.
	resume: ["paused", "trialing", "active", "past_due"],
	checkout: ["trialing", "active", "paused", "incomplete", "past_due", "unpaid"],
};

export function assertOperation(operation: SubscriptionOperation, status: SubscriptionStatus): void {
	if (!OPERATIONS[operation].includes(status)) {
		throw new AppError(409, "SUBSCRIPTION_STATE_CONFLICT", `Cannot ${operation} a subscription that is ${status}.`, { operation, status });
	}
}

/** Statuses in which the subscription still exists for its user (one such per user). */
export const isLive = (status: SubscriptionStatus) => status !== "canceled";

/** Stripe's subscription statuses mapped onto ours (Stripe's `incomplete_expired` ends it). */
export function fromStripeStatus(status: string): SubscriptionStatus | undefined {
	if (status === "incomplete_expired") return "canceled";
	return (SUBSCRIPTION_STATUSES as readonly string[]).includes(status) ? (status as SubscriptionStatus) : undefined;
}
