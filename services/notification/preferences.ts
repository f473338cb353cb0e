/**
 * Notification preferences per user: a switch per channel (all e-mail, all push, ...) and one per
 * category and channel, all on by default. A notification goes out on a channel when both
 * switches are on, except for locked categories (security), which ignore the switches and cannot
 * be turned off. Stored as one Redis hash per user holding only what the user changed.
 */
import type { Redis } from "ioredis";
import { AppError } from "../../lib/errors.ts";
import type { FieldError } from "../../lib/errors.ts";
import type { Keys } from "./keys.ts";
import { CATEGORIES, CHANNELS, LOCKED_CATEGORIES } from "./workflows.ts";
import type { Category, Channel, ChannelSwitch } from "./workflows.ts";

export type ChannelFlags = Record<Channel, boolean>;

export interface Preferences {
	channels: ChannelFlags;
	categories: Record<Category, { locked: boolean; channels: ChannelFlags }>;
}

export interface PreferencesPatch {
	channels?: Partial<ChannelFlags>;
	categories?: Partial<Record<Category, { channels?: Partial<ChannelFlags> }>>;
}

const channelField = (channel: Channel) => `channel:${channel}`;
const categoryField = (category: Category, channel: Channel) => `category:${category}:${channel}`;

/** Preferences from the stored hash (absent fields are on). */
export function fromHash(hash: Record<string, string>): Preferences {
	const on = (field: string) => hash[field] !== "0";
	const flags = (field: (c: Channel) => string) => Object.fromEntries(CHANNELS.map((c) => [c, on(field(c))])) as ChannelFlags;
	const allOn = Object.fromEntries(CHANNELS.map((c) => [c, true])) as ChannelFlags;
	return {
		channels: flags(channelField),
		categories: Object.fromEntries(
			CATEGORIES.map((cat) => [cat, LOCKED_CATEGORIES.has(cat) ? { locked: true, channels: { ...allOn } } : { locked: false, channels: flags((c) => categoryField(cat, c)) }]),
		) as Preferences["categories"],
	};
}

export function toSwitch(prefs: Preferences): ChannelSwitch {
	return { enabled: (category, channel) => prefs.channels[channel] && prefs.categories[category].channels[channel] };
}

/**
 * The hash fields a patch writes. Turning a locked category's channel off is refused with 422
 * PREFERENCE_LOCKED naming each offending field; turning it on is accepted and changes nothing.
 */
export function patchToFields(patch: PreferencesPatch): Record<string, "0" | "1"> {
	const fields: Record<string, "0" | "1"> = {};
	const locked: FieldError[] = [];
	for (const [channel, value] of Object.entries(patch.channels ?? {}) as [Channel, boolean | undefined][]) {
		if (value !== undefined) fields[channelField(channel)] = value ? "1" : "0";
	}
	for (const [category, entry] of Object.entries(patch.categories ?? {}) as [Category, { channels?: Partial<ChannelFlags> } | undefined][]) {
		for (const [channel, value] of Object.entries(entry?.channels ?? {}) as [Channel, boolean | undefined][]) {
			if (value === undefined) continue;
			if (LOCKED_CATEGORIES.has(category)) {
				if (!value) locked.push({ field: `categories.${category}.channels.${channel}`, message: `${category} notifications cannot be switched off`, type: "locked" });
				continue;
			}
			fields[categoryField(category, channel)] = value ? "1" : "0";
		}
	}
	if (locked.length) throw new AppError(422, "PREFERENCE_LOCKED", "Security notifications cannot be switched off.", { errors: locked });
	return fields;
}

export async function getPreferences(redis: Redis, keys: Keys, userId: string): Promise<Preferences> {
	return fromHash(await redis.hgetall(keys.preferences(userId)));
}

export async function updatePreferences(redis: Redis, keys: Keys, userId: string, patch: PreferencesPatch): Promise<Preferences> {
	const fields = patchToFields(patch);
	const key = keys.preferences(userId);
	if (Object.keys(fields).length === 0) return getPreferences(redis, keys, userId);
	const [, [err, hash] = []] = (await redis.multi().hset(key, fields).hgetall(key).exec()) ?? [];
	if (err) throw err;
	return fromHash(hash as Record<string, string>);
}
