/**
 * `npm run bench`: each target of the brief measured as a ratio against a baseline measured in
 * the same run on the same machine, so the numbers mean the same on any machine. Prints a table
 * and a verdict per target; it is a measurement, not a test, and always exits 0 when it ran.
 *
 *   BENCH_SECONDS=10 npm run bench     (default 5 s per load run)
 *   BENCH_EVENTS=5000                  (events for relay + consume)
 *   BENCH_ONLY=login,e2e               (only these rows: get, introspection, login, mail, relay, e2e;
 *                                       the idle memory rows always run)
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Client as GrpcClient, credentials } from "@grpc/grpc-js";
import autocannon from "autocannon";
import bcrypt from "bcrypt";
import nodemailer from "nodemailer";
import { MongoClient } from "mongodb";
import { createCloudEvent } from "../lib/events/cloudevents.ts";
import { AmqpEventPublisher } from "../lib/events/publisher.ts";
import { serviceDefinition } from "../lib/protos.ts";
import { ProcessCluster, deleteNamespaceObjects, freePort, namespaceQueues } from "../test/support/chaos.ts";
import { createTestDatabase, dropTestDatabase } from "../test/support/infra.ts";
import { outboxRelayRate, userCreatedLatency } from "./events.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
// The production minimum (lib/config.ts refuses less when NODE_ENV=production).
const BCRYPT_COST = 12;
const EVENTS = Number(process.env.BENCH_EVENTS ?? 5_000);
const RELAY_RUNS = 5;
/** The brief's end-to-end target: registrations per second, p95 under 1 s. */
const E2E_PER_SECOND = 50;
const ROWS = ["get", "introspection", "login", "mail", "relay", "e2e"];
const only = (process.env.BENCH_ONLY ?? "").split(",").map((r) => r.trim()).filter(Boolean);
const unknownRows = only.filter((r) => !ROWS.includes(r));
if (unknownRows.length) throw new Error(`BENCH_ONLY: unknown row(s) ${unknownRows.join(", ")}; known: ${ROWS.join(", ")}`);
const selected = (row: string) => only.length === 0 || only.includes(row);

interface Row {
	target: string;
	measured: string;
	baseline: string;
	ratio: number;
	goal: string;
	/** null: a row reported for reference, with no target. */
	ok: boolean | null;
}
const rows: Row[] = [];
const log = (msg: string) => console.log(`[bench] ${msg}`);

/** This process' environment (the servers' URLs) with production settings, on its own namespace. */
function benchEnv(namespace: string, extra: Record<string, string>): Record<string, string> {
	const inherited: Record<string, string> = {};
	for (const [k, v] of Object.entries(process.env)) if (v !== undefined) inherited[k] = v;
	return { ...inherited, NODE_ENV: "production", NAMESPACE: namespace, METRICS_PORT: "0", HEALTH_PORT: "0", GRPC_PORT: "0", AUTH_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"), STRIPE_API_KEY: "sk_test_bench", ...extra };
}

/** Resident memory of a process in MB, from /proc. */
function rssMb(pid: number): number {
	const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
	return line ? Number(line.replace(/\D+/g, "")) / 1024 : NaN;
}

/** Successful (2xx) answers per second: errors never count as throughput. */
const okRate = (r: autocannon.Result) => r["2xx"] / r.duration;

async function load(title: string, opts: autocannon.Options): Promise<autocannon.Result> {
	log(`${title}: ${opts.connections} connections for ${SECONDS} s`);
	await autocannon({ ...opts, duration: 1 }); // warm-up
	const result = await autocannon({ ...opts, duration: SECONDS });
	const errors = result.errors + result.timeouts + result.non2xx;
	const statuses = Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => `${code}: ${count}`).join(", ");
	log(`  ${Math.round(okRate(result))} successful req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms${errors ? `; ${errors} errors or non-2xx (${statuses})` : ""}`);
	return result;
}

