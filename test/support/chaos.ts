/**
 * Chaos tooling: a cluster of real node processes (`node bin/broker.ts`, one per node, as in
 * production) on a private namespace, which a test can kill -9, restart and SIGTERM; a round-robin
 * TCP proxy on 127.0.0.1 in front of the gateways (the load balancer); a client that registers
 * users the way a real one does (retries a failed attempt with the same e-mail; a 409 on a retry
 * means an earlier attempt got through); and the invariant checks read from the real servers.
 *
 * Only processes started here are ever signalled (tracked by their ChildProcess); only 127.0.0.1.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import type { WriteStream } from "node:fs";
import net from "node:net";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { MongoClient } from "mongodb";
import { infra } from "./infra.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/** Multiplies the counts of the chaos scenarios: 1 in `npm test`, larger in `npm run test:chaos`. */
export const CHAOS_SCALE = Math.max(1, Math.min(20, Number(process.env.CHAOS_SCALE ?? 1) || 1));
/** Set by `npm run test:chaos`: also restart the shared servers (never in `npm test`). */
export const CHAOS_FULL = process.env.CHAOS_FULL === "1";
export type ChaosServer = "rabbitmq" | "redis" | "postgres" | "mongo";
/** Which shared servers `test:chaos` restarts (CHAOS_SERVERS=rabbitmq,redis,postgres,mongo; "none"). */
export const CHAOS_SERVERS: ChaosServer[] = (process.env.CHAOS_SERVERS ?? "rabbitmq,redis,postgres,mongo")
	.split(",")
	.map((s) => s.trim())
	.filter((s): s is ChaosServer => ["rabbitmq", "redis", "postgres", "mongo"].includes(s));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
	const server = net.createServer();
	await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
	const { port } = server.address() as AddressInfo;
	await new Promise((r) => server.close(r));
	return port;
}

export interface ClusterNode {
	name: string;
	services: string;
	env: Record<string, string>;
	child?: ChildProcess;
	port?: number;
	starts: number;
	/** Milliseconds from spawn to "started successfully", of the latest start. */
	readyMs?: number;
}

/**
 * Real node processes on one namespace (the chaos tests and `npm run bench` use it). Logs go to
 * one file per node under the OS temp dir.
 */
export class ProcessCluster {
	readonly nodes = new Map<string, ClusterNode>();
	readonly logDir: string;
	private readonly logs = new Map<string, WriteStream>();
	private readonly baseEnv: Record<string, string>;

	constructor(namespace: string, env: Record<string, string>) {
		this.logDir = path.join(os.tmpdir(), `backplane-chaos-${namespace}`);
		mkdirSync(this.logDir, { recursive: true });
		const inherited: Record<string, string> = {};
		for (const [k, v] of Object.entries(process.env)) if (v !== undefined) inherited[k] = v;
		this.baseEnv = { ...inherited, ...env };
		// If the process running the cluster dies without stopping it (an unhandled error), its nodes
		// must not live on: they would keep consuming and relaying on the shared servers.
		process.once("exit", () => {
			for (const node of this.nodes.values()) node.child?.kill("SIGKILL");
		});
	}

	/** Declares and starts a node; a gateway gets a fixed port so it keeps it across restarts. */
	async add(name: string, services: string, extra: Record<string, string> = {}): Promise<ClusterNode> {
		const node: ClusterNode = { name, services, env: { ...extra }, starts: 0 };
		if (services.split(",").includes("gateway")) {
			node.port = await freePort();
			node.env.GATEWAY_PORT = String(node.port);
		}
		this.nodes.set(name, node);
		for (let attempt = 1; ; attempt++) {
			try {
				await this.start(name);
				return node;
			} catch (err) {
				// The port freePort() found can be taken before the node binds it (an outgoing
				// connection's ephemeral port, seen once in a bench run): another port, at most twice.
				if (node.port === undefined || attempt === 3) throw err;
				await sleep(200); // the node's last lines may still be on their way to its log
				if (!this.logTail(name).includes("EADDRINUSE")) throw err;
				node.port = await freePort();
				node.env.GATEWAY_PORT = String(node.port);
			}
		}
	}

	/** The end of a node's log (what its last start wrote). */
	private logTail(name: string): string {
		const text = readFileSync(path.join(this.logDir, `${name}.log`), "utf8");
		return text.slice(text.lastIndexOf("----- start #"));
	}

