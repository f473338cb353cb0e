/**
 * Opaque secrets handed to users (refresh tokens, e-mailed one-time links): 256 random bits,
 * stored only as their SHA-256 digest. A fast hash suffices at that entropy (ASVS 6.5.2).
 */
import { createHash, randomBytes } from "node:crypto";
import { isIP } from "node:net";

export interface OpaqueToken {
	/** What the user gets (base64url, 43 characters). */
	token: string;
	/** What the database keeps. */
	hash: Buffer;
}

export function newOpaqueToken(): OpaqueToken {
	const token = randomBytes(32).toString("base64url");
	return { token, hash: hashToken(token) };
}

export const hashToken = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest();

/** The client IP as PostgreSQL `inet` accepts it, or null when absent or not an address. */
export function clientIpOrNull(ip: string | undefined): string | null {
	if (!ip) return null;
	const bare = ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
	return isIP(bare) ? bare : null;
}
