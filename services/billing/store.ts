/**
 * Billing's MongoDB layout: collections, the indexes made at start-up (unique keys carry the
 * integrity rules, since the server may have no validators or transactions), and the helpers
 * every domain module shares.
 */
import { MongoServerError } from "mongodb";
import type { Db } from "mongodb";
import { ensureOutboxIndex, outboxEntry } from "../../lib/events/mongo-outbox.ts";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import type { EventCatalog } from "../../lib/events/catalog.ts";
import type { OutboxEntry } from "../../lib/events/outbox-relay.ts";
import { AppError } from "../../lib/errors.ts";
import { createValidator } from "../../lib/validator.ts";

/** The injectable clock: tests move time forward, production reads the system clock. */
export type Clock = () => Date;

export const EVENT_SOURCE = "/backplane/billing";

/** Collections whose documents carry outbox events. */
export const OUTBOX_COLLECTIONS = ["subscriptions", "invoices", "credit_notes"];

export const DAY_MS = 86_400_000;

/** Creates every index billing relies on; idempotent, run by every node at start. */
export async function ensureIndexes(db: Db): Promise<void> {
	await Promise.all([
		db.collection("customers").createIndex({ stripeCustomerId: 1 }, { name: "stripe_customer" }),
		db.collection("plans").createIndex({ active: 1, sortOrder: 1 }, { name: "catalog" }),
		// One live subscription per user: `liveKey` is the user id while live, unique otherwise.
		db.collection("subscriptions").createIndex({ liveKey: 1 }, { name: "one_live_per_user", unique: true }),
		db.collection("subscriptions").createIndex({ userId: 1, createdAt: -1 }, { name: "by_user" }),
		db.collection("subscriptions").createIndex({ stripeSubscriptionId: 1 }, { name: "stripe_subscription" }),
		db.collection("subscriptions").createIndex({ status: 1, trialEnd: 1 }, { name: "trial_due" }),
		db.collection("subscriptions").createIndex({ status: 1, currentPeriodEnd: 1 }, { name: "period_due" }),
		ensureOutboxIndex(db.collection("subscriptions")),
		// Finalized invoices carry their number here; drafts a unique placeholder.
		db.collection("invoices").createIndex({ numberKey: 1 }, { name: "invoice_number", unique: true }),
		db.collection("invoices").createIndex({ userId: 1, createdAt: -1, _id: -1 }, { name: "by_user" }),
		db.collection("invoices").createIndex({ status: 1, autoFinalizeAt: 1 }, { name: "drafts_due" }),
		db.collection("invoices").createIndex({ status: 1, nextPaymentAttemptAt: 1 }, { name: "payments_due" }),
		db.collection("invoices").createIndex({ stripePaymentIntentId: 1 }, { name: "payment_intent" }),
		db.collection("usage_records").createIndex({ subscriptionId: 1, timestamp: 1 }, { name: "usage_by_period" }),
		ensureOutboxIndex(db.collection("invoices")),
		// Credit notes: numbered per year like invoices; found by invoice, and by status for the ones a crash left pending.
		db.collection("credit_notes").createIndex({ number: 1 }, { name: "credit_note_number", unique: true }),
		db.collection("credit_notes").createIndex({ invoiceId: 1, createdAt: 1 }, { name: "by_invoice" }),
		db.collection("credit_notes").createIndex({ requestKey: 1 }, { name: "credit_note_request", unique: true }),
		db.collection("credit_notes").createIndex({ status: 1, createdAt: 1 }, { name: "pending_refunds" }),
		ensureOutboxIndex(db.collection("credit_notes")),
		db.collection("stripe_events").createIndex({ receivedAt: -1 }, { name: "received" }),
	]);
}

export function isDuplicateKey(err: unknown): boolean {
	return err instanceof MongoServerError && err.code === 11000;
}

/** A billing CloudEvent ready for an aggregate's `pendingEvents`. */
export function billingEvent<K extends keyof EventCatalog>(type: K, subject: string, data: EventCatalog[K], now: Date, requestId?: string | null): OutboxEntry {
	return outboxEntry(createCloudEvent({ type, source: EVENT_SOURCE, subject, data, time: now }), requestId);
}

/** Application-side document validation (the server may have no collection validators). */
export function documentChecker<T>(kind: string, schema: Record<string, unknown>): (doc: T) => T {
	const check = createValidator().compile({ $$root: false, ...schema });
	return (doc) => {
		const result = check(doc);
		if (result !== true) {
			const problems = (result as { field: string; message?: string }[]).map((e) => `${e.field}: ${e.message ?? "invalid"}`);
			throw new AppError(500, "INVALID_DOCUMENT", `refusing to store an invalid ${kind}: ${problems.join("; ")}`, undefined, false);
		}
		return doc;
	};
}

/** Retries `attempt` when another writer won a version-guarded update; bounded. */
export async function withOptimisticRetry<T>(attempt: () => Promise<T | "conflict">, tries = 5): Promise<T> {
	for (let i = 0; i < tries; i++) {
		const result = await attempt();
		if (result !== "conflict") return result;
	}
	throw new AppError(409, "CONCURRENT_UPDATE", "The subscription was changed at the same time by another request. Try again.", undefined, true);
}

/**
 * Deletes the consumed-event keys (`processed_events`) that earlier versions wrote on every
 * sign-up, 30 days after they were written. Remove once no deployment has such keys left.
 */
export async function pruneProcessed(db: Db, now: Date, keepDays = 30): Promise<number> {
	const result = await db.collection("processed_events").deleteMany({ processedAt: { $lt: new Date(now.getTime() - keepDays * DAY_MS) } });
	return result.deletedCount;
}