	/** Spawns the node's process and resolves once its broker started (bounded by timeoutMs). */
	start(name: string, timeoutMs = 45_000): Promise<void> {
		const node = this.nodes.get(name)!;
		if (node.child && node.child.exitCode === null && node.child.signalCode === null) throw new Error(`${name} is running`);
		node.starts += 1;
		let log = this.logs.get(name);
		if (!log) {
			log = createWriteStream(path.join(this.logDir, `${name}.log`), { flags: "a" });
			this.logs.set(name, log);
		}
		log.write(`\n----- start #${node.starts} at ${new Date().toISOString()} -----\n`);
		const spawnedAt = performance.now();
		const child = spawn(process.execPath, ["bin/broker.ts"], {
			cwd: ROOT,
			env: { ...this.baseEnv, ...node.env, SERVICES: node.services, NODE_ID: `${name}-${node.starts}`, LOG_LEVEL: "info" },
			stdio: ["ignore", "pipe", "pipe"],
		});
		node.child = child;
		child.stdout.pipe(log, { end: false });
		child.stderr.pipe(log, { end: false });
		return new Promise((resolve, reject) => {
			let seen = "";
			const timer = setTimeout(() => done(new Error(`${name} not ready in ${timeoutMs} ms (log: ${this.logDir}/${name}.log)`)), timeoutMs);
			const onData = (chunk: Buffer) => {
				// Keep a tail across chunks: the marker may straddle two of them.
				const text = seen + chunk.toString();
				if (text.includes("started successfully")) return done();
				seen = text.slice(-100);
			};
			const onExit = (code: number | null) => done(new Error(`${name} exited with ${code} while starting (log: ${this.logDir}/${name}.log)`));
			const done = (err?: Error) => {
				clearTimeout(timer);
				child.stdout.off("data", onData);
				child.off("exit", onExit);
				if (err) {
					child.kill("SIGKILL");
					reject(err);
				} else {
					node.readyMs = performance.now() - spawnedAt;
					resolve();
				}
			};
			child.stdout.on("data", onData);
			child.once("exit", onExit);
		});
	}

	running(name: string): boolean {
		const c = this.nodes.get(name)?.child;
		return !!c && c.exitCode === null && c.signalCode === null;
	}

	/** kill -9 of a process this cluster started; resolves when it is gone. */
	async kill9(name: string): Promise<void> {
		const child = this.nodes.get(name)?.child;
		if (!child || child.exitCode !== null || child.signalCode !== null) return;
		const exited = new Promise((r) => child.once("exit", r));
		child.kill("SIGKILL");
		await exited;
	}

	/** SIGTERM (graceful stop); SIGKILL after graceMs. Resolves with the exit code and how long it took. */
	async terminate(name: string, graceMs = 20_000): Promise<{ code: number | null; signal: string | null; ms: number }> {
		const child = this.nodes.get(name)?.child;
		if (!child || child.exitCode !== null || child.signalCode !== null) return { code: child?.exitCode ?? null, signal: child?.signalCode ?? null, ms: 0 };
		const started = Date.now();
		const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child.once("exit", (code, signal) => r({ code, signal })));
		const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
		child.kill("SIGTERM");
		const result = await exited;
		clearTimeout(timer);
		return { ...result, ms: Date.now() - started };
	}

	async stopAll(): Promise<void> {
		await Promise.all([...this.nodes.keys()].map((n) => this.terminate(n, 10_000)));
		for (const log of this.logs.values()) log.end();
	}
}

/**
 * A round-robin TCP load balancer on 127.0.0.1. A backend that refuses the connection is skipped
 * (as a load balancer's health check would), so a dead gateway costs no request that had not yet
 * reached it; bytes already sent to a backend that dies are lost, as with any L4 balancer.
 */
export class RoundRobinProxy {
	port = 0;
	backends: number[] = [];
	readonly served = new Map<number, number>();
	private next = 0;
	private server?: net.Server;
	private readonly sockets = new Set<net.Socket>();

	async listen(): Promise<void> {
		const server = net.createServer((client) => {
			this.sockets.add(client);
			client.on("close", () => this.sockets.delete(client));
			client.on("error", () => client.destroy());
			client.pause();
			this.connect(client, 0);
		});
		await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
		this.port = (server.address() as AddressInfo).port;
		this.server = server;
	}

