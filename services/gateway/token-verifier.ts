/**
 * Verifies access tokens locally with auth's public keys (JWKS), as Kong's and Envoy's JWT
 * filters do: no call to auth on the hot path. Keys are fetched on demand and again when a token
 * names an unknown key id (rotation), at most once per `minRefreshIntervalMs`. A verified token is
 * cached until it expires (bounded, keyed by a hash of the token); sessions that auth revoked
 * are refused through a deny list fed by auth's `auth.session.revoked` broadcasts.
 */
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify } from "jose";
import type { JSONWebKeySet, JWTPayload } from "jose";
import { grantClaims } from "../../lib/caller.ts";
import type { Caller } from "../../lib/caller.ts";
import { AppError } from "../../lib/errors.ts";
import { ExpiringCache, tokenCacheKey } from "../../lib/expiring-cache.ts";

export interface VerifierOptions {
	issuer: string;
	audience: string;
	fetchJwks: () => Promise<JSONWebKeySet>;
	clockToleranceS?: number;
	minRefreshIntervalMs?: number;
	cacheSize?: number;
	now?: () => number;
}

export interface VerifiedToken extends Caller {
	/** Expiry, epoch seconds. */
	exp: number;
}

const ALGORITHMS = ["EdDSA", "Ed25519", "ES256"];

export const invalidToken = (detail = "The access token is not valid.") => new AppError(401, "INVALID_TOKEN", detail);

export class TokenVerifier {
	private keys?: ReturnType<typeof createLocalJWKSet>;
	private lastRefresh = 0;
	private refreshing?: Promise<void>;
	private readonly cache: ExpiringCache<VerifiedToken>;
	/** sessionId -> epoch seconds until which it is refused. */
	private readonly revoked = new Map<string, number>();
	private readonly opts: Required<VerifierOptions>;

	constructor(opts: VerifierOptions) {
		this.opts = { clockToleranceS: 30, minRefreshIntervalMs: 5_000, cacheSize: 10_000, now: Date.now, ...opts };
		this.cache = new ExpiringCache(this.opts.cacheSize);
	}

	async verify(token: string): Promise<VerifiedToken> {
		const nowS = this.opts.now() / 1000;
		const key = tokenCacheKey(token);
		const verified = this.cache.get(key, nowS * 1000) ?? (await this.verifySignature(token, key));
		const revokedUntil = this.revoked.get(verified.sessionId);
		if (revokedUntil !== undefined && revokedUntil > nowS) throw invalidToken("The session of this token has ended.");
		return verified;
	}

	/** Refuses every token of a session until `untilS` (its tokens' latest expiry). */
	revokeSession(sessionId: string, untilS: number): void {
		this.revoked.set(sessionId, untilS);
		const nowS = this.opts.now() / 1000;
		for (const [id, until] of this.revoked) if (until <= nowS) this.revoked.delete(id);
	}

	private async verifySignature(token: string, cacheKey: string): Promise<VerifiedToken> {
		// Garbage and foreign algorithms are refused before they can cause a key fetch.
		let header: ReturnType<typeof decodeProtectedHeader>;
		try {
			header = decodeProtectedHeader(token);
		} catch {
			throw invalidToken();
		}
		if (!header.alg || !ALGORITHMS.includes(header.alg) || typeof header.kid !== "string") throw invalidToken();
		const payload = await this.verifyWithKeys(token, true);
		const verified = toVerified(payload);
		this.cache.set(cacheKey, verified, (verified.exp + this.opts.clockToleranceS) * 1000);
		return verified;
	}

	private async verifyWithKeys(token: string, mayRefresh: boolean): Promise<JWTPayload> {
		if (!this.keys) await this.refreshKeys(true);
		try {
			const { payload } = await jwtVerify(token, this.keys!, {
				issuer: this.opts.issuer,
				audience: this.opts.audience,
				algorithms: ALGORITHMS,
				clockTolerance: this.opts.clockToleranceS,
				currentDate: new Date(this.opts.now()),
				requiredClaims: ["sub", "sid", "exp", "iat"],
				// RFC 9068 access tokens only: an ID token or other JWT from the same issuer is refused.
				typ: "at+jwt",
			});
			return payload;
		} catch (err) {
			if (err instanceof errors.JWKSNoMatchingKey && mayRefresh && (await this.refreshKeys(false))) {
				return this.verifyWithKeys(token, false);
			}
			if (err instanceof errors.JWTExpired) throw new AppError(401, "TOKEN_EXPIRED", "The access token has expired.");
			if (err instanceof errors.JOSEError) throw invalidToken();
			throw err;
		}
	}

	/** Returns whether new keys were fetched (false when refreshed too recently). */
	private async refreshKeys(force: boolean): Promise<boolean> {
		if (!force && this.opts.now() - this.lastRefresh < this.opts.minRefreshIntervalMs) return false;
		this.refreshing ??= (async () => {
			try {
				this.keys = createLocalJWKSet(await this.opts.fetchJwks());
				this.lastRefresh = this.opts.now();
			} finally {
				this.refreshing = undefined;
			}
		})();
		await this.refreshing;
		return true;
	}
}

function toVerified(p: JWTPayload): VerifiedToken {
	const grants = grantClaims(p);
	if (typeof p.sub !== "string" || typeof p.sid !== "string" || !grants || typeof p.exp !== "number") {
		throw invalidToken("The access token lacks required claims.");
	}
	return { userId: p.sub, sessionId: p.sid, ...grants, exp: p.exp };
}
