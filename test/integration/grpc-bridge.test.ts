/**
 * The gRPC bridge end to end over real RabbitMQ: servers found through Moleculer node metadata,
 * request ids, AppErrors and health across the wire, deadlines, and what a caller sees when a
 * server stops, dies (kill -9) or freezes (SIGSTOP) while still listed in the registry.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { connect, createServer } from "node:net";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { Client, Metadata, credentials } from "@grpc/grpc-js";
import { ServiceBroker } from "moleculer";
import type { BrokerOptions, Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors.ts";
import { serviceDefinition } from "../../lib/protos.ts";
import { grpcClientMixin, grpcServerMixin } from "../../mixins/grpc.mixin.ts";
import type { GrpcClientMethods } from "../../mixins/grpc.mixin.ts";
import { failure } from "../support/infra.ts";

const RABBITMQ_URL = process.env.RABBITMQ_URL ?? "amqp://backplane:backplane@127.0.0.1:55672";
const NAMESPACE = `grpc-bridge-${process.pid}-${Date.now().toString(36)}`;
const AUTH = "auth.v1.AuthService";
const PROBE_PROTO = path.resolve(import.meta.dirname, "../support/grpc-test.proto");
const DEADLINE_MS = 400;
const THRESHOLD = 3;
const HALF_OPEN_MS = 1_000;
/** "Fails fast": half the deadline a wait would take; loose enough for a busy CI machine. */
const FAIL_FAST_MS = 200;
/** "Ends at the deadline": late timers on a busy two-core machine, far below the 2 s a hang would take. */
const DEADLINE_SLACK_MS = 250;

const brokerOptions = (nodeID: string): BrokerOptions => ({
	namespace: NAMESPACE,
	nodeID,
	logger: false,
	transporter: { type: "AMQP", options: { url: RABBITMQ_URL, prefetch: 100, socketOptions: { noDelay: true } } as Record<string, unknown> },
	heartbeatInterval: 2,
	heartbeatTimeout: 6,
	metrics: { enabled: true },
});

const authService: ServiceSchema = {
	name: "auth",
	mixins: [grpcServerMixin({ proto: "auth/v1/auth.proto", service: AUTH, methods: { Ping: "ping" } })],
	actions: {
		ping: {
			params: { message: "string" },
			handler(ctx: Context<{ message: string }, { grpcCaller?: string }>) {
				return { message: `${ctx.params.message} rid=${ctx.requestID} caller=${ctx.meta.grpcCaller}`, nodeId: ctx.nodeID, serverTimeMs: Date.now() };
			},
		},
	},
};

const probeService: ServiceSchema = {
	name: "probe",
	mixins: [grpcServerMixin({ proto: PROBE_PROTO, service: "test.v1.ProbeService", methods: { Fail: "fail", Slow: "slow" } })],
	actions: {
		fail: {
			// Validation applies: gRPC calls go through broker.call, like any other caller.
			params: { code: { type: "number", min: 400 }, type: "string", field: "string" },
			handler(ctx: Context<{ code: number; type: string; field: string }>) {
				if (ctx.params.code === 500) throw new Error("connection string postgres://admin:hunter2@db");
				throw new AppError(ctx.params.code, ctx.params.type, `Refused for ${ctx.params.field}.`, { field: ctx.params.field, limit: 3 });
			},
		},
		async slow(ctx: Context<{ ms: number }>) {
			await new Promise((r) => setTimeout(r, ctx.params.ms));
			return { sleptMs: ctx.params.ms };
		},
	},
};

// Typing the schema with GrpcClientMethods gives its handlers a typed `this.grpcCall`.
const callerService: ServiceSchema<ServiceSettingSchema, GrpcClientMethods> = {
	name: "caller",
	mixins: [
		grpcClientMixin({
			clients: { auth: { proto: "auth/v1/auth.proto", service: AUTH }, probe: { proto: PROBE_PROTO, service: "test.v1.ProbeService" } },
			deadlineMs: DEADLINE_MS,
			retries: 2,
			breaker: { threshold: THRESHOLD, windowMs: 10_000, halfOpenMs: HALF_OPEN_MS },
		}),
	],
	actions: {
		// A Moleculer action calling over gRPC with its ctx: request id and remaining timeout flow on.
		ping(ctx: Context<{ message: string }>) {
			return this.grpcCall("auth", "Ping", ctx.params, ctx);
		},
		slow(ctx: Context<{ ms: number }>) {
			return this.grpcCall("probe", "Slow", ctx.params, ctx);
		},
	},
};

