/**
 * Event-path benchmarks: the durable relay (outbox in PostgreSQL -> RabbitMQ with confirms ->
 * @moleculer/channels consumer) against raw amqplib publish-with-confirms + consume, and the
 * end-to-end latency of `user.created` (register -> trial stored and welcome e-mail in the sink).
 */
import http from "node:http";
import path from "node:path";
import amqp from "amqplib";
import { MongoClient } from "mongodb";
import { ServiceBroker } from "moleculer";
import pg from "pg";
import { loadConfig } from "../lib/config.ts";
import { createCloudEvent } from "../lib/events/cloudevents.ts";
import { OutboxRelay, RELAY_DEFAULTS } from "../lib/events/outbox-relay.ts";
import { pgOutboxStore } from "../lib/events/pg-outbox.ts";
import { AmqpEventPublisher } from "../lib/events/publisher.ts";
import { migrateUp } from "../lib/migrations.ts";
import { eventHandlersMixin, eventQueueNames } from "../mixins/events.mixin.ts";
import { brokerOptions } from "../moleculer.config.ts";
import { createTestDatabase, dropTestDatabase } from "../test/support/infra.ts";

const AUTH_MIGRATIONS = path.resolve(import.meta.dirname, "..", "services", "auth", "migrations");
/** The relay's batch in production (outboxMixin's default). */
const RELAY_BATCH = 100;
const BENCH_TYPE = "bench.relayed";
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Resolves after `n` calls of the returned `hit`, or rejects after `timeoutMs`. */
function countdown(n: number, timeoutMs: number, what: string): { hit: () => void; done: Promise<void> } {
	let left = n;
	let hit = () => undefined as void;
	const done = new Promise<void>((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`${what}: ${left} of ${n} missing after ${timeoutMs} ms`)), timeoutMs);
		hit = () => {
			if (--left === 0) {
				clearTimeout(timer);
				resolve();
			}
		};
	});
	return { hit: () => hit(), done };
}

/**
 * Baseline: `n` persistent messages published on a confirm channel in batches of the relay's size
 * (each batch waits for its confirms), consumed and acked from a durable queue. Messages per second.
 */
export async function rawAmqpRate(url: string, namespace: string, n: number): Promise<number> {
	const connection = await amqp.connect(url, { noDelay: true });
	try {
		const queue = `${namespace}.bench.raw`;
		const consumer = await connection.createChannel();
		await consumer.assertQueue(queue, { durable: true });
		await consumer.prefetch(100);
		const received = countdown(n, 120_000, "raw amqplib");
		const payload = Buffer.from(JSON.stringify(createCloudEvent({ type: BENCH_TYPE, source: "/bench", data: { i: 0 } })));
		await consumer.consume(queue, (msg) => {
			if (!msg) return;
			consumer.ack(msg);
			received.hit();
		});
		const publisher = await connection.createConfirmChannel();
		const started = performance.now();
		for (let sent = 0; sent < n; sent += RELAY_BATCH) {
			for (let i = sent; i < Math.min(n, sent + RELAY_BATCH); i++) publisher.sendToQueue(queue, payload, { persistent: true, contentType: "application/json" });
			await publisher.waitForConfirms();
		}
		await received.done;
		const rate = n / ((performance.now() - started) / 1000);
		await consumer.deleteQueue(queue);
		return rate;
	} finally {
		await connection.close();
	}
}

/**
 * The platform's path: `n` events committed to a fresh outbox table (auth's migrations), relayed
 * by the production OutboxRelay and AmqpEventPublisher, consumed by a node with the production
 * broker options and eventHandlersMixin (envelope check, ack). Events per second, from the
 * relay's start to the last consumed event.
 */
