/**
 * The console's only way to the platform: the public REST API, as any client would use it.
 * Problem+json answers become ApiError; an expired access token is refreshed once, transparently.
 */
export interface Problem {
	status: number;
	code: string;
	detail: string;
	errors?: { field: string; message: string }[];
	/** MFA_REQUIRED: what the second step of the login sends back. */
	mfaToken?: string;
}

export class ApiError extends Error {
	readonly problem: Problem;
	constructor(problem: Problem) {
		super(problem.detail);
		this.problem = problem;
	}
	/** The message for one form field, when the API named it. */
	field(name: string): string | undefined {
		return this.problem.errors?.find((e) => e.field === name)?.message;
	}
}

interface Tokens {
	accessToken: string;
	refreshToken: string;
}

const STORAGE_KEY = "backplane.session";

export const session = {
	get(): Tokens | null {
		const raw = sessionStorage.getItem(STORAGE_KEY);
		return raw ? (JSON.parse(raw) as Tokens) : null;
	},
	set(tokens: Tokens | null): void {
		if (tokens) sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ accessToken: tokens.accessToken, refreshToken: tokens.refreshToken }));
		else sessionStorage.removeItem(STORAGE_KEY);
	},
};

async function problemOf(res: Response): Promise<Problem> {
	try {
		return (await res.json()) as Problem;
	} catch {
		return { status: res.status, code: "UNEXPECTED", detail: `The server answered ${res.status}.` };
	}
}

export async function api<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
	const tokens = session.get();
	const headers: Record<string, string> = {};
	if (body !== undefined) headers["content-type"] = "application/json";
	if (tokens) headers.authorization = `Bearer ${tokens.accessToken}`;
	const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
	if (res.status === 401 && tokens && !retried && (await refresh(tokens.refreshToken))) return api<T>(method, path, body, true);
	if (!res.ok) throw new ApiError(await problemOf(res));
	if (res.status === 204) return undefined as T;
	const type = res.headers.get("content-type") ?? "";
	return (type.includes("json") ? await res.json() : await res.text()) as T;
}

/** New tokens for this session now (after it set up a second factor, so its token says so). */
export const renewTokens = async (): Promise<boolean> => {
	const tokens = session.get();
	return tokens ? refresh(tokens.refreshToken) : false;
};

async function refresh(refreshToken: string): Promise<boolean> {
	const res = await fetch("/api/v1/auth/refresh", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refreshToken }) });
	if (!res.ok) {
		session.set(null);
		return false;
	}
	session.set((await res.json()) as Tokens);
	return true;
}

/**
 * Live alerts over Server-Sent Events. EventSource cannot send an Authorization header, so the
 * stream is read with fetch; it reconnects after a pause until `stop` is called.
 */
export function streamAlerts(onAlert: (data: { alert: Alert; unreadCount: number }) => void): () => void {
	const controller = new AbortController();
	const run = async () => {
		while (!controller.signal.aborted) {
			try {
				const tokens = session.get();
				if (!tokens) return;
				const res = await fetch("/api/v1/notifications/stream", { headers: { authorization: `Bearer ${tokens.accessToken}`, accept: "text/event-stream" }, signal: controller.signal });
				if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
				const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
				let buffer = "";
				for (;;) {
					const { value, done } = await reader.read();
					if (done) break;
					buffer += value;
					let end: number;
					while ((end = buffer.indexOf("\n\n")) >= 0) {
						const frame = buffer.slice(0, end);
						buffer = buffer.slice(end + 2);
						const data = frame.split("\n").find((l) => l.startsWith("data: "));
						if (frame.includes("event: alert") && data) onAlert(JSON.parse(data.slice(6)) as { alert: Alert; unreadCount: number });
					}
				}
			} catch {
				// Network hiccup or expired token: wait, then try again (the token may have been refreshed).
			}
			await new Promise((r) => setTimeout(r, 3_000));
		}
	};
	void run();
	return () => controller.abort();
}

export interface Alert {
	id: string;
	category: string;
	title: string;
	body: string;
	url?: string;
	createdAt: string;
	readAt: string | null;
}

export interface Me {
	id: string;
	email: string;
	name: string | null;
	emailVerified: boolean;
	roles: string[];
	permissions: string[];
	mfaEnabled: boolean;
	/** Recovery codes not used yet (0 while two-step login is off). */
	recoveryCodesLeft: number;
	/** Every account must have two-step login or a passkey (USERS_REQUIRE_MFA) and this session has neither yet. */
	secondFactorRequired: boolean;
}

export interface Plan {
	id: string;
	name: string;
	description?: string;
	prices?: { interval: string; currency: string; amount?: number; unitAmount?: number }[];
}

export interface Subscription {
	status: string;
	planId: string;
	trialEnd: string | null;
	currentPeriodEnd: string | null;
	cancelAtPeriodEnd: boolean;
	billedByStripe: boolean;
}

export interface Invoice {
	id: string;
	number: string | null;
	status: string;
	currency: string;
	total: number;
	amountDue: number;
	issuedAt?: string | null;
	createdAt?: string;
	/** Set on invoices Stripe collects: pay them on Stripe's page. */
	hostedInvoiceUrl: string | null;
	lastPaymentError: string | null;
	nextPaymentAttemptAt: string | null;
	/** Given back by credit notes (refunded to the card). */
	amountCredited: number;
}

/** An invoice as the administration sees it: what was credited and what can still be. */
export interface AdminInvoice extends Invoice {
	amountPaid: number;
	creditable: number;
	/** Refunds the bank sent back (reversed credit notes): still owed to the customer. */
	amountReturned: number;
}

export interface CreditNote {
	id: string;
	number: string;
	status: "pending" | "issued" | "failed" | "unconfirmed" | "reversed";
	currency: string;
	amount: number;
	failure?: string | null;
}

export interface Passkey {
	id: string;
	name: string;
	createdAt: string;
	/** Empty until it first signed in. */
	lastUsedAt: string;
	synced: boolean;
	transports: string[];
	/** Turned off after a copy of its key signed in. */
	disabled: boolean;
}

export interface Page<T> {
	items: T[];
	/** null or "" (over gRPC) on the last page. */
	nextCursor: string | null;
	unreadCount?: number;
}

export interface AdminUser {
	id: string;
	email: string;
	name: string;
	emailVerified: boolean;
	createdAt: string;
	roles: string[];
	activeSessions: number;
	mfaEnabled: boolean;
	passkeys: number;
}

export interface Role {
	name: string;
	description: string;
	permissions: string[];
	users: number;
}

export interface Price {
	id: string;
	currency: string;
	interval: string;
	model: string;
	unitAmount?: number;
	tiers?: { upTo: number | null; unitAmount: number; flatAmount: number }[];
}

/** A plan as administrators edit it (billing's planView). */
export interface AdminPlan {
	id: string;
	name: string;
	description: string;
	active: boolean;
	features: string[];
	trialDays: number | null;
	trialEndBehavior: string;
	downgradePlanId: string | null;
	sortOrder: number;
	prices: Price[];
}

/** A notification delivery that failed for good (a dead letter). */
export interface FailedJob {
	id: string;
	attempts: number;
	failedAt: number | null;
	failedReason: string;
	data: { eventType: string; userId: string; workflow: string };
}

export interface PushDevice {
	id: string;
	deviceName: string | null;
	createdAt: string;
	pushService: string;
}

/** A live session of the account: a device or browser where it is signed in. */
export interface AccountSession {
	id: string;
	createdAt: string;
	lastUsedAt: string;
	expiresAt: string;
	clientIp: string;
	current: boolean;
}
