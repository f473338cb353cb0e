/**
 * auth: accounts, passwords, tokens signed by key, roles and permissions on PostgreSQL. Served to
 * the gateway over the gRPC bridge (protos/auth/v1/auth.proto) and as Moleculer actions; the
 * logic lives in services/auth/*. Publishes through its outbox; broadcasts `auth.session.revoked`.
 */
import path from "node:path";
import type { Context, Service, ServiceSchema } from "moleculer";
import type pg from "pg";
import { assertPermitted, callerFrom, secondFactorMissing } from "../lib/caller.ts";
import type { Caller } from "../lib/caller.ts";
import type { Config } from "../lib/config.ts";
import { AppError, badRequest, forbidden, unauthorized } from "../lib/errors.ts";
import { pgOutboxStore } from "../lib/events/pg-outbox.ts";
import { migrateUp } from "../lib/migrations.ts";
import { createPgPool } from "../lib/postgres.ts";
import { outboxMixin } from "../mixins/events.mixin.ts";
import type { OutboxMethods } from "../mixins/events.mixin.ts";
import { grpcServerMixin } from "../mixins/grpc.mixin.ts";
import { healthMixin } from "../mixins/health.mixin.ts";
import { getProfile, registerUser, resendVerification, updateProfile, verifyEmail } from "./auth/accounts.ts";
import { listRoles, listUsers } from "./auth/directory.ts";
import { DEFAULT_LINK_SETTINGS, systemClock } from "./auth/deps.ts";
import type { Actor, AuthDeps, AuthHooks, Clock, RequestInfo, RevokedSession } from "./auth/deps.ts";
import { startMaintenance } from "./auth/housekeeping.ts";
import { DEV_KEY_ENCRYPTION_KEY, KeyRing } from "./auth/keys.ts";
import { DEFAULT_LOCKOUT } from "./auth/lockout.ts";
import type { LockoutPolicy } from "./auth/lockout.ts";
import { completeMfaLogin, endUserSessions, introspect, login, logout, refresh } from "./auth/login.ts";
import { hasSecondFactor } from "./auth/mfa.ts";
import { confirmTotpEnrolment, disableTotp, regenerateRecoveryCodes, resetSecondFactor, startTotpEnrolment } from "./auth/mfa-enrolment.ts";
import { finishPasskeyLogin, finishPasskeyRegistration, listPasskeys, removePasskey, startPasskeyLogin, startPasskeyRegistration } from "./auth/passkeys.ts";
import type { AuthenticationCredential, RegistrationCredential } from "./auth/passkeys.ts";
import { dummyHash, limitHashing } from "./auth/passwords.ts";
import { bootstrapAdmin, setUserRoles } from "./auth/rbac.ts";
import { findUser, listOutbox, replayEvent } from "./auth/operations.ts";
import { changePassword, deleteAccount, forgotPassword, requestEmailChange, resetPassword } from "./auth/recovery.ts";
import { ActiveSessionCache } from "./auth/session-cache.ts";
import { ExpiringCache } from "../lib/expiring-cache.ts";
import { listSessions, sessionIsActive } from "./auth/sessions.ts";

/** Verified tokens introspection remembers (by hash, until their exp). */
const TOKEN_CACHE_ENTRIES = 10_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MIGRATIONS_DIR = path.join(import.meta.dirname, "auth", "migrations");

interface AuthMeta {
	caller?: unknown;
	clientIp?: string;
	$statusCode?: number;
}
type Ctx<P = Record<string, never>> = Context<P, AuthMeta>;

interface AuthMethods extends OutboxMethods {
	request(ctx: Ctx<unknown>): RequestInfo;
	caller(ctx: Ctx<unknown>): Caller;
	actor(ctx: Ctx<unknown>): Actor;
	sessionHooks(): AuthHooks;
	reply<T>(ctx: Ctx<unknown>, status: number | undefined, result: T): T;
}

