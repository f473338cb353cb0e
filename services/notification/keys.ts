/**
 * The notification service's Redis key layout, in one place. Every key starts with a prefix
 * derived from the Moleculer namespace, so two clusters (or two test runs) sharing a Redis never
 * see each other's inboxes, preferences or queues.
 */
import { createHash } from "node:crypto";

export interface Keys {
	/** BullMQ's own prefix; queues are `<queuePrefix>:<channel>:*`. */
	readonly queuePrefix: string;
	inboxAlerts: (userId: string) => string;
	inboxOrder: (userId: string) => string;
	inboxUnread: (userId: string) => string;
	preferences: (userId: string) => string;
	contact: (userId: string) => string;
	/** Set while a user's data must not come back (a late event after user.deleted). */
	tombstone: (userId: string) => string;
	pushSubscriptions: (userId: string) => string;
	/** Which user a push subscription (by id) belongs to: a device moves when another user signs in. */
	pushOwner: (subscriptionId: string) => string;
	/** Written after a delivery succeeded; a job that runs again skips the send. */
	delivered: (jobId: string) => string;
	/** Written by the enqueue that added a job (metrics count it once). */
	enqueued: (jobId: string) => string;
}

export function createKeys(namespace: string): Keys {
	const p = namespace ? `notification:${namespace}` : "notification";
	return {
		queuePrefix: `${p}:queue`,
		inboxAlerts: (u) => `${p}:inbox:${u}:alerts`,
		inboxOrder: (u) => `${p}:inbox:${u}:order`,
		inboxUnread: (u) => `${p}:inbox:${u}:unread`,
		preferences: (u) => `${p}:prefs:${u}`,
		contact: (u) => `${p}:contact:${u}`,
		tombstone: (u) => `${p}:deleted:${u}`,
		pushSubscriptions: (u) => `${p}:push:${u}`,
		pushOwner: (id) => `${p}:push-owner:${id}`,
		delivered: (jobId) => `${p}:delivered:${jobId}`,
		enqueued: (jobId) => `${p}:enqueued:${jobId}`,
	};
}

/**
 * An id that is safe inside a BullMQ job id (no ":", not an integer) and a URL path segment:
 * the value itself when it is plain, otherwise a hash of it.
 */
export function safeId(value: string): string {
	return /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/.test(value) && !/^\d+$/.test(value) ? value : `h-${shortHash(value)}`;
}

export function shortHash(value: string): string {
	return createHash("sha256").update(value).digest("base64url").slice(0, 22);
}