	private connect(client: net.Socket, tried: number): void {
		if (client.destroyed) return;
		if (this.backends.length === 0 || tried >= this.backends.length) return void client.destroy();
		const port = this.backends[this.next++ % this.backends.length]!;
		const upstream = net.connect(port, "127.0.0.1");
		let connected = false;
		upstream.once("connect", () => {
			connected = true;
			this.sockets.add(upstream);
			this.served.set(port, (this.served.get(port) ?? 0) + 1);
			upstream.on("close", () => (this.sockets.delete(upstream), client.destroy()));
			client.on("close", () => upstream.destroy());
			client.pipe(upstream).pipe(client);
			client.resume();
		});
		upstream.on("error", () => {
			if (!connected) this.connect(client, tried + 1);
			else client.destroy();
		});
	}

	async close(): Promise<void> {
		for (const s of this.sockets) s.destroy();
		const server = this.server;
		this.server = undefined;
		if (server) await new Promise((r) => server.close(r));
	}
}

export type RegistrationOutcome = "created" | "conflict-after-retry" | "conflict-first-try" | "failed";

export interface RegistrationResult {
	email: string;
	outcome: RegistrationOutcome;
	attempts: number;
	statuses: (number | string)[];
}

/**
 * Registers one account as a real client does: a 5xx, a 429 or a broken connection is retried
 * with back-off and the same body; 409 on a retry means an earlier attempt got through.
 */
export async function registerLikeAClient(baseUrl: string, email: string, opts: { maxAttempts?: number; deadlineMs?: number; password?: string } = {}): Promise<RegistrationResult> {
	const maxAttempts = opts.maxAttempts ?? 30;
	const deadline = Date.now() + (opts.deadlineMs ?? 60_000);
	const statuses: (number | string)[] = [];
	for (let attempt = 1; attempt <= maxAttempts && Date.now() < deadline; attempt++) {
		let status: number | string;
		try {
			const res = await fetch(`${baseUrl}/api/v1/auth/register`, {
				method: "POST",
				headers: { "content-type": "application/json" },
				body: JSON.stringify({ email, password: opts.password ?? "quiet river lantern 81", name: "Ada" }),
				signal: AbortSignal.timeout(15_000),
			});
			status = res.status;
			await res.arrayBuffer();
		} catch (err) {
			status = err instanceof Error ? (err.cause instanceof Error && "code" in err.cause ? String(err.cause.code) : err.name) : "error";
		}
		statuses.push(status);
		if (status === 201) return { email, outcome: "created", attempts: attempt, statuses };
		if (status === 409) return { email, outcome: attempt > 1 ? "conflict-after-retry" : "conflict-first-try", attempts: attempt, statuses };
		if (typeof status === "number" && status < 500 && status !== 429) return { email, outcome: "failed", attempts: attempt, statuses };
		await sleep(Math.min(2_000, 100 * 2 ** Math.min(attempt, 5)));
	}
	return { email, outcome: "failed", attempts: statuses.length, statuses };
}

/** Runs `work` over `items` with at most `concurrency` at once. */
export async function pool<T, R>(items: T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
	const results: R[] = new Array<R>(items.length);
	let next = 0;
	await Promise.all(
		Array.from({ length: Math.min(concurrency, items.length) }, async () => {
			while (next < items.length) {
				const i = next++;
				results[i] = await work(items[i]!, i);
			}
		}),
	);
	return results;
}

// ---------- RabbitMQ management API ----------

interface QueueInfo {
	name: string;
	messages?: number;
	consumers?: number;
	type?: "classic" | "quorum" | "stream";
}