export async function outboxRelayRate(env: Record<string, string>, namespace: string, n: number): Promise<number> {
	const dbUrl = await createTestDatabase();
	const pool = new pg.Pool({ connectionString: dbUrl, max: 4 });
	// The database is dropped WITH (FORCE) at the end: a connection it ends must not crash the bench.
	pool.on("error", () => undefined);
	const consumed = countdown(n, 120_000, "outbox relay + consume");
	const config = loadConfig({ ...env, SERVICES: "gateway", NODE_ID: `bench-consumer-${namespace}`, NAMESPACE: namespace });
	const broker = new ServiceBroker({ ...brokerOptions(config), logger: false, metrics: false });
	broker.createService({
		name: "bench-consumer",
		mixins: [eventHandlersMixin({ handlers: { [BENCH_TYPE]: "onRelayed" } })],
		methods: { async onRelayed() { consumed.hit(); } },
	});
	const publisher = new AmqpEventPublisher(env.RABBITMQ_URL!, namespace);
	try {
		await migrateUp(dbUrl, AUTH_MIGRATIONS, quiet);
		await broker.start();
		const rows = Array.from({ length: n }, (_, i) => createCloudEvent({ type: BENCH_TYPE, source: "/bench", subject: `e${i}`, data: { i } }));
		await pool.query("INSERT INTO outbox_events (id, type, envelope) SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[])", [rows.map((e) => e.id), rows.map((e) => e.type), rows.map((e) => JSON.stringify(e))]);
		const relay = new OutboxRelay(pgOutboxStore(pool), (entries) => publisher.publish(entries), { published: () => undefined, failed: () => undefined }, { ...RELAY_DEFAULTS, batchSize: RELAY_BATCH });
		const started = performance.now();
		relay.start();
		await consumed.done;
		const rate = n / ((performance.now() - started) / 1000);
		await relay.stop();
		return rate;
	} finally {
		await publisher.close();
		await broker.stop();
		await deleteQueues(env.RABBITMQ_URL!, namespace);
		await pool.end();
		await dropTestDatabase(dbUrl);
	}
}

async function deleteQueues(url: string, namespace: string): Promise<void> {
	const { queue, deadLetter } = eventQueueNames(namespace, "bench-consumer", BENCH_TYPE);
	const connection = await amqp.connect(url);
	const channel = await connection.createChannel();
	for (const q of [queue, deadLetter]) await channel.deleteQueue(q).catch(() => undefined);
	for (const x of [`${namespace}.${BENCH_TYPE}`, `${namespace}.dead-letter.${BENCH_TYPE}`]) await channel.deleteExchange(x).catch(() => undefined);
	await connection.close().catch(() => undefined);
}

export interface Percentiles {
	p50: number;
	p95: number;
	p99: number;
	max: number;
}

export interface EndToEnd {
	count: number;
	/** Registrations that did not answer 201 (left out of the latencies), by status. */
	failed: Record<string, number>;
	/** Until the gateway answered 201 (what happens before any event). */
	answered: Percentiles;
	/** Until both the trial and the e-mail exist; then each on its own. */
	both: Percentiles;
	trial: Percentiles;
	mail: Percentiles;
}

function percentiles(values: number[]): Percentiles {
	const sorted = [...values].sort((a, b) => a - b);
	const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? NaN;
	return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted.at(-1) ?? NaN };
}

/**
 * The load's HTTP client. It shares the two cores with everything it measures, and `fetch`
 * cost 2.4 ms of CPU per registration against 1.35 ms for node:http on a keep-alive agent.
 */
const loadAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
function postJson(url: string, body: string, timeoutMs: number): Promise<{ status: number; body: string }> {
	return new Promise((resolve, reject) => {
		const req = http.request(url, { method: "POST", agent: loadAgent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
			let text = "";
			res.setEncoding("utf8");
			res.on("data", (chunk: string) => (text += chunk));
			res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
		});
		req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
		req.on("error", reject);
		req.end(body);
	});
}

/**
 * Registers `perSecond` users a second for `seconds` through the gateway (open loop: each on its
 * schedule, whatever the previous one does), then, per user, the time from sending the request
 * to the later of its trial stored in billing's database and its welcome e-mail in Mailpit.
 */