/**
 * Runs the baseline and ours alternately, three times each, and answers the run with the median
 * rate of each side: one run of either moved by up to a factor of two on this machine (the raw
 * amqplib baseline 6,900-17,000 msgs/s), so a single pair made the ratio a coin toss.
 */
async function alternatingMedians<T extends { rate: number }>(baseline: () => Promise<T>, ours: () => Promise<T>, count = 3): Promise<{ baseline: T; ours: T; rates: { baseline: number[]; ours: number[] } }> {
	const runs: { baseline: T[]; ours: T[] } = { baseline: [], ours: [] };
	for (let i = 0; i < count; i++) {
		runs.baseline.push(await baseline());
		runs.ours.push(await ours());
	}
	const median = (xs: T[]) => [...xs].sort((a, b) => a.rate - b.rate)[Math.floor(count / 2)]!;
	const rates = (xs: T[]) => xs.map((x) => (x.rate >= 100 ? Math.round(x.rate) : Number(x.rate.toFixed(1))));
	return { baseline: median(runs.baseline), ours: median(runs.ours), rates: { baseline: rates(runs.baseline), ours: rates(runs.ours) } };
}

/**
 * `concurrency` loops of `op` for SECONDS after a one-second warm-up; every operation started is
 * awaited and counted, so the rate is work done over the time it took (no half-done work).
 */
async function sustainedRate(concurrency: number, op: () => Promise<void>): Promise<{ rate: number; p50: number; p99: number }> {
	const run = async (ms: number) => {
		const latencies: number[] = [];
		const started = performance.now();
		await Promise.all(Array.from({ length: concurrency }, async () => {
			while (performance.now() - started < ms) {
				const t0 = performance.now();
				await op();
				latencies.push(performance.now() - t0);
			}
		}));
		return { latencies: latencies.sort((a, b) => a - b), elapsedS: (performance.now() - started) / 1000 };
	};
	await run(1_000);
	const { latencies, elapsedS } = await run(SECONDS * 1_000);
	const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? NaN;
	return { rate: latencies.length / elapsedS, p50: at(0.5), p99: at(0.99) };
}

/** A bare node:http server in its own process: the ceiling any HTTP gateway is compared with. */
async function bareHttpServer(): Promise<{ url: string; stop: () => void }> {
	const port = await freePort();
	const child = spawn(process.execPath, ["-e", `require("node:http").createServer((q, s) => { s.setHeader("content-type", "application/json"); s.end('{"hello":"world"}'); }).listen(${port}, "127.0.0.1", () => console.log("up"));`], { stdio: ["ignore", "pipe", "inherit"] });
	await new Promise((r) => child.stdout.once("data", r));
	return { url: `http://127.0.0.1:${port}/`, stop: () => child.kill() };
}

async function json<T>(res: Response): Promise<T> {
	if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
	return (await res.json()) as T;
}

