/**
 * Passkeys on real PostgreSQL through the domain modules, answered by a software authenticator
 * (test/support/soft-authenticator.ts): adding one needs the password and tells the user; signing
 * in needs no e-mail address and counts as two factors; every ceremony's challenge answers once
 * and expires; an answer for another site, without user verification, over another challenge or
 * from a cloned key (its counter going back) is refused; a user's passkeys are theirs alone.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerUser } from "../../services/auth/accounts.ts";
import { listUsers } from "../../services/auth/directory.ts";
import { housekeeping } from "../../services/auth/housekeeping.ts";
import { confirmTotpEnrolment, resetSecondFactor, startTotpEnrolment } from "../../services/auth/mfa-enrolment.ts";
import { finishPasskeyLogin, finishPasskeyRegistration, listPasskeys, MAX_PASSKEYS_PER_USER, PASSKEY_CEREMONY_TTL_S, removePasskey, startPasskeyLogin, startPasskeyRegistration } from "../../services/auth/passkeys.ts";
import { verifyAccessToken } from "../../services/auth/tokens.ts";
import { authKit, outboxEvents, TEST_SETTINGS } from "../support/auth.ts";
import type { AuthKit } from "../support/auth.ts";
import { failure } from "../support/infra.ts";
import { SoftAuthenticator } from "../support/soft-authenticator.ts";
import { totpCode } from "../support/totp.ts";

const req = { clientIp: "203.0.113.30", requestId: "req-passkey" };
const PASSWORD = "violet staple kettle";
const ORIGIN = TEST_SETTINGS.webauthn.origins[0]!;

let kit: AuthKit;
let counter = 0;

beforeAll(async () => {
	kit = await authKit();
});
afterAll(async () => {
	await kit?.close();
});

async function user() {
	const u = await registerUser(kit.deps, { email: `passkey${++counter}.${Date.now()}@example.com`, password: PASSWORD }, req);
	return { ...u, caller: { userId: u.id, sessionId: "00000000-0000-4000-8000-000000000000" } };
}

/** A user with one passkey on a software authenticator. */
async function withPasskey(name = "MacBook") {
	const u = await user();
	const device = new SoftAuthenticator();
	const { flowId, options } = await startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD }, req);
	const passkey = await finishPasskeyRegistration(kit.deps, u.caller, { flowId, name, credential: device.create(options, { origin: ORIGIN }) }, req);
	return { ...u, device, passkey };
}

async function signIn(device: SoftAuthenticator, answer: Parameters<SoftAuthenticator["get"]>[1] = { origin: ORIGIN }) {
	const { flowId, options } = await startPasskeyLogin(kit.deps);
	return finishPasskeyLogin(kit.deps, kit.hooks, { flowId, credential: device.get(options, answer) }, req);
}

