/**
 * The relay's contract, with an in-memory store standing in for a database (the PostgreSQL
 * store itself is exercised by the integration tests).
 */
import { describe, expect, it } from "vitest";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { OutboxRelay } from "../../lib/events/outbox-relay.ts";
import type { OutboxEntry, OutboxStore, RelayHooks } from "../../lib/events/outbox-relay.ts";

function memoryStore(count: number) {
	const rows: { entry: OutboxEntry; published: boolean }[] = [];
	/** Commits one more entry, as a writer would. */
	const add = () => void rows.push({ entry: { event: createCloudEvent({ type: "t.e", source: "/s", data: { i: rows.length } }) }, published: false });
	for (let i = 0; i < count; i++) add();
	const store: OutboxStore = {
		async relayBatch(limit, publish) {
			const batch = rows.filter((r) => !r.published).slice(0, limit);
			if (!batch.length) return 0;
			await publish(batch.map((r) => r.entry));
			for (const r of batch) r.published = true;
			return batch.length;
		},
		async countPending() {
			return rows.filter((r) => !r.published).length;
		},
	};
	return { rows, store, add };
}

const QUIET: RelayHooks = { published: () => undefined, failed: () => undefined };

const until = async (cond: () => boolean, ms = 3_000) => {
	const end = Date.now() + ms;
	while (!cond()) {
		if (Date.now() > end) throw new Error("timed out");
		await new Promise((r) => setTimeout(r, 5));
	}
};

describe("OutboxRelay", () => {
	it("publishes everything in order, in batches, and marks it published (a full batch goes again at once, whatever the linger)", async () => {
		const { rows, store } = memoryStore(250);
		const seen: number[] = [];
		const relay = new OutboxRelay(store, async (entries) => void seen.push(...entries.map((e) => (e.event.data as { i: number }).i)), QUIET, { batchSize: 100, pollIntervalMs: 10_000, lingerMs: 10_000, maxBackoffMs: 100 });
		relay.start();
		await until(() => rows.every((r) => r.published));
		await relay.stop();
		expect(seen).toEqual([...Array(250).keys()]);
	});

	it("keeps entries unpublished while publishing fails, and delivers them after recovery", async () => {
		const { rows, store } = memoryStore(3);
		let down = true;
		const failures: number[] = [];
		const relay = new OutboxRelay(
			store,
			async () => {
				if (down) throw new Error("RabbitMQ unreachable");
			},
			{ published: () => undefined, failed: (_, n) => failures.push(n) },
			{ batchSize: 10, pollIntervalMs: 10_000, lingerMs: 0, maxBackoffMs: 50 },
		);
		relay.start();
		await until(() => failures.length >= 3);
		expect(rows.some((r) => r.published)).toBe(false);
		expect(failures.slice(0, 3)).toEqual([1, 2, 3]);
		down = false;
		await until(() => rows.every((r) => r.published));
		await relay.stop();
	});

	it("relays at once when nudged instead of waiting for the next poll", async () => {
		const { rows, store, add } = memoryStore(0);
		const relay = new OutboxRelay(store, async () => undefined, QUIET, { batchSize: 10, pollIntervalMs: 60_000, lingerMs: 25, maxBackoffMs: 50 });
		relay.start();
		await new Promise((r) => setTimeout(r, 20));
		add();
		const started = Date.now();
		relay.nudge();
		await until(() => rows[0]!.published, 1_000);
		expect(Date.now() - started).toBeLessThan(500);
		await relay.stop();
	});

	it("paces nudged passes: events committed within the linger go out together in the next pass", async () => {
		const { rows, store, add } = memoryStore(0);
		const passes: number[] = [];
		const counting: OutboxStore = { ...store, relayBatch: async (limit, publish) => { const n = await store.relayBatch(limit, publish); if (n) passes.push(n); return n; } };
		const relay = new OutboxRelay(counting, async () => undefined, QUIET, { batchSize: 10, pollIntervalMs: 60_000, lingerMs: 600, maxBackoffMs: 50 });
		const commit = () => {
			add();
			relay.nudge();
		};
		relay.start();
		await new Promise((r) => setTimeout(r, 650)); // a quiet spell longer than the linger
		const started = Date.now();
		commit();
		await until(() => rows[0]!.published, 1_000);
		expect(Date.now() - started).toBeLessThan(300); // after a quiet spell: at once, not 600 ms later
		for (let i = 0; i < 5; i++) {
			commit();
			await new Promise((r) => setTimeout(r, 20));
		}
		expect(rows.filter((r) => r.published)).toHaveLength(1); // held back by the linger
		await until(() => rows.every((r) => r.published), 2_000);
		expect(passes).toEqual([1, 5]);
		await relay.stop();
	});

	it("stops promptly while it lingers", async () => {
		const { store, add } = memoryStore(0);
		const relay = new OutboxRelay(store, async () => undefined, QUIET, { batchSize: 10, pollIntervalMs: 60_000, lingerMs: 5_000, maxBackoffMs: 50 });
		relay.start();
		await new Promise((r) => setTimeout(r, 20));
		add();
		relay.nudge();
		const started = Date.now();
		await relay.stop();
		expect(Date.now() - started).toBeLessThan(500);
	});
});
