/**
 * OutboxStore over PostgreSQL (table `outbox_events`, see the auth migrations). Writers call
 * `enqueueEvent` inside their own transaction; the relay claims rows with SKIP LOCKED so several
 * nodes relay in parallel without publishing the same row at the same time.
 */
import type pg from "pg";
import type { CloudEvent } from "./cloudevents.ts";
import type { OutboxEntry, OutboxStore } from "./outbox-relay.ts";

export async function enqueueEvent(tx: pg.PoolClient, event: CloudEvent<unknown>, requestId?: string): Promise<void> {
	await tx.query("INSERT INTO outbox_events (id, type, envelope, request_id) VALUES ($1, $2, $3, $4)", [
		event.id,
		event.type,
		JSON.stringify(event),
		requestId ?? null,
	]);
}

export function pgOutboxStore(pool: pg.Pool): OutboxStore {
	return {
		async relayBatch(limit, publish) {
			const client = await pool.connect();
			try {
				await client.query("BEGIN");
				const { rows } = await client.query<{ seq: string; envelope: CloudEvent<unknown>; request_id: string | null }>(
					`SELECT seq, envelope, request_id FROM outbox_events
					 WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`,
					[limit],
				);
				if (rows.length === 0) {
					await client.query("COMMIT");
					return 0;
				}
				const entries: OutboxEntry[] = rows.map((r) => ({ event: r.envelope, requestId: r.request_id ?? undefined }));
				await publish(entries);
				await client.query("UPDATE outbox_events SET published_at = now() WHERE seq = ANY($1::bigint[])", [rows.map((r) => r.seq)]);
				await client.query("COMMIT");
				return rows.length;
			} catch (err) {
				await client.query("ROLLBACK").catch(() => undefined);
				throw err;
			} finally {
				client.release();
			}
		},
		async countPending() {
			const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM outbox_events WHERE published_at IS NULL");
			return Number(rows[0]?.n ?? 0);
		},
	};
}