async function main(): Promise<void> {
	const namespace = `bench${randomBytes(3).toString("hex")}`;
	// Billing gets a database of its own, dropped at the end.
	const mongoUrl = new URL(process.env.MONGO_URL!);
	mongoUrl.pathname = `/${namespace}`;
	// Auth gets a database of its own too: nodes of another run (a crashed bench) relay the outbox
	// of the database they share, into their own namespace, which would take this run's events away.
	const authDb = await createTestDatabase();
	const env = benchEnv(namespace, { BCRYPT_COST: String(BCRYPT_COST), MONGO_URL: mongoUrl.toString(), DATABASE_URL: authDb, RATE_LIMIT_USER: "100000000/1h", RATE_LIMIT_AUTH_STRICT: "100000000/1h", RATE_LIMIT_ANONYMOUS: "100000000/1h",
		// The SMTP sink is the local Mailpit, not a provider with a quota: measure the platform, not EMAIL_RATE_LIMIT's default.
		EMAIL_RATE_LIMIT: "1000", EMAIL_CONCURRENCY: process.env.BENCH_EMAIL_CONCURRENCY ?? "10" });
	const cluster = new ProcessCluster(namespace, env);
	const bare = await bareHttpServer();
	try {
		log(`starting auth, notification, gateway and billing nodes (namespace ${namespace})`);
		const authGrpcPort = await freePort();
		await cluster.add("auth", "auth", { GRPC_PORT: String(authGrpcPort) });
		for (const svc of ["notification", "gateway", "billing"]) await cluster.add(svc, svc);
		log(`node logs: ${cluster.logDir}`);
		const base = `http://127.0.0.1:${cluster.nodes.get("gateway")!.port}`;
		await waitHealthy(base);
		// Idle nodes, as the brief means it: started, connected, no request handled yet (settled 1 s).
		await new Promise((r) => setTimeout(r, 1_000));
		const idleRss = new Map(["auth", "notification", "gateway", "billing"].map((svc) => [svc, rssMb(cluster.nodes.get(svc)!.child!.pid!)]));

		const email = `bench-${namespace}@example.com`;
		const password = "correct horse battery staple 42";
		await json(await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) }));
		const { accessToken } = await json<{ accessToken: string }>(await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) }));

		// Reported beside it: after the first sign-up and login (events handled, e-mails rendered and
		// sent, the first Intl formatter built), which is what a node that has done anything holds.
		for (const svc of ["auth", "notification", "gateway", "billing"]) {
			const node = cluster.nodes.get(svc)!;
			const idle = idleRss.get(svc)!;
			const readyMs = node.readyMs!;
			rows.push({ target: `${svc} node ready / idle RSS`, measured: `${Math.round(readyMs)} ms / ${Math.round(idle)} MB (${Math.round(rssMb(node.child!.pid!))} MB after the first sign-up)`, baseline: "-", ratio: NaN, goal: "< 3000 ms / < 150 MB", ok: readyMs < 3000 && idle < 150 });
		}

		// 1. Authenticated GET through the gateway to a remote node over the AMQP transporter.
		if (selected("get")) {
			const baseline = await load("bare node:http", { url: bare.url, connections: 50 });
			const gateway = await load("GET /api/v1/notifications (JWT, gateway -> notification over AMQP)", { url: `${base}/api/v1/notifications`, connections: 50, headers: { authorization: `Bearer ${accessToken}` } });
			const ratio = okRate(gateway) / okRate(baseline);
			rows.push({
				target: "authenticated GET via gateway -> remote node",
				measured: `${Math.round(okRate(gateway))} req/s, p99 ${gateway.latency.p99} ms`,
				baseline: `${Math.round(okRate(baseline))} req/s (node:http)`,
				ratio,
				goal: ">= 0.20x, p99 <= 25 ms",
				ok: ratio >= 0.2 && gateway.latency.p99 <= 25 && gateway.non2xx === 0,
			});
			// The same hop with nothing of ours (no JWT, rate limit, metrics, middlewares, Redis): what
			// Moleculer's stock AMQP transporter allows here, and what ours (packets batched) allows.
			for (const transporter of ["stock", "batching"] as const) {
				const floor = await bareMoleculerRate(namespace, transporter);
				rows.push({
					target: `reference: bare moleculer-web -> remote action, ${transporter === "stock" ? "Moleculer's stock AMQP transporter" : "our batching AMQP transporter"}`,
					measured: `${Math.round(okRate(floor))} req/s, p99 ${floor.latency.p99} ms (ours: ${(okRate(gateway) / okRate(floor)).toFixed(2)}x of it)`,
					baseline: `${Math.round(okRate(baseline))} req/s (node:http)`,
					ratio: okRate(floor) / okRate(baseline),
					goal: "reference (no target)",
					ok: null,
				});
			}
		}

		// 2. Token introspection over the gRPC bridge against a bare @grpc/grpc-js echo server.
		if (selected("introspection")) {
			const echoPort = await freePort();
			const echo = spawn(process.execPath, ["bench/grpc-echo.ts", String(echoPort)], { stdio: ["ignore", "pipe", "inherit"] });
			await new Promise((r) => echo.stdout.once("data", r));
			try {
				const { baseline: echoRate, ours: introspectRate, rates } = await alternatingMedians(
					() => grpcLoad(`127.0.0.1:${echoPort}`, "Ping", { message: "hello" }),
					() => grpcLoad(`127.0.0.1:${authGrpcPort}`, "Introspect", { token: accessToken }),
				);
				log(`3 runs each: gRPC echo ${rates.baseline.join(", ")} calls/s; Introspect ${rates.ours.join(", ")} calls/s`);
				log(`medians: gRPC echo ${echoRate.rate.toFixed(0)} calls/s (p99 ${echoRate.p99.toFixed(1)} ms); Introspect ${introspectRate.rate.toFixed(0)} calls/s (p99 ${introspectRate.p99.toFixed(1)} ms)`);
				rows.push({
					target: "token introspection over the gRPC bridge",
					measured: `${introspectRate.rate.toFixed(0)} calls/s, p99 ${introspectRate.p99.toFixed(1)} ms`,
					baseline: `${echoRate.rate.toFixed(0)} calls/s (bare grpc-js echo)`,
					ratio: introspectRate.rate / echoRate.rate,
					goal: ">= 0.7x (medians of 3)",
					ok: introspectRate.rate / echoRate.rate >= 0.7,
				});
			} finally {
				echo.kill();
			}
		}

		// 3. Login against the raw bcrypt.compare rate at the same cost (bcrypt should be the only real cost).
		// Both as closed loops that finish what they started: a load tool that stops at a deadline
		// leaves up to 8 logins half-hashed (and its warm-up leaves 8 more hashing into the run), a
		// tenth or more of a 5 s window at ~9 hashes/s, which the raw loop would not pay. Alternated,
		// medians of 3, like introspection: this machine's speed drifts by more than the 10 % margin
		// between two rows measured a few seconds apart.
		if (selected("login")) {
			const hash = await bcrypt.hash(password, BCRYPT_COST);
			const body = JSON.stringify({ email, password });
			let refused = 0;
			log(`raw bcrypt.compare (cost ${BCRYPT_COST}, 4 at a time) and POST /api/v1/auth/login (8 at a time), ${SECONDS} s each, alternated`);
			const { baseline: raw, ours: login, rates } = await alternatingMedians(
				() => sustainedRate(4, async () => void (await bcrypt.compare(password, hash))),
				() => sustainedRate(8, async () => {
					const res = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body });
					await res.arrayBuffer();
					if (res.status !== 200) refused++;
				}),
			);
			log(`3 runs each: bcrypt.compare ${rates.baseline.join(", ")}/s; login ${rates.ours.join(", ")}/s`);
			log(`medians: bcrypt.compare ${raw.rate.toFixed(1)}/s; login ${login.rate.toFixed(1)}/s, p50 ${login.p50.toFixed(0)} ms, p99 ${login.p99.toFixed(0)} ms${refused ? `; ${refused} not 200` : ""}`);
			rows.push({
				target: "login",
				measured: `${login.rate.toFixed(1)} logins/s`,
				baseline: `${raw.rate.toFixed(1)} bcrypt.compare/s`,
				ratio: login.rate / raw.rate,
				goal: ">= 0.9x (medians of 3)",
				ok: login.rate / raw.rate >= 0.9 && refused === 0,
			});
		}

		// 4. Notification throughput: user.created events -> welcome e-mails in the SMTP sink,
		// against nodemailer sending the same number of mails straight to the same sink.
		if (selected("mail")) {
			const MAILS = Number(process.env.BENCH_MAILS ?? 200);
			const rawDomain = `raw-${namespace}.test`;
			const smtpStart = performance.now();
			const transport = nodemailer.createTransport({ url: process.env.SMTP_URL!, pool: true, maxConnections: 5 });
			await Promise.all(Array.from({ length: MAILS }, (_, i) => transport.sendMail({ from: "bench@backplane.test", to: `u${i}@${rawDomain}`, subject: "Welcome", text: "hello", html: "<p>hello</p>" })));
			transport.close();
			const rawMailRate = MAILS / ((performance.now() - smtpStart) / 1000);
			log(`raw nodemailer to the SMTP sink: ${rawMailRate.toFixed(0)} mails/s`);

			const domain = `platform-${namespace}.test`;
			const publisher = new AmqpEventPublisher(process.env.RABBITMQ_URL!, namespace);
			const mailStart = performance.now();
			await publisher.publish(Array.from({ length: MAILS }, (_, i) => ({ event: createCloudEvent({ type: "user.created", source: "/bench", subject: `u${i}`, data: { userId: `bench-${namespace}-${i}`, email: `u${i}@${domain}`, name: null } }) })));
			await publisher.close();
			await waitForMails(domain, MAILS, 120_000);
			const mailRate = MAILS / ((performance.now() - mailStart) / 1000);
			log(`platform (event -> queue -> SMTP): ${mailRate.toFixed(0)} mails/s`);
			rows.push({ target: `notification: ${MAILS} welcome e-mails`, measured: `${mailRate.toFixed(0)} mails/s`, baseline: `${rawMailRate.toFixed(0)} mails/s (nodemailer)`, ratio: mailRate / rawMailRate, goal: "reported (no target in the brief)", ok: null });
			await deleteMails(rawDomain);
			await deleteMails(domain);
		}

		// 5. Durable event relay + consume against raw amqplib publish-with-confirms + consume.
		// Medians of 5: each run lasts under a second, so this row is the most exposed to the machine's
		// drift (single runs of either side moved by a factor of 1.6 seconds apart); 5 cost ~5 s more.
		if (selected("relay")) {
			const { baseline, ours, rates } = await alternatingMedians(
				async () => ({ rate: await rawAmqpRateApart(namespace) }),
				async () => ({ rate: await outboxRelayRate(env, namespace, EVENTS) }),
				RELAY_RUNS,
			);
			const [rawEvents, relayed] = [baseline.rate, ours.rate];
			log(`${EVENTS} events, ${RELAY_RUNS} runs each: raw amqplib ${rates.baseline.join(", ")}/s; outbox relay + consume ${rates.ours.join(", ")}/s`);
			rows.push({ target: "durable event relay + consume", measured: `${relayed.toFixed(0)} events/s`, baseline: `${rawEvents.toFixed(0)} msgs/s (amqplib, confirms)`, ratio: relayed / rawEvents, goal: `>= 0.5x (medians of ${RELAY_RUNS})`, ok: relayed / rawEvents >= 0.5 });
		}

		// 6. user.created end to end. At cost 12 two cores hash ~9 passwords/s, so 50 registrations/s
		// cannot be measured with it: auth is replaced by a node hashing at cost 4 (not production).
		if (selected("e2e")) {
			await cluster.terminate("auth");
			await cluster.add("auth-cost4", "auth", { NODE_ENV: "development", BCRYPT_COST: "4", GRPC_PORT: String(authGrpcPort) });
			await waitHealthy(base);
			// The e-mail row's 200 user.created events are billing's too: start from empty queues, or the
			// row would measure that backlog instead of the latency at 50 registrations a second.
			const drained = await drainQueues(namespace, 120_000);
			log(`event queues drained in ${drained} ms before the end-to-end row`);
			// Warm-up, as every other row has one: the same stream for 3 s on nodes that have not yet
			// handled a sign-up (the auth node above was just started), until its last trial and e-mail
			// arrived. Cold, the first second's sign-ups run into JIT compilation and connections being
			// opened on every node at once and build a backlog of seconds that the steady state then
			// drains; the target is the latency at a sustained 50 a second. Reported, not judged.
			const warmDomain = `warm-${namespace}.test`;
			const warm = await userCreatedLatency({ gateway: base, mongoUrl: mongoUrl.toString(), mailpitUrl: mailpit(), perSecond: E2E_PER_SECOND, seconds: 3, domain: warmDomain });
			await deleteMails(warmDomain);
			log(`warm-up: ${warm.count} sign-ups in 3 s on cold nodes: trial stored p95 ${warm.trial.p95} ms, welcome e-mail p95 ${warm.mail.p95} ms`);
			const e2eSeconds = Math.max(3, SECONDS);
			const e2eDomain = `e2e-${namespace}.test`;
			log(`user.created end to end: ${E2E_PER_SECOND} registrations/s for ${e2eSeconds} s (bcrypt cost 4)`);
			const e2e = await userCreatedLatency({ gateway: base, mongoUrl: mongoUrl.toString(), mailpitUrl: mailpit(), perSecond: E2E_PER_SECOND, seconds: e2eSeconds, domain: e2eDomain });
			await deleteMails(e2eDomain);
			const failed = Object.entries(e2e.failed).map(([status, n]) => `${n} x ${status}`).join(", ");
			log(`  registration answered: p50 ${e2e.answered.p50} ms, p95 ${e2e.answered.p95} ms; trial stored: p50 ${e2e.trial.p50} ms, p95 ${e2e.trial.p95} ms; welcome e-mail: p50 ${e2e.mail.p50} ms, p95 ${e2e.mail.p95} ms${failed ? `; registrations refused: ${failed}` : ""}`);
			rows.push({
				target: `user.created end to end (${E2E_PER_SECOND} registrations/s, bcrypt cost 4)`,
				measured: `p50 ${e2e.both.p50} ms, p95 ${e2e.both.p95} ms, p99 ${e2e.both.p99} ms (${e2e.count} users${failed ? `; refused: ${failed}` : ""})`,
				baseline: "-",
				ratio: NaN,
				goal: "p95 < 1000 ms",
				ok: e2e.both.p95 < 1000 && !failed,
			});
		}
	} finally {
		bare.stop();
		await cluster.stopAll();
		const mongo = new MongoClient(mongoUrl.toString());
		await mongo.db().dropDatabase().catch(() => undefined);
		await mongo.close();
		await dropTestDatabase(authDb);
		// The run's durable queues and exchanges: left behind, they pile up and slow the shared broker.
		for (const ns of [namespace, `${namespace}bare-stock`, `${namespace}bare-batching`]) await deleteNamespaceObjects(ns).catch(() => undefined);
	}

	console.log("\n| target | measured | baseline (same run) | ratio | goal | verdict |\n|---|---|---|---|---|---|");
	for (const r of rows) console.log(`| ${r.target} | ${r.measured} | ${r.baseline} | ${Number.isNaN(r.ratio) ? "-" : `${r.ratio.toFixed(2)}x`} | ${r.goal} | ${r.ok === null ? "-" : r.ok ? "met" : "MISSED"} |`);
}

