/**
 * Introspection asks "is this session still active?" on every call; this answers from memory for
 * a short time after PostgreSQL said yes. Revocations reach it at once on the node that made them
 * and by the `auth.session.revoked` broadcast on the others, so the TTL only bounds how long a
 * lost broadcast could keep a revoked session looking active. A revoked session leaves a
 * tombstone for the TTL, so an answer read from the database just before the revocation
 * committed cannot put it back. Only "active" is cached; bounded in entries.
 */
export class ActiveSessionCache {
	readonly #ttlMs: number;
	readonly #maxEntries: number;
	/** Session id -> until when (epoch ms) it may be answered from memory; negative: a tombstone until -value. */
	readonly #entries = new Map<string, number>();

	constructor(ttlMs: number, maxEntries = 50_000) {
		this.#ttlMs = ttlMs;
		this.#maxEntries = maxEntries;
	}

	/** true when known active; undefined when the database must be asked. */
	isActive(sessionId: string, now: Date): true | undefined {
		const until = this.#entries.get(sessionId);
		return until !== undefined && until > now.getTime() ? true : undefined;
	}

	/** PostgreSQL said active (until `expiresAt`): remember it for the TTL, unless it was just revoked. */
	remember(sessionId: string, expiresAt: Date, now: Date): void {
		if (this.#ttlMs <= 0) return;
		const existing = this.#entries.get(sessionId);
		if (existing !== undefined && existing < 0 && -existing > now.getTime()) return;
		if (this.#entries.size >= this.#maxEntries) this.#evictOldest();
		this.#entries.set(sessionId, Math.min(now.getTime() + this.#ttlMs, expiresAt.getTime()));
	}

	forget(sessionId: string, now: Date): void {
		this.#entries.delete(sessionId);
		if (this.#ttlMs > 0) this.#entries.set(sessionId, -(now.getTime() + this.#ttlMs));
	}

	get size(): number {
		return this.#entries.size;
	}

	// Maps iterate in insertion order: the first entries are the oldest.
	#evictOldest(): void {
		let drop = Math.ceil(this.#maxEntries / 10);
		for (const key of this.#entries.keys()) {
			if (drop-- <= 0) break;
			this.#entries.delete(key);
		}
	}
}