let server: ServiceBroker;
let client: ServiceBroker;
let child: ChildProcess | undefined;

const grpcCall = (name: string, method: string, request: object) => (client.getLocalService("caller") as unknown as GrpcClientMethods).grpcCall(name, method, request);

/** The rejection of `p` and how long it took to come. */
async function timedFailure(p: Promise<unknown>): Promise<{ error: AppError; ms: number }> {
	const started = performance.now();
	const error = await failure(p);
	return { error, ms: performance.now() - started };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 8_000) {
	const until = Date.now() + timeoutMs;
	while (!check()) {
		if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 25));
	}
}

const seenAddress = (nodeID: string) => (client.registry.nodes.get(nodeID)?.metadata?.grpc as Record<string, string> | undefined)?.[AUTH];

/** Fails with a useful message instead of Moleculer reconnecting forever. */
async function assertRabbitMQ() {
	const { hostname, port } = new URL(RABBITMQ_URL);
	await new Promise<void>((resolve, reject) => {
		const socket = connect({ host: hostname, port: Number(port || 5672), timeout: 2_000 }, () => {
			socket.end();
			resolve();
		});
		const fail = () => reject(new Error(`RabbitMQ is not reachable at ${hostname}:${port}; start it with: bash scripts/infra.sh up rabbitmq`));
		socket.once("error", fail).once("timeout", fail);
	});
}

const metric = (broker: ServiceBroker, name: string, labels: Record<string, string>) =>
	(broker.metrics.getMetric(name)?.get(labels) as { value?: number } | undefined)?.value ?? 0;

beforeAll(async () => {
	await assertRabbitMQ();
	server = new ServiceBroker(brokerOptions(`grpc-server-${process.pid}`));
	server.createService(authService);
	server.createService(probeService);
	client = new ServiceBroker(brokerOptions(`grpc-client-${process.pid}`));
	client.createService(callerService);
	await Promise.all([server.start(), client.start()]);
	await waitFor("the client to see the server's gRPC metadata", () => seenAddress(server.nodeID) !== undefined);
}, 15_000);

afterAll(async () => {
	child?.kill("SIGKILL");
	await Promise.allSettled([server?.stop(), client?.stop()]);
});