/** RabbitMQ's management API: its base URL and the Authorization header for it. */
export function rabbitmqManagement(): { base: string; auth: string } {
	const url = new URL(infra.rabbitmqManagementUrl);
	const auth = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString("base64")}`;
	url.username = "";
	url.password = "";
	return { base: url.toString().replace(/\/$/, ""), auth };
}

/**
 * The queues of one namespace: durable event queues (`<group>.<ns>.<type>`), their dead-letter
 * queues (`<ns>.dead-letter.<type>`) and transporter queues (`MOL-<ns>.`).
 */
export async function namespaceQueues(namespace: string): Promise<QueueInfo[]> {
	const { base, auth } = rabbitmqManagement();
	const res = await fetch(`${base}/api/queues/%2F?columns=name,messages,consumers,type`, { headers: { authorization: auth }, signal: AbortSignal.timeout(10_000) });
	if (!res.ok) throw new Error(`RabbitMQ management: ${res.status}`);
	const all = (await res.json()) as QueueInfo[];
	return all.filter((q) => q.name.startsWith(`${namespace}.`) || q.name.includes(`.${namespace}.`) || q.name.startsWith(`MOL-${namespace}.`));
}

/**
 * Deletes what a namespace left on the shared servers: its queues and exchanges, its Redis keys
 * (notification's `notification:<ns>:*`, the gateway's `<ns>:*`) and its billing database (named
 * after the namespace by testEnv and the bench).
 */
export async function deleteNamespaceObjects(namespace: string): Promise<void> {
	await Promise.all([deleteQueuesAndExchanges(namespace), deleteRedisKeys([`notification:${namespace}:*`, `${namespace}:*`]), dropMongoDatabase(namespace)]);
}

async function deleteRedisKeys(patterns: string[]): Promise<void> {
	const redis = new Redis(infra.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
	try {
		await redis.connect();
		for (const match of patterns) {
			for await (const keys of redis.scanStream({ match, count: 1_000 }) as AsyncIterable<string[]>) if (keys.length) await redis.unlink(...keys);
		}
	} finally {
		redis.disconnect();
	}
}

async function dropMongoDatabase(name: string): Promise<void> {
	const mongo = new MongoClient(infra.mongoUrl, { serverSelectionTimeoutMS: 5_000 });
	try {
		await mongo.db(name).dropDatabase();
	} finally {
		await mongo.close();
	}
}

async function deleteQueuesAndExchanges(namespace: string): Promise<void> {
	const { base, auth } = rabbitmqManagement();
	for (const q of await namespaceQueues(namespace)) {
		await fetch(`${base}/api/queues/%2F/${encodeURIComponent(q.name)}`, { method: "DELETE", headers: { authorization: auth }, signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
	}
	const res = await fetch(`${base}/api/exchanges/%2F?columns=name`, { headers: { authorization: auth }, signal: AbortSignal.timeout(10_000) });
	if (!res.ok) return;
	for (const x of (await res.json()) as { name: string }[]) {
		if (!x.name.startsWith(`${namespace}.`) && !x.name.startsWith(`MOL-${namespace}`)) continue;
		await fetch(`${base}/api/exchanges/%2F/${encodeURIComponent(x.name)}`, { method: "DELETE", headers: { authorization: auth }, signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
	}
}

// ---------- Mailpit ----------

/** Every message sent to an address at `domain`, counted per recipient (paged, bounded). */
export async function mailCountsForDomain(domain: string, subject: RegExp): Promise<{ counts: Map<string, number>; ids: string[] }> {
	const counts = new Map<string, number>();
	const ids: string[] = [];
	for (let start = 0, page = 0; page < 100; page++) {
		const url = `${infra.mailpitApiUrl}/api/v1/search?query=${encodeURIComponent(`to:"@${domain}"`)}&start=${start}&limit=500`;
		const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
		if (!res.ok) throw new Error(`Mailpit search: ${res.status}`);
		const body = (await res.json()) as { messages: { ID: string; Subject: string; To: { Address: string }[] }[]; messages_count: number };
		for (const m of body.messages) {
			ids.push(m.ID);
			if (!subject.test(m.Subject)) continue;
			for (const to of m.To) if (to.Address.toLowerCase().endsWith(`@${domain}`)) counts.set(to.Address.toLowerCase(), (counts.get(to.Address.toLowerCase()) ?? 0) + 1);
		}
		start += body.messages.length;
		if (body.messages.length === 0 || start >= body.messages_count) break;
	}
	return { counts, ids };
}

export async function deleteMail(ids: string[]): Promise<void> {
	for (let i = 0; i < ids.length; i += 500) {
		await fetch(`${infra.mailpitApiUrl}/api/v1/messages`, { method: "DELETE", headers: { "content-type": "application/json" }, body: JSON.stringify({ IDs: ids.slice(i, i + 500) }), signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
	}
}

/** Restarts one of the shared servers through the project's own script (test:chaos only). */
export function restartServer(name: ChaosServer): Promise<{ ms: number; code: number | null }> {
	const started = Date.now();
	return new Promise((resolve) => {
		const child = spawn("bash", ["scripts/infra.sh", "restart", name], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
		const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
		child.on("exit", (code) => (clearTimeout(timer), resolve({ ms: Date.now() - started, code })));
	});
}
