/**
 * Two-step login on real PostgreSQL through the domain modules: turning it on (password, then a
 * first code, then recovery codes), the login challenge and its second step (codes once each,
 * five tries, expiry, lockout per account and per IP, the owner told), recovery codes once each
 * and made anew, and turning it off.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getProfile, registerUser } from "../../services/auth/accounts.ts";
import { completeMfaLogin, login } from "../../services/auth/login.ts";
import { confirmTotpEnrolment, disableTotp, regenerateRecoveryCodes, resetSecondFactor, startTotpEnrolment } from "../../services/auth/mfa-enrolment.ts";
import { bootstrapAdmin } from "../../services/auth/rbac.ts";
import { verifyAccessToken } from "../../services/auth/tokens.ts";
import { forgotPassword, resetPassword } from "../../services/auth/recovery.ts";
import { authKit, lastLinkToken, outboxEvents } from "../support/auth.ts";
import type { AuthKit } from "../support/auth.ts";
import { failure } from "../support/infra.ts";
import { totpCode } from "../support/totp.ts";
import { Secret } from "otpauth";

const req = { clientIp: "203.0.113.9", requestId: "req-mfa" };
/** Wrong codes count per client IP too (6 in the test policy): tests that send several use their own IP. */
const from = (clientIp: string) => ({ ...req, clientIp });
const PASSWORD = "violet staple kettle";

let kit: AuthKit;
let counter = 0;
const email = () => `mfa${++counter}.${Date.now()}@example.com`;

beforeAll(async () => {
	kit = await authKit();
});
afterAll(async () => {
	await kit?.close();
});

/** A user with two-step login on: its secret and recovery codes. */
async function enrolled() {
	const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
	const pair = await login(kit.deps, { email: user.email, password: PASSWORD }, req);
	const check = (await verifyAccessToken(kit.deps.keys, kit.deps.settings, pair.accessToken, kit.clock.now())) as { claims: { sid: string } };
	const caller = { userId: user.id, sessionId: check.claims.sid };
	const { secret, otpauthUrl } = await startTotpEnrolment(kit.deps, caller, { password: PASSWORD }, req);
	expect(otpauthUrl).toMatch(new RegExp(`^otpauth://totp/Backplane:.+\\?.*secret=${secret}`));
	const { recoveryCodes } = await confirmTotpEnrolment(kit.deps, kit.hooks, caller, { code: totpCode(secret, kit.clock.now()) }, req);
	return { user, caller, secret, recoveryCodes };
}

/** The challenge token of a login with the right password. */
async function challenge(address: string): Promise<string> {
	const err = await failure(login(kit.deps, { email: address, password: PASSWORD }, req));
	expect([err.code, err.type]).toEqual([403, "MFA_REQUIRED"]);
	return (err.data as { extensions: { mfaToken: string } }).extensions.mfaToken;
}

