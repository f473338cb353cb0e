/**
 * Billing customers, one per user, created from `user.created`. Keyed by the user id, so
 * however often the event arrives the customer exists exactly once. The Stripe customer is
 * created lazily (at the first Checkout or portal visit), so sign-up never waits on Stripe.
 */
import type { Db } from "mongodb";
import { lockKey, withDocumentLock } from "../../lib/events/mongo-outbox.ts";
import { isDuplicateKey } from "./store.ts";

export interface Customer {
	_id: string;
	email: string;
	name: string | null;
	createdAt: Date;
	/** The event that created this customer, for tracing. */
	createdByEvent: string;
	stripeCustomerId?: string | null;
	/** A payment method was collected (Checkout completed, or one attached in the portal). */
	paymentMethodOnFile?: boolean;
	updatedAt?: Date;
	/** The user deleted their account: contact details erased, invoices kept as issued. */
	deletedAt?: Date;
	/** Time of the user event the e-mail address and name were last taken from. */
	contactAt?: Date;
}

export const customers = (db: Db) => db.collection<Customer>("customers");

/** Returns true when this call created the customer, false when it already existed. */
export async function ensureCustomer(db: Db, user: { userId: string; email: string; name: string | null }, eventId: string, now: Date): Promise<boolean> {
	try {
		await customers(db).insertOne({ _id: user.userId, email: user.email, name: user.name, createdAt: now, createdByEvent: eventId, stripeCustomerId: null, paymentMethodOnFile: false });
		// A newer address or name that arrived before this customer existed (updateCustomerContact).
		await withDocumentLock(db, lockKey("customers", user.userId), async () => {
			const pending = await pendingContacts(db).findOne({ _id: user.userId });
			if (!pending) return;
			await applyContact(db, { userId: user.userId, email: pending.email, name: pending.name }, pending.contactAt, now);
			await pendingContacts(db).deleteOne({ _id: user.userId });
		});
		return true;
	} catch (err) {
		// The unique _id makes a redelivery (even a concurrent one) a no-op.
		if (isDuplicateKey(err)) return false;
		throw err;
	}
}

export type ContactUpdate = { outcome: "updated"; customer: Customer } | { outcome: "stale" | "erased" | "pending" };

/** A contact update that arrived before `user.created` made the customer (events of different types come in any order). */
interface PendingContact {
	_id: string;
	email: string;
	name: string | null;
	contactAt: Date;
}
const pendingContacts = (db: Db) => db.collection<PendingContact>("pending_contacts");

/**
 * The user's new e-mail address or name (`user.email_changed`, `user.updated`). The newest event
 * wins, so a late redelivery of an older one changes nothing; the same event applies again
 * (its Stripe update may not have happened the first time). Before the customer exists the update
 * is kept ("pending") and `ensureCustomer` applies it. Both run under the customer's document
 * lock (decision 0002: FerretDB loses concurrent updates and upserts), so neither misses the other.
 */
export async function updateCustomerContact(db: Db, user: { userId: string; email: string; name: string | null }, eventTime: Date, now: Date): Promise<ContactUpdate> {
	return withDocumentLock(db, lockKey("customers", user.userId), async () => {
		const applied = await applyContact(db, user, eventTime, now);
		if (applied !== "unknown") return applied;
		const pending = await pendingContacts(db).findOne({ _id: user.userId });
		if (!pending) await pendingContacts(db).insertOne({ _id: user.userId, email: user.email, name: user.name, contactAt: eventTime });
		else if (pending.contactAt <= eventTime) await pendingContacts(db).updateOne({ _id: user.userId }, { $set: { email: user.email, name: user.name, contactAt: eventTime } });
		return { outcome: "pending" as const };
	});
}

async function applyContact(db: Db, user: { userId: string; email: string; name: string | null }, eventTime: Date, now: Date): Promise<ContactUpdate | "unknown"> {
	const customer = await customers(db).findOneAndUpdate(
		{ _id: user.userId, deletedAt: { $exists: false }, $or: [{ contactAt: { $exists: false } }, { contactAt: { $lte: eventTime } }] },
		{ $set: { email: user.email, name: user.name, contactAt: eventTime, updatedAt: now } },
		{ returnDocument: "after" },
	);
	if (customer) return { outcome: "updated", customer };
	const existing = await customers(db).findOne({ _id: user.userId }, { projection: { deletedAt: 1 } });
	return !existing ? "unknown" : existing.deletedAt ? { outcome: "erased" } : { outcome: "stale" };
}

export async function findCustomerByStripeId(db: Db, stripeCustomerId: string): Promise<Customer | null> {
	return customers(db).findOne({ stripeCustomerId });
}

export async function markPaymentMethodOnFile(db: Db, userId: string, now: Date): Promise<boolean> {
	const result = await customers(db).updateOne({ _id: userId, paymentMethodOnFile: { $ne: true } }, { $set: { paymentMethodOnFile: true, updatedAt: now } });
	return result.modifiedCount === 1;
}

/**
 * Erases a deleted user's contact details. Issued invoices are legal records and stay as they
 * were issued (their buyer block included), as tax law requires.
 */
export async function eraseCustomer(db: Db, userId: string, now: Date): Promise<boolean> {
	const result = await customers(db).updateOne({ _id: userId, deletedAt: { $exists: false } }, { $set: { email: "", name: null, deletedAt: now, updatedAt: now } });
	return result.modifiedCount === 1;
}
