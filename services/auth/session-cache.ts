/**
 * Introspection asks "is this session still active?" on every call; this answers from memory for
 * a short time after PostgreSQL said yes. Revocations reach it at once on the node that made them
 * and by the `auth.session.revoked` broadcast on the others, so the TTL only bounds how long a
 * lost broadcast could keep a revoked session looking active. A revoked session leaves a
 * tombstone for the TTL, so an answer read from the database just before the revocation
 * committed cannot put it back. Only "active" is cached; bounded in entries.
 */
import { ExpiringCache } from "../../lib/expiring-cache.ts";

export class ActiveSessionCache {
	readonly #ttlMs: number;
	/** Session id -> true (active) or false (a tombstone), each until its expiry. */
	readonly #entries: ExpiringCache<boolean>;

	constructor(ttlMs: number, maxEntries = 50_000) {
		this.#ttlMs = ttlMs;
		this.#entries = new ExpiringCache(maxEntries);
	}

	/** true when known active; undefined when the database must be asked. */
	isActive(sessionId: string, now: Date): true | undefined {
		return this.#entries.get(sessionId, now.getTime()) === true ? true : undefined;
	}

	/** PostgreSQL said active (until `expiresAt`): remember it for the TTL, unless it was just revoked. */
	remember(sessionId: string, expiresAt: Date, now: Date): void {
		if (this.#ttlMs <= 0 || this.#entries.get(sessionId, now.getTime()) === false) return;
		this.#entries.set(sessionId, true, Math.min(now.getTime() + this.#ttlMs, expiresAt.getTime()));
	}

	forget(sessionId: string, now: Date): void {
		this.#entries.delete(sessionId);
		if (this.#ttlMs > 0) this.#entries.set(sessionId, false, now.getTime() + this.#ttlMs);
	}

	get size(): number {
		return this.#entries.size;
	}
}
