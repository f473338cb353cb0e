/**
 * Push: the subscriptions of each user's devices, and the providers that deliver to them.
 *
 * A Web Push subscription (what a browser's PushManager.subscribe() returns) is stored per user,
 * keyed by a hash of its endpoint, at most MAX_DEVICES per user (the oldest goes first). An
 * endpoint is a URL our server will POST to, so only the push services' origins are accepted
 * (PUSH_ENDPOINT_ORIGINS), never an arbitrary address. When a push service answers 404 or 410
 * the subscription is gone for good and is removed.
 *
 * `PushProvider` is the seam for other kinds of device (FCM tokens, APNs device tokens): a
 * provider delivers one message to one subscription of its kind.
 */
import type { Redis } from "ioredis";
import type * as WebPush from "web-push";
import { AppError } from "../../lib/errors.ts";
import { runScript } from "../../lib/redis.ts";
import type { LuaScript } from "../../lib/redis.ts";
import type { Keys } from "./keys.ts";
import { shortHash } from "./keys.ts";
import { PermanentDeliveryError } from "./queues.ts";
import type { PushUrgency } from "./workflows.ts";

export const MAX_DEVICES = 10;

export interface PushSubscriptionInput {
	endpoint: string;
	expirationTime?: number | null;
	keys: { p256dh: string; auth: string };
	/** A name the user recognises ("Firefox on laptop"). */
	deviceName?: string;
}

export interface StoredPushSubscription {
	id: string;
	kind: "webpush";
	endpoint: string;
	keys: { p256dh: string; auth: string };
	deviceName: string | null;
	createdAt: string;
}

/** A registered device as its owner sees it: never its keys, and of its endpoint only the push service. */
export function deviceOf({ id, deviceName, createdAt, endpoint }: StoredPushSubscription) {
	return { id, deviceName, createdAt, pushService: new URL(endpoint).origin };
}

/** What a device shows; the service worker decides how. */
export interface PushMessage {
	title: string;
	body: string;
	url: string | null;
	/** Replaces an earlier notification with the same tag on the device. */
	tag: string;
	category: string;
	alertId: string;
}

export interface PushSendOptions {
	ttlSeconds: number;
	urgency: PushUrgency;
	/** Replaces an undelivered message with the same topic at the push service. */
	topic?: string;
	signal?: AbortSignal;
}

export type PushResult = "delivered" | "gone";

export interface PushProvider {
	readonly kind: StoredPushSubscription["kind"];
	/** Resolves "gone" when the subscription no longer exists; throws a retryable error or PermanentDeliveryError. */
	send(subscription: StoredPushSubscription, message: PushMessage, opts: PushSendOptions): Promise<PushResult>;
}

/** True when the endpoint is on one of the origins; "https://*.example.com" matches subdomains. */
export function isAllowedEndpoint(endpoint: string, origins: readonly string[]): boolean {
	let url: URL;
	try {
		url = new URL(endpoint);
	} catch {
		return false;
	}
	if (url.username || url.password) return false;
	return origins.some((origin) => {
		const wildcard = origin.match(/^(https?):\/\/\*\.(.+)$/);
		if (wildcard) return url.protocol === `${wildcard[1]}:` && url.hostname.endsWith(`.${wildcard[2]}`) && !url.port;
		return url.origin === origin.replace(/\/+$/, "");
	});
}

function invalid(field: string, message: string, type = "INVALID_PUSH_SUBSCRIPTION"): AppError {
	return new AppError(422, type, `The push subscription is not usable: ${message}.`, { errors: [{ field, message }] });
}

/** Checks what a browser sent: an allowed endpoint, a P-256 public key and a 16-byte secret. */
export function checkSubscription(input: PushSubscriptionInput, origins: readonly string[]): void {
	if (!isAllowedEndpoint(input.endpoint, origins)) throw invalid("endpoint", "not the address of a known push service", "PUSH_ENDPOINT_NOT_ALLOWED");
	const p256dh = Buffer.from(input.keys.p256dh, "base64url");
	if (p256dh.length !== 65 || p256dh[0] !== 0x04) throw invalid("keys.p256dh", "must be an uncompressed P-256 public key (65 bytes, base64url)");
	if (Buffer.from(input.keys.auth, "base64url").length !== 16) throw invalid("keys.auth", "must be 16 bytes, base64url");
	if (input.expirationTime && input.expirationTime < Date.now()) throw invalid("expirationTime", "the subscription has expired");
}

export const subscriptionIdOf = (endpoint: string) => shortHash(endpoint);

