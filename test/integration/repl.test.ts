/**
 * The operator's REPL commands against a running cluster: each one does what `help` says, on
 * real servers, from a node that hosts no service (as `npm run repl` does).
 */
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import { MongoClient } from "mongodb";
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { operatorReplCommands } from "../../bin/repl-commands.ts";
import type { ReplCommand } from "../../bin/repl-commands.ts";
import { brokerOptions } from "../../moleculer.config.ts";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { eventQueueNames } from "../../mixins/events.mixin.ts";
import { createTestDatabase, eventually, gatewayUrl, infra, startNode, testConfig, testEnv, uniqueId, waitForCluster } from "../support/infra.ts";
import { totpCode } from "../support/totp.ts";

describe("REPL commands", () => {
	const nodes: ServiceBroker[] = [];
	let env: Record<string, string>;
	let repl: ServiceBroker;
	let base: string;
	const commands = new Map(operatorReplCommands({ rabbitmqUrl: infra.rabbitmqUrl }).map((c) => [c.command.split(" ")[0]!, c] as [string, ReplCommand]));

	/** Runs a command as the REPL would and returns what it printed. */
	async function run(name: string, args: Record<string, unknown> = {}): Promise<string> {
		const out: string[] = [];
		const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
		try {
			await commands.get(name)!.action(repl, { options: {}, ...args });
		} finally {
			spy.mockRestore();
		}
		return out.join("");
	}

	beforeAll(async () => {
		env = testEnv(uniqueId("repl"), { DATABASE_URL: await createTestDatabase() });
		nodes.push(await startNode(["auth"], env), await startNode(["notification"], env), await startNode(["billing"], env));
		const gateway = await startNode(["gateway"], env);
		nodes.push(gateway);
		repl = new ServiceBroker(brokerOptions(testConfig({ ...env, NODE_ID: uniqueId("repl-") }), { logger: false }));
		await repl.start();
		await waitForCluster([...nodes, repl]);
		base = gatewayUrl(gateway);
	});
	afterAll(async () => {
		await repl?.stop();
		await Promise.all(nodes.map((n) => n.stop()));
	});

	it("lists every command in help with a description", () => {
		for (const name of ["user-find", "user-roles", "user-sessions-revoke", "user-mfa-reset", "invoice-credit", "keys-rotate", "outbox", "event-replay", "breakers", "queues", "events-dead-letters", "events-replay", "health", "notifications-failed", "notifications-retry"]) {
			expect(commands.get(name)?.description.length).toBeGreaterThan(10);
		}
	});

	it("finds a user, changes their roles, turns off their two-step login and ends their sessions", async () => {
		const email = `${uniqueId("op")}@example.com`;
		const password = "correct horse battery staple 42";
		const json = { "content-type": "application/json" };
		expect((await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: json, body: JSON.stringify({ email, password }) })).status).toBe(201);
		const { accessToken } = (await (await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: json, body: JSON.stringify({ email, password }) })).json()) as { accessToken: string };

		const found = JSON.parse(await run("user-find", { user: email })) as { email: string; roles: string[]; activeSessions: number };
		expect(found).toMatchObject({ email, roles: ["user"], activeSessions: 1 });
		expect(await run("user-roles", { user: email, roles: ["user", "admin"] })).toContain('"admin"');
		expect(((JSON.parse(await run("user-find", { user: email })) as { roles: string[] }).roles).sort()).toEqual(["admin", "user"]);

		expect((await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status).toBe(200);
		// Two-step login on, then the user loses every factor: the operator turns it off.
		const authed = { ...json, authorization: `Bearer ${accessToken}` };
		const { secret } = (await (await fetch(`${base}/api/v1/auth/mfa/totp`, { method: "POST", headers: authed, body: JSON.stringify({ password }) })).json()) as { secret: string };
		expect((await fetch(`${base}/api/v1/auth/mfa/totp/confirm`, { method: "POST", headers: authed, body: JSON.stringify({ code: totpCode(secret) }) })).status).toBe(200);
		const login = () => fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: json, body: JSON.stringify({ email, password }) });
		expect((await login()).status).toBe(403);
		expect(await run("user-mfa-reset", { user: email })).toContain("two-step login turned off");
		expect((await login()).status).toBe(200);
		// The reset ended the sessions it had (one may be on the lost phone): the one the password alone just opened is left.
		expect(await run("user-sessions-revoke", { user: email })).toContain("1 session(s) ended");
		await eventually(async () => (await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status === 401 || undefined, 5_000, "the token to be refused");
	});

	it("gives money back on a paid invoice, and a retry with the printed key gives the same note", async () => {
		const mongo = new MongoClient(env.MONGO_URL!, { retryWrites: false });
		try {
			const invoiceId = `in_repl_${randomUUID()}`;
			await mongo.db().collection("invoices").insertOne({ _id: invoiceId as never, number: "2026-000777", numberKey: `repl-${invoiceId}`, userId: "u-repl", status: "paid", currency: "usd", amountPaid: 1_500, stripeInvoiceId: null, stripePaymentIntentId: "pi_3MtwBwLkdIwHu7ix28a3tqPa", createdAt: new Date() });
			// A typo is refused, not read as "all that is left".
			expect(await run("invoice-credit", { invoiceId, reason: "duplicate", options: { amount: "12,50" } })).toContain("--amount takes minor units");
			const printed = await run("invoice-credit", { invoiceId, reason: "duplicate", options: { amount: "400", memo: "charged twice" } });
			// The key comes first, so a run that times out can be retried with it.
			expect(printed).toMatch(/^idempotency key repl-[0-9a-f-]{36}\ncredit note CN-\d{4}-\d{6}: issued, 400 usd\n$/);
			const key = /^idempotency key (\S+)/.exec(printed)![1]!;
			expect(await run("invoice-credit", { invoiceId, reason: "duplicate", options: { amount: "400", key } })).toBe(printed);
			expect(await mongo.db().collection("credit_notes").countDocuments({ invoiceId })).toBe(1);
		} finally {
			await mongo.close();
		}
	});

	it("rotates the signing key", async () => {
		const printed = await run("keys-rotate");
		expect(printed).toMatch(/now signing with key [A-Za-z0-9_-]{16,}/);
	});

	it("shows the outbox and replays an event that consumers then apply once", async () => {
		const email = `${uniqueId("replay")}@example.com`;
		const reg = await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: "correct horse battery staple 42" }) });
		const userId = ((await reg.json()) as { user: { id: string } }).user.id;
		// The cluster has billing too: its trial brings a "subscription started" alert beside the welcome.
		await eventually(async () => ((await repl.call<{ title: string }[], object>("notification.listAlerts", { userId })).some((a) => /welcome/i.test(a.title)) ? true : undefined), 10_000, "the welcome alert");
		const listing = await eventually(async () => {
			const text = await run("outbox");
			return text.includes("0 event(s) waiting") ? text : undefined;
		}, 10_000, "every event relayed");
		const eventId = /([0-9a-f-]{36})\s+user\.created/.exec(listing)![1]!;
		expect(await run("event-replay", { eventId })).toContain(`user.created ${eventId} queued`);
		await eventually(async () => ((await run("outbox")).includes("0 event(s) waiting") ? true : undefined), 10_000, "the replay to be relayed");
		await new Promise((r) => setTimeout(r, 500));
		const alerts = await repl.call<{ title: string }[], object>("notification.listAlerts", { userId });
		expect(alerts.filter((a) => /welcome/i.test(a.title))).toHaveLength(1);
	});

	it("shows circuit breakers and platform health", async () => {
		expect(await run("breakers")).toMatch(/all circuits closed/);
		const health = JSON.parse(await run("health")) as { services: Record<string, { status: string }> };
		expect(health.services.auth?.status).toBe("up");
	});

	it("shows the depth of every event queue, its dead letters and the notification jobs", async () => {
		const email = `${uniqueId("queues")}@example.com`;
		await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: "correct horse battery staple 42" }) });
		// The welcome e-mail is a completed job in BullMQ once it reached the SMTP server.
		await eventually(async () => /notification email: .*completed [1-9]/.test(await run("queues")), 15_000, "a completed e-mail job");

		// One message parked in a dead-letter queue shows up in its depth.
		const { queue, deadLetter } = eventQueueNames(repl.namespace, "notification", "user.created");
		const connection = await amqp.connect(infra.rabbitmqUrl);
		try {
			const channel = await connection.createChannel();
			channel.sendToQueue(deadLetter, Buffer.from("{}"));
			await eventually(async () => (await channel.checkQueue(deadLetter)).messageCount === 1, 5_000, "the parked message");
			const printed = await run("queues");
			expect(printed).toContain(`${queue}  0 message(s)  1 consumer(s)`);
			expect(printed).toContain(`${deadLetter}  1 message(s)  0 consumer(s)`);
			expect(printed).toMatch(/notification push: waiting \d+ {2}active \d+ {2}delayed \d+ {2}failed \d+ {2}completed \d+/);
			await channel.purgeQueue(deadLetter);
		} finally {
			await connection.close();
		}
	});

	it("lists event dead letters and replays them to the consumer that failed on them", async () => {
		const userId = randomUUID();
		const event = createCloudEvent({ type: "user.created", source: "/test", subject: userId, data: { userId, email: `${uniqueId("dl")}@example.com`, name: "Dee" } });
		const { deadLetter } = eventQueueNames(repl.namespace, "notification", "user.created");
		const connection = await amqp.connect(infra.rabbitmqUrl);
		try {
			// What @moleculer/channels does after a consumer's last failed attempt: the event, parked
			// with the consumer (group) and channel it came from.
			const channel = await connection.createChannel();
			channel.sendToQueue(deadLetter, Buffer.from(JSON.stringify(event)), { headers: { "x-original-group": "notification", "x-original-channel": `${repl.namespace}.user.created` } });
			await eventually(async () => (await channel.checkQueue(deadLetter)).messageCount === 1, 5_000, "the parked event");
		} finally {
			await connection.close();
		}
		const listed = await run("events-dead-letters");
		expect(listed).toContain("user.created: 1 dead letter(s)");
		expect(listed).toContain(`${event.id}  failed in notification`);
		// Looking does not take them away.
		expect(await run("events-dead-letters")).toContain("user.created: 1 dead letter(s)");

		expect(await run("events-replay", { type: "user.created" })).toContain("1 user.created event(s) replayed");
		const alerts = await eventually(async () => {
			const list = await repl.call<{ title: string }[], object>("notification.listAlerts", { userId });
			return list.length ? list : undefined;
		}, 10_000, "the replayed event's welcome alert");
		expect(alerts.map((a) => a.title)).toEqual([expect.stringMatching(/welcome/i)]);
		expect(await run("events-dead-letters")).toContain("user.created: 0 dead letter(s)");
	});
});
