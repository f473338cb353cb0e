/**
 * fastest-validator rules of the notification actions that are longer than a line: the
 * preferences document and a browser's push subscription (PushSubscription.toJSON()).
 */
import { CATEGORIES, CHANNELS } from "./workflows.ts";

export const optionalBoolean = { type: "boolean", optional: true, convert: true };

const channelFlags = { type: "object", optional: true, strict: "remove", props: Object.fromEntries(CHANNELS.map((c) => [c, optionalBoolean])) };

export const preferencesParams = {
	$$strict: "remove",
	channels: channelFlags,
	categories: {
		type: "object",
		optional: true,
		strict: "remove",
		props: Object.fromEntries(CATEGORIES.map((c) => [c, { type: "object", optional: true, strict: "remove", props: { channels: channelFlags } }])),
	},
};

export const pushSubscriptionParams = {
	$$strict: "remove",
	endpoint: { type: "string", min: 10, max: 2_048 },
	expirationTime: { type: "number", optional: true, nullable: true },
	keys: { type: "object", strict: "remove", props: { p256dh: { type: "string", max: 200 }, auth: { type: "string", max: 100 } } },
	deviceName: { type: "string", optional: true, max: 100, trim: true },
};

/** A push subscription's id: the 22-character base64url hash of its endpoint (subscriptionIdOf). */
export const pushSubscriptionId = { type: "string", pattern: /^[A-Za-z0-9_-]{22}$/ };

export const queueChannel = { type: "enum", values: ["email", "push"] };
export const pageLimit = { type: "number", integer: true, min: 1, max: 100, default: 20, convert: true };