describe("passkeys", () => {
	it("are added after the password, discoverable and user-verified, and the user is told", async () => {
		const u = await user();
		expect((await failure(startPasskeyRegistration(kit.deps, u.caller, { password: "not it" }, req))).type).toBe("VALIDATION_ERROR");
		const { flowId, options } = await startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD }, req);
		expect(options).toMatchObject({
			rp: { id: "app.test", name: "Backplane" },
			user: { name: u.email },
			attestation: "none",
			authenticatorSelection: { residentKey: "required", userVerification: "required" },
			excludeCredentials: [],
		});
		const device = new SoftAuthenticator();
		const added = await finishPasskeyRegistration(kit.deps, u.caller, { flowId, name: "  YubiKey  ", credential: device.create(options, { origin: ORIGIN }) }, req);
		expect(added).toMatchObject({ name: "YubiKey", synced: false, lastUsedAt: null, transports: ["internal"] });
		expect(await listPasskeys(kit.pool, u.id)).toEqual([added]);
		const told = (await outboxEvents<{ passkeyName: string }>(kit.pool, "user.passkey_added")).filter((e) => e.subject === u.id);
		expect(told.map((e) => e.data)).toEqual([{ userId: u.id, email: u.email, name: null, passkeyName: "YubiKey", at: kit.clock.now().toISOString() }]);

		// A second one is made with the first excluded (that device is not asked again).
		const again = await startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD }, req);
		expect(again.options.excludeCredentials).toEqual([{ id: device.passkeys[0]!.credentialId.toString("base64url"), type: "public-key", transports: ["internal"] }]);
		expect(again.options.user.id).toBe(options.user.id);
	});

	it("refuse to be added from another site, without user verification, for another challenge, twice, or over a spent or stale request", async () => {
		const u = await user();
		const device = new SoftAuthenticator();
		const attempt = async (answer: Parameters<SoftAuthenticator["create"]>[1], reuse?: { flowId: string; options: Awaited<ReturnType<typeof startPasskeyRegistration>>["options"] }) => {
			const { flowId, options } = reuse ?? (await startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD }, req));
			return failure(finishPasskeyRegistration(kit.deps, u.caller, { flowId, credential: device.create(options, answer) }, req));
		};
		for (const answer of [{ origin: "https://evil.example" }, { origin: ORIGIN, userVerified: false }, { origin: ORIGIN, challenge: "c29tZXRoaW5nIGVsc2U" }, { origin: ORIGIN, credentialIdBytes: 8 }, { origin: ORIGIN, credentialIdBytes: 1_100 }]) {
			const err = await attempt(answer);
			expect([err.code, err.type], JSON.stringify(answer)).toEqual([400, "VALIDATION_ERROR"]);
		}
		// The request of a failed attempt is spent: it cannot be answered again.
		const flow = await startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD }, req);
		await attempt({ origin: "https://evil.example" }, flow);
		expect((await attempt({ origin: ORIGIN }, flow)).type).toBe("PASSKEY_CEREMONY_EXPIRED");
		// Stale after five minutes.
		const stale = await startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD }, req);
		kit.clock.advance(PASSKEY_CEREMONY_TTL_S + 1);
		expect((await attempt({ origin: ORIGIN }, stale)).type).toBe("PASSKEY_CEREMONY_EXPIRED");
		// Someone else's request.
		const other = await user();
		const theirs = await startPasskeyRegistration(kit.deps, other.caller, { password: PASSWORD }, req);
		expect((await attempt({ origin: ORIGIN }, theirs)).type).toBe("PASSKEY_CEREMONY_EXPIRED");
		expect(await listPasskeys(kit.pool, u.id)).toEqual([]);

		// The same credential twice (a replayed answer under a new request) is one passkey.
		const first = await startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD }, req);
		const credential = device.create(first.options, { origin: ORIGIN });
		await finishPasskeyRegistration(kit.deps, u.caller, { flowId: first.flowId, credential }, req);
		const second = await startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD }, req);
		const replayed = { ...credential, response: { ...credential.response, clientDataJSON: Buffer.from(JSON.stringify({ type: "webauthn.create", challenge: second.options.challenge, origin: ORIGIN })).toString("base64url") } };
		expect((await failure(finishPasskeyRegistration(kit.deps, u.caller, { flowId: second.flowId, credential: replayed }, req))).type).toBe("PASSKEY_ALREADY_REGISTERED");
		expect(await listPasskeys(kit.pool, u.id)).toHaveLength(1);
	});

	it("sign in without an e-mail address or a code, as two factors, and record their use", async () => {
		const { id, device, passkey } = await withPasskey();
		// An authenticator app is on too: a passkey is two factors already, no code is asked.
		const caller = { userId: id, sessionId: "00000000-0000-4000-8000-000000000000" };
		const { secret } = await startTotpEnrolment(kit.deps, caller, { password: PASSWORD }, req);
		await confirmTotpEnrolment(kit.deps, kit.hooks, caller, { code: totpCode(secret, kit.clock.now()) }, req);
		const pair = await signIn(device);
		const check = await verifyAccessToken(kit.deps.keys, kit.deps.settings, pair.accessToken, kit.clock.now());
		expect(check).toMatchObject({ valid: true, claims: { sub: id, amr: ["pop", "mfa"] } });
		expect((await listPasskeys(kit.pool, id))[0]).toMatchObject({ id: passkey.id, lastUsedAt: kit.clock.now().toISOString() });
		const { rows } = await kit.pool.query("SELECT details FROM audit_log WHERE user_id = $1 AND action = 'login' AND outcome = 'success'", [id]);
		expect(rows.map((r: { details: unknown }) => r.details)).toEqual([{ method: "passkey", passkeyId: passkey.id }]);
	});

	it("refuse a sign-in from another site, without user verification, over a spent or stale challenge, or by a passkey removed", async () => {
		const { device, caller } = await withPasskey();
		const refused = async (answer: Parameters<SoftAuthenticator["get"]>[1]) => {
			const err = await failure(signIn(device, answer));
			expect([err.code, err.type], JSON.stringify(answer)).toEqual([401, "INVALID_PASSKEY"]);
		};
		await refused({ origin: "https://evil.example" });
		await refused({ origin: ORIGIN, userVerified: false });
		await refused({ origin: ORIGIN, challenge: "b2xkIGNoYWxsZW5nZQ" });

		const { flowId, options } = await startPasskeyLogin(kit.deps);
		const answer = device.get(options, { origin: ORIGIN });
		await finishPasskeyLogin(kit.deps, kit.hooks, { flowId, credential: answer }, req);
		expect((await failure(finishPasskeyLogin(kit.deps, kit.hooks, { flowId, credential: device.get(options, { origin: ORIGIN }) }, req))).type).toBe("INVALID_PASSKEY");
		const stale = await startPasskeyLogin(kit.deps);
		kit.clock.advance(PASSKEY_CEREMONY_TTL_S + 1);
		expect((await failure(finishPasskeyLogin(kit.deps, kit.hooks, { flowId: stale.flowId, credential: device.get(stale.options, { origin: ORIGIN }) }, req))).type).toBe("INVALID_PASSKEY");

		const [mine] = await listPasskeys(kit.pool, caller.userId);
		await removePasskey(kit.deps, caller, mine!.id, req);
		// It was the last second factor: the sessions it opened count as password-only from their next refresh.
		const { rows } = await kit.pool.query<{ amr: string[] }>("SELECT amr FROM sessions WHERE user_id = $1 AND revoked_at IS NULL", [caller.userId]);
		expect(rows.length).toBeGreaterThan(0);
		expect(rows.every((r) => r.amr.join() === "pwd")).toBe(true);
		await refused({ origin: ORIGIN });
		const told = (await outboxEvents<{ passkeyName: string }>(kit.pool, "user.passkey_removed")).filter((e) => e.subject === caller.userId);
		expect(told.map((e) => e.data.passkeyName)).toEqual(["MacBook"]);
	});

	it("turn off a passkey whose copy signed in (its counter went back), for the copy and the original, and tell the user", async () => {
		const { id, device } = await withPasskey("YubiKey");
		await signIn(device);
		await signIn(device);
		// Right after a sign-in, a lower counter may be the same device's other tab: refused, nothing turned off.
		expect((await failure(signIn(device, { origin: ORIGIN, counter: 1 }))).type).toBe("INVALID_PASSKEY");
		expect((await listPasskeys(kit.pool, id))[0]).toMatchObject({ disabled: false });
		kit.clock.advance(60);
		const before = kit.revoked.length;
		const cloned = await failure(signIn(device, { origin: ORIGIN, counter: 1 }));
		expect([cloned.code, cloned.type]).toEqual([401, "INVALID_PASSKEY"]);
		expect(cloned.message).toContain("a copy of it was used");
		expect((await listPasskeys(kit.pool, id))[0]).toMatchObject({ disabled: true });
		const told = (await outboxEvents<{ passkeyName: string }>(kit.pool, "user.passkey_disabled")).filter((e) => e.subject === id);
		expect(told.map((e) => e.data.passkeyName)).toEqual(["YubiKey"]);
		// The copy may have signed in first: both sessions the passkey opened have ended, and gateways are told.
		expect(kit.revoked.slice(before).filter((r) => r.userId === id)).toHaveLength(2);
		// The genuine device is refused too now: which of the two is the copy cannot be told.
		expect((await failure(signIn(device))).message).toContain("turned off");

		// Without the key, a low counter proves nothing: an answer whose signature is forged turns nothing off.
		const other = await withPasskey();
		await signIn(other.device);
		const { flowId, options } = await startPasskeyLogin(kit.deps);
		const forged = other.device.get(options, { origin: ORIGIN, counter: 0 });
		forged.response.signature = Buffer.from("not a signature of this key at all").toString("base64url");
		expect((await failure(finishPasskeyLogin(kit.deps, kit.hooks, { flowId, credential: forged }, req))).type).toBe("INVALID_PASSKEY");
		expect((await listPasskeys(kit.pool, other.id))[0]).toMatchObject({ disabled: false });
		await signIn(other.device);
	});

	it("are the owner's alone to remove, and an account holds a bounded number", async () => {
		const ada = await withPasskey();
		const bob = await user();
		expect((await failure(removePasskey(kit.deps, bob.caller, ada.passkey.id, req))).code).toBe(404);
		expect(await listPasskeys(kit.pool, ada.id)).toHaveLength(1);

		const add = async (flow: Awaited<ReturnType<typeof startPasskeyRegistration>>) => finishPasskeyRegistration(kit.deps, ada.caller, { flowId: flow.flowId, credential: new SoftAuthenticator().create(flow.options, { origin: ORIGIN }) }, req);
		for (let i = 2; i < MAX_PASSKEYS_PER_USER; i++) await add(await startPasskeyRegistration(kit.deps, ada.caller, { password: PASSWORD }, req));
		// One place left, two registrations begun side by side: one of them gets it.
		const flows = [await startPasskeyRegistration(kit.deps, ada.caller, { password: PASSWORD }, req), await startPasskeyRegistration(kit.deps, ada.caller, { password: PASSWORD }, req)];
		const outcomes = await Promise.allSettled(flows.map(add));
		expect(outcomes.map((o) => o.status).sort()).toEqual(["fulfilled", "rejected"]);
		expect(((outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult).reason as { type: string }).type).toBe("TOO_MANY_PASSKEYS");
		expect(await listPasskeys(kit.pool, ada.id)).toHaveLength(MAX_PASSKEYS_PER_USER);
		expect((await failure(startPasskeyRegistration(kit.deps, ada.caller, { password: PASSWORD }, req))).type).toBe("TOO_MANY_PASSKEYS");
	});

	it("need the app's code too when two-step login is on, since a passkey skips it at login", async () => {
		const u = await user();
		const { secret } = await startTotpEnrolment(kit.deps, u.caller, { password: PASSWORD }, req);
		await confirmTotpEnrolment(kit.deps, kit.hooks, u.caller, { code: totpCode(secret, kit.clock.now()) }, req);
		const missing = await failure(startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD }, req));
		expect([missing.code, missing.type, (missing.data as { errors: { field: string }[] }).errors[0]?.field]).toEqual([400, "VALIDATION_ERROR", "code"]);
		expect((await failure(startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD, code: "000000" }, req))).type).toBe("VALIDATION_ERROR");
		kit.clock.advance(30);
		const { flowId, options } = await startPasskeyRegistration(kit.deps, u.caller, { password: PASSWORD, code: totpCode(secret, kit.clock.now()) }, req);
		await finishPasskeyRegistration(kit.deps, u.caller, { flowId, credential: new SoftAuthenticator().create(options, { origin: ORIGIN }) }, req);
		expect(await listPasskeys(kit.pool, u.id)).toHaveLength(1);
	});

	it("go with an administrator's reset of a user's two-step login (the lost phone may hold one)", async () => {
		const { id, device } = await withPasskey();
		const admin = { actorId: null, operator: "ops" };
		// The administration sees the passkeys of a user without an authenticator app.
		const listed = async () => (await listUsers(kit.pool, { query: id, limit: 1 }, kit.clock.now())).items[0];
		expect(await listed()).toMatchObject({ mfaEnabled: false, passkeys: 1 });
		await resetSecondFactor(kit.deps, kit.hooks, { userId: id, ...admin }, req);
		expect(await listed()).toMatchObject({ mfaEnabled: false, passkeys: 0 });
		expect(await listPasskeys(kit.pool, id)).toEqual([]);
		expect((await failure(signIn(device))).type).toBe("INVALID_PASSKEY");
		const told = (await outboxEvents<{ by: string; passkeysRemoved: number }>(kit.pool, "user.mfa_disabled")).filter((e) => e.subject === id);
		expect(told.map((e) => e.data)).toEqual([expect.objectContaining({ by: "administrator", passkeysRemoved: 1 })]);
		// Nothing left to reset.
		expect((await failure(resetSecondFactor(kit.deps, kit.hooks, { userId: id, ...admin }, req))).type).toBe("MFA_NOT_ENABLED");
	});

	it("leave no challenge behind: ones never answered are swept by housekeeping", async () => {
		await startPasskeyLogin(kit.deps);
		kit.clock.advance(2 * 86_400);
		expect((await housekeeping(kit.pool, kit.clock.now())).deleted.webauthn_challenges).toBeGreaterThanOrEqual(1);
		expect((await kit.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM webauthn_challenges")).rows[0]!.n).toBe(0);
	});
});
