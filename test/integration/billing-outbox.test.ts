/**
 * The MongoDB outbox store on the real MongoDB-wire server: events written with the change are
 * relayed once, removed after the confirm, kept when publishing fails, and never published by two
 * relays at the same time.
 */
import { MongoClient } from "mongodb";
import type { Db } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { lockKey, markLegacyPending, mongoOutboxStore, outboxEntry, withDocumentLock, withEvents } from "../../lib/events/mongo-outbox.ts";
import type { OutboxEntry } from "../../lib/events/outbox-relay.ts";
import { testEnv, uniqueId } from "../support/infra.ts";
import { notPushedDown, recordFilters } from "../support/pushdown.ts";

describe("mongoOutboxStore", () => {
	let client: MongoClient;
	let db: Db;
	const event = (n: number) => outboxEntry(createCloudEvent({ type: "test.happened", source: "/test", data: { n } }), `req-${n}`);

	beforeAll(async () => {
		client = new MongoClient(testEnv(uniqueId("outbox")).MONGO_URL!, { retryWrites: false, serverSelectionTimeoutMS: 3_000 });
		await client.connect();
		db = client.db();
	});
	afterAll(async () => {
		await db.dropDatabase().catch(() => undefined);
		await client.close();
	});

	/** Writers of an outbox aggregate hold its lock, as billing's do. */
	async function write(collection: string, id: string, entries: OutboxEntry[]) {
		await withDocumentLock(db, lockKey(collection, id), () => db.collection<{ _id: string; n: number }>(collection).updateOne({ _id: id }, withEvents({ $inc: { n: 1 } }, entries, new Date()), { upsert: true }));
	}

	it("relays events in order, then removes exactly them and clears the document's outbox flag", async () => {
		await write("a", "doc1", [event(1), event(2)]);
		await write("b", "doc2", [event(3)]);
		const store = mongoOutboxStore(db, { collections: ["a", "b"] });
		expect(await store.countPending()).toBe(3);
		const published: unknown[] = [];
		expect(await store.relayBatch(100, async (entries) => void published.push(...entries.map((e) => (e.event.data as { n: number }).n)))).toBe(3);
		expect(published).toEqual([1, 2, 3]);
		expect(await store.countPending()).toBe(0);
		expect(await db.collection("a").findOne({ _id: "doc1" as never })).toMatchObject({ n: 1, pendingEvents: [], outboxAt: null, outboxPending: false });
		// Relay locks and document locks alike are released.
		expect(await db.collection("doc_locks").countDocuments()).toBe(0);
		expect(await store.relayBatch(100, async () => undefined)).toBe(0);
	});

	it("keeps the events when publishing fails and releases the claim for the next attempt", async () => {
		await write("a", "doc3", [event(4)]);
		const store = mongoOutboxStore(db, { collections: ["a"] });
		await expect(store.relayBatch(10, async () => Promise.reject(new Error("RabbitMQ down")))).rejects.toThrow("RabbitMQ down");
		expect(await store.countPending()).toBe(1);
		expect(await db.collection("doc_locks").countDocuments()).toBe(0);
		const seen: number[] = [];
		expect(await store.relayBatch(10, async (e) => void seen.push(...e.map((x) => (x.event.data as { n: number }).n)))).toBe(1);
		expect(seen).toEqual([4]);
	});

	it("keeps an event appended while its document's batch was being published", async () => {
		await write("a", "doc4", [event(5)]);
		const store = mongoOutboxStore(db, { collections: ["a"] });
		const seen: number[] = [];
		await store.relayBatch(10, async (entries) => {
			seen.push(...entries.map((x) => (x.event.data as { n: number }).n));
			await write("a", "doc4", [event(6)]);
		});
		expect(seen).toEqual([5]);
		expect(await store.countPending()).toBe(1);
		await store.relayBatch(10, async (entries) => void seen.push(...entries.map((x) => (x.event.data as { n: number }).n)));
		expect(seen).toEqual([5, 6]);
		expect(await db.collection("a").findOne({ _id: "doc4" as never })).toMatchObject({ pendingEvents: [], outboxAt: null });
	});

	it("empties a document only if it still holds exactly what was published (another remover and a writer meanwhile)", async () => {
		await write("a", "doc5", [event(8)]);
		const store = mongoOutboxStore(db, { collections: ["a"] });
		await store.relayBatch(10, async () => {
			// What a relay of an older version could do meanwhile: publish and empty the document;
			// then a writer appends as many events as were read. Same length, other events.
			await withDocumentLock(db, lockKey("a", "doc5"), () => db.collection<{ _id: string }>("a").updateOne({ _id: "doc5" }, { $set: { pendingEvents: [], outboxPending: false, outboxAt: null } }));
			await write("a", "doc5", [event(9)]);
		});
		const doc = await db.collection<{ _id: string; pendingEvents: OutboxEntry[] }>("a").findOne({ _id: "doc5" });
		expect(doc!.pendingEvents.map((e) => (e.event.data as { n: number }).n)).toEqual([9]);
		expect(doc).toMatchObject({ outboxPending: true });
	});

	it("never lets two relays publish the same document at once", async () => {
		for (let i = 0; i < 20; i++) await write("c", `d${i}`, [event(100 + i)]);
		const stores = [mongoOutboxStore(db, { collections: ["c"] }), mongoOutboxStore(db, { collections: ["c"] })];
		const seen: number[] = [];
		const slowPublish = async (entries: OutboxEntry[]) => {
			await new Promise((r) => setTimeout(r, 20));
			seen.push(...entries.map((x) => (x.event.data as { n: number }).n));
		};
		await Promise.all(stores.map(async (store) => {
			for (let i = 0; i < 30 && (await store.relayBatch(3, slowPublish)) > 0; i++);
		}));
		expect(seen.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => 100 + i));
	});

	it("relays what a version without the outboxPending flag left pending, once markLegacyPending marked it", async () => {
		await db.collection<{ _id: string }>("legacy").insertMany([
			{ _id: "old-pending", pendingEvents: [event(7)], outboxAt: new Date(), outboxLease: null, outboxLeaseUntil: null } as never,
			{ _id: "old-done", pendingEvents: [], outboxAt: null, outboxLease: null, outboxLeaseUntil: null } as never,
		]);
		const store = mongoOutboxStore(db, { collections: ["legacy"] });
		expect(await store.countPending()).toBe(0);
		expect(await markLegacyPending(db, "legacy")).toBe(1);
		expect(await markLegacyPending(db, "legacy")).toBe(0); // every node runs it after start
		const seen: number[] = [];
		expect(await store.relayBatch(10, async (entries) => void seen.push(...entries.map((x) => (x.event.data as { n: number }).n)))).toBe(1);
		expect(seen).toEqual([7]);
		expect(await db.collection("legacy").findOne({ _id: "old-done" as never })).not.toHaveProperty("outboxPending");
	});

	// Every relay pass sends these: one that FerretDB cannot filter in PostgreSQL reads and decodes
	// the whole collection each time (test/support/pushdown.ts).
	it("sends only filters the MongoDB-wire server can hand to its database (FerretDB pushdown)", async () => {
		for (let i = 0; i < 3; i++) await write("pushdown", `p${i}`, [event(200 + i)]);
		const filters = await recordFilters(testEnv(uniqueId("outbox")).MONGO_URL!, db.databaseName, async (mdb) => {
			const store = mongoOutboxStore(mdb, { collections: ["pushdown"] });
			await store.countPending();
			expect(await store.relayBatch(10, async () => undefined)).toBe(3);
		});
		const outboxQueries = filters.filter((f) => f.collection === "pushdown");
		expect(outboxQueries.length).toBeGreaterThanOrEqual(4);
		expect(await notPushedDown(db, outboxQueries)).toEqual([]);
	});

	it("serializes concurrent writers of one document, which the server alone does not", async () => {
		await db.collection<{ _id: string; n: number }>("locked").insertOne({ _id: "k", n: 0 });
		await Promise.all(Array.from({ length: 20 }, () => withDocumentLock(db, lockKey("locked", "k"), () => db.collection<{ _id: string; n: number }>("locked").updateOne({ _id: "k" }, { $inc: { n: 1 } }))));
		expect((await db.collection<{ _id: string; n: number }>("locked").findOne({ _id: "k" }))?.n).toBe(20);
	});

	it("takes over a lock whose holder crashed, once its lease expired", async () => {
		await db.collection<{ _id: string; owner: string; expiresAt: Date }>("doc_locks").insertOne({ _id: lockKey("locked", "crashed"), owner: "dead", expiresAt: new Date(Date.now() - 1) });
		expect(await withDocumentLock(db, lockKey("locked", "crashed"), async () => "ran", { waitMs: 500 })).toBe("ran");
		await db.collection<{ _id: string; owner: string; expiresAt: Date }>("doc_locks").insertOne({ _id: lockKey("locked", "busy"), owner: "alive", expiresAt: new Date(Date.now() + 60_000) });
		await expect(withDocumentLock(db, lockKey("locked", "busy"), async () => "ran", { waitMs: 100 })).rejects.toMatchObject({ code: 503, type: "RESOURCE_BUSY" });
	});

	it("loses no event while writers append and a relay removes at the same time", async () => {
		const store = mongoOutboxStore(db, { collections: ["d"] });
		const seen: number[] = [];
		let writing = true;
		const relaying = (async () => {
			while (writing || (await store.countPending()) > 0) await store.relayBatch(50, async (entries) => void seen.push(...entries.map((x) => (x.event.data as { n: number }).n)));
		})();
		await Promise.all(Array.from({ length: 5 }, async (_, w) => {
			for (let i = 0; i < 8; i++) await write("d", "hot", [event(1_000 + w * 10 + i)]);
		}));
		writing = false;
		await relaying;
		expect(seen.sort((x, y) => x - y)).toEqual(Array.from({ length: 5 }, (_, w) => Array.from({ length: 8 }, (_, i) => 1_000 + w * 10 + i)).flat());
	});
});
