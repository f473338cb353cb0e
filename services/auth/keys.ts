/**
 * Token signing keys: Ed25519 (JWS "EdDSA"), one active at a time, rotated every
 * `rotationDays`. A retired key stops signing but stays published in the JWKS until every token
 * it signed has expired (the overlap window). Private keys are stored AES-256-GCM encrypted with
 * the key-encryption key (AUTH_KEY_ENCRYPTION_KEY), the key id bound as associated data; public
 * keys are stored as JWKs. Several nodes share the table: rotation happens under an advisory
 * lock, and a unique index allows a single active key.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { calculateJwkThumbprint } from "jose";
import type pg from "pg";
import { withTransaction } from "./db.ts";
import { open, seal } from "./sealed.ts";
import type { Clock } from "./deps.ts";

export const SIGNING_ALGORITHM = "EdDSA";
/** A node reads the key table again after this long, so it sees other nodes' rotations. */
export const KEY_CACHE_S = 60;
/** Tolerance for clocks of token verifiers running ahead or behind. */
export const CLOCK_SKEW_S = 60;
const UNKNOWN_KID_RELOAD_MS = 5_000;
const ROTATION_LOCK = 7_164_001; // pg advisory lock id of key rotation

/** Used only when AUTH_KEY_ENCRYPTION_KEY is unset outside production (the service warns loudly). */
export const DEV_KEY_ENCRYPTION_KEY = createHash("sha256").update("backplane development key-encryption key: never in production").digest();

export interface PublicJwk {
	kty: string;
	crv: string;
	x: string;
	kid: string;
	alg: string;
	use: "sig";
}

interface KeyRow {
	kid: string;
	public_jwk: Omit<PublicJwk, "kid" | "alg" | "use">;
	private_key_ciphertext: Buffer;
	private_key_iv: Buffer;
	private_key_tag: Buffer;
	kek_id: string;
	created_at: Date;
	retired_at: Date | null;
	published_until: Date | null;
}

interface LoadedKeys {
	loadedAt: number;
	/** The active key, when this node's key-encryption key can open it. */
	signing?: { kid: string; privateKey: KeyObject };
	/** Published keys: kid -> key and the end of its publication (null while active). */
	published: Map<string, { jwk: PublicJwk; key: KeyObject; until: Date | null }>;
}

export interface KeyRingOptions {
	rotationDays: number;
	accessTokenTtlS: number;
}

export class KeyRing {
	readonly #pool: pg.Pool;
	readonly #kek: Buffer;
	readonly #kekId: string;
	readonly #clock: Clock;
	readonly #opts: KeyRingOptions;
	#cache?: LoadedKeys;

	constructor(pool: pg.Pool, keyEncryptionKey: Buffer, clock: Clock, opts: KeyRingOptions) {
		if (keyEncryptionKey.length !== 32) throw new Error("the key-encryption key must be 32 bytes");
		this.#pool = pool;
		this.#kek = keyEncryptionKey;
		this.#kekId = `kek-${createHash("sha256").update(keyEncryptionKey).digest("hex").slice(0, 16)}`;
		this.#clock = clock;
		this.#opts = opts;
	}

	/** How long a retired key stays published: a token signed just before retirement, by a node that had not yet seen it, must still verify. */
	get overlapS(): number {
		return this.#opts.accessTokenTtlS + KEY_CACHE_S + CLOCK_SKEW_S;
	}

