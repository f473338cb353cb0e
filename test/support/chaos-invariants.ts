/**
 * The invariants of reliability scenario 1, read from the real servers after a chaos run:
 * every account the client was told exists (201, or 409 on a retry) exists exactly once in auth,
 * and nobody else; each has exactly one trial subscription (billing, MongoDB), exactly one welcome
 * e-mail (Mailpit) and exactly one welcome in-app alert (through the gateway); auth's outbox is
 * fully published; billing holds no unrelayed events; the run's event queues are empty.
 */
import { MongoClient } from "mongodb";
import pg from "pg";
import { mailCountsForDomain, namespaceQueues, pool } from "./chaos.ts";

export interface InvariantReport {
	expected: number;
	authUsers: number;
	missingInAuth: string[];
	unexpectedInAuth: string[];
	trials: { ok: number; none: string[]; multiple: string[] };
	welcomeMails: { ok: number; none: string[]; multiple: string[] };
	welcomeAlerts: { ok: number; none: string[]; multiple: string[] };
	outboxUnpublished: number;
	outboxRows: number;
	billingPendingEvents: number;
	queues: { name: string; messages: number }[];
	deadLettered: number;
}

export interface CheckTarget {
	namespace: string;
	domain: string;
	authDatabaseUrl: string;
	mongoUrl: string;
	gatewayUrl: string;
	password: string;
	emails: string[];
}

const tally = (expected: string[], count: (key: string) => number) => {
	const none: string[] = [];
	const multiple: string[] = [];
	for (const k of expected) {
		const n = count(k);
		if (n === 0) none.push(k);
		else if (n > 1) multiple.push(k);
	}
	return { ok: expected.length - none.length - multiple.length, none, multiple };
};

export async function checkInvariants(t: CheckTarget): Promise<InvariantReport> {
	const expected = new Set(t.emails.map((e) => e.toLowerCase()));

	const db = new pg.Client({ connectionString: t.authDatabaseUrl });
	await db.connect();
	let users: { id: string; email: string }[];
	let outbox: { total: number; unpublished: number };
	try {
		users = (await db.query<{ id: string; email: string }>("SELECT id, email::text AS email FROM users WHERE email::text LIKE $1", [`%@${t.domain}`])).rows;
		const row = (await db.query<{ total: string; unpublished: string }>("SELECT count(*) AS total, count(*) FILTER (WHERE published_at IS NULL) AS unpublished FROM outbox_events")).rows[0]!;
		outbox = { total: Number(row.total), unpublished: Number(row.unpublished) };
	} finally {
		await db.end();
	}
	const idByEmail = new Map(users.map((u) => [u.email.toLowerCase(), u.id]));

	const mongo = new MongoClient(t.mongoUrl, { serverSelectionTimeoutMS: 10_000 });
	let subsByUser: Map<string, number>;
	let pending = 0;
	try {
		await mongo.connect();
		const ids = users.map((u) => u.id);
		const subs = await mongo.db().collection("subscriptions").find({ userId: { $in: ids } }, { projection: { userId: 1, status: 1, pendingEvents: 1 } }).toArray();
		subsByUser = new Map();
		for (const s of subs) {
			if (s.status === "trialing") subsByUser.set(String(s.userId), (subsByUser.get(String(s.userId)) ?? 0) + 1);
			pending += Array.isArray(s.pendingEvents) ? s.pendingEvents.length : 0;
		}
	} finally {
		await mongo.close();
	}

	const mails = await mailCountsForDomain(t.domain, /welcome/i);

	// The in-app inbox, read as the user would: log in, list alerts.
	const alerts = new Map<string, number>();
	await pool([...expected].filter((e) => idByEmail.has(e)), 8, async (email) => {
		const login = await fetch(`${t.gatewayUrl}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: t.password }), signal: AbortSignal.timeout(10_000) });
		if (login.status !== 200) throw new Error(`login of ${email}: ${login.status}`);
		const { accessToken } = (await login.json()) as { accessToken: string };
		const res = await fetch(`${t.gatewayUrl}/api/v1/notifications?limit=50`, { headers: { authorization: `Bearer ${accessToken}` }, signal: AbortSignal.timeout(10_000) });
		if (res.status !== 200) throw new Error(`inbox of ${email}: ${res.status}`);
		const body = (await res.json()) as { items?: { title: string }[]; data?: { title: string }[] };
		alerts.set(email, (body.items ?? body.data ?? []).filter((a) => /welcome/i.test(a.title)).length);
	});

	const queues = (await namespaceQueues(t.namespace)).filter((q) => q.name.startsWith(`${t.namespace}.`)).map((q) => ({ name: q.name, messages: q.messages ?? 0 }));
	const list = [...expected];
	return {
		expected: expected.size,
		authUsers: users.length,
		missingInAuth: list.filter((e) => !idByEmail.has(e)),
		unexpectedInAuth: users.map((u) => u.email.toLowerCase()).filter((e) => !expected.has(e)),
		trials: tally(list, (e) => subsByUser.get(idByEmail.get(e) ?? "") ?? 0),
		welcomeMails: tally(list, (e) => mails.counts.get(e) ?? 0),
		welcomeAlerts: tally(list, (e) => alerts.get(e) ?? 0),
		outboxUnpublished: outbox.unpublished,
		outboxRows: outbox.total,
		billingPendingEvents: pending,
		queues,
		deadLettered: queues.filter((q) => q.name.includes(".dead-letter.")).reduce((n, q) => n + q.messages, 0),
	};
}

/** True when every invariant holds. */
export function invariantsHold(r: InvariantReport): boolean {
	return (
		r.missingInAuth.length === 0 &&
		r.unexpectedInAuth.length === 0 &&
		r.authUsers === r.expected &&
		r.trials.ok === r.expected &&
		r.welcomeMails.ok === r.expected &&
		r.welcomeAlerts.ok === r.expected &&
		r.outboxUnpublished === 0 &&
		r.billingPendingEvents === 0 &&
		r.queues.filter((q) => !q.name.includes(".dead-letter.")).every((q) => q.messages === 0)
	);
}

export function describeReport(r: InvariantReport): string {
	const few = (xs: string[]) => (xs.length ? ` (${xs.slice(0, 3).join(", ")}${xs.length > 3 ? ", ..." : ""})` : "");
	const line = (what: string, t: { ok: number; none: string[]; multiple: string[] }) => `  ${what}: exactly one for ${t.ok}/${r.expected}; none ${t.none.length}${few(t.none)}; more than one ${t.multiple.length}${few(t.multiple)}`;
	const busy = r.queues.filter((q) => q.messages > 0);
	return [
		`  accounts: client saw ${r.expected}, auth has ${r.authUsers}; missing ${r.missingInAuth.length}${few(r.missingInAuth)}; unexpected ${r.unexpectedInAuth.length}${few(r.unexpectedInAuth)}`,
		line("trial subscriptions", r.trials),
		line("welcome e-mails", r.welcomeMails),
		line("welcome in-app alerts", r.welcomeAlerts),
		`  auth outbox: ${r.outboxRows} rows, ${r.outboxUnpublished} unpublished; billing pending events: ${r.billingPendingEvents}`,
		`  event queues of the run: ${r.queues.length}, holding messages: ${busy.length ? busy.map((q) => `${q.name}=${q.messages}`).join(", ") : "none"}; dead-lettered: ${r.deadLettered}`,
	].join("\n");
}