export async function userCreatedLatency(opts: { gateway: string; mongoUrl: string; mailpitUrl: string; perSecond: number; seconds: number; domain: string }): Promise<EndToEnd> {
	const total = opts.perSecond * opts.seconds;
	const sentAt = new Map<string, number>();
	const answeredIn: number[] = [];
	const userIds = new Map<string, string>(); // user id -> e-mail
	const failed: Record<string, number> = {};
	const started = Date.now();
	await Promise.all(
		Array.from({ length: total }, async (_, i) => {
			await new Promise((r) => setTimeout(r, Math.max(0, started + (i * 1000) / opts.perSecond - Date.now())));
			const email = `e2e${i}@${opts.domain}`;
			const t0 = Date.now();
			const res = await postJson(`${opts.gateway}/api/v1/auth/register`, JSON.stringify({ email, password: "correct horse battery staple 42" }), 30_000);
			const body = JSON.parse(res.body) as { user?: { id: string }; code?: string };
			if (res.status !== 201) {
				const key = `${res.status} ${body.code ?? ""}`.trim();
				failed[key] = (failed[key] ?? 0) + 1;
				return;
			}
			answeredIn.push(Date.now() - t0);
			sentAt.set(email, t0);
			userIds.set(body.user!.id, email);
		}),
	);
	const expected = sentAt.size;

	const deadline = Date.now() + 60_000;
	const mongo = new MongoClient(opts.mongoUrl);
	try {
		// The times come from the stores (billing's createdAt, Mailpit's Created), so how often this
		// polls does not change them; it only must not load Mailpit and FerretDB while they work:
		// count cheaply until everything is there, then read the whole lists once.
		while (Date.now() < deadline && ((await countTrials(mongo, userIds)) < expected || (await countMails(opts.mailpitUrl, opts.domain)) < expected * 2)) {
			await new Promise((r) => setTimeout(r, 500));
		}
		const subs = await mongo.db().collection<{ userId: string; createdAt: Date }>("subscriptions").find({ userId: { $in: [...userIds.keys()] } }, { projection: { userId: 1, createdAt: 1 } }).toArray();
		const trials = new Map(subs.map((s) => [userIds.get(s.userId)!, s.createdAt.getTime()]));
		const mails = await mailTimes(opts.mailpitUrl, opts.domain);
		if (trials.size < expected || mails.size < expected) throw new Error(`after 60 s: ${trials.size}/${expected} trials, ${mails.size}/${expected} welcome e-mails`);
		const users = [...sentAt];
		return {
			count: users.length,
			failed,
			answered: percentiles(answeredIn),
			both: percentiles(users.map(([email, t0]) => Math.max(trials.get(email)!, mails.get(email)!) - t0)),
			trial: percentiles(users.map(([email, t0]) => trials.get(email)! - t0)),
			mail: percentiles(users.map(([email, t0]) => mails.get(email)! - t0)),
		};
	} finally {
		await mongo.close();
	}
}

async function countTrials(mongo: MongoClient, userIds: Map<string, string>): Promise<number> {
	return mongo.db().collection("subscriptions").countDocuments({ userId: { $in: [...userIds.keys()] } });
}

/** Mails of every kind to `domain` (a welcome and a verification e-mail per user). */
async function countMails(mailpitUrl: string, domain: string): Promise<number> {
	const res = await fetch(`${mailpitUrl}/api/v1/search?query=${encodeURIComponent(`to:"@${domain}"`)}&limit=1`);
	return ((await res.json()) as { messages_count: number }).messages_count;
}

/** When each welcome e-mail to `domain` reached Mailpit, by recipient. */
async function mailTimes(mailpitUrl: string, domain: string): Promise<Map<string, number>> {
	const times = new Map<string, number>();
	for (let start = 0, page = 0; page < 50; page++) {
		const res = await fetch(`${mailpitUrl}/api/v1/search?query=${encodeURIComponent(`to:"@${domain}"`)}&start=${start}&limit=500`);
		const body = (await res.json()) as { messages: { Subject: string; Created: string; To: { Address: string }[] }[]; messages_count: number };
		for (const m of body.messages) if (/^Welcome/.test(m.Subject)) times.set(m.To[0]!.Address.toLowerCase(), Date.parse(m.Created));
		start += body.messages.length;
		if (body.messages.length === 0 || start >= body.messages_count) break;
	}
	return times;
}