	/**
	 * Creates the first key, or rotates when the active one is older than the rotation period or
	 * sealed with another key-encryption key. Returns the new key id, if any. Safe on many nodes.
	 */
	async ensureCurrent(force = false): Promise<string | undefined> {
		const now = this.#clock.now();
		const kid = await withTransaction(this.#pool, async (tx) => {
			await tx.query("SELECT pg_advisory_xact_lock($1)", [ROTATION_LOCK]);
			const { rows } = await tx.query<Pick<KeyRow, "kid" | "kek_id" | "created_at">>("SELECT kid, kek_id, created_at FROM signing_keys WHERE retired_at IS NULL");
			const active = rows[0];
			const due = !active || force || active.kek_id !== this.#kekId || now.getTime() - active.created_at.getTime() >= this.#opts.rotationDays * 86_400_000;
			if (!due) return undefined;
			if (active) {
				await tx.query("UPDATE signing_keys SET retired_at = $2, published_until = $3 WHERE kid = $1", [active.kid, now, new Date(now.getTime() + this.overlapS * 1000)]);
			}
			return this.#insertKey(tx, now);
		});
		if (kid) this.#cache = undefined;
		return kid;
	}

	/** Rotates now, whatever the age of the active key. */
	rotate(): Promise<string | undefined> {
		return this.ensureCurrent(true);
	}

	/** The key to sign with; creates or replaces the active key when this node cannot use it. */
	async signingKey(): Promise<{ kid: string; privateKey: KeyObject }> {
		let keys = await this.#load();
		if (!keys.signing) {
			await this.ensureCurrent();
			keys = await this.#load(true);
		}
		if (!keys.signing) throw new Error("no usable signing key: another node keeps sealing keys with a different AUTH_KEY_ENCRYPTION_KEY");
		return keys.signing;
	}

	/** The public key for `kid` if it is still published; re-reads the table for an unknown kid (rotation elsewhere). */
	async publicKey(kid: string): Promise<KeyObject | undefined> {
		let keys = await this.#load();
		if (!keys.published.has(kid) && this.#clock.now().getTime() - keys.loadedAt >= UNKNOWN_KID_RELOAD_MS) keys = await this.#load(true);
		const entry = keys.published.get(kid);
		return entry && this.#isPublished(entry.until) ? entry.key : undefined;
	}

	/** The JWKS: the active key and retired keys still inside their overlap window. */
	async jwks(): Promise<{ keys: PublicJwk[] }> {
		const keys = await this.#load();
		return { keys: [...keys.published.values()].filter((k) => this.#isPublished(k.until)).map((k) => k.jwk) };
	}

	#isPublished(until: Date | null): boolean {
		return until === null || until.getTime() > this.#clock.now().getTime();
	}

	async #load(force = false): Promise<LoadedKeys> {
		const now = this.#clock.now();
		if (!force && this.#cache && now.getTime() - this.#cache.loadedAt < KEY_CACHE_S * 1000) return this.#cache;
		const { rows } = await this.#pool.query<KeyRow>(
			`SELECT kid, public_jwk, private_key_ciphertext, private_key_iv, private_key_tag, kek_id, created_at, retired_at, published_until
			 FROM signing_keys WHERE retired_at IS NULL OR published_until > $1 ORDER BY created_at DESC`,
			[now],
		);
		const loaded: LoadedKeys = { loadedAt: now.getTime(), published: new Map() };
		for (const row of rows) {
			const jwk: PublicJwk = { ...row.public_jwk, kid: row.kid, alg: SIGNING_ALGORITHM, use: "sig" };
			loaded.published.set(row.kid, { jwk, key: createPublicKey({ key: row.public_jwk, format: "jwk" }), until: row.published_until });
			if (row.retired_at === null && row.kek_id === this.#kekId) {
				const der = open(this.#kek, row.kid, { ciphertext: row.private_key_ciphertext, iv: row.private_key_iv, tag: row.private_key_tag });
				loaded.signing = { kid: row.kid, privateKey: createPrivateKey({ key: der, format: "der", type: "pkcs8" }) };
			}
		}
		this.#cache = loaded;
		return loaded;
	}

	async #insertKey(tx: pg.PoolClient, now: Date): Promise<string> {
		const { publicKey, privateKey } = generateKeyPairSync("ed25519");
		const { kty, crv, x } = publicKey.export({ format: "jwk" }) as { kty: string; crv: string; x: string };
		const kid = await calculateJwkThumbprint({ kty, crv, x });
		const sealed = seal(this.#kek, kid, privateKey.export({ format: "der", type: "pkcs8" }));
		await tx.query(
			`INSERT INTO signing_keys (kid, algorithm, public_jwk, private_key_ciphertext, private_key_iv, private_key_tag, kek_id, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			[kid, SIGNING_ALGORITHM, JSON.stringify({ kty, crv, x }), sealed.ciphertext, sealed.iv, sealed.tag, this.#kekId, now],
		);
		return kid;
	}
}
