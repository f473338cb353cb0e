/**
 * CloudEvents 1.0 envelope (JSON structured mode) for every durable event on the bus.
 * https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md
 */
import { randomUUID } from "node:crypto";
import { createValidator } from "../validator.ts";

export interface CloudEvent<T = Record<string, unknown>> {
	specversion: "1.0";
	/** Unique per event; consumers deduplicate by it. */
	id: string;
	/** URI reference of the producer, e.g. "/backplane/auth". */
	source: string;
	/** Reverse-DNS free, catalog name: "user.created". See docs/events.md. */
	type: string;
	time: string;
	/** The entity the event is about, e.g. the user id. */
	subject?: string;
	datacontenttype: "application/json";
	data: T;
}

export interface NewEvent<T> {
	type: string;
	source: string;
	subject?: string;
	data: T;
	id?: string;
	time?: Date;
}

export function createCloudEvent<T>(event: NewEvent<T>): CloudEvent<T> {
	return {
		specversion: "1.0",
		id: event.id ?? randomUUID(),
		source: event.source,
		type: event.type,
		time: (event.time ?? new Date()).toISOString(),
		...(event.subject ? { subject: event.subject } : {}),
		datacontenttype: "application/json",
		data: event.data,
	};
}

const check = createValidator().compile({
	$$root: false,
	specversion: { type: "equal", value: "1.0" },
	id: { type: "string", min: 1, max: 200 },
	source: { type: "string", min: 1, max: 500 },
	type: { type: "string", min: 1, max: 200, pattern: /^[a-z][a-z0-9_.]*$/ },
	time: { type: "string", min: 20, max: 40 },
	subject: { type: "string", optional: true, max: 200 },
	datacontenttype: { type: "string", optional: true },
	data: { type: "object" },
});

export class MalformedEventError extends Error {
	constructor(reason: string) {
		super(`malformed CloudEvent: ${reason}`);
		this.name = "MalformedEventError";
	}
}

/** Validates an incoming envelope; a malformed one can never succeed, so it is not retried. */
export function parseCloudEvent(value: unknown): CloudEvent {
	const result = check(value);
	if (result !== true) {
		const reasons = Array.isArray(result) ? result.map((e) => e.message).join("; ") : "invalid";
		throw new MalformedEventError(reasons);
	}
	return value as CloudEvent;
}