/** Tests inject a clock and a small lockout policy; production uses the defaults. */
export interface AuthServiceOptions {
	clock?: Clock;
	lockout?: LockoutPolicy;
}

const email = { type: "email", max: 254, normalize: true };
const newPassword = { type: "string", min: 8, max: 512 };
const secret = { type: "string", min: 1, max: 512 };
const displayName = { type: "string", max: 200, trim: true };
/** A base64url value of a WebAuthn answer (binary data as the browser's JSON carries it). */
const b64url = (max: number, optional = false) => ({ type: "string", min: optional ? 0 : 1, max, pattern: /^[A-Za-z0-9_-]*$/, optional });
const credentialHead = { id: b64url(1_400), rawId: b64url(1_400), type: { type: "equal", value: "public-key" } };
const registrationCredential = {
	type: "object", strict: "remove",
	props: { ...credentialHead, response: { type: "object", strict: "remove", props: { clientDataJSON: b64url(4_096), attestationObject: b64url(16_384), transports: { type: "array", max: 10, items: { type: "string", pattern: /^[a-z-]{1,20}$/ }, optional: true } } } },
};
const authenticationCredential = {
	type: "object", strict: "remove",
	props: { ...credentialHead, response: { type: "object", strict: "remove", props: { clientDataJSON: b64url(4_096), authenticatorData: b64url(4_096), signature: b64url(1_024), userHandle: b64url(256, true) } } },
};

/** Over gRPC an absent userHandle arrives empty; WebAuthn's JSON leaves it out. */
function withoutEmptyHandle(credential: AuthenticationCredential): AuthenticationCredential {
	const { userHandle, ...response } = credential.response;
	return { ...credential, response: userHandle ? { ...response, userHandle } : response };
}

/** The code from the app or a recovery code, exactly one (over gRPC an absent string arrives empty). */
function oneSecondFactor(params: { code?: string; recoveryCode?: string }): { code?: string; recoveryCode?: string } {
	const code = params.code || undefined;
	const recoveryCode = params.recoveryCode || undefined;
	if (!code === !recoveryCode) throw badRequest("Send either the code from your app or a recovery code.", [{ field: code ? "recoveryCode" : "code", message: "send exactly one of code and recoveryCode", type: "oneOf" }]);
	return { code, recoveryCode };
}

