/**
 * In-app alerts: a bounded per-user inbox in Redis with read/unread state, newest first, cursor
 * pagination and an unread count. An alert's id is derived from the event that caused it, so a
 * redelivered event cannot add the same alert twice.
 *
 * Per user: a hash id -> alert JSON, a sorted set of all ids and one of unread ids (both scored
 * by creation time). Every change is one Lua script, so the three never disagree.
 */
import type { Redis } from "ioredis";
import { AppError, notFound } from "../../lib/errors.ts";
import { runScript } from "../../lib/redis.ts";
import type { LuaScript } from "../../lib/redis.ts";
import type { Keys } from "./keys.ts";

export interface Alert {
	id: string;
	workflow: string;
	category: string;
	title: string;
	body: string;
	/** Where the alert leads (a page of the web console), if anywhere. */
	url: string | null;
	createdAt: string;
	readAt: string | null;
}

export interface AlertPage {
	items: Alert[];
	/** Pass back as `cursor` for the next (older) page; null on the last page. */
	nextCursor: string | null;
	unreadCount: number;
}

/** Oldest alerts beyond this are dropped. */
export const INBOX_LIMIT = 200;

const keysOf = (keys: Keys, userId: string) => [keys.inboxAlerts(userId), keys.inboxOrder(userId), keys.inboxUnread(userId)];

// Store the alert only if new, index it, trim the inbox to its bound; answer {added, unread}.
const ADD: LuaScript = { numberOfKeys: 3, lua: `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return {0, redis.call('ZCARD', KEYS[3])} end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
  redis.call('ZREM', KEYS[3], unpack(old))
  redis.call('HDEL', KEYS[1], unpack(old))
end
return {redis.call('HEXISTS', KEYS[1], ARGV[1]), redis.call('ZCARD', KEYS[3])}` };

// One page, newest first, strictly after the cursor (score, id); ties in score are ordered by
// id descending, as ZREVRANGEBYSCORE returns them. Answers {unread, hasMore, json...}.
const PAGE: LuaScript = { numberOfKeys: 3, lua: `
local max, cursorId, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ties = 0
if cursorId ~= '' then ties = redis.call('ZCOUNT', KEYS[2], max, max) end
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[2], max, '-inf', 'WITHSCORES', 'LIMIT', 0, limit + ties + 1)
local ids = {}
for i = 1, #rows, 2 do
  local skip = cursorId ~= '' and tonumber(rows[i + 1]) == tonumber(max) and rows[i] >= cursorId
  if not skip then ids[#ids + 1] = rows[i] end
end
local hasMore = 0
if #ids > limit then hasMore = 1; ids[#ids] = nil end
local out = {redis.call('ZCARD', KEYS[3]), hasMore}
if #ids > 0 then
  local alerts = redis.call('HMGET', KEYS[1], unpack(ids))
  for i = 1, #alerts do if alerts[i] then out[#out + 1] = alerts[i] end end
end
return out` };

// Marks one alert read; answers the unread count, or -1 when there is no such alert.
const MARK_READ: LuaScript = { numberOfKeys: 3, lua: `
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then return -1 end
if redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
  local alert = cjson.decode(json)
  alert.readAt = ARGV[2]
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(alert))
end
return redis.call('ZCARD', KEYS[3])` };

// Marks every unread alert read (at most INBOX_LIMIT); answers how many changed.
const MARK_ALL_READ: LuaScript = { numberOfKeys: 3, lua: `
local ids = redis.call('ZRANGE', KEYS[3], 0, -1)
for _, id in ipairs(ids) do
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    local alert = cjson.decode(json)
    alert.readAt = ARGV[1]
    redis.call('HSET', KEYS[1], id, cjson.encode(alert))
  end
end
redis.call('DEL', KEYS[3])
return #ids` };

/** Adds the alert unless an alert with its id exists; answers whether it was added. */
export async function addAlert(redis: Redis, keys: Keys, userId: string, alert: Alert): Promise<{ added: boolean; unreadCount: number }> {
	const [added, unreadCount] = await runScript<[number, number]>(redis, ADD, ...keysOf(keys, userId), alert.id, JSON.stringify(alert), Date.parse(alert.createdAt), INBOX_LIMIT);
	return { added: added === 1, unreadCount };
}

export interface ListOptions {
	limit: number;
	cursor?: string;
	unreadOnly?: boolean;
}

export async function listAlerts(redis: Redis, keys: Keys, userId: string, opts: ListOptions): Promise<AlertPage> {
	const [alertsKey, orderKey, unreadKey] = keysOf(keys, userId) as [string, string, string];
	const position = opts.cursor ? decodeCursor(opts.cursor) : undefined;
	const [unreadCount, hasMore, ...rows] = await runScript<[number, number, ...string[]]>(redis, PAGE, alertsKey, opts.unreadOnly ? unreadKey : orderKey, unreadKey, position ? String(position.score) : "+inf", position?.id ?? "", opts.limit);
	const items = rows.map(parseAlert);
	const last = items.at(-1);
	return { items, nextCursor: hasMore === 1 && last ? encodeCursor(Date.parse(last.createdAt), last.id) : null, unreadCount };
}

/** Answers the unread count after the change; 404 when the user has no such alert. */
export async function markRead(redis: Redis, keys: Keys, userId: string, alertId: string, now: Date): Promise<number> {
	const unread = await runScript<number>(redis, MARK_READ, ...keysOf(keys, userId), alertId, now.toISOString());
	if (unread < 0) throw notFound("Notification");
	return unread;
}

export async function markAllRead(redis: Redis, keys: Keys, userId: string, now: Date): Promise<number> {
	return runScript<number>(redis, MARK_ALL_READ, ...keysOf(keys, userId), now.toISOString());
}

export async function deleteInbox(redis: Redis, keys: Keys, userId: string): Promise<void> {
	await redis.del(...keysOf(keys, userId));
}

// Lua's cjson writes "/" as "\/" and null as null: both read back as the same JSON.
function parseAlert(json: string): Alert {
	return JSON.parse(json) as Alert;
}

export function encodeCursor(score: number, id: string): string {
	return Buffer.from(`${score}:${id}`).toString("base64url");
}

export function decodeCursor(cursor: string): { score: number; id: string } {
	const raw = Buffer.from(cursor, "base64url").toString();
	const at = raw.indexOf(":");
	const score = Number(raw.slice(0, at));
	const id = raw.slice(at + 1);
	if (at < 1 || !Number.isSafeInteger(score) || !id) {
		throw new AppError(400, "VALIDATION_ERROR", "The cursor is not valid.", { errors: [{ field: "cursor", message: "not a cursor returned by this API" }] });
	}
	return { score, id };
}
