/**
 * Passwords after NIST SP 800-63B: length over composition (8..128 characters, any characters),
 * refused when common (the shipped list, common-passwords.txt), trivially patterned, or built
 * from context words (the e-mail address, the name, the service). Stored as bcrypt over an
 * HMAC-SHA-256 pre-hash, so every character counts: bcrypt alone ignores what follows byte 72.
 */
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import bcrypt from "bcrypt";
import { AppError } from "../../lib/errors.ts";
import type { FieldError } from "../../lib/errors.ts";

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;
/** Words no password may contain, whoever the user is (ASVS 6.1.2). */
export const SERVICE_WORDS = ["backplane"];

const SCHEME = "bcrypt-sha256$";
/** Not a secret: it only makes our pre-hash differ from plain SHA-256 dumps (no "shucking"). */
const PREHASH_KEY = "backplane/password/v1";
const BLOCKLIST_FILE = path.join(import.meta.dirname, "common-passwords.txt");
/** Context words shorter than this are not matched inside passwords (too many false hits). */
const MIN_CONTEXT_WORD = 4;

let blocklist: Set<string> | undefined;

/** The shipped list of common passwords, lower case (loaded once). */
export function commonPasswords(): Set<string> {
	blocklist ??= new Set(
		readFileSync(BLOCKLIST_FILE, "utf8")
			.split("\n")
			.map((line) => line.trim())
			.filter((line) => line && !line.startsWith("#")),
	);
	return blocklist;
}

/** Unicode normalisation (NFKC), the only change made to a password before it is hashed. */
const normalize = (password: string) => password.normalize("NFKC");

export interface PasswordContext {
	email?: string;
	name?: string | null;
}

/** Why `password` may not be chosen; empty when it may. */
export function passwordProblems(password: string, context: PasswordContext, field = "password"): FieldError[] {
	const normalized = normalize(password);
	const length = [...normalized].length;
	const problem = (type: string, message: string) => [{ field, type, message }];
	if (length < PASSWORD_MIN_LENGTH) return problem("passwordTooShort", `The password must be at least ${PASSWORD_MIN_LENGTH} characters long.`);
	if (length > PASSWORD_MAX_LENGTH) return problem("passwordTooLong", `The password must be at most ${PASSWORD_MAX_LENGTH} characters long.`);
	const lower = normalized.toLowerCase();
	const common = commonPasswords();
	if (common.has(lower) || common.has(lower.replace(/[\d\W_]+$/u, ""))) {
		return problem("passwordCommon", "This password is among the most commonly used ones; choose a less predictable one.");
	}
	if (isTrivial(lower)) return problem("passwordTrivial", "The password is a repeated or sequential pattern; choose a less predictable one.");
	if (contextWords(context).some((word) => lower.includes(word))) {
		return problem("passwordContext", "The password must not contain your e-mail address, your name or the service name.");
	}
	return [];
}

/** Repetitions of a short pattern ("aaaaaaaa", "abcabcabc") or a run ("abcdefgh", "98765432"). */
function isTrivial(password: string): boolean {
	if (/^(.{1,3})\1+$/u.test(password)) return true;
	const codes = [...password].map((c) => c.codePointAt(0)!);
	const step = codes[1]! - codes[0]!;
	return Math.abs(step) === 1 && codes.every((c, i) => i === 0 || c - codes[i - 1]! === step);
}

/** The documented context words for one user (ASVS 6.1.2): e-mail, its parts, name parts, service. */
export function contextWords(context: PasswordContext): string[] {
	const words = new Set(SERVICE_WORDS);
	const email = context.email?.toLowerCase();
	if (email) {
		const [local = "", domain = ""] = email.split("@");
		for (const w of [email, local, ...local.split(/[._+-]/), domain.split(".")[0] ?? ""]) words.add(w);
	}
	for (const w of context.name?.toLowerCase().normalize("NFKC").split(/\s+/) ?? []) words.add(w);
	return [...words].filter((w) => [...w].length >= MIN_CONTEXT_WORD);
}

const prehash = (password: string) => createHmac("sha256", PREHASH_KEY).update(normalize(password), "utf8").digest("base64");

/**
 * bcrypt runs in libuv's thread pool, one per process, so this gate is one per process too. A
 * burst of sign-ins would queue there without bound, each waiting request holding its connection
 * until it times out upstream after the work was done anyway. The gate lets `concurrency` hashes
 * run and `queue` more wait; past that a password operation is refused at once with 429 and
 * Retry-After, which the gRPC client neither retries nor counts against the circuit.
 */
class HashingGate {
	active = 0;
	readonly waiting: (() => void)[] = [];
	readonly concurrency: number;
	readonly queue: number;
	constructor(concurrency: number, queue: number) {
		this.concurrency = concurrency;
		this.queue = queue;
	}
}

let gate = new HashingGate(4, 64);

/** Sets the gate (auth's `created`): AUTH_HASH_CONCURRENCY, AUTH_HASH_QUEUE. */
export function limitHashing(opts: { concurrency: number; queue: number }): void {
	gate = new HashingGate(opts.concurrency, opts.queue);
}

export const hashingBusy = () => new AppError(429, "TOO_MANY_PASSWORD_CHECKS", "Too many sign-ins are being checked right now; try again in a second.", { retryAfterS: 1 }, true);

async function gated<T>(work: () => Promise<T>): Promise<T> {
	const g = gate;
	if (g.active < g.concurrency) g.active++;
	else if (g.waiting.length < g.queue) await new Promise<void>((resolve) => g.waiting.push(resolve)); // a finishing hash hands its slot over
	else throw hashingBusy();
	try {
		return await work();
	} finally {
		const next = g.waiting.shift();
		if (next) next();
		else g.active--;
	}
}

export async function hashPassword(password: string, cost: number): Promise<string> {
	return SCHEME + (await gated(() => bcrypt.hash(prehash(password), cost)));
}

export interface PasswordCheck {
	ok: boolean;
	/** Stored with another scheme or cost than today's: hash it again while we have the password. */
	needsRehash: boolean;
}

export async function verifyPassword(password: string, stored: string, cost: number): Promise<PasswordCheck> {
	if (stored.startsWith(SCHEME)) {
		const hash = stored.slice(SCHEME.length);
		return { ok: await gated(() => bcrypt.compare(prehash(password), hash)), needsRehash: bcrypt.getRounds(hash) !== cost };
	}
	// Accounts created before the pre-hash: bcrypt over the raw password.
	return { ok: await gated(() => bcrypt.compare(password, stored)), needsRehash: true };
}

const dummies = new Map<number, Promise<string>>();

/** The hash unknown e-mails are checked against; call once at start so no login pays for it. */
export function dummyHash(cost: number): Promise<string> {
	let dummy = dummies.get(cost);
	if (!dummy) dummies.set(cost, (dummy = hashPassword(randomBytes(24).toString("base64"), cost)));
	return dummy;
}

/**
 * Spends the same bcrypt work as a real check and fails: used for unknown e-mails so that
 * "no such account" and "wrong password" take the same time.
 */
export async function verifyAgainstDummy(password: string, cost: number): Promise<PasswordCheck> {
	await verifyPassword(password, await dummyHash(cost), cost);
	return { ok: false, needsRehash: false };
}
