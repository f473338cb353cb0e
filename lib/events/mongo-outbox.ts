/**
 * OutboxStore over MongoDB (or any MongoDB-wire server such as FerretDB, which has no
 * multi-document transactions). An aggregate keeps the events of a change in a `pendingEvents`
 * array on its own document, written by the same single-document update as the change
 * (`withEvents`), so the change and its events commit together or not at all.
 *
 * The relay claims a document by setting a lease on it, publishes its events, and after RabbitMQ
 * confirmed them removes exactly those entries with `$pullAll` (events appended meanwhile stay).
 * A crash between the confirm and the removal publishes them again once the lease expires: at
 * least once, and consumers deduplicate by event id.
 *
 * Why a document lock: FerretDB v1 applies an update as read-then-write outside a transaction,
 * so two concurrent updates of one document lose one (measured: 20 concurrent `$inc` -> 1..3;
 * 20 concurrent version-guarded updates -> 2..13 "modified"; FerretDB issue #3040). Only
 * unique-key inserts are atomic there. So every writer of an outbox aggregate, and the relay,
 * changes it while holding `withDocumentLock` (an insert into `doc_locks`); on MongoDB the lock
 * is redundant but cheap.
 */
import { randomUUID } from "node:crypto";
import { MongoServerError } from "mongodb";
import type { Collection, Db, Document, Filter, UpdateFilter } from "mongodb";
import { AppError } from "../errors.ts";
import type { OutboxEntry, OutboxStore } from "./outbox-relay.ts";

/** The fields an aggregate with an outbox carries. */
export interface OutboxFields {
	pendingEvents?: OutboxEntry[];
	/** When events were last added; null once all are relayed. Indexed: the relay's work list. */
	outboxAt?: Date | null;
	outboxLeaseUntil?: Date | null;
	outboxLease?: string | null;
}

/** Projection that hides the outbox fields from readers of the aggregate. */
export const WITHOUT_OUTBOX = { pendingEvents: 0, outboxAt: 0, outboxLeaseUntil: 0, outboxLease: 0 } as const;

/** An outbox entry with no undefined fields (they would be stored as null and break `$pullAll`). */
export function outboxEntry(event: OutboxEntry["event"], requestId?: string | null): OutboxEntry {
	return requestId ? { event, requestId } : { event };
}

/** Adds `entries` to an update so they commit with it. */
export function withEvents<T extends Document>(update: UpdateFilter<T>, entries: OutboxEntry[], now: Date): UpdateFilter<T> {
	if (entries.length === 0) return update;
	const u = update as Record<string, Record<string, unknown> | undefined>;
	return {
		...update,
		$push: { ...u.$push, pendingEvents: { $each: entries } },
		$set: { ...u.$set, outboxAt: now },
	} as unknown as UpdateFilter<T>;
}

/** Fields for a document inserted together with its first events. */
export function initialOutbox(entries: OutboxEntry[], now: Date): Required<OutboxFields> {
	return { pendingEvents: entries, outboxAt: entries.length ? now : null, outboxLeaseUntil: null, outboxLease: null };
}

export async function ensureOutboxIndex(collection: Collection<Document>): Promise<void> {
	await collection.createIndex({ outboxAt: 1 }, { name: "outbox_at" });
}

// --- document locks -------------------------------------------------------------------------

interface LockDoc {
	_id: string;
	owner: string;
	expiresAt: Date;
}

const locks = (db: Db) => db.collection<LockDoc>("doc_locks");
const isDuplicateKey = (err: unknown) => err instanceof MongoServerError && err.code === 11000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The lock key of a document: one name per collection and id. */
export const lockKey = (collection: string, id: unknown) => `${collection}:${String(id)}`;

export interface LockOptions {
	/** How long to wait for a busy lock before giving up (503, retryable). */
	waitMs?: number;
	/** A holder that crashed loses the lock after this long (wall clock). */
	leaseMs?: number;
}

/** Takes the lock if free (or held by a crashed holder past its lease); returns the owner token or null. */
export async function tryLock(db: Db, key: string, leaseMs = 30_000): Promise<string | null> {
	const owner = randomUUID();
	for (let attempt = 0; attempt < 2; attempt++) {
		try {
			await locks(db).insertOne({ _id: key, owner, expiresAt: new Date(Date.now() + leaseMs) });
			return owner;
		} catch (err) {
			if (!isDuplicateKey(err)) throw err;
			const stale = await locks(db).deleteOne({ _id: key, expiresAt: { $lte: new Date() } });
			if (stale.deletedCount === 0) return null;
		}
	}
	return null;
}

export async function unlock(db: Db, key: string, owner: string): Promise<void> {
	await locks(db).deleteOne({ _id: key, owner });
}

