/**
 * In-app alerts: a bounded per-user inbox in Redis. An alert's id is derived from the event
 * that caused it, so a redelivered event cannot add the same alert twice.
 */
import type { Redis } from "ioredis";

export interface Alert {
	id: string;
	category: string;
	title: string;
	body: string;
	createdAt: string;
}

/** Oldest alerts beyond this are dropped. */
export const INBOX_LIMIT = 200;

const key = (userId: string) => ({ alerts: `inbox:${userId}:alerts`, order: `inbox:${userId}:order` });

// Atomic: store the alert only if new, index it by time, and trim the inbox to its bound.
const ADD_ALERT = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
  redis.call('HDEL', KEYS[1], unpack(old))
end
return 1`;

/** Returns true when the alert was added, false when it was already there. */
export async function addAlert(redis: Redis, userId: string, alert: Alert): Promise<boolean> {
	const k = key(userId);
	const added = await redis.eval(ADD_ALERT, 2, k.alerts, k.order, alert.id, JSON.stringify(alert), Date.parse(alert.createdAt), INBOX_LIMIT);
	return added === 1;
}

/** Newest first. */
export async function listAlerts(redis: Redis, userId: string, limit = 50): Promise<Alert[]> {
	const k = key(userId);
	const ids = await redis.zrevrange(k.order, 0, limit - 1);
	if (ids.length === 0) return [];
	const raw = await redis.hmget(k.alerts, ...ids);
	return raw.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as Alert);
}
