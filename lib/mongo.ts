/** MongoDB client (real MongoDB or any MongoDB-wire server such as FerretDB) with bounded waits. */
import { MongoClient } from "mongodb";
import { withTimeout } from "./timeout.ts";

export function createMongoClient(url: string, appName: string): MongoClient {
	return new MongoClient(url, {
		appName,
		serverSelectionTimeoutMS: 3_000,
		connectTimeoutMS: 3_000,
		socketTimeoutMS: 15_000,
		maxPoolSize: 20,
		retryWrites: false, // FerretDB v1 has no retryable writes; writes are made idempotent instead.
	});
}

export interface MongoWatchdogOptions {
	/** Pause between pings. */
	everyMs: number;
	/** Pings in a row that must fail (while a fresh client gets through) before the reset. */
	failures: number;
	/** How long a ping may take. */
	timeoutMs: number;
	onPingFailed(err: unknown, inARow: number): void;
	onReset(): void;
}

/**
 * Pings through `client`; after `failures` pings in a row failed while a fresh client reaches
 * the same server, the fault is in this client's connection pool, not in the server, so the
 * client is closed and opened again (its Db and Collection objects stay valid). Seen in the chaos
 * suite: after a FerretDB restart a billing node's pool handed out one closed connection for
 * minutes ("connection 2 to 127.0.0.1:57017 closed") while the other node had recovered at once.
 * Operations running during the reset fail as an outage and are retried by their callers.
 */
export function watchMongoClient(client: MongoClient, url: string, opts: MongoWatchdogOptions): { stop(): void } {
	let stopped = false;
	let failed = 0;
	let timer: NodeJS.Timeout | undefined;
	const within = <T>(p: Promise<T>) => withTimeout(p, opts.timeoutMs, `no answer within ${opts.timeoutMs} ms`);
	const freshClientGetsThrough = async () => {
		const probe = new MongoClient(url, { serverSelectionTimeoutMS: opts.timeoutMs, connectTimeoutMS: opts.timeoutMs, maxPoolSize: 1, retryWrites: false });
		try {
			await within(probe.db().command({ ping: 1 }));
			return true;
		} catch {
			return false; // the server itself is down: a new pool would not help
		} finally {
			await probe.close().catch(() => undefined);
		}
	};
	const tick = async () => {
		try {
			await within(client.db().command({ ping: 1 }));
			failed = 0;
		} catch (err) {
			opts.onPingFailed(err, ++failed);
			if (failed >= opts.failures && !stopped && (await freshClientGetsThrough())) {
				failed = 0;
				opts.onReset();
				await client.close().catch(() => undefined);
				await client.connect().catch(() => undefined); // a failure here is the next tick's
			}
		}
		if (!stopped) timer = setTimeout(() => void tick(), opts.everyMs);
	};
	timer = setTimeout(() => void tick(), opts.everyMs);
	return {
		stop() {
			stopped = true;
			clearTimeout(timer);
		},
	};
}
