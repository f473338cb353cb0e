/**
 * Login, throttling, refresh-token rotation and revocation, and introspection, on real
 * PostgreSQL through the domain modules, with a clock the tests move.
 */
import bcrypt from "bcrypt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerUser } from "../../services/auth/accounts.ts";
import { introspect, login, logout, refresh } from "../../services/auth/login.ts";
import type { TokenPair } from "../../services/auth/login.ts";
import { authKit, TEST_LOCKOUT } from "../support/auth.ts";
import type { AuthKit } from "../support/auth.ts";
import { failure } from "../support/infra.ts";

const PASSWORD = "violet staple kettle";

let kit: AuthKit;
let counter = 0;
let ipCounter = 0;
/** Each test logs in from its own address, so per-IP counting never leaks between tests. */
const request = () => ({ clientIp: `198.51.100.${++ipCounter}`, requestId: `req-${ipCounter}` });

async function newUser() {
	const email = `sess${++counter}.${Date.now()}@example.com`;
	const user = await registerUser(kit.deps, { email, password: PASSWORD }, request());
	return { ...user, email };
}

const sidOf = async (pair: TokenPair) => (await introspect(kit.deps, pair.accessToken)).sid!;

beforeAll(async () => {
	kit = await authKit();
});
afterAll(async () => {
	await kit?.close();
});