/** Waits until no event queue of the namespace holds a message; answers how long it took. */
async function drainQueues(namespace: string, timeoutMs: number): Promise<number> {
	const started = Date.now();
	for (;;) {
		const busy = (await namespaceQueues(namespace)).filter((q) => !q.name.startsWith("MOL-") && !q.name.includes("dead-letter") && (q.messages ?? 0) > 0);
		if (busy.length === 0) return Date.now() - started;
		if (Date.now() - started > timeoutMs) throw new Error(`event queues still busy after ${timeoutMs} ms: ${busy.map((q) => `${q.name}=${q.messages}`).join(", ")}`);
		await new Promise((r) => setTimeout(r, 250));
	}
}

/** Raw amqplib publish-with-confirms + consume, in a process of its own (bench/raw-amqp.ts). */
async function rawAmqpRateApart(namespace: string): Promise<number> {
	const child = spawn(process.execPath, ["bench/raw-amqp.ts", namespace, String(EVENTS)], { stdio: ["ignore", "pipe", "inherit"] });
	let out = "";
	child.stdout.on("data", (d: Buffer) => (out += d.toString()));
	const code = await new Promise<number | null>((r) => child.once("exit", r));
	if (code !== 0 || !Number.isFinite(Number(out))) throw new Error(`bench/raw-amqp.ts exited ${code}: ${out}`);
	return Number(out);
}