export default function authService(config: Config, opts: AuthServiceOptions = {}): ServiceSchema<Record<string, never>, AuthMethods> {
	const clock = opts.clock ?? systemClock;
	// USERS_REQUIRE_MFA, held here too (permissions and ADMIN_REQUIRES_MFA are the middleware's).
	const usersMfaPolicy = { admins: false, everyone: config.gateway.usersRequireMfa };
	let pool: pg.Pool;
	let deps: AuthDeps;
	let stopMaintenance: (() => void) | undefined;

	return {
		name: "auth",
		mixins: [
			healthMixin(),
			outboxMixin({ rabbitmqUrl: config.rabbitmqUrl, store: () => pgOutboxStore(pool) }),
			grpcServerMixin({
				proto: "auth/v1/auth.proto",
				service: "auth.v1.AuthService",
				methods: {
					Ping: "ping", Register: "register", Login: "login", Refresh: "refresh", Logout: "logout", VerifyEmail: "verifyEmail",
					ResendVerification: "resendVerification", ForgotPassword: "forgotPassword", ResetPassword: "resetPassword",
					ChangePassword: "changePassword", Me: "me", UpdateProfile: "updateProfile", RequestEmailChange: "requestEmailChange", CompleteMfaLogin: "completeMfaLogin",
					StartTotp: "startTotp", ConfirmTotp: "confirmTotp", DisableTotp: "disableTotp", RegenerateRecoveryCodes: "regenerateRecoveryCodes",
					StartPasskeyRegistration: "startPasskeyRegistration", AddPasskey: "addPasskey", ListPasskeys: "listPasskeys", RemovePasskey: "removePasskey", StartPasskeyLogin: "startPasskeyLogin", CompletePasskeyLogin: "completePasskeyLogin", DeleteAccount: "deleteAccount", SetUserRoles: "setUserRoles", ListUsers: "listUsers", ListRoles: "listRoles",
					RevokeUserSessions: "revokeUserSessions", ResetUserMfa: "resetUserMfa", ListSessions: "sessions", RevokeSession: "revokeSession", Introspect: "introspect", GetJwks: "jwks",
				},
				host: config.grpc.host,
				port: config.grpc.port,
				advertiseHost: config.grpc.advertiseHost,
			}),
			// Moleculer starts mixins last to first: this one runs before the outbox relay and the
			// gRPC server, so neither serves before the schema is migrated and a signing key exists.
			{
				async started(this: Service) {
					const applied = await migrateUp(config.databaseUrl!, MIGRATIONS_DIR, this.logger);
					this.logger.info(applied.length ? `applied migrations: ${applied.join(", ")}` : "database schema is up to date");
					if (!config.auth.keyEncryptionKey) {
						this.logger.warn("AUTH_KEY_ENCRYPTION_KEY is not set: signing keys are sealed with the PUBLIC development key. Never run like this in production (openssl rand -base64 32).");
					}
					const kid = await deps.keys.ensureCurrent();
					if (kid) this.logger.info(`new token signing key ${kid}`);
				},
			},
		],

		// Actions marked auth "required" need ctx.meta.caller (set by the gateway), and an edge
		// session's (one with `amr`) must still be live: gateways learn of an ended session by a
		// broadcast, which a request right after the logout or the account deletion can overtake.
		// With USERS_REQUIRE_MFA, only `enrolment` actions serve a session without a second factor.
		// Permissions are checked on every node by middlewares/permissions.ts.
		hooks: {
			before: {
				async "*"(this: { caller(ctx: Ctx<unknown>): Caller }, ctx: Ctx<unknown>) {
					if (ctx.action?.auth !== "required") return;
					const caller = this.caller(ctx);
					if (caller.amr && !(await sessionIsActive(deps.pool, caller.sessionId, clock.now(), deps.sessionCache))) {
						throw new AppError(401, "INVALID_TOKEN", "The session of this token has ended.");
					}
					assertPermitted(caller, { auth: "required", enrolment: ctx.action.enrolment }, usersMfaPolicy);
					// Setting a factor up is for an account that has none: with one (a passkey), sign in with it.
					if (ctx.action.enrolment === true && secondFactorMissing(caller, usersMfaPolicy) && (await hasSecondFactor(deps.pool, caller.userId))) {
						throw forbidden("This account has a passkey: sign in with it to continue.", "SECOND_FACTOR_REQUIRED");
					}
				},
			},
		},

		actions: {
			ping: {
				params: { message: { type: "string", max: 200, optional: true } },
				handler(ctx: Ctx<{ message?: string }>) { return { message: ctx.params.message || "pong", nodeId: this.broker.nodeID, serverTimeMs: Date.now() }; },
			},
			register: {
				rest: "POST /register", auth: "none", rateLimit: "auth-strict", openapi: { summary: "Create an account; e-mails a verification link" },
				params: { $$strict: "remove", email, password: newPassword, name: { ...displayName, optional: true } },
				async handler(ctx: Ctx<{ email: string; password: string; name?: string }>) { return this.reply(ctx, 201, { user: await registerUser(deps, ctx.params, this.request(ctx)) }); },
			},
			login: {
				rest: "POST /login", auth: "none", rateLimit: "auth-strict", openapi: { summary: "Exchange e-mail and password for an access and a refresh token" },
				params: { $$strict: "remove", email, password: secret },
				handler(ctx: Ctx<{ email: string; password: string }>) { return login(deps, ctx.params, this.request(ctx)); },
			},
			completeMfaLogin: {
				rest: "POST /login/mfa", auth: "none", rateLimit: "auth-strict", openapi: { summary: "The second step of a login that answered 403 MFA_REQUIRED: its mfaToken and a code (or a recovery code)" },
				params: { $$strict: "remove", mfaToken: secret, code: { type: "string", max: 20, optional: true }, recoveryCode: { type: "string", max: 40, optional: true } },
				handler(ctx: Ctx<{ mfaToken: string; code?: string; recoveryCode?: string }>) {
					return completeMfaLogin(deps, { mfaToken: ctx.params.mfaToken, ...oneSecondFactor(ctx.params) }, this.request(ctx));
				},
			},
			startTotp: {
				rest: "POST /mfa/totp", auth: "required", enrolment: true, rateLimit: "auth-strict", openapi: { summary: "Begin turning on two-step login (needs the password): a TOTP secret for the authenticator app" },
				params: { $$strict: "remove", password: secret },
				handler(ctx: Ctx<{ password: string }>) { return startTotpEnrolment(deps, this.caller(ctx), ctx.params, this.request(ctx)); },
			},
			confirmTotp: {
				rest: "POST /mfa/totp/confirm", auth: "required", enrolment: true, rateLimit: "auth-strict", openapi: { summary: "Turn two-step login on with a first code from the app; answers ten one-time recovery codes" },
				params: { $$strict: "remove", code: { type: "string", min: 1, max: 20 } },
				handler(ctx: Ctx<{ code: string }>) { return confirmTotpEnrolment(deps, this.sessionHooks(), this.caller(ctx), ctx.params, this.request(ctx)); },
			},
			disableTotp: {
				rest: "POST /mfa/totp/disable", auth: "required", rateLimit: "auth-strict", openapi: { summary: "Turn two-step login off (needs the password and a code, or a recovery code)" },
				params: { $$strict: "remove", password: secret, code: { type: "string", max: 20, optional: true }, recoveryCode: { type: "string", max: 40, optional: true } },
				async handler(ctx: Ctx<{ password: string; code?: string; recoveryCode?: string }>) {
					await disableTotp(deps, this.caller(ctx), { password: ctx.params.password, ...oneSecondFactor(ctx.params) }, this.request(ctx));
					return this.reply(ctx, 204, {});
				},
			},
			regenerateRecoveryCodes: {
				rest: "POST /mfa/recovery-codes", auth: "required", rateLimit: "auth-strict", openapi: { summary: "Ten new recovery codes (needs the password and a code, or a recovery code); the old ones stop working" },
				params: { $$strict: "remove", password: secret, code: { type: "string", max: 20, optional: true }, recoveryCode: { type: "string", max: 40, optional: true } },
				handler(ctx: Ctx<{ password: string; code?: string; recoveryCode?: string }>) {
					return regenerateRecoveryCodes(deps, this.caller(ctx), { password: ctx.params.password, ...oneSecondFactor(ctx.params) }, this.request(ctx));
				},
			},
			startPasskeyRegistration: {
				rest: "POST /passkeys/registration", auth: "required", enrolment: true, rateLimit: "auth-strict", openapi: { summary: "Begin adding a passkey (needs the password, and a code or a recovery code when two-step login is on): the options for navigator.credentials.create() and the flowId to send back" },
				params: { $$strict: "remove", password: secret, code: { type: "string", max: 20, optional: true }, recoveryCode: { type: "string", max: 40, optional: true } },
				handler(ctx: Ctx<{ password: string; code?: string; recoveryCode?: string }>) {
					const { password, code, recoveryCode } = ctx.params;
					return startPasskeyRegistration(deps, this.caller(ctx), { password, code: code || undefined, recoveryCode: recoveryCode || undefined }, this.request(ctx));
				},
			},
			addPasskey: {
				rest: "POST /passkeys", auth: "required", enrolment: true, rateLimit: "auth-strict", openapi: { summary: "Add the passkey the browser made (its answer to the registration options); the user is told by e-mail" },
				params: { $$strict: "remove", flowId: secret, name: { type: "string", max: 100, trim: true, pattern: /^[^\p{Cc}]*$/u, optional: true }, credential: registrationCredential },
				async handler(ctx: Ctx<{ flowId: string; name?: string; credential: RegistrationCredential }>) {
					return this.reply(ctx, 201, await finishPasskeyRegistration(deps, this.caller(ctx), ctx.params, this.request(ctx)));
				},
			},
			listPasskeys: {
				rest: "GET /passkeys", auth: "required", enrolment: "always", openapi: { summary: "The caller's passkeys" },
				async handler(ctx: Ctx) { return { items: await listPasskeys(pool, this.caller(ctx).userId) }; },
			},
			removePasskey: {
				rest: "DELETE /passkeys/:passkeyId", auth: "required", enrolment: true, openapi: { summary: "Remove one of the caller's passkeys; the user is told by e-mail" },
				params: { $$strict: "remove", passkeyId: { type: "uuid" } },
				async handler(ctx: Ctx<{ passkeyId: string }>) {
					await removePasskey(deps, this.caller(ctx), ctx.params.passkeyId, this.request(ctx));
					return this.reply(ctx, 204, {});
				},
			},
			startPasskeyLogin: {
				rest: "POST /login/passkey/options", auth: "none", rateLimit: "auth-strict", openapi: { summary: "Begin signing in with a passkey: the options for navigator.credentials.get() and the flowId to send back" },
				handler() { return startPasskeyLogin(deps); },
			},
			completePasskeyLogin: {
				rest: "POST /login/passkey", auth: "none", rateLimit: "auth-strict", openapi: { summary: "Sign in with a passkey's answer to the login options: an access and a refresh token" },
				params: { $$strict: "remove", flowId: secret, credential: authenticationCredential },
				handler(ctx: Ctx<{ flowId: string; credential: AuthenticationCredential }>) {
					return finishPasskeyLogin(deps, this.sessionHooks(), { flowId: ctx.params.flowId, credential: withoutEmptyHandle(ctx.params.credential) }, this.request(ctx));
				},
			},
			refresh: {
				rest: "POST /refresh", auth: "none", openapi: { summary: "Exchange a refresh token for a new pair (the old one is spent)" },
				params: { $$strict: "remove", refreshToken: secret },
				handler(ctx: Ctx<{ refreshToken: string }>) { return refresh(deps, this.sessionHooks(), ctx.params.refreshToken, this.request(ctx)); },
			},
			logout: {
				rest: "POST /logout", auth: "required", enrolment: "always", openapi: { summary: "End this session, the session of a refresh token, all sessions, or all but this one" },
				params: { $$strict: "remove", refreshToken: { type: "string", max: 512, optional: true }, allSessions: { type: "boolean", optional: true }, otherSessions: { type: "boolean", optional: true } },
				async handler(ctx: Ctx<{ refreshToken?: string; allSessions?: boolean; otherSessions?: boolean }>) {
					const input = { refreshToken: ctx.params.refreshToken || undefined, allSessions: ctx.params.allSessions, otherSessions: ctx.params.otherSessions };
					return this.reply(ctx, 204, await logout(deps, this.sessionHooks(), this.caller(ctx), input, this.request(ctx)));
				},
			},
			verifyEmail: {
				rest: "POST /verify-email", auth: "none", openapi: { summary: "Confirm the e-mail address with the token of the e-mailed link" },
				params: { $$strict: "remove", token: secret },
				async handler(ctx: Ctx<{ token: string }>) { return this.reply(ctx, undefined, await verifyEmail(deps, this.sessionHooks(), ctx.params.token, this.request(ctx))); },
			},
			resendVerification: {
				rest: "POST /verify-email/resend", auth: "required", enrolment: true, openapi: { summary: "E-mail a new verification link to the caller" },
				async handler(ctx: Ctx) { return this.reply(ctx, undefined, await resendVerification(deps, this.caller(ctx).userId, this.request(ctx))); },
			},
			forgotPassword: {
				rest: "POST /password/forgot", auth: "none", rateLimit: "auth-strict", openapi: { summary: "E-mail a password reset link (same answer whether or not the account exists)" },
				params: { $$strict: "remove", email },
				async handler(ctx: Ctx<{ email: string }>) {
					await forgotPassword(deps, ctx.params.email, this.request(ctx));
					return this.reply(ctx, 202, {});
				},
			},
			resetPassword: {
				rest: "POST /password/reset", auth: "none", rateLimit: "auth-strict", openapi: { summary: "Set a new password with the e-mailed token; ends every session" },
				params: { $$strict: "remove", token: secret, password: newPassword },
				async handler(ctx: Ctx<{ token: string; password: string }>) {
					await resetPassword(deps, this.sessionHooks(), ctx.params, this.request(ctx));
					return this.reply(ctx, 204, {});
				},
			},
			changePassword: {
				rest: "POST /password/change", auth: "required", openapi: { summary: "Change the password (needs the current one); ends the other sessions" },
				params: { $$strict: "remove", currentPassword: secret, newPassword, keepOtherSessions: { type: "boolean", optional: true } },
				async handler(ctx: Ctx<{ currentPassword: string; newPassword: string; keepOtherSessions?: boolean }>) {
					await changePassword(deps, this.sessionHooks(), this.caller(ctx), ctx.params, this.request(ctx));
					return this.reply(ctx, 204, {});
				},
			},
			deleteAccount: {
				rest: "DELETE /me", auth: "required", enrolment: true, rateLimit: "auth-strict", openapi: { summary: "Delete the caller's account (needs the password); erases their data everywhere" },
				params: { $$strict: "remove", password: secret },
				async handler(ctx: Ctx<{ password: string }>) {
					await deleteAccount(deps, this.sessionHooks(), this.caller(ctx), ctx.params, this.request(ctx));
					return this.reply(ctx, 204, {});
				},
			},
			me: {
				rest: "GET /me", auth: "required", enrolment: "always", openapi: { summary: "The caller's account, roles and permissions" },
				async handler(ctx: Ctx) {
					const caller = this.caller(ctx);
					return { ...(await getProfile(deps, caller.userId)), secondFactorRequired: secondFactorMissing(caller, usersMfaPolicy) };
				},
			},
			updateProfile: {
				rest: "PATCH /me", auth: "required", openapi: { summary: "Change the caller's display name (empty: none)" },
				params: { $$strict: "remove", name: displayName },
				handler(ctx: Ctx<{ name: string }>) { return updateProfile(deps, this.caller(ctx).userId, ctx.params, this.request(ctx)); },
			},
			requestEmailChange: {
				rest: "POST /email/change", auth: "required", rateLimit: "auth-strict", openapi: { summary: "E-mail a confirmation link to a new address (needs the password); the account moves there when it is followed" },
				params: { $$strict: "remove", newEmail: email, password: secret },
				async handler(ctx: Ctx<{ newEmail: string; password: string }>) {
					await requestEmailChange(deps, this.caller(ctx), ctx.params, this.request(ctx));
					return this.reply(ctx, 202, {});
				},
			},
			sessions: {
				rest: "GET /sessions", auth: "required", openapi: { summary: "The caller's live sessions, the current one marked" },
				async handler(ctx: Ctx) { return { items: await listSessions(pool, this.caller(ctx).userId, this.caller(ctx).sessionId, clock.now()) }; },
			},
			revokeSession: {
				rest: "DELETE /sessions/:sessionId", auth: "required", openapi: { summary: "End one of the caller's sessions (a device signed in elsewhere)" },
				params: { $$strict: "remove", sessionId: { type: "uuid" } },
				async handler(ctx: Ctx<{ sessionId: string }>) {
					return this.reply(ctx, 204, await logout(deps, this.sessionHooks(), this.caller(ctx), { sessionId: ctx.params.sessionId }, this.request(ctx)));
				},
			},
			setUserRoles: {
				rest: "PUT /users/:userId/roles", auth: "required", permissions: ["roles:write"], openapi: { summary: "Replace a user's roles" },
				params: { $$strict: "remove", userId: { type: "uuid" }, roles: { type: "array", max: 20, unique: true, items: { type: "string", pattern: /^[a-z][a-z0-9_-]{0,49}$/ } } },
				handler(ctx: Ctx<{ userId: string; roles: string[] }>) {
					return setUserRoles(deps, { ...ctx.params, ...this.actor(ctx) }, this.request(ctx));
				},
			},
			listUsers: {
				rest: "GET /users", auth: "required", permissions: ["users:read"], openapi: { summary: "Users by e-mail address with their roles and live sessions; `query` matches part of the address or an id" },
				// Over gRPC an absent field arrives as "" or 0: both mean "not given".
				params: { $$strict: "remove", query: { type: "string", max: 254, trim: true, optional: true }, cursor: { type: "string", max: 400, optional: true }, limit: { type: "number", integer: true, min: 0, max: 100, convert: true, optional: true } },
				handler(ctx: Ctx<{ query?: string; cursor?: string; limit?: number }>) {
					return listUsers(pool, { query: ctx.params.query || undefined, cursor: ctx.params.cursor || undefined, limit: ctx.params.limit || 20 }, clock.now());
				},
			},
			listRoles: {
				rest: "GET /roles", auth: "required", permissions: ["roles:read"], openapi: { summary: "Every role with its permissions and how many users hold it" },
				async handler() { return { items: await listRoles(pool) }; },
			},
			revokeUserSessions: {
				rest: "DELETE /users/:userId/sessions", auth: "required", permissions: ["users:write"], openapi: { summary: "End every session of a user" },
				params: { $$strict: "remove", userId: { type: "uuid" } },
				handler(ctx: Ctx<{ userId: string }>) {
					return endUserSessions(deps, this.sessionHooks(), { userId: ctx.params.userId, ...this.actor(ctx) }, this.request(ctx));
				},
			},
			resetUserMfa: {
				rest: "DELETE /users/:userId/mfa", auth: "required", permissions: ["users:write"], openapi: { summary: "Turn off a user's two-step login (for a user who lost the phone and the recovery codes; the user is told)" },
				params: { $$strict: "remove", userId: { type: "uuid" } },
				async handler(ctx: Ctx<{ userId: string }>) {
					await resetSecondFactor(deps, this.sessionHooks(), { userId: ctx.params.userId, actorPermissions: this.caller(ctx).permissions, ...this.actor(ctx) }, this.request(ctx));
					return this.reply(ctx, 204, {});
				},
			},
			introspect: {
				// Service to service (the gateway): the token in the request is what is checked.
				visibility: "public", auth: "none", openapi: { summary: "Live validation of an access token (RFC 7662 fields)" },
				params: { $$strict: "remove", token: { type: "string", min: 1, max: 8192 } },
				handler(ctx: Ctx<{ token: string }>) { return introspect(deps, ctx.params.token); },
			},
			jwks: {
				rest: "GET /jwks", auth: "none", openapi: { summary: "Public keys that verify access tokens (JWKS)" },
				handler() { return deps.keys.jwks(); },
			},
			// Operator actions (REPL), not routed by the gateway: the first administrator, an early key rotation.
			bootstrapAdmin: {
				visibility: "public",
				params: { email },
				handler(ctx: Ctx<{ email: string }>) { return bootstrapAdmin(deps, ctx.params.email, this.request(ctx)); },
			},
			rotateSigningKey: {
				visibility: "public",
				async handler() { return { kid: await deps.keys.rotate() }; },
			},
			// Operator actions (REPL), not on the public API.
			findUser: {
				visibility: "public",
				params: { user: { type: "string", min: 3, max: 254 } },
				handler(ctx: Ctx<{ user: string }>) { return findUser(deps, ctx.params.user); },
			},
			outbox: {
				visibility: "public",
				params: { pendingOnly: { type: "boolean", default: false, convert: true }, limit: { type: "number", integer: true, min: 1, max: 200, default: 20, convert: true } },
				handler(ctx: Ctx<{ pendingOnly: boolean; limit: number }>) { return listOutbox(pool, ctx.params); },
			},
			replayEvent: {
				visibility: "public",
				params: { eventId: { type: "uuid" } },
				async handler(ctx: Ctx<{ eventId: string }>) {
					const replayed = await replayEvent(pool, ctx.params.eventId);
					this.relayOutbox();
					return replayed;
				},
			},
		},

		events: {
			/** A session another auth node ended: introspection here must not answer it from memory. */
			"auth.session.revoked"(ctx: Context<RevokedSession>) {
				deps.sessionCache?.forget(ctx.params.sessionId, clock.now());
			},
		},

		methods: {
			healthChecks() {
				return { postgres: () => pool.query("SELECT 1") };
			},
			request(ctx: Ctx<unknown>) {
				return { clientIp: ctx.meta.clientIp, requestId: ctx.requestID ?? undefined };
			},
			caller(ctx: Ctx<unknown>) {
				const caller = callerFrom(ctx.meta.caller);
				if (!caller) throw unauthorized();
				return caller;
			},
			/** Who acts on another account: users are UUIDs; an operator at the REPL is not a user and is named in the audit instead. */
			actor(ctx: Ctx<unknown>) {
				const caller = this.caller(ctx).userId;
				return UUID.test(caller) ? { actorId: caller } : { actorId: null, operator: caller };
			},
			/** Relays what the action committed to the outbox, sets the REST status, returns the result. */
			reply<T>(ctx: Ctx<unknown>, status: number | undefined, result: T): T {
				this.relayOutbox();
				if (status) ctx.meta.$statusCode = status;
				return result;
			},
			sessionHooks() {
				return {
					sessionsRevoked: (sessions: RevokedSession[]) => {
						for (const s of sessions) deps.sessionCache?.forget(s.sessionId, clock.now());
						for (const s of sessions) void this.broker.broadcast("auth.session.revoked", s);
					},
				};
			},
		},

		created() {
			limitHashing(config.auth.hashing);
			pool = createPgPool(config.databaseUrl!, `${config.nodeId}/auth`, (err) => this.logger.warn("idle PostgreSQL connection lost", err.message));
			const kek = config.auth.keyEncryptionKey ? Buffer.from(config.auth.keyEncryptionKey, "base64") : DEV_KEY_ENCRYPTION_KEY;
			const keys = new KeyRing(pool, kek, clock, { rotationDays: config.auth.keyRotationDays, accessTokenTtlS: config.auth.accessTokenTtlS });
			const { keyEncryptionKey: _sealed, ...settings } = config.auth;
			deps = { pool, clock, keys, kek, lockout: opts.lockout ?? DEFAULT_LOCKOUT, settings: { ...settings, ...DEFAULT_LINK_SETTINGS, bcryptCost: config.bcryptCost }, sessionCache: new ActiveSessionCache(config.auth.sessionCacheMs), tokenCache: new ExpiringCache(TOKEN_CACHE_ENTRIES) };
			if (this.broker.isMetricsEnabled() && !this.broker.metrics.hasMetric("events.outbox.lag.seconds")) {
				this.broker.metrics.register({ name: "events.outbox.lag.seconds", type: "gauge", labelNames: ["service"], description: "Age of the oldest event not yet relayed" });
			}
		},
		async started() {
			await dummyHash(config.bcryptCost);
			stopMaintenance = startMaintenance(deps, {
				rotated: (newKid) => this.logger.info(`rotated token signing key to ${newKid}`),
				failed: (err) => this.logger.warn("auth housekeeping failed", err.message),
				lag: this.broker.isMetricsEnabled() ? (s) => this.broker.metrics.set("events.outbox.lag.seconds", s, { service: "auth" }) : undefined,
			});
		},
		async stopped() {
			stopMaintenance?.();
			await pool.end();
		},
	};
}
