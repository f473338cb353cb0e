/**
 * Accounts on real PostgreSQL through the domain modules: registration (policy, duplicates,
 * events in the same transaction), e-mail verification, password reset and change, roles.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getProfile, registerUser, resendVerification, updateProfile, verifyEmail } from "../../services/auth/accounts.ts";
import { login } from "../../services/auth/login.ts";
import { bootstrapAdmin, setUserRoles } from "../../services/auth/rbac.ts";
import { changePassword, forgotPassword, requestEmailChange, resetPassword } from "../../services/auth/recovery.ts";
import { verifyAccessToken } from "../../services/auth/tokens.ts";
import { confirmTotpEnrolment, startTotpEnrolment } from "../../services/auth/mfa-enrolment.ts";
import { totpCode } from "../support/totp.ts";
import { authKit, lastLinkToken, outboxEvents } from "../support/auth.ts";
import type { AuthKit } from "../support/auth.ts";
import { failure } from "../support/infra.ts";

const req = { clientIp: "203.0.113.7", requestId: "req-accounts" };
const PASSWORD = "violet staple kettle";

let kit: AuthKit;
let counter = 0;
const email = () => `user${++counter}.${Date.now()}@example.com`;

beforeAll(async () => {
	kit = await authKit();
});
afterAll(async () => {
	await kit?.close();
});

describe("registration", () => {
	it("stores the user with role 'user', and user.created + user.email_verification_requested in the same commit", async () => {
		const address = email();
		const user = await registerUser(kit.deps, { email: `  ${address.toUpperCase()} `, password: PASSWORD, name: " Ada " }, req);
		expect(user).toMatchObject({ email: address, name: "Ada", emailVerified: false });
		expect(user).not.toHaveProperty("passwordHash");
		const created = (await outboxEvents(kit.pool, "user.created")).filter((e) => e.subject === user.id);
		expect(created.map((e) => e.data)).toEqual([{ userId: user.id, email: address, name: "Ada" }]);
		const verify = (await outboxEvents<{ verifyUrl: string; expiresAt: string }>(kit.pool, "user.email_verification_requested")).filter((e) => e.subject === user.id);
		expect(verify).toHaveLength(1);
		expect(verify[0]!.data.verifyUrl).toMatch(/^http:\/\/app\.test\/verify-email\?token=[A-Za-z0-9_-]{43}$/);
		expect(Date.parse(verify[0]!.data.expiresAt) - kit.clock.now().getTime()).toBe(24 * 3600 * 1000);
		const { rows } = await kit.pool.query<{ password_hash: string }>("SELECT password_hash FROM users WHERE id = $1", [user.id]);
		expect(rows[0]!.password_hash).toMatch(/^bcrypt-sha256\$\$2b\$04\$/);
		expect((await getProfile(kit.deps, user.id)).roles).toEqual(["user"]);
	});

	it("refuses a second account for the same e-mail (any case) with 409 EMAIL_ALREADY_REGISTERED, writing no event", async () => {
		const address = email();
		await registerUser(kit.deps, { email: address, password: PASSWORD }, req);
		const before = (await outboxEvents(kit.pool, "user.created")).length;
		const err = await failure(registerUser(kit.deps, { email: address.toUpperCase(), password: "another good passphrase" }, req));
		expect([err.code, err.type]).toEqual([409, "EMAIL_ALREADY_REGISTERED"]);
		expect((await outboxEvents(kit.pool, "user.created")).length).toBe(before);
	});

	it("refuses common, patterned and context passwords with VALIDATION_ERROR naming the field", async () => {
		const cases: [string, string][] = [
			["password1", "passwordCommon"],
			["iloveyou!!", "passwordCommon"],
			["abcdefghij", "passwordTrivial"],
			["xyzxyzxyzxyz", "passwordTrivial"],
			["grace.hopper rocks", "passwordContext"],
			["my backplane pass", "passwordContext"],
			["short", "passwordTooShort"],
		];
		for (const [password, type] of cases) {
			const err = await failure(registerUser(kit.deps, { email: `grace.hopper${++counter}@example.com`, password, name: "Grace Hopper" }, req));
			expect([err.code, err.type, err.data]).toEqual([400, "VALIDATION_ERROR", { errors: [expect.objectContaining({ field: "password", type })] }]);
		}
		const { rows } = await kit.pool.query("SELECT 1 FROM users WHERE email LIKE 'grace.hopper%'");
		expect(rows).toHaveLength(0);
	});
});

describe("e-mail verification", () => {
	it("verifies once with the e-mailed token, publishes user.email_verified, refuses the token again", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const token = await lastLinkToken(kit.pool, "user.email_verification_requested", user.id);
		expect(await verifyEmail(kit.deps, kit.hooks, token, req)).toEqual({ userId: user.id });
		expect((await getProfile(kit.deps, user.id)).emailVerified).toBe(true);
		expect((await outboxEvents(kit.pool, "user.email_verified")).filter((e) => e.subject === user.id)).toHaveLength(1);
		const again = await failure(verifyEmail(kit.deps, kit.hooks, token, req));
		expect([again.code, again.type]).toEqual([400, "INVALID_OR_EXPIRED_TOKEN"]);
		expect((await failure(verifyEmail(kit.deps, kit.hooks, "not-a-token", req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");
		expect(await resendVerification(kit.deps, user.id, req)).toEqual({ sent: false });
	});

	it("refuses an expired verification token; resend sends a new link at most once a minute", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const first = await lastLinkToken(kit.pool, "user.email_verification_requested", user.id);
		const tooSoon = await failure(resendVerification(kit.deps, user.id, req));
		expect([tooSoon.code, tooSoon.type]).toEqual([429, "TOO_MANY_REQUESTS"]);
		kit.clock.advance(24 * 3600 + 1);
		expect((await failure(verifyEmail(kit.deps, kit.hooks, first, req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");
		expect(await resendVerification(kit.deps, user.id, req)).toEqual({ sent: true });
		const second = await lastLinkToken(kit.pool, "user.email_verification_requested", user.id);
		expect(second).not.toBe(first);
		await verifyEmail(kit.deps, kit.hooks, second, req);
		expect((await getProfile(kit.deps, user.id)).emailVerified).toBe(true);
	});
});

describe("profile and e-mail address", () => {
	const sessionIdOf = async (accessToken: string) => ((await verifyAccessToken(kit.deps.keys, kit.deps.settings, accessToken, kit.clock.now())) as { claims: { sid: string } }).claims.sid;

	it("changes the display name and publishes user.updated", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD, name: "Ada" }, req);
		expect(await updateProfile(kit.deps, user.id, { name: "  Ada Lovelace " }, req)).toMatchObject({ id: user.id, name: "Ada Lovelace", roles: ["user"] });
		expect((await updateProfile(kit.deps, user.id, { name: "" }, req)).name).toBeNull();
		const updated = (await outboxEvents<{ name: string | null }>(kit.pool, "user.updated")).filter((e) => e.subject === user.id);
		expect(updated.map((e) => e.data.name)).toEqual(["Ada Lovelace", null]);
	});

	it("moves the account to a new address only when the link sent there is followed, once", async () => {
		const old = email();
		const next = email();
		const user = await registerUser(kit.deps, { email: old, password: PASSWORD, name: "Ada" }, req);
		const session = await login(kit.deps, { email: old, password: PASSWORD }, req);
		const caller = { userId: user.id, sessionId: await sessionIdOf(session.accessToken) };

		const wrong = await failure(requestEmailChange(kit.deps, caller, { newEmail: next, password: "not the password" }, req));
		expect([wrong.code, wrong.type]).toEqual([400, "VALIDATION_ERROR"]);
		expect((await failure(requestEmailChange(kit.deps, caller, { newEmail: old.toUpperCase(), password: PASSWORD }, req))).code).toBe(400);
		const taken = email();
		await registerUser(kit.deps, { email: taken, password: PASSWORD }, req);
		expect((await failure(requestEmailChange(kit.deps, caller, { newEmail: taken, password: PASSWORD }, req))).type).toBe("EMAIL_ALREADY_REGISTERED");

		await requestEmailChange(kit.deps, caller, { newEmail: ` ${next.toUpperCase()} `, password: PASSWORD }, req);
		const requested = (await outboxEvents<{ email: string; newEmail: string; confirmUrl: string }>(kit.pool, "user.email_change_requested")).filter((e) => e.subject === user.id);
		expect(requested.map((e) => [e.data.email, e.data.newEmail])).toEqual([[old, next]]);
		// Its own page, which waits for a click (a verification link's page posts at once).
		expect(requested[0]!.data.confirmUrl).toMatch(/^http:\/\/app\.test\/confirm-email\?token=[A-Za-z0-9_-]{43}$/);
		// Nothing changes before the link is followed.
		expect((await getProfile(kit.deps, user.id)).email).toBe(old);

		// At most one a minute; a second request voids the first link.
		const firstLink = await lastLinkToken(kit.pool, "user.email_change_requested", user.id);
		const tooSoon = await failure(requestEmailChange(kit.deps, caller, { newEmail: next, password: PASSWORD }, req));
		expect([tooSoon.code, tooSoon.type]).toEqual([429, "TOO_MANY_REQUESTS"]);
		kit.clock.advance(61);
		await requestEmailChange(kit.deps, caller, { newEmail: next, password: PASSWORD }, req);
		const link = await lastLinkToken(kit.pool, "user.email_change_requested", user.id);
		expect((await failure(verifyEmail(kit.deps, kit.hooks, firstLink, req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");

		expect(await verifyEmail(kit.deps, kit.hooks, link, req)).toEqual({ userId: user.id });
		expect(await getProfile(kit.deps, user.id)).toMatchObject({ email: next, emailVerified: true });
		const changed = (await outboxEvents<{ email: string; previousEmail: string }>(kit.pool, "user.email_changed")).filter((e) => e.subject === user.id);
		expect(changed.map((e) => [e.data.previousEmail, e.data.email])).toEqual([[old, next]]);
		expect((await failure(verifyEmail(kit.deps, kit.hooks, link, req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");
		// The account signs in with the new address only.
		await login(kit.deps, { email: next, password: PASSWORD }, req);
		expect((await failure(login(kit.deps, { email: old, password: PASSWORD }, req))).code).toBe(401);
		// The verification link of the old address can never move it back.
		const verifyOld = await lastLinkToken(kit.pool, "user.email_verification_requested", user.id);
		expect((await failure(verifyEmail(kit.deps, kit.hooks, verifyOld, req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");
	});

	it("voids a pending move when the password is reset or changed, and old reset links when the account moves", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const session = await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		const caller = { userId: user.id, sessionId: await sessionIdOf(session.accessToken) };
		// Someone with the password asks to move the account; the owner resets the password.
		await requestEmailChange(kit.deps, caller, { newEmail: email(), password: PASSWORD }, req);
		const hijack = await lastLinkToken(kit.pool, "user.email_change_requested", user.id);
		await forgotPassword(kit.deps, user.email, req);
		const newPassword = "a whole new passphrase 5";
		await resetPassword(kit.deps, kit.hooks, { token: await lastLinkToken(kit.pool, "user.password_reset_requested", user.id), password: newPassword }, req);
		expect((await failure(verifyEmail(kit.deps, kit.hooks, hijack, req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");
		expect((await getProfile(kit.deps, user.id)).email).toBe(user.email);

		// The same after a password change.
		const again = await login(kit.deps, { email: user.email, password: newPassword }, req);
		const me = { userId: user.id, sessionId: await sessionIdOf(again.accessToken) };
		kit.clock.advance(61);
		await requestEmailChange(kit.deps, me, { newEmail: email(), password: newPassword }, req);
		const pending = await lastLinkToken(kit.pool, "user.email_change_requested", user.id);
		await changePassword(kit.deps, kit.hooks, me, { currentPassword: newPassword, newPassword: PASSWORD, keepOtherSessions: true }, req);
		expect((await failure(verifyEmail(kit.deps, kit.hooks, pending, req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");

		// A reset link sent to the old address dies when the account moves.
		kit.clock.advance(61);
		await forgotPassword(kit.deps, user.email, req);
		const oldReset = await lastLinkToken(kit.pool, "user.password_reset_requested", user.id);
		await requestEmailChange(kit.deps, me, { newEmail: email(), password: PASSWORD }, req);
		await verifyEmail(kit.deps, kit.hooks, await lastLinkToken(kit.pool, "user.email_change_requested", user.id), req);
		expect((await failure(resetPassword(kit.deps, kit.hooks, { token: oldReset, password: "yet another passphrase 6" }, req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");
	});

	it("sends no way back to an address that was never verified: it may be someone else's", async () => {
		const typo = email();
		const user = await registerUser(kit.deps, { email: typo, password: PASSWORD }, req);
		const session = await login(kit.deps, { email: typo, password: PASSWORD }, req);
		await requestEmailChange(kit.deps, { userId: user.id, sessionId: await sessionIdOf(session.accessToken) }, { newEmail: email(), password: PASSWORD }, req);
		await verifyEmail(kit.deps, kit.hooks, await lastLinkToken(kit.pool, "user.email_change_requested", user.id), req);
		const changed = (await outboxEvents<{ revertUrl: string | null; previousEmailVerified: boolean }>(kit.pool, "user.email_changed")).filter((e) => e.subject === user.id);
		expect(changed.map((e) => e.data)).toEqual([expect.objectContaining({ previousEmail: typo, revertUrl: null, previousEmailVerified: false })]);
		const { rowCount } = await kit.pool.query("SELECT 1 FROM email_verification_tokens WHERE user_id = $1 AND purpose = 'revert'", [user.id]);
		expect(rowCount).toBe(0);
	});

	it("lets the address an account left move it back, once: every session ends and an authenticator set up since is removed", async () => {
		const old = email();
		const user = await registerUser(kit.deps, { email: old, password: PASSWORD }, req);
		// The way back goes only to an address the user proved.
		await verifyEmail(kit.deps, kit.hooks, await lastLinkToken(kit.pool, "user.email_verification_requested", user.id), req);
		const session = await login(kit.deps, { email: old, password: PASSWORD }, req);
		const caller = { userId: user.id, sessionId: await sessionIdOf(session.accessToken) };
		const attacker = email();
		await requestEmailChange(kit.deps, caller, { newEmail: attacker, password: PASSWORD }, req);
		await verifyEmail(kit.deps, kit.hooks, await lastLinkToken(kit.pool, "user.email_change_requested", user.id), req);
		const changed = (await outboxEvents<{ revertUrl: string | null }>(kit.pool, "user.email_changed")).filter((e) => e.subject === user.id).at(-1)!;
		expect(changed.data.revertUrl).toMatch(/^http:\/\/app\.test\/revert-email\?token=[A-Za-z0-9_-]{43}$/);
		const revert = new URL(changed.data.revertUrl!).searchParams.get("token")!;
		// Whoever moved it turns on two-step login to keep the owner out.
		const { secret } = await startTotpEnrolment(kit.deps, caller, { password: PASSWORD }, req);
		await confirmTotpEnrolment(kit.deps, kit.hooks, caller, { code: totpCode(secret, kit.clock.now()) }, req);

		kit.revoked.length = 0;
		await verifyEmail(kit.deps, kit.hooks, revert, req);
		expect(await getProfile(kit.deps, user.id)).toMatchObject({ email: old, emailVerified: true, mfaEnabled: false });
		expect(kit.revoked.map((r) => r.sessionId)).toContain(caller.sessionId);
		const back = (await outboxEvents<{ email: string; revertUrl: string | null }>(kit.pool, "user.email_changed")).filter((e) => e.subject === user.id).at(-1)!;
		expect(back.data).toMatchObject({ email: old, revertUrl: null });
		expect((await failure(verifyEmail(kit.deps, kit.hooks, revert, req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");
	});

	it("refuses the link when another account took the address meanwhile, and an expired link", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const session = await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		const caller = { userId: user.id, sessionId: await sessionIdOf(session.accessToken) };
		const contested = email();
		await requestEmailChange(kit.deps, caller, { newEmail: contested, password: PASSWORD }, req);
		const link = await lastLinkToken(kit.pool, "user.email_change_requested", user.id);
		await registerUser(kit.deps, { email: contested, password: PASSWORD }, req);
		expect((await failure(verifyEmail(kit.deps, kit.hooks, link, req))).type).toBe("EMAIL_ALREADY_REGISTERED");
		expect((await getProfile(kit.deps, user.id)).email).toBe(user.email);

		kit.clock.advance(61);
		await requestEmailChange(kit.deps, caller, { newEmail: email(), password: PASSWORD }, req);
		const late = await lastLinkToken(kit.pool, "user.email_change_requested", user.id);
		kit.clock.advance(24 * 3600 + 1);
		expect((await failure(verifyEmail(kit.deps, kit.hooks, late, req))).type).toBe("INVALID_OR_EXPIRED_TOKEN");
		expect((await getProfile(kit.deps, user.id)).email).toBe(user.email);
	});
});

describe("password reset", () => {
	it("answers the same for unknown and known e-mails; only a known one gets a 30-minute link", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const before = (await outboxEvents(kit.pool, "user.password_reset_requested")).length;
		await expect(forgotPassword(kit.deps, "nobody-here@example.com", req)).resolves.toBeUndefined();
		expect((await outboxEvents(kit.pool, "user.password_reset_requested")).length).toBe(before);
		await expect(forgotPassword(kit.deps, user.email.toUpperCase(), req)).resolves.toBeUndefined();
		const events = (await outboxEvents<{ resetUrl: string; expiresAt: string }>(kit.pool, "user.password_reset_requested")).filter((e) => e.subject === user.id);
		expect(events).toHaveLength(1);
		expect(events[0]!.data.resetUrl).toMatch(/^http:\/\/app\.test\/reset-password\?token=/);
		expect(Date.parse(events[0]!.data.expiresAt) - kit.clock.now().getTime()).toBe(30 * 60 * 1000);
		// A second request within a minute sends nothing more (no mail bombing), still the same answer.
		await forgotPassword(kit.deps, user.email, req);
		expect((await outboxEvents(kit.pool, "user.password_reset_requested")).filter((e) => e.subject === user.id)).toHaveLength(1);
		const { rows } = await kit.pool.query<{ token_hash: Buffer }>("SELECT token_hash FROM password_reset_tokens WHERE user_id = $1", [user.id]);
		const token = await lastLinkToken(kit.pool, "user.password_reset_requested", user.id);
		expect(rows[0]!.token_hash.toString("base64url")).not.toContain(token);
	});

	it("resets once: revokes every session, publishes user.password_changed, refuses the token again", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const sessionA = await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		await forgotPassword(kit.deps, user.email, req);
		const token = await lastLinkToken(kit.pool, "user.password_reset_requested", user.id);
		const weak = await failure(resetPassword(kit.deps, kit.hooks, { token, password: "password123" }, req));
		expect(weak.type).toBe("VALIDATION_ERROR");
		kit.revoked.length = 0;
		await resetPassword(kit.deps, kit.hooks, { token, password: "a brand new passphrase" }, req);
		expect(kit.revoked.map((r) => r.userId)).toEqual([user.id, user.id]);
		const sid = (await verifyAccessToken(kit.deps.keys, kit.deps.settings, sessionA.accessToken, kit.clock.now())) as { claims: { sid: string } };
		expect(kit.revoked.map((r) => r.sessionId)).toContain(sid.claims.sid);
		const changed = (await outboxEvents<{ method: string }>(kit.pool, "user.password_changed")).filter((e) => e.subject === user.id);
		expect(changed.map((e) => e.data.method)).toEqual(["reset"]);
		const reused = await failure(resetPassword(kit.deps, kit.hooks, { token, password: "yet another passphrase" }, req));
		expect([reused.code, reused.type]).toEqual([400, "INVALID_OR_EXPIRED_TOKEN"]);
		expect((await failure(login(kit.deps, { email: user.email, password: PASSWORD }, req))).type).toBe("INVALID_CREDENTIALS");
		expect((await login(kit.deps, { email: user.email, password: "a brand new passphrase" }, req)).tokenType).toBe("Bearer");
	});

	it("refuses a reset token after 30 minutes", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		await forgotPassword(kit.deps, user.email, req);
		const token = await lastLinkToken(kit.pool, "user.password_reset_requested", user.id);
		kit.clock.advance(30 * 60 + 1);
		const expired = await failure(resetPassword(kit.deps, kit.hooks, { token, password: "a brand new passphrase" }, req));
		expect(expired.type).toBe("INVALID_OR_EXPIRED_TOKEN");
		expect((await login(kit.deps, { email: user.email, password: PASSWORD }, req)).tokenType).toBe("Bearer");
	});
});

describe("password change", () => {
	it("needs the current password, keeps the caller's session, ends the others", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const mine = await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		const sid = ((await verifyAccessToken(kit.deps.keys, kit.deps.settings, mine.accessToken, kit.clock.now())) as { claims: { sid: string } }).claims.sid;
		const caller = { userId: user.id, sessionId: sid };
		const wrong = await failure(changePassword(kit.deps, kit.hooks, caller, { currentPassword: "not my password", newPassword: "fresh passphrase here" }, req));
		expect([wrong.code, wrong.type, wrong.data]).toEqual([400, "VALIDATION_ERROR", { errors: [expect.objectContaining({ field: "currentPassword" })] }]);
		kit.revoked.length = 0;
		await changePassword(kit.deps, kit.hooks, caller, { currentPassword: PASSWORD, newPassword: "fresh passphrase here" }, req);
		expect(kit.revoked).toHaveLength(1);
		expect(kit.revoked[0]!.sessionId).not.toBe(sid);
		const changed = (await outboxEvents<{ method: string }>(kit.pool, "user.password_changed")).filter((e) => e.subject === user.id);
		expect(changed.map((e) => e.data.method)).toEqual(["change"]);
		expect((await login(kit.deps, { email: user.email, password: "fresh passphrase here" }, req)).tokenType).toBe("Bearer");
	});
});

describe("roles and permissions", () => {
	it("bootstraps one admin, who grants roles; permissions land in the next token; the last admin stays", async () => {
		const admin = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const member = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		expect(await bootstrapAdmin(kit.deps, admin.email, req)).toEqual({ userId: admin.id });
		expect((await failure(bootstrapAdmin(kit.deps, member.email, req))).type).toBe("ADMIN_EXISTS");

		const grants = await setUserRoles(kit.deps, { userId: member.id, roles: ["user", "admin"], actorId: admin.id }, req);
		expect(grants.roles).toEqual(["admin", "user"]);
		expect(grants.permissions).toEqual(expect.arrayContaining(["roles:write", "users:read", "billing:admin", "notifications:admin"]));
		const pair = await login(kit.deps, { email: member.email, password: PASSWORD }, req);
		const check = await verifyAccessToken(kit.deps.keys, kit.deps.settings, pair.accessToken, kit.clock.now());
		expect(check).toMatchObject({ valid: true, claims: { roles: ["admin", "user"], permissions: grants.permissions } });

		const unknown = await failure(setUserRoles(kit.deps, { userId: member.id, roles: ["wizard"], actorId: admin.id }, req));
		expect([unknown.code, unknown.type]).toEqual([400, "VALIDATION_ERROR"]);
		const missing = await failure(setUserRoles(kit.deps, { userId: "00000000-0000-4000-8000-000000000000", roles: ["user"], actorId: admin.id }, req));
		expect(missing.code).toBe(404);

		await setUserRoles(kit.deps, { userId: admin.id, roles: ["user"], actorId: member.id }, req);
		const last = await failure(setUserRoles(kit.deps, { userId: member.id, roles: ["user"], actorId: member.id }, req));
		expect([last.code, last.type]).toEqual([409, "LAST_ADMIN"]);
		expect((await getProfile(kit.deps, member.id)).roles).toEqual(["admin", "user"]);
		const { rows } = await kit.pool.query<{ action: string }>("SELECT action FROM audit_log WHERE user_id = $1 AND action = 'roles.set'", [member.id]);
		expect(rows.length).toBe(1);
	});
});