/** Load on a bare moleculer-web gateway calling a bare action in another process (bench/bare-moleculer.ts). */
async function bareMoleculerRate(namespace: string, transporter: "stock" | "batching"): Promise<autocannon.Result> {
	const port = await freePort();
	const start = (...args: string[]) => {
		const child = spawn(process.execPath, ["bench/bare-moleculer.ts", ...args], { stdio: ["ignore", "pipe", "inherit"] });
		return { child, up: new Promise((r) => child.stdout.once("data", r)) };
	};
	const remote = start("remote", `${namespace}bare-${transporter}`, transporter);
	await remote.up;
	const gateway = start("gateway", `${namespace}bare-${transporter}`, transporter, String(port));
	try {
		await gateway.up;
		return await load(`bare moleculer-web -> remote action (AMQP, ${transporter})`, { url: `http://127.0.0.1:${port}/hello`, connections: 50 });
	} finally {
		gateway.child.kill("SIGTERM");
		remote.child.kill("SIGTERM");
	}
}

const mailpit = () => process.env.MAILPIT_API_URL ?? "http://127.0.0.1:58025";

async function waitForMails(domain: string, count: number, timeoutMs: number): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	let seen = 0;
	while (Date.now() < deadline) {
		const res = await fetch(`${mailpit()}/api/v1/search?query=${encodeURIComponent(`to:${domain}`)}&limit=1`);
		seen = ((await res.json()) as { messages_count: number }).messages_count;
		if (seen >= count) return;
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`only ${seen} of ${count} mails to ${domain} arrived in ${timeoutMs} ms`);
}

