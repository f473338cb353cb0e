/**
 * A small per-user contact record (e-mail address, name, locale), so that events which carry
 * only a user id (billing's) can still be mailed. Kept from the user events auth publishes; the
 * newest event wins, so a late redelivery of an old event cannot bring back an old address.
 * After user.deleted a tombstone keeps late events from re-creating anything for that user.
 */
import type { Redis } from "ioredis";
import { runScript } from "../../lib/redis.ts";
import type { LuaScript } from "../../lib/redis.ts";
import type { Keys } from "./keys.ts";

export interface Contact {
	userId: string;
	email: string;
	name: string | null;
	locale: string | null;
	/** Time of the event the record was taken from. */
	updatedAt: string;
}

/** How long a deleted user's tombstone stays: longer than any redelivery or retry window. */
export const TOMBSTONE_TTL_S = 30 * 86_400;

// Writes the record only when it is newer than the stored one.
const UPSERT_IF_NEWER: LuaScript = { numberOfKeys: 1, lua: `
local current = redis.call('HGET', KEYS[1], 'updatedAtMs')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'updatedAtMs', ARGV[1], 'json', ARGV[2])
return 1` };

export async function upsertContact(redis: Redis, keys: Keys, contact: Contact): Promise<boolean> {
	const written = await runScript<number>(redis, UPSERT_IF_NEWER, keys.contact(contact.userId), Date.parse(contact.updatedAt), JSON.stringify(contact));
	return written === 1;
}

export async function getContact(redis: Redis, keys: Keys, userId: string): Promise<Contact | null> {
	const json = await redis.hget(keys.contact(userId), "json");
	return json ? (JSON.parse(json) as Contact) : null;
}

export async function markDeleted(redis: Redis, keys: Keys, userId: string): Promise<void> {
	await redis.set(keys.tombstone(userId), "1", "EX", TOMBSTONE_TTL_S);
}

export async function isDeleted(redis: Redis, keys: Keys, userId: string): Promise<boolean> {
	return (await redis.exists(keys.tombstone(userId))) === 1;
}
