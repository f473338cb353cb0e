/** ioredis client with bounded connect and command waits, reconnecting with capped back-off. */
import { Redis } from "ioredis";
import type { RedisOptions } from "ioredis";

export function createRedis(url: string, name: string, extra: RedisOptions = {}): Redis {
	return new Redis(url, {
		connectionName: name,
		connectTimeout: 3_000,
		commandTimeout: 5_000,
		maxRetriesPerRequest: 2,
		retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
		lazyConnect: true,
		...extra,
	});
}

/** Closes politely (QUIT) when Redis answers, and drops the connection when it does not. */
export async function closeRedis(redis: Redis, timeoutMs = 1_000): Promise<void> {
	if (redis.status !== "ready") {
		redis.disconnect();
		return;
	}
	let timer: NodeJS.Timeout | undefined;
	await Promise.race([redis.quit().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
	clearTimeout(timer);
	redis.disconnect();
}
