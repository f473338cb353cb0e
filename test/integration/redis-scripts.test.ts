/**
 * lib/redis.ts runScript on the real Redis: scripts go by SHA, their text only when Redis does not
 * know them yet, and a script first run while an auto-pipeline is queued answers every caller
 * (ioredis' own `defineCommand` crashed the notification node there: ioredis #1931).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { closeRedis, createRedis, runScript } from "../../lib/redis.ts";
import type { LuaScript } from "../../lib/redis.ts";
import { infra, uniqueId } from "../support/infra.ts";

describe("Lua scripts by SHA", () => {
	let redis: Redis;
	const prefix = uniqueId("lua");
	// A text Redis has never seen, so the first run is answered NOSCRIPT.
	const echo: LuaScript = { numberOfKeys: 1, lua: `-- ${prefix}\nreturn {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}` };

	beforeAll(async () => {
		redis = createRedis(infra.redisUrl, "redis-scripts-test", { enableAutoPipelining: true });
		await redis.connect();
	});
	afterAll(async () => {
		const keys = await redis.keys(`${prefix}*`);
		if (keys.length) await redis.del(...keys);
		await closeRedis(redis);
	});

	it("sends the script's text only while Redis does not know it, and answers each caller its own result", async () => {
		const monitor = await redis.duplicate({ enableAutoPipelining: false }).monitor();
		const commands: string[] = [];
		monitor.on("monitor", (_time: string, args: string[]) => {
			if (args.some((arg) => arg.startsWith(prefix))) commands.push(String(args[0]).toLowerCase());
		});
		const round = (n: number) =>
			Promise.all([
				// Queued first: the script's commands join an auto-pipeline that already exists.
				redis.set(`${prefix}:other`, "x"),
				...Array.from({ length: n }, (_, i) => runScript<[string, string, number]>(redis, echo, `${prefix}:${i}`, `arg-${i}`)),
			]);
		try {
			const first = await round(20);
			const second = await round(20);
			for (const [results, count] of [[first, 1], [second, 2]] as const) {
				expect(results.slice(1)).toEqual(Array.from({ length: 20 }, (_, i) => [`${prefix}:${i}`, `arg-${i}`, count]));
			}
			await redis.ping(); // MONITOR reports a command after it ran: one more round trip lets the last arrive
		} finally {
			monitor.disconnect();
		}
		const evals = commands.filter((c) => c === "eval").length;
		const evalshas = commands.filter((c) => c === "evalsha").length;
		// First round: each caller was answered NOSCRIPT and sent the text; second round: SHA only.
		expect(evalshas).toBe(40);
		expect(evals).toBe(20);
	});

	it("passes on errors other than NOSCRIPT", async () => {
		const failing: LuaScript = { numberOfKeys: 0, lua: `-- ${prefix}\nreturn redis.error_reply('BOOM ${prefix}')` };
		await expect(runScript(redis, failing)).rejects.toThrow(/BOOM/);
	});
});
