/**
 * What every auth domain function receives instead of importing it: the pool, the clock, the
 * settings and the key ring. Tests pass a fake clock and small limits; the service passes config.
 */
import type pg from "pg";
import type { KeyRing } from "./keys.ts";
import type { LockoutPolicy } from "./lockout.ts";
import type { ActiveSessionCache } from "./session-cache.ts";
import type { ExpiringCache } from "../../lib/expiring-cache.ts";
import type { VerifiedClaims } from "./tokens.ts";

export interface Clock {
	now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export interface AuthSettings {
	bcryptCost: number;
	issuer: string;
	audience: string;
	accessTokenTtlS: number;
	/** Absolute session lifetime. */
	refreshTokenTtlS: number;
	/** Inactivity timeout: a refresh token expires this long after it was issued. */
	sessionIdleTimeoutS: number;
	/** Base of e-mailed links, without a trailing slash. */
	publicUrl: string;
	/** Lifetime of e-mail verification links. */
	emailVerificationTtlS: number;
	/** Lifetime of password reset links. */
	passwordResetTtlS: number;
	/** Minimum time between two e-mails of the same kind to one account. */
	emailResendIntervalS: number;
	/** Passkeys: the domain they are bound to, the name shown, the origins allowed (passkeys.ts). */
	webauthn: { rpId: string; rpName: string; origins: string[] };
}

export const DEFAULT_LINK_SETTINGS = { emailVerificationTtlS: 24 * 3600, passwordResetTtlS: 30 * 60, emailResendIntervalS: 60 } as const;

export interface AuthDeps {
	pool: pg.Pool;
	clock: Clock;
	settings: AuthSettings;
	keys: KeyRing;
	/** Key-encryption key: seals the secrets auth must read back (services/auth/sealed.ts). */
	kek: Buffer;
	lockout: LockoutPolicy;
	/** Introspection's memory of active sessions (none: every call asks PostgreSQL). */
	sessionCache?: ActiveSessionCache;
	/**
	 * Introspection's memory of tokens whose signature and claims it checked, by token hash until
	 * their `exp`: a token's claims never change (none: every call checks the signature).
	 */
	tokenCache?: ExpiringCache<VerifiedClaims>;
}

/** Who asked, for throttling and the audit log. */
export interface RequestInfo {
	clientIp?: string;
	requestId?: string;
}

/** Who acts on another user's account: an administrator, or an operator at the REPL (not a user; named in the audit details). */
export interface Actor {
	actorId: string | null;
	operator?: string;
}

/** A session that ended; the service broadcasts it so gateways refuse its access tokens. */
export interface RevokedSession {
	sessionId: string;
	userId: string;
	/** Until when access tokens of this session may still be presented (their latest expiry). */
	expiresAt: string;
}

/** What the service wires to the broker: sessions that ended are broadcast to the gateways. */
export interface AuthHooks {
	sessionsRevoked(sessions: RevokedSession[]): void;
}

export const addSeconds = (date: Date, seconds: number) => new Date(date.getTime() + seconds * 1000);