describe("gRPC bridge over RabbitMQ", () => {
	it("advertises the bound port in node metadata, and the client finds the server there", async () => {
		const advertised = server.metadata.grpc as Record<string, string>;
		expect(advertised[AUTH]).toMatch(/^127\.0\.0\.1:\d+$/);
		expect(advertised[AUTH]).not.toBe("127.0.0.1:0");
		expect(advertised["test.v1.ProbeService"]).toMatch(/^127\.0\.0\.1:\d+$/);
		// What the client learnt over the transporter (INFO packets), not from the server object.
		expect(client.registry.nodes.get(server.nodeID)?.metadata).toEqual({ grpc: advertised });

		const reply = (await grpcCall("auth", "Ping", { message: "hello" })) as { message: string; nodeId: string; serverTimeMs: number };
		expect(reply.nodeId).toBe(server.nodeID);
		expect(reply.message).toMatch(/^hello rid=/);
		expect(Math.abs(reply.serverTimeMs - Date.now())).toBeLessThan(5_000);
		expect(metric(client, "grpc.client.calls.total", { service: AUTH, method: "Ping", code: "OK" })).toBe(1);
		expect(metric(server, "grpc.server.calls.total", { service: AUTH, method: "Ping", code: "OK" })).toBe(1);
	});

	it("carries the caller's request id and identity to the server action", async () => {
		const reply = await client.call<{ message: string }, { message: string }>("caller.ping", { message: "hi" }, { requestID: "req-grpc-42" });
		expect(reply.message).toBe(`hi rid=req-grpc-42 caller=${client.nodeID}/caller`);
	});

	it("answers the standard grpc.health.v1 Check with SERVING", async () => {
		const check = serviceDefinition("health/v1/health.proto", "grpc.health.v1.Health").Check!;
		const channel = new Client((server.metadata.grpc as Record<string, string>)[AUTH]!, credentials.createInsecure());
		const ask = (service: string) =>
			new Promise<unknown>((resolve, reject) =>
				channel.makeUnaryRequest(check.path, check.requestSerialize, check.responseDeserialize, { service }, new Metadata(), { deadline: Date.now() + 1_000 }, (err, res) => (err ? reject(err) : resolve(res))),
			);
		try {
			expect(await ask(AUTH)).toEqual({ status: "SERVING" });
			expect(await ask("")).toEqual({ status: "SERVING" });
		} finally {
			channel.close();
		}
	});

	it("rebuilds the server's AppError with the same code, type and data", async () => {
		const { error } = await timedFailure(grpcCall("probe", "Fail", { code: 409, type: "EMAIL_TAKEN", field: "email" }));
		expect(error).toBeInstanceOf(AppError);
		expect([error.code, error.type, error.message, error.data, error.retryable]).toEqual([409, "EMAIL_TAKEN", "Refused for email.", { field: "email", limit: 3 }, false]);

		const invalid = (await timedFailure(grpcCall("probe", "Fail", { code: 200, type: "X", field: "f" }))).error;
		expect([invalid.code, invalid.type]).toEqual([422, "VALIDATION_ERROR"]);
		expect(invalid.data).toMatchObject({ errors: [{ field: "code", type: "numberMin" }] });

		const hidden = (await timedFailure(grpcCall("probe", "Fail", { code: 500, type: "X", field: "f" }))).error;
		expect([hidden.code, hidden.type]).toEqual([502, "GRPC_INTERNAL"]);
		expect(JSON.stringify({ ...hidden, message: hidden.message })).not.toContain("hunter2");

		// INTERNAL counts toward the breaker (client faults do not); a success ends the run.
		expect(await grpcCall("probe", "Slow", { ms: 1 })).toEqual({ sleptMs: 1 });
	});

	it("gives up at the deadline, or earlier when the caller's own timeout is shorter", async () => {
		const late = await timedFailure(grpcCall("probe", "Slow", { ms: 2_000 }));
		expect([late.error.code, late.error.type]).toEqual([504, "GRPC_DEADLINE_EXCEEDED"]);
		expect(late.error.message).toBe(`test.v1.ProbeService/Slow got no answer within its ${DEADLINE_MS} ms deadline.`);
		expect(late.ms).toBeGreaterThanOrEqual(DEADLINE_MS - 5);
		expect(late.ms).toBeLessThan(DEADLINE_MS + DEADLINE_SLACK_MS);

		const short = await timedFailure(client.call("caller.slow", { ms: 2_000 }, { timeout: 150 }));
		expect(short.error.code).toBe(504);
		expect(short.ms).toBeLessThan(150 + DEADLINE_SLACK_MS);

		// The server is fine: one success closes the run of failures again.
		expect(await grpcCall("probe", "Slow", { ms: 1 })).toEqual({ sleptMs: 1 });
	});

	it("fails over to another server when an advertised address refuses connections", async () => {
		// A node that advertises auth on a port nobody listens on: alive in the registry, dead for gRPC.
		const closed = createServer().listen(0, "127.0.0.1");
		await once(closed, "listening");
		const deadAddress = `127.0.0.1:${(closed.address() as AddressInfo).port}`;
		closed.close();
		const ghost = new ServiceBroker({ ...brokerOptions(`grpc-ghost-${process.pid}`), metadata: { grpc: { [AUTH]: deadAddress } } });
		ghost.createService({ name: "ghost" });
		await ghost.start();
		try {
			await waitFor("the client to see the ghost's address", () => seenAddress(ghost.nodeID) === deadAddress);
			for (let i = 0; i < 6; i++) {
				const started = performance.now();
				expect(((await grpcCall("auth", "Ping", { message: "x" })) as { nodeId: string }).nodeId).toBe(server.nodeID);
				expect(performance.now() - started).toBeLessThan(DEADLINE_MS);
			}
		} finally {
			await ghost.stop();
		}
	});

	it("fails fast with GRPC_UNAVAILABLE once the only server stopped cleanly", async () => {
		await server.stop();
		await waitFor("the client to drop the stopped server", () => !client.registry.nodes.get(server.nodeID)?.available);
		const { error, ms } = await timedFailure(grpcCall("auth", "Ping", { message: "anyone?" }));
		expect([error.code, error.type, error.retryable]).toEqual([503, "GRPC_UNAVAILABLE", true]);
		expect(error.message).toBe(`No node advertises gRPC service ${AUTH}: it is not running, or its nodes are gone.`);
		expect(ms).toBeLessThan(FAIL_FAST_MS);
		expect(metric(client, "grpc.client.calls.total", { service: AUTH, method: "Ping", code: "NO_SERVER" })).toBe(1);
	});

	it("never hangs on a server that froze or died while still in the registry, then fails fast", async () => {
		const nodeID = `grpc-child-${process.pid}`;
		child = spawn(process.execPath, [path.resolve(import.meta.dirname, "../support/grpc-server-node.ts")], {
			env: { ...process.env, NAMESPACE, NODE_ID: nodeID, RABBITMQ_URL },
			stdio: ["ignore", "pipe", "inherit"],
		});
		const ready = await new Promise<string>((resolve, reject) => {
			child!.once("exit", (code) => reject(new Error(`server node exited with ${code}`)));
			createInterface({ input: child!.stdout! }).on("line", (line) => line.startsWith("READY ") && resolve(line.slice(6)));
		});
		await waitFor("the client to see the child's gRPC metadata", () => seenAddress(nodeID) === ready);
		expect(((await grpcCall("auth", "Ping", { message: "x" })) as { nodeId: string }).nodeId).toBe(nodeID);

		// Frozen: the TCP connection stays open and nothing answers. Each call ends at its deadline.
		child.kill("SIGSTOP");
		for (let i = 0; i < THRESHOLD; i++) {
			const { error, ms } = await timedFailure(grpcCall("auth", "Ping", { message: "x" }));
			expect(error.type).toBe("GRPC_DEADLINE_EXCEEDED");
			expect(ms).toBeLessThan(DEADLINE_MS + DEADLINE_SLACK_MS);
		}
		expect(client.registry.nodes.get(nodeID)?.available).toBe(true);
		const open = await timedFailure(grpcCall("auth", "Ping", { message: "x" }));
		expect([open.error.code, open.error.type]).toEqual([503, "GRPC_UNAVAILABLE"]);
		expect(open.error.message).toMatch(new RegExp(`^gRPC service ${AUTH} is failing: the circuit is open for all 1 of its servers; next trial in \\d+ ms\\.$`));
		expect(open.ms).toBeLessThan(FAIL_FAST_MS);

		// Dead (kill -9): connections are refused. After halfOpenMs one trial goes out, fails at once
		// (bounded retries included), and the circuit is open again.
		child.kill("SIGKILL");
		await new Promise((r) => setTimeout(r, HALF_OPEN_MS));
		expect(client.registry.nodes.get(nodeID)?.available).toBe(true);
		const refused = await timedFailure(grpcCall("auth", "Ping", { message: "x" }));
		expect([refused.error.code, refused.error.type]).toEqual([503, "GRPC_UNAVAILABLE"]);
		expect(refused.error.message).toMatch(/^auth\.v1\.AuthService\/Ping is unavailable: /);
		expect(refused.ms).toBeLessThan(DEADLINE_MS + DEADLINE_SLACK_MS);
		const again = await timedFailure(grpcCall("auth", "Ping", { message: "x" }));
		expect(again.error.message).toMatch(/circuit is open/);
		expect(again.ms).toBeLessThan(FAIL_FAST_MS);
	}, 15_000);
});
