/** The password policy (NIST SP 800-63B) and the password hashing scheme, without a database. */
import bcrypt from "bcrypt";
import { afterEach, describe, expect, it } from "vitest";
import { commonPasswords, contextWords, hashPassword, limitHashing, passwordProblems, verifyAgainstDummy, verifyPassword } from "../../services/auth/passwords.ts";

const types = (password: string, context = {}) => passwordProblems(password, context).map((p) => p.type);

describe("password policy", () => {
	it("ships a list of thousands of common passwords, all long enough to pass the length rule", () => {
		const list = commonPasswords();
		expect(list.size).toBeGreaterThan(10_000);
		expect(list.has("password")).toBe(true);
		expect(list.has("iloveyou")).toBe(true);
		expect([...list].every((p) => p.length >= 8 && p === p.toLowerCase())).toBe(true);
	});

	it("accepts any composition from 8 to 128 characters, counted in code points", () => {
		expect(types("correct horse battery staple")).toEqual([]);
		expect(types("ÄÖÜ ßéè ŵŷ")).toEqual([]);
		expect(types("🔑🌍🎈🚀🧩🦊🍀🎯")).toEqual([]);
		expect(types("🔑🌍🎈🚀")).toEqual(["passwordTooShort"]);
		expect(types("s".repeat(7))).toEqual(["passwordTooShort"]);
		expect(types(`${"long pass phrase ".repeat(7)}ok`.slice(0, 128))).toEqual([]);
		expect(types("x".repeat(129))).toEqual(["passwordTooLong"]);
	});

	it("refuses common passwords whatever their case or trailing digits and symbols", () => {
		expect(types("PassWord")).toEqual(["passwordCommon"]);
		expect(types("password2024!")).toEqual(["passwordCommon"]);
		expect(types("Sunshine1")).toEqual(["passwordCommon"]);
	});

	it("refuses repeated and sequential patterns", () => {
		for (const p of ["aaaaaaaaaa", "abababababab", "qrstuvwxyz", "9876543210"]) expect(types(p)).toEqual(["passwordTrivial"]);
	});

	it("refuses the documented context words: the e-mail, its parts, the name, the service", () => {
		const context = { email: "ada.lovelace+news@analytical.org", name: "Ada Lovelace" };
		expect(contextWords(context).sort()).toEqual(["ada.lovelace+news", "ada.lovelace+news@analytical.org", "analytical", "backplane", "lovelace", "news"].sort());
		expect(types("my lovelace engine", context)).toEqual(["passwordContext"]);
		expect(types("analytical machine", context)).toEqual(["passwordContext"]);
		expect(types("welcome to backplane")).toEqual(["passwordContext"]);
		expect(types("difference engine no 2", context)).toEqual([]);
	});
});

describe("password hashing", () => {
	it("uses every character: passwords that differ only after byte 72 do not match", async () => {
		const base = "é".repeat(40);
		const stored = await hashPassword(`${base}one`, 4);
		expect(stored).toMatch(/^bcrypt-sha256\$\$2b\$04\$/);
		expect(await verifyPassword(`${base}one`, stored, 4)).toEqual({ ok: true, needsRehash: false });
		expect((await verifyPassword(`${base}two`, stored, 4)).ok).toBe(false);
		// Plain bcrypt would have accepted it: that is the flaw the pre-hash removes.
		expect(await bcrypt.compare(`${base}two`, await bcrypt.hash(`${base}one`, 4))).toBe(true);
	});

	it("verifies the same password typed in another Unicode normal form, and is case-sensitive", async () => {
		const stored = await hashPassword("Cafe\u0301 au lait", 4);
		expect((await verifyPassword("Caf\u00e9 au lait", stored, 4)).ok).toBe(true);
		expect((await verifyPassword("café au lait", stored, 4)).ok).toBe(false);
	});

	it("asks for a rehash when the cost changed or the hash predates the pre-hash", async () => {
		expect((await verifyPassword("some passphrase", await hashPassword("some passphrase", 4), 5)).needsRehash).toBe(true);
		expect(await verifyPassword("some passphrase", await bcrypt.hash("some passphrase", 4), 4)).toEqual({ ok: true, needsRehash: true });
		expect(await verifyAgainstDummy("anything at all", 4)).toEqual({ ok: false, needsRehash: false });
	});
});

describe("the password hashing gate", () => {
	afterEach(() => limitHashing({ concurrency: 4, queue: 64 }));

	it("runs `concurrency` hashes, queues `queue` more, and refuses the rest at once with 429 and a retry time", async () => {
		limitHashing({ concurrency: 1, queue: 2 });
		const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => hashPassword(`passphrase number ${i}`, 6)));
		expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
		const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as { code: number; type: string; data: unknown; retryable: boolean });
		expect(refused).toHaveLength(3);
		for (const err of refused) expect(err).toMatchObject({ code: 429, type: "TOO_MANY_PASSWORD_CHECKS", data: { retryAfterS: 1 }, retryable: true });
		// The slots came back: the next burst within the limits all passes.
		const next = await Promise.allSettled(Array.from({ length: 3 }, (_, i) => verifyAgainstDummy(`again ${i}`, 6)));
		expect(next.every((r) => r.status === "fulfilled")).toBe(true);
	});
});