/** Runs `fn` holding the document's lock; waits (bounded, with back-off) while another holds it. */
export async function withDocumentLock<T>(db: Db, key: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
	const deadline = Date.now() + (opts.waitMs ?? 5_000);
	let delay = 2;
	let owner = await tryLock(db, key, opts.leaseMs);
	while (!owner) {
		if (Date.now() > deadline) throw new AppError(503, "RESOURCE_BUSY", "The record is being changed by another request. Try again shortly.", { key }, true);
		await sleep(delay + Math.random() * delay);
		delay = Math.min(delay * 2, 50);
		owner = await tryLock(db, key, opts.leaseMs);
	}
	try {
		return await fn();
	} finally {
		await unlock(db, key, owner).catch(() => undefined);
	}
}

// --- the store ------------------------------------------------------------------------------

export interface MongoOutboxOptions {
	/** Collections whose documents carry `pendingEvents`. */
	collections: string[];
	/** How long a claim holds before another relay may take the document over. */
	leaseMs?: number;
}

/** Aggregates with an outbox have string ids. */
type OutboxDoc = OutboxFields & { _id: string };

interface Claim {
	collection: Collection<OutboxDoc>;
	key: string;
	id: string;
	lease: string;
	entries: OutboxEntry[];
}

/** Upper bound of documents the pending gauge reads. */
const COUNT_SCAN_LIMIT = 10_000;

export function mongoOutboxStore(db: Db, opts: MongoOutboxOptions): OutboxStore {
	const collections = opts.collections.map((name) => db.collection<OutboxDoc>(name));
	const leaseMs = opts.leaseMs ?? 30_000;
	const claimable = (): Filter<OutboxDoc> => ({ outboxAt: { $ne: null }, $or: [{ outboxLeaseUntil: null }, { outboxLeaseUntil: { $lte: new Date() } }] });

	/** Sets our lease on the document if nobody holds one; skips a document whose lock is busy. */
	async function claim(collection: Collection<OutboxDoc>, id: string): Promise<Claim | null> {
		const key = lockKey(collection.collectionName, id);
		const owner = await tryLock(db, key);
		if (!owner) return null;
		try {
			// Sets the lease and reads the entries in one round trip (safe: nobody else writes under the lock).
			const lease = randomUUID();
			const doc = await collection.findOneAndUpdate({ _id: id, ...claimable() }, { $set: { outboxLease: lease, outboxLeaseUntil: new Date(Date.now() + leaseMs) } }, { returnDocument: "before" });
			if (!doc) return null;
			const entries = doc.pendingEvents ?? [];
			if (!entries.length) {
				await collection.updateOne({ _id: id }, { $set: { outboxAt: null, outboxLease: null, outboxLeaseUntil: null } });
				return null;
			}
			return { collection, key, id, lease, entries };
		} finally {
			await unlock(db, key, owner).catch(() => undefined);
		}
	}

	async function release(c: Claim, published: boolean): Promise<void> {
		await withDocumentLock(db, c.key, async () => {
			if (published) {
				// The usual case, in one update: the lease is still ours, so nobody removed entries, and
				// the count is unchanged, so nobody appended any: the outbox holds exactly what was sent.
				const emptied = await c.collection.updateOne(
					{ _id: c.id, outboxLease: c.lease, pendingEvents: { $size: c.entries.length } },
					{ $set: { pendingEvents: [], outboxAt: null, outboxLease: null, outboxLeaseUntil: null } },
				);
				if (emptied.matchedCount === 1) return;
			}
			const doc = await c.collection.findOne({ _id: c.id });
			if (!doc) return;
			const ours = doc.outboxLease === c.lease;
			if (published) {
				const sent = new Set(c.entries.map((e) => e.event.id));
				const remaining = (doc.pendingEvents ?? []).filter((e) => !sent.has(e.event.id));
				const clearLease = ours ? { outboxLease: null, outboxLeaseUntil: null } : {};
				await c.collection.updateOne({ _id: c.id }, { $pullAll: { pendingEvents: c.entries }, $set: { outboxAt: remaining.length ? (doc.outboxAt ?? null) : null, ...clearLease } });
			} else if (ours) {
				await c.collection.updateOne({ _id: c.id }, { $set: { outboxLease: null, outboxLeaseUntil: null } });
			}
		});
	}

	return {
		async relayBatch(limit, publish) {
			const claims: Claim[] = [];
			let count = 0;
			for (const collection of collections) {
				if (count >= limit) break;
				const candidates = await collection.find(claimable(), { projection: { _id: 1 } }).sort({ outboxAt: 1 }).limit(limit).toArray();
				for (const { _id } of candidates) {
					if (count >= limit) break;
					const c = await claim(collection, _id);
					if (!c) continue;
					claims.push(c);
					count += c.entries.length;
				}
			}
			if (claims.length === 0) return 0;
			try {
				await publish(claims.flatMap((c) => c.entries));
			} catch (err) {
				await Promise.allSettled(claims.map((c) => release(c, false)));
				throw err;
			}
			await Promise.all(claims.map((c) => release(c, true)));
			return count;
		},
		async countPending() {
			let n = 0;
			for (const collection of collections) {
				const docs = collection.find({ outboxAt: { $ne: null } }, { projection: { pendingEvents: 1 } }).limit(COUNT_SCAN_LIMIT);
				for await (const doc of docs) n += doc.pendingEvents?.length ?? 0;
			}
			return n;
		},
	};
}
