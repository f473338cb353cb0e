/**
 * A bounded in-memory map whose entries expire: a verified token until its `exp`, a session
 * remembered as active for a few seconds. Full, it drops its oldest entry (a Map iterates in
 * insertion order). Plain and synchronous; the caller passes the clock.
 */
import { hash } from "node:crypto";

export class ExpiringCache<V> {
	readonly #maxEntries: number;
	readonly #entries = new Map<string, { value: V; untilMs: number }>();

	constructor(maxEntries: number) {
		this.#maxEntries = maxEntries;
	}

	/** The value while it has not expired at `nowMs`; an expired entry is removed. */
	get(key: string, nowMs: number): V | undefined {
		const entry = this.#entries.get(key);
		if (!entry) return undefined;
		if (entry.untilMs <= nowMs) {
			this.#entries.delete(key);
			return undefined;
		}
		return entry.value;
	}

	set(key: string, value: V, untilMs: number): void {
		this.#entries.delete(key);
		if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
		this.#entries.set(key, { value, untilMs });
	}

	delete(key: string): void {
		this.#entries.delete(key);
	}

	get size(): number {
		return this.#entries.size;
	}
}

/** The key a token is cached under: its hash, so the cache holds no usable token. */
export const tokenCacheKey = (token: string) => hash("sha256", token, "base64url");