export async function addSubscription(redis: Redis, keys: Keys, userId: string, input: PushSubscriptionInput, origins: readonly string[], now: Date): Promise<StoredPushSubscription> {
	checkSubscription(input, origins);
	const sub: StoredPushSubscription = {
		id: subscriptionIdOf(input.endpoint),
		kind: "webpush",
		endpoint: input.endpoint,
		keys: { p256dh: input.keys.p256dh, auth: input.keys.auth },
		deviceName: input.deviceName ?? null,
		createdAt: now.toISOString(),
	};
	// A browser profile signed in by another user now belongs to that user.
	const previousOwner = await redis.getset(keys.pushOwner(sub.id), userId);
	if (previousOwner && previousOwner !== userId) await redis.hdel(keys.pushSubscriptions(previousOwner), sub.id);
	await redis.hset(keys.pushSubscriptions(userId), sub.id, JSON.stringify(sub));
	const all = await listSubscriptions(redis, keys, userId);
	for (const old of all.slice(0, Math.max(0, all.length - MAX_DEVICES))) await removeSubscription(redis, keys, userId, old.id);
	return sub;
}

/** Oldest first. */
export async function listSubscriptions(redis: Redis, keys: Keys, userId: string): Promise<StoredPushSubscription[]> {
	const all = Object.values(await redis.hgetall(keys.pushSubscriptions(userId))).map((json) => JSON.parse(json) as StoredPushSubscription);
	return all.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

export async function getSubscription(redis: Redis, keys: Keys, userId: string, id: string): Promise<StoredPushSubscription | null> {
	const json = await redis.hget(keys.pushSubscriptions(userId), id);
	return json ? (JSON.parse(json) as StoredPushSubscription) : null;
}

// Deletes KEYS[1] only while it holds ARGV[1].
const DELETE_IF_EQUAL: LuaScript = { numberOfKeys: 1, lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0" };

export async function removeSubscription(redis: Redis, keys: Keys, userId: string, id: string): Promise<boolean> {
	const removed = await redis.hdel(keys.pushSubscriptions(userId), id);
	// Only drop the owner entry if it still points at this user.
	await runScript(redis, DELETE_IF_EQUAL, keys.pushOwner(id), userId);
	return removed === 1;
}

export async function removeAllSubscriptions(redis: Redis, keys: Keys, userId: string): Promise<void> {
	for (const sub of await listSubscriptions(redis, keys, userId)) await removeSubscription(redis, keys, userId, sub.id);
	await redis.del(keys.pushSubscriptions(userId));
}

export interface VapidDetails {
	subject: string;
	publicKey: string;
	privateKey: string;
}

type WebPushLibrary = Pick<typeof WebPush, "getVapidHeaders" | "generateRequestDetails">;

/**
 * Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291), using
 * `web-push` to encrypt and sign, and `fetch` to send with a time limit. `web-push` (and what it
 * pulls in) is loaded by create(), so a node without VAPID keys never loads it.
 */
export class WebPushProvider implements PushProvider {
	readonly kind = "webpush" as const;
	private readonly webpush: WebPushLibrary;
	private readonly vapid: VapidDetails;
	private readonly fetch: typeof fetch;
	private readonly timeoutMs: number;

	/** Fails with web-push's own message when a key or the subject is malformed. */
	static async create(vapid: VapidDetails, opts: { fetch?: typeof fetch; timeoutMs?: number } = {}): Promise<WebPushProvider> {
		const { default: webpush } = await import("web-push");
		return new WebPushProvider(webpush, vapid, opts);
	}

	constructor(webpush: WebPushLibrary, vapid: VapidDetails, opts: { fetch?: typeof fetch; timeoutMs?: number } = {}) {
		webpush.getVapidHeaders("https://push.example", vapid.subject, vapid.publicKey, vapid.privateKey, "aes128gcm");
		this.webpush = webpush;
		this.vapid = vapid;
		this.fetch = opts.fetch ?? fetch;
		this.timeoutMs = opts.timeoutMs ?? 10_000;
	}

	async send(sub: StoredPushSubscription, message: PushMessage, opts: PushSendOptions): Promise<PushResult> {
		const request = this.webpush.generateRequestDetails({ endpoint: sub.endpoint, keys: sub.keys }, JSON.stringify(message), {
			vapidDetails: this.vapid,
			TTL: opts.ttlSeconds,
			urgency: opts.urgency,
			contentEncoding: "aes128gcm",
			...(opts.topic ? { topic: opts.topic } : {}),
		});
		const timeout = AbortSignal.timeout(this.timeoutMs);
		const res = await this.fetch(request.endpoint, {
			method: "POST",
			headers: Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, String(v)])),
			body: request.body,
			signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
			redirect: "error",
		});
		await res.body?.cancel();
		if (res.ok) return "delivered";
		if (res.status === 404 || res.status === 410) return "gone";
		if (res.status === 429 || res.status >= 500) throw new Error(`push service answered ${res.status}`);
		// 400 bad request, 403 VAPID key mismatch, 413 payload too large: the same request fails again.
		throw new PermanentDeliveryError(`push service refused the message (${res.status})`);
	}
}
