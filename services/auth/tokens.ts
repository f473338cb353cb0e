/**
 * Access tokens: JWTs (RFC 9068 profile, `typ: at+jwt`) signed with the key ring's active
 * Ed25519 key, `kid` in the header. Claims: iss, aud, sub (user id), sid (session id), jti,
 * iat, nbf, exp, roles, permissions, amr (how the session was authenticated, RFC 8176). Verifiers (the gateway, `introspect`) accept only EdDSA,
 * only our issuer and audience, only this token type, within its validity period.
 */
import { randomUUID } from "node:crypto";
import { SignJWT, decodeProtectedHeader, errors, jwtVerify } from "jose";
import { grantClaims } from "../../lib/caller.ts";
import type { AuthSettings } from "./deps.ts";
import { SIGNING_ALGORITHM } from "./keys.ts";
import type { KeyRing } from "./keys.ts";

export const ACCESS_TOKEN_TYPE = "at+jwt";
/** Clock difference tolerated between the node that signed and the one that verifies. */
const VERIFY_TOLERANCE_S = 5;

type TokenSettings = Pick<AuthSettings, "issuer" | "audience" | "accessTokenTtlS">;

export interface AccessClaims {
	sub: string;
	sid: string;
	roles: string[];
	permissions: string[];
	/** RFC 8176 method references: ["pwd"], or ["pwd", "otp", "mfa"] after a second factor. */
	amr: string[];
}

export interface IssuedAccessToken {
	token: string;
	jti: string;
	expiresAt: Date;
	expiresIn: number;
}

export async function issueAccessToken(keys: KeyRing, settings: TokenSettings, claims: AccessClaims, now: Date): Promise<IssuedAccessToken> {
	const { kid, privateKey } = await keys.signingKey();
	const iat = Math.floor(now.getTime() / 1000);
	const exp = iat + settings.accessTokenTtlS;
	const jti = randomUUID();
	const token = await new SignJWT({ sid: claims.sid, roles: claims.roles, permissions: claims.permissions, amr: claims.amr })
		.setProtectedHeader({ alg: SIGNING_ALGORITHM, kid, typ: ACCESS_TOKEN_TYPE })
		.setIssuer(settings.issuer)
		.setAudience(settings.audience)
		.setSubject(claims.sub)
		.setJti(jti)
		.setIssuedAt(iat)
		.setNotBefore(iat)
		.setExpirationTime(exp)
		.sign(privateKey);
	return { token, jti, expiresAt: new Date(exp * 1000), expiresIn: settings.accessTokenTtlS };
}

export interface VerifiedClaims extends AccessClaims {
	jti: string;
	iss: string;
	aud: string;
	iat: number;
	nbf: number;
	exp: number;
}

export type TokenCheck = { valid: true; claims: VerifiedClaims } | { valid: false; reason: string };

/** Checks signature (published keys only), algorithm, type, issuer, audience and validity period. */
export async function verifyAccessToken(keys: KeyRing, settings: TokenSettings, token: string, now: Date): Promise<TokenCheck> {
	let kid: string | undefined;
	try {
		kid = decodeProtectedHeader(token).kid;
	} catch {
		return { valid: false, reason: "malformed" };
	}
	const key = kid ? await keys.publicKey(kid) : undefined;
	if (!key) return { valid: false, reason: "unknown_key" };
	try {
		const { payload } = await jwtVerify(token, key, {
			algorithms: [SIGNING_ALGORITHM],
			issuer: settings.issuer,
			audience: settings.audience,
			typ: ACCESS_TOKEN_TYPE,
			currentDate: now,
			clockTolerance: VERIFY_TOLERANCE_S,
			requiredClaims: ["sub", "sid", "jti", "iat", "nbf", "exp"],
		});
		const grants = grantClaims(payload);
		if (typeof payload.sid !== "string" || !grants) return { valid: false, reason: "claims" };
		return {
			valid: true,
			claims: { sub: payload.sub!, sid: payload.sid, jti: payload.jti!, iss: payload.iss!, aud: settings.audience, iat: payload.iat!, nbf: payload.nbf!, exp: payload.exp!, ...grants },
		};
	} catch (err) {
		if (err instanceof errors.JWTExpired) return { valid: false, reason: "expired" };
		if (err instanceof errors.JWTClaimValidationFailed) return { valid: false, reason: `claim_${err.claim}` };
		if (err instanceof errors.JOSEError) return { valid: false, reason: "signature" };
		throw err;
	}
}
