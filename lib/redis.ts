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