async function deleteMails(domain: string): Promise<void> {
	await fetch(`${mailpit()}/api/v1/search?query=${encodeURIComponent(`to:${domain}`)}`, { method: "DELETE" });
}

/** Unary calls with 50 in flight for SECONDS (sustainedRate); successful calls per second and p99 latency. */
async function grpcLoad(address: string, method: string, request: object): Promise<{ rate: number; p99: number }> {
	const definition = serviceDefinition("auth/v1/auth.proto", "auth.v1.AuthService")[method]!;
	const client = new GrpcClient(address, credentials.createInsecure());
	const call = () =>
		new Promise<void>((resolve, reject) => {
			client.makeUnaryRequest(definition.path, definition.requestSerialize, definition.responseDeserialize, request, (err) => (err ? reject(err) : resolve()));
		});
	try {
		return await sustainedRate(50, call);
	} finally {
		client.close();
	}
}

async function waitHealthy(base: string): Promise<void> {
	const deadline = Date.now() + 30_000;
	while (Date.now() < deadline) {
		try {
			const body = (await (await fetch(`${base}/healthz`)).json()) as { services: Record<string, { status: string }>; gateway: { authGrpc: { status: string } } };
			if (["auth", "notification", "billing"].every((svc) => body.services[svc]?.status === "up") && body.gateway.authGrpc.status === "up") return;
		} catch {
			// not listening yet
		}
		await new Promise((r) => setTimeout(r, 200));
	}
	throw new Error("the bench cluster did not become healthy in 30 s");
}

await main();
