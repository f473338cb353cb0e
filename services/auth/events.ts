/** auth's durable events: written to the outbox inside the caller's transaction (docs/events.md). */
import type pg from "pg";
import type { EventCatalog, EventType } from "../../lib/events/catalog.ts";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { enqueueEvent } from "../../lib/events/pg-outbox.ts";
import type { RequestInfo } from "./deps.ts";

export const EVENT_SOURCE = "/backplane/auth";

export async function enqueue<T extends EventType>(tx: pg.PoolClient, type: T, subject: string, data: EventCatalog[T], request: RequestInfo, at: Date): Promise<void> {
	await enqueueEvent(tx, createCloudEvent({ type, source: EVENT_SOURCE, subject, data, time: at }), request.requestId);
}