describe("two-step login", () => {
	it("turns on only after the password and a first code, and gives ten distinct recovery codes once", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const caller = { userId: user.id, sessionId: "00000000-0000-4000-8000-000000000000" };
		expect((await failure(startTotpEnrolment(kit.deps, caller, { password: "not the password" }, req))).type).toBe("VALIDATION_ERROR");
		const { secret } = await startTotpEnrolment(kit.deps, caller, { password: PASSWORD }, req);
		// Not on yet: login still gives tokens.
		expect((await login(kit.deps, { email: user.email, password: PASSWORD }, req)).accessToken).toBeTruthy();
		const wrong = await failure(confirmTotpEnrolment(kit.deps, kit.hooks, caller, { code: "000000" }, req));
		expect([wrong.code, wrong.type]).toEqual([400, "VALIDATION_ERROR"]);
		const { recoveryCodes } = await confirmTotpEnrolment(kit.deps, kit.hooks, caller, { code: totpCode(secret, kit.clock.now()) }, req);
		expect(recoveryCodes).toHaveLength(10);
		expect(new Set(recoveryCodes).size).toBe(10);
		expect((await getProfile(kit.deps, user.id)).mfaEnabled).toBe(true);
		expect((await failure(startTotpEnrolment(kit.deps, caller, { password: PASSWORD }, req))).type).toBe("MFA_ALREADY_ENABLED");
		expect((await outboxEvents(kit.pool, "user.mfa_enabled")).filter((e) => e.subject === user.id)).toHaveLength(1);
		// The secret is stored sealed, never in clear.
		const { rows } = await kit.pool.query<{ secret_ciphertext: Buffer }>("SELECT secret_ciphertext FROM totp_authenticators WHERE user_id = $1", [user.id]);
		expect(rows[0]!.secret_ciphertext.includes(Buffer.from(Secret.fromBase32(secret).bytes))).toBe(false);
		expect(rows[0]!.secret_ciphertext.length).toBe(20);
	});

	it("answers the right password with a challenge, and the challenge with tokens for the current code, once", async () => {
		const { user, secret } = await enrolled();
		kit.clock.advance(60);
		const token = await challenge(user.email);
		const wrong = await failure(completeMfaLogin(kit.deps, { mfaToken: token, code: "123456" }, req));
		expect([wrong.code, wrong.type]).toEqual([401, "INVALID_MFA_CODE"]);
		const code = totpCode(secret, kit.clock.now());
		const pair = await completeMfaLogin(kit.deps, { mfaToken: token, code }, req);
		expect(pair.accessToken).toBeTruthy();
		// The challenge is spent, and the same code does not open a second one (replay).
		expect((await failure(completeMfaLogin(kit.deps, { mfaToken: token, code }, req))).type).toBe("INVALID_MFA_TOKEN");
		expect((await failure(completeMfaLogin(kit.deps, { mfaToken: await challenge(user.email), code }, req))).type).toBe("INVALID_MFA_CODE");
		// The next step's code works.
		kit.clock.advance(30);
		expect((await completeMfaLogin(kit.deps, { mfaToken: await challenge(user.email), code: totpCode(secret, kit.clock.now()) }, req)).accessToken).toBeTruthy();
	});

	it("lets a challenge try five codes and live five minutes; wrong codes count towards the lockout", async () => {
		const { user, secret } = await enrolled();
		kit.clock.advance(60);
		// A lockout loose enough to see the challenge's own limit.
		const loose = { ...kit.deps, lockout: { ...kit.deps.lockout, account: { ...kit.deps.lockout.account, maxFailures: 100 } } };
		const token = await challenge(user.email);
		for (let i = 0; i < 5; i++) expect((await failure(completeMfaLogin(loose, { mfaToken: token, code: "000000" }, from("203.0.113.21")))).type).toBe("INVALID_MFA_CODE");
		expect((await failure(completeMfaLogin(loose, { mfaToken: token, code: totpCode(secret, kit.clock.now()) }, from("203.0.113.21")))).type).toBe("INVALID_MFA_TOKEN");
		const late = await challenge(user.email);
		kit.clock.advance(301);
		expect((await failure(completeMfaLogin(loose, { mfaToken: late, code: totpCode(secret, kit.clock.now()) }, from("203.0.113.21")))).type).toBe("INVALID_MFA_TOKEN");

		// With the real policy (3 here), wrong codes lock the account as wrong passwords do.
		const other = await enrolled();
		kit.clock.advance(60);
		const guessed = await challenge(other.user.email);
		for (let i = 0; i < 3; i++) await failure(completeMfaLogin(kit.deps, { mfaToken: guessed, code: "000000" }, from("203.0.113.22")));
		expect((await failure(completeMfaLogin(kit.deps, { mfaToken: guessed, code: totpCode(other.secret, kit.clock.now()) }, from("203.0.113.22")))).type).toBe("TOO_MANY_LOGIN_ATTEMPTS");
		// Whoever typed them had the password: the owner is told, once, with the time the lock ends.
		const told = (await outboxEvents(kit.pool, "user.mfa_locked")).filter((e) => e.subject === other.user.id);
		expect(told).toHaveLength(1);
		expect(Date.parse((told[0]!.data as { lockedUntil: string }).lockedUntil)).toBe(kit.clock.now().getTime() + 60_000);
	});

	it("ends the account's other sessions when it turns on, and pending logins when the password changes", async () => {
		const user = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const elsewhere = await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		const here = await login(kit.deps, { email: user.email, password: PASSWORD }, req);
		const sid = async (t: string) => ((await verifyAccessToken(kit.deps.keys, kit.deps.settings, t, kit.clock.now())) as { claims: { sid: string } }).claims.sid;
		const caller = { userId: user.id, sessionId: await sid(here.accessToken) };
		const { secret } = await startTotpEnrolment(kit.deps, caller, { password: PASSWORD }, req);
		kit.revoked.length = 0;
		await confirmTotpEnrolment(kit.deps, kit.hooks, caller, { code: totpCode(secret, kit.clock.now()) }, req);
		expect(kit.revoked.map((r) => r.sessionId)).toEqual([await sid(elsewhere.accessToken)]);

		// A reset ends a login halfway through, and does not clear wrong-code counts.
		kit.clock.advance(60);
		const pending = await challenge(user.email);
		for (let i = 0; i < 2; i++) await failure(completeMfaLogin(kit.deps, { mfaToken: pending, code: "000000" }, from("203.0.113.23")));
		await forgotPassword(kit.deps, user.email, req);
		await resetPassword(kit.deps, kit.hooks, { token: await lastLinkToken(kit.pool, "user.password_reset_requested", user.id), password: PASSWORD }, req);
		expect((await failure(completeMfaLogin(kit.deps, { mfaToken: pending, code: totpCode(secret, kit.clock.now()) }, req))).type).toBe("INVALID_MFA_TOKEN");
		const next = await challenge(user.email);
		await failure(completeMfaLogin(kit.deps, { mfaToken: next, code: "000000" }, from("203.0.113.23")));
		// The third wrong code (policy: 3) locked the second factor, reset or not.
		expect((await failure(completeMfaLogin(kit.deps, { mfaToken: next, code: totpCode(secret, kit.clock.now()) }, from("203.0.113.23")))).type).toBe("TOO_MANY_LOGIN_ATTEMPTS");
	});

	it("takes each recovery code once, in any case and with or without dashes", async () => {
		const { user, recoveryCodes } = await enrolled();
		const [first, second] = recoveryCodes as [string, string];
		expect((await completeMfaLogin(kit.deps, { mfaToken: await challenge(user.email), recoveryCode: first.toUpperCase().replaceAll("-", " ") }, req)).accessToken).toBeTruthy();
		expect((await failure(completeMfaLogin(kit.deps, { mfaToken: await challenge(user.email), recoveryCode: first }, req))).type).toBe("INVALID_MFA_CODE");
		expect((await completeMfaLogin(kit.deps, { mfaToken: await challenge(user.email), recoveryCode: second }, req)).accessToken).toBeTruthy();
	});

	it("turns off with the password and a code (or a recovery code); login gives tokens again", async () => {
		const { user, caller, secret, recoveryCodes } = await enrolled();
		expect((await failure(disableTotp(kit.deps, caller, { password: "not the password", code: totpCode(secret, kit.clock.now()) }, req))).type).toBe("VALIDATION_ERROR");
		const noCode = await failure(disableTotp(kit.deps, caller, { password: PASSWORD, code: "000000" }, req));
		expect([noCode.code, noCode.type]).toEqual([400, "VALIDATION_ERROR"]);
		expect((await getProfile(kit.deps, user.id)).mfaEnabled).toBe(true);
		await disableTotp(kit.deps, caller, { password: PASSWORD, recoveryCode: recoveryCodes[3] }, req);
		expect((await getProfile(kit.deps, user.id)).mfaEnabled).toBe(false);
		expect((await login(kit.deps, { email: user.email, password: PASSWORD }, req)).accessToken).toBeTruthy();
		expect((await failure(disableTotp(kit.deps, caller, { password: PASSWORD, code: totpCode(secret, kit.clock.now()) }, req))).type).toBe("MFA_NOT_ENABLED");
		expect((await outboxEvents(kit.pool, "user.mfa_disabled")).filter((e) => e.subject === user.id)).toHaveLength(1);
	});

	it("counts wrong codes per client IP too: one IP trying codes across accounts is stopped", async () => {
		// An account policy loose enough that only the IP's (6 in 10 minutes) can lock.
		const loose = { ...kit.deps, lockout: { ...kit.deps.lockout, account: { ...kit.deps.lockout.account, maxFailures: 100 } } };
		const attacker = from("198.51.100.66");
		const [a, b] = [await enrolled(), await enrolled()];
		kit.clock.advance(60);
		for (const victim of [a, b]) {
			const token = await challenge(victim.user.email);
			for (let i = 0; i < 3; i++) expect((await failure(completeMfaLogin(loose, { mfaToken: token, code: "000000" }, attacker))).type).toBe("INVALID_MFA_CODE");
		}
		const locked = await failure(completeMfaLogin(loose, { mfaToken: await challenge(b.user.email), code: totpCode(b.secret, kit.clock.now()) }, attacker));
		expect([locked.code, locked.type]).toEqual([429, "TOO_MANY_LOGIN_ATTEMPTS"]);
		// The accounts themselves are not locked: their owners, elsewhere, sign in.
		expect((await completeMfaLogin(loose, { mfaToken: await challenge(b.user.email), code: totpCode(b.secret, kit.clock.now()) }, from("192.0.2.10"))).accessToken).toBeTruthy();
	});

	it("makes ten new recovery codes with the password and a code; the old ones stop working and the owner is told", async () => {
		const { user, caller, secret, recoveryCodes } = await enrolled();
		await completeMfaLogin(kit.deps, { mfaToken: await challenge(user.email), recoveryCode: recoveryCodes[0]! }, req);
		expect((await getProfile(kit.deps, user.id)).recoveryCodesLeft).toBe(9);
		kit.clock.advance(60);
		expect((await failure(regenerateRecoveryCodes(kit.deps, caller, { password: "not the password", code: totpCode(secret, kit.clock.now()) }, req))).type).toBe("VALIDATION_ERROR");
		const wrong = await failure(regenerateRecoveryCodes(kit.deps, caller, { password: PASSWORD, code: "000000" }, from("203.0.113.24")));
		expect([wrong.code, wrong.type]).toEqual([400, "VALIDATION_ERROR"]);
		const fresh = await regenerateRecoveryCodes(kit.deps, caller, { password: PASSWORD, code: totpCode(secret, kit.clock.now()) }, req);
		expect(fresh.recoveryCodes).toHaveLength(10);
		expect(fresh.recoveryCodes.filter((c) => recoveryCodes.includes(c))).toEqual([]);
		expect((await getProfile(kit.deps, user.id)).recoveryCodesLeft).toBe(10);
		expect((await failure(completeMfaLogin(kit.deps, { mfaToken: await challenge(user.email), recoveryCode: recoveryCodes[1]! }, from("203.0.113.24")))).type).toBe("INVALID_MFA_CODE");
		expect((await completeMfaLogin(kit.deps, { mfaToken: await challenge(user.email), recoveryCode: fresh.recoveryCodes[0]! }, req)).accessToken).toBeTruthy();
		expect((await outboxEvents(kit.pool, "user.mfa_recovery_codes_regenerated")).filter((e) => e.subject === user.id)).toHaveLength(1);

		// Without two-step login there are none to replace.
		const plain = await registerUser(kit.deps, { email: email(), password: PASSWORD }, req);
		const none = await failure(regenerateRecoveryCodes(kit.deps, { userId: plain.id, sessionId: caller.sessionId }, { password: PASSWORD, code: "123456" }, req));
		expect([none.code, none.type]).toEqual([409, "MFA_NOT_ENABLED"]);
		expect((await getProfile(kit.deps, plain.id)).recoveryCodesLeft).toBe(0);
	});

	it("lets an administrator turn off a user's second factor only for users whose permissions they hold", async () => {
		const target = await enrolled();
		await bootstrapAdmin(kit.deps, target.user.email, req);
		// A helpdesk role that may manage users but is not an administrator.
		const helpdesk = { userId: "00000000-0000-4000-8000-00000000f00d", actorId: "00000000-0000-4000-8000-00000000f00d", actorPermissions: ["users:read", "users:write"] };
		const refused = await failure(resetSecondFactor(kit.deps, kit.hooks, { ...helpdesk, userId: target.user.id }, req));
		expect([refused.code, refused.type]).toEqual([403, "MISSING_PERMISSION"]);
		expect((await getProfile(kit.deps, target.user.id)).mfaEnabled).toBe(true);
		kit.revoked.length = 0;
		await resetSecondFactor(kit.deps, kit.hooks, { userId: target.user.id, actorId: null, operator: "ops@bastion" }, req);
		expect((await getProfile(kit.deps, target.user.id)).mfaEnabled).toBe(false);
		expect(kit.revoked.map((r) => r.sessionId)).toContain(target.caller.sessionId);
	});
});
