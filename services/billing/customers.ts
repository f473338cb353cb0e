/**
 * Billing customers, one per user, created from `user.created`. Keyed by the user id, so
 * however often the event arrives the customer exists exactly once.
 */
import type { Db } from "mongodb";

export interface Customer {
	_id: string;
	email: string;
	name: string | null;
	createdAt: Date;
	/** The event that created this customer, for tracing. */
	createdByEvent: string;
}

export const customers = (db: Db) => db.collection<Customer>("customers");

/** Returns true when this call created the customer, false when it already existed. */
export async function ensureCustomer(db: Db, user: { userId: string; email: string; name: string | null }, eventId: string, now: Date): Promise<boolean> {
	const result = await customers(db).updateOne(
		{ _id: user.userId },
		{ $setOnInsert: { email: user.email, name: user.name, createdAt: now, createdByEvent: eventId } },
		{ upsert: true },
	);
	return result.upsertedCount === 1;
}