describe("login", () => {
	it("returns a Bearer pair whose access token carries the documented claims", async () => {
		const user = await newUser();
		const pair = await login(kit.deps, { email: user.email.toUpperCase(), password: PASSWORD }, request());
		expect(pair).toMatchObject({ tokenType: "Bearer", expiresIn: 900, refreshTokenExpiresIn: 7 * 86_400 });
		expect(pair.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
		const [header, payload] = pair.accessToken.split(".").slice(0, 2).map((p) => JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>);
		expect(header).toMatchObject({ alg: "EdDSA", typ: "at+jwt", kid: expect.any(String) as unknown });
		expect(Object.keys(payload!).sort()).toEqual(["amr", "aud", "exp", "iat", "iss", "jti", "nbf", "permissions", "roles", "sid", "sub"]);
		expect(payload!.amr).toEqual(["pwd"]);
		expect(payload).toMatchObject({ sub: user.id, iss: "http://auth.test", aud: "backplane-api", roles: ["user"], permissions: [] });
		expect((payload!.exp as number) - (payload!.iat as number)).toBe(900);
		const { rows } = await kit.pool.query<{ outcome: string; client_ip: string }>("SELECT outcome, client_ip FROM audit_log WHERE user_id = $1 AND action = 'login'", [user.id]);
		expect(rows).toEqual([{ outcome: "success", client_ip: expect.stringMatching(/^198\.51\.100\./) as unknown }]);
	});

	it("answers a wrong password and an unknown e-mail with the same 401, after the same bcrypt work", async () => {
		// At cost 10 one bcrypt comparison takes tens of milliseconds, far above the database work,
		// so an unknown e-mail that skipped it would answer several times faster.
		const deps = { ...kit.deps, settings: { ...kit.deps.settings, bcryptCost: 10 } };
		const timed = async (email: string) => {
			const started = performance.now();
			const err = await failure(login(deps, { email, password: "not the password" }, request()));
			return { err: [err.code, err.type, err.message], ms: performance.now() - started };
		};
		const known: number[] = [];
		const unknown: number[] = [];
		await timed(`warm-up${counter}@example.com`);
		for (let i = 0; i < 5; i++) {
			const email = `timing${++counter}.${Date.now()}@example.com`;
			await registerUser(deps, { email, password: PASSWORD }, request());
			const wrong = await timed(email);
			const ghost = await timed(`ghost${counter}@example.com`);
			expect(wrong.err).toEqual([401, "INVALID_CREDENTIALS", "The e-mail address or the password is not correct."]);
			expect(ghost.err).toEqual(wrong.err);
			known.push(wrong.ms);
			unknown.push(ghost.ms);
		}
		const median = (xs: number[]) => xs.sort((a, b) => a - b)[2]!;
		// Without the dummy hash an unknown address answers in about 1 ms against tens (ratio < 0.1):
		// the band only has to tell that apart from noise on a busy machine.
		expect(median(unknown) / median(known)).toBeGreaterThan(0.5);
		expect(median(unknown) / median(known)).toBeLessThan(2);
		const { rows } = await kit.pool.query<{ reason: string }>("SELECT details->>'reason' AS reason FROM audit_log WHERE action = 'login' AND outcome = 'failure' AND details->>'email' LIKE 'timing%'");
		expect(rows.map((r) => r.reason)).toEqual(Array(5).fill("wrong_password"));
	});

	it("locks the account after repeated failures (even with the right password), and lets it in again once the lock expires", async () => {
		const user = await newUser();
		for (let i = 0; i < TEST_LOCKOUT.account.maxFailures; i++) {
			expect((await failure(login(kit.deps, { email: user.email, password: `wrong ${i}` }, request()))).type).toBe("INVALID_CREDENTIALS");
		}
		const locked = await failure(login(kit.deps, { email: user.email, password: PASSWORD }, request()));
		expect([locked.code, locked.type, locked.data]).toEqual([429, "TOO_MANY_LOGIN_ATTEMPTS", { retryAfterS: TEST_LOCKOUT.account.lockS }]);
		kit.clock.advance(TEST_LOCKOUT.account.lockS - 1);
		expect((await failure(login(kit.deps, { email: user.email, password: PASSWORD }, request()))).type).toBe("TOO_MANY_LOGIN_ATTEMPTS");
		kit.clock.advance(1);
		expect((await login(kit.deps, { email: user.email, password: PASSWORD }, request())).tokenType).toBe("Bearer");
	});

	it("doubles the lockout when failures continue after one, and locks unknown e-mails the same way", async () => {
		const user = await newUser();
		const fail = (email: string) => failure(login(kit.deps, { email, password: "wrong" }, request()));
		for (const email of [user.email, `ghost-lock${counter}@example.com`]) {
			for (let i = 0; i < TEST_LOCKOUT.account.maxFailures; i++) await fail(email);
			expect((await fail(email)).data).toEqual({ retryAfterS: 60 });
			kit.clock.advance(60);
			for (let i = 0; i < TEST_LOCKOUT.account.maxFailures; i++) await fail(email);
			expect((await fail(email)).data).toEqual({ retryAfterS: 120 });
			kit.clock.advance(120);
		}
	});

	it("locks a client IP that fails across many accounts", async () => {
		const ip = { clientIp: "192.0.2.99" };
		for (let i = 0; i < TEST_LOCKOUT.ip.maxFailures; i++) await failure(login(kit.deps, { email: `spray${i}.${counter}@example.com`, password: "wrong" }, ip));
		const user = await newUser();
		const locked = await failure(login(kit.deps, { email: user.email, password: PASSWORD }, ip));
		expect([locked.code, locked.type]).toEqual([429, "TOO_MANY_LOGIN_ATTEMPTS"]);
		// The same account from another address is not affected.
		expect((await login(kit.deps, { email: user.email, password: PASSWORD }, request())).tokenType).toBe("Bearer");
		kit.clock.advance(TEST_LOCKOUT.ip.lockS);
		expect((await login(kit.deps, { email: user.email, password: PASSWORD }, ip)).tokenType).toBe("Bearer");
	});

	it("upgrades a legacy bcrypt hash (no pre-hash) on the next successful login", async () => {
		const user = await newUser();
		await kit.pool.query("UPDATE users SET password_hash = $2 WHERE id = $1", [user.id, await bcrypt.hash(PASSWORD, 4)]);
		await login(kit.deps, { email: user.email, password: PASSWORD }, request());
		const { rows } = await kit.pool.query<{ password_hash: string }>("SELECT password_hash FROM users WHERE id = $1", [user.id]);
		expect(rows[0]!.password_hash).toMatch(/^bcrypt-sha256\$/);
		expect((await login(kit.deps, { email: user.email, password: PASSWORD }, request())).tokenType).toBe("Bearer");
	});
});

describe("refresh tokens", () => {
	it("rotate on every use: the new pair works, the old refresh token is spent", async () => {
		const user = await newUser();
		const first = await login(kit.deps, { email: user.email, password: PASSWORD }, request());
		kit.clock.advance(60);
		const second = await refresh(kit.deps, kit.hooks, first.refreshToken, request());
		expect(second.refreshToken).not.toBe(first.refreshToken);
		expect(await sidOf(second)).toBe(await sidOf(first));
		const third = await refresh(kit.deps, kit.hooks, second.refreshToken, request());
		expect((await introspect(kit.deps, third.accessToken)).active).toBe(true);
	});

	it("revoke the whole family when a spent one is presented again", async () => {
		const user = await newUser();
		const first = await login(kit.deps, { email: user.email, password: PASSWORD }, request());
		const sid = await sidOf(first);
		const second = await refresh(kit.deps, kit.hooks, first.refreshToken, request());
		kit.revoked.length = 0;
		const replay = await failure(refresh(kit.deps, kit.hooks, first.refreshToken, request()));
		expect([replay.code, replay.type]).toEqual([401, "INVALID_REFRESH_TOKEN"]);
		expect(kit.revoked).toEqual([{ sessionId: sid, userId: user.id, expiresAt: new Date(kit.clock.now().getTime() + 900_000).toISOString() }]);
		// The legitimate holder's current token dies with the family, and so do its access tokens.
		expect((await failure(refresh(kit.deps, kit.hooks, second.refreshToken, request()))).type).toBe("INVALID_REFRESH_TOKEN");
		expect(await introspect(kit.deps, second.accessToken)).toEqual({ active: false });
		const { rows } = await kit.pool.query<{ revoked_reason: string }>("SELECT revoked_reason FROM sessions WHERE id = $1", [sid]);
		expect(rows[0]!.revoked_reason).toBe("refresh_token_reuse");
		const audit = await kit.pool.query<{ details: { reason: string } }>("SELECT details FROM audit_log WHERE action = 'token.refresh' AND outcome = 'failure' AND session_id = $1 ORDER BY id", [sid]);
		expect(audit.rows.map((r) => r.details.reason)).toEqual(["reused", "revoked"]);
	});

	it("expire after the idle timeout, and never outlive the session", async () => {
		const user = await newUser();
		const pair = await login(kit.deps, { email: user.email, password: PASSWORD }, request());
		kit.clock.advance(7 * 86_400);
		expect((await failure(refresh(kit.deps, kit.hooks, pair.refreshToken, request()))).type).toBe("INVALID_REFRESH_TOKEN");

		let current = await login(kit.deps, { email: user.email, password: PASSWORD }, request());
		for (let day = 0; day < 30; day += 6) {
			kit.clock.advance(6 * 86_400);
			const next = await refresh(kit.deps, kit.hooks, current.refreshToken, request()).catch(() => undefined);
			if (!next) break;
			expect(next.refreshTokenExpiresIn).toBeLessThanOrEqual(7 * 86_400);
			current = next;
		}
		kit.clock.advance(6 * 86_400);
		expect((await failure(refresh(kit.deps, kit.hooks, current.refreshToken, request()))).type).toBe("INVALID_REFRESH_TOKEN");
	});

	it("refuse garbage with the same 401", async () => {
		expect((await failure(refresh(kit.deps, kit.hooks, "garbage", request()))).type).toBe("INVALID_REFRESH_TOKEN");
	});
});

describe("logout and introspection", () => {
	it("logout ends this session only; logout all ends every one; each is broadcast", async () => {
		const user = await newUser();
		const a = await login(kit.deps, { email: user.email, password: PASSWORD }, request());
		const b = await login(kit.deps, { email: user.email, password: PASSWORD }, request());
		const c = await login(kit.deps, { email: user.email, password: PASSWORD }, request());
		const [sa, sb, sc] = [await sidOf(a), await sidOf(b), await sidOf(c)];
		kit.revoked.length = 0;
		expect(await logout(kit.deps, kit.hooks, { userId: user.id, sessionId: sa }, {}, request())).toEqual({ revokedSessions: 1 });
		expect(kit.revoked.map((r) => r.sessionId)).toEqual([sa]);
		expect(await introspect(kit.deps, a.accessToken)).toEqual({ active: false });
		expect((await introspect(kit.deps, b.accessToken)).active).toBe(true);
		expect((await failure(refresh(kit.deps, kit.hooks, a.refreshToken, request()))).type).toBe("INVALID_REFRESH_TOKEN");

		// A refresh token of someone else's session is not a way to end it.
		const other = await newUser();
		const theirs = await login(kit.deps, { email: other.email, password: PASSWORD }, request());
		expect(await logout(kit.deps, kit.hooks, { userId: user.id, sessionId: sb }, { refreshToken: theirs.refreshToken }, request())).toEqual({ revokedSessions: 0 });
		expect((await introspect(kit.deps, theirs.accessToken)).active).toBe(true);

		kit.revoked.length = 0;
		expect(await logout(kit.deps, kit.hooks, { userId: user.id, sessionId: sb }, { allSessions: true }, request())).toEqual({ revokedSessions: 2 });
		expect(kit.revoked.map((r) => r.sessionId).sort()).toEqual([sb, sc].sort());
		expect((await introspect(kit.deps, c.accessToken)).active).toBe(false);
	});

	it("introspection checks signature, issuer, expiry and the session", async () => {
		const user = await newUser();
		const pair = await login(kit.deps, { email: user.email, password: PASSWORD }, request());
		const live = await introspect(kit.deps, pair.accessToken);
		expect(live).toMatchObject({ active: true, sub: user.id, tokenType: "access_token", roles: ["user"], permissions: [], aud: "backplane-api", iss: "http://auth.test" });
		const [h, p, s] = pair.accessToken.split(".");
		const forged = JSON.parse(Buffer.from(p!, "base64url").toString()) as Record<string, unknown>;
		forged.roles = ["admin"];
		expect(await introspect(kit.deps, `${h}.${Buffer.from(JSON.stringify(forged)).toString("base64url")}.${s}`)).toEqual({ active: false });
		const none = `${Buffer.from(JSON.stringify({ alg: "none", typ: "at+jwt" })).toString("base64url")}.${p}.`;
		expect(await introspect(kit.deps, none)).toEqual({ active: false });
		expect(await introspect(kit.deps, "not.a.jwt")).toEqual({ active: false });
		kit.clock.advance(900 + 6);
		expect(await introspect(kit.deps, pair.accessToken)).toEqual({ active: false });
	});
});
