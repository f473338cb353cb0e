/**
 * The gRPC bridge: all gRPC wiring of the platform, as two mixin factories.
 *
 * - grpcServerMixin serves a proto service whose rpcs call this service's own actions (so
 *   validation, middlewares and metrics apply), with the standard grpc.health.v1 service, and
 *   advertises its address in Moleculer node metadata (`metadata.grpc[service] = "host:port"`).
 * - grpcClientMixin adds `grpcCall()`, which finds servers through the Moleculer registry, with a
 *   deadline on every call, retries on UNAVAILABLE and a circuit breaker per server address.
 *
 * Errors cross the wire as AppError fields in trailing metadata (lib/grpc-policy.ts).
 */
import { Client, Metadata, Server, ServerCredentials, credentials, status } from "@grpc/grpc-js";
import type { ServiceError, handleUnaryCall } from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import { HealthImplementation } from "grpc-health-check";
import type { Context, Service, ServiceBroker, ServiceSchema } from "moleculer";
import type { Caller } from "../lib/caller.ts";
import { AppError, isDependencyOutage } from "../lib/errors.ts";
import {
	BreakerSet, advertisedAddresses, countsAsFailure, errorToStatus, grpcUnavailable, liveAddresses, remainingMs, retryDelayMs, rotate,
	shouldRetry, statusName, statusToError,
} from "../lib/grpc-policy.ts";
import type { BreakerOptions, RetryPolicy } from "../lib/grpc-policy.ts";
import { serviceDefinition } from "../lib/protos.ts";

const METRIC = {
	serverCalls: "grpc.server.calls.total",
	clientCalls: "grpc.client.calls.total",
	clientDuration: "grpc.client.duration.ms",
} as const;

/** Client channel options: reconnect to a returning server within seconds, not grpc-js' 2 minutes. */
const CHANNEL_OPTIONS = { "grpc.initial_reconnect_backoff_ms": 250, "grpc.max_reconnect_backoff_ms": 5_000 };
const MAX_HEADER_VALUE = 128;

type Method = MethodDefinition<object, object>;

/** Registers once per broker: several services on one node may use the bridge. */
function registerMetric(broker: ServiceBroker, name: string, type: "counter" | "histogram", description: string, labelNames: string[]) {
	if (!broker.isMetricsEnabled() || broker.metrics.hasMetric(name)) return;
	if (type === "counter") broker.metrics.register({ name, type, description, labelNames });
	else broker.metrics.register({ name, type, description, labelNames, unit: "milliseconds", buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] });
}

const headerValue = (md: Metadata, key: string) => {
	const value = md.get(key)[0];
	return typeof value === "string" && value.length <= MAX_HEADER_VALUE ? value : undefined;
};

/** The node-metadata map this node advertises: gRPC service name -> "host:port". */
function advertised(broker: ServiceBroker): Record<string, string> {
	broker.metadata.grpc ??= {};
	return broker.metadata.grpc as Record<string, string>;
}

// --- Server ----------------------------------------------------------------------------------

export interface GrpcServerOptions {
	/** Proto file relative to protos/ (`auth/v1/auth.proto`). */
	proto: string;
	/** Fully-qualified service name (`auth.v1.AuthService`). */
	service: string;
	/** rpc name as in the proto -> action name of the service that mixes this in. */
	methods: Record<string, string>;
	/** Interface to bind; default 127.0.0.1. */
	host?: string;
	/** Port to bind; 0 picks a free one (the bound port is what gets advertised). */
	port?: number;
	/** Host other nodes reach this one at; required when binding to every interface. */
	advertiseHost?: string;
	/** How long stop waits for in-flight calls before cutting them; default 5 s. */
	shutdownTimeoutMs?: number;
}

interface ServerState {
	server: Server;
	health: HealthImplementation;
}

export function grpcServerMixin(opts: GrpcServerOptions): Partial<ServiceSchema> {
	const host = opts.host ?? "127.0.0.1";
	const advertiseHost = opts.advertiseHost ?? host;
	if (["0.0.0.0", "::", "[::]"].includes(advertiseHost)) {
		throw new Error(`grpcServerMixin(${opts.service}): binding to ${host} needs an advertiseHost other nodes can reach`);
	}
	const hostPort = (h: string, port: number) => (h.includes(":") && !h.startsWith("[") ? `[${h}]:${port}` : `${h}:${port}`);

	// Keyed by service instance, so one schema can run on several brokers (tests, REPL).
	const states = new WeakMap<Service, ServerState>();

	function handler(svc: Service, rpc: string, action: string): handleUnaryCall<object, object> {
		return (call, callback) => {
			const deadline = call.getDeadline();
			const left = deadline instanceof Date ? deadline.getTime() - Date.now() : deadline - Date.now();
			const record = (code: string) => {
				if (svc.broker.isMetricsEnabled()) svc.broker.metrics.increment(METRIC.serverCalls, { service: opts.service, method: rpc, code });
			};
			svc.broker
				.call(`${svc.fullName}.${action}`, call.request, {
					requestID: headerValue(call.metadata, "x-request-id"),
					meta: metaFromMetadata(call.metadata),
					// The client's deadline becomes the action's timeout: no work continues for nobody.
					timeout: Number.isFinite(left) ? Math.max(1, Math.floor(left)) : undefined,
				})
				.then(
					(response: unknown) => {
						record("OK");
						callback(null, response as object);
					},
					(err: unknown) => {
						const answer = errorToStatus(err);
						if (answer.code === status.INTERNAL) svc.logger.error(`gRPC ${opts.service}/${rpc} failed`, err);
						else if (isDependencyOutage(err)) svc.logger.warn(`gRPC ${opts.service}/${rpc}: a dependency is unavailable`, err instanceof Error ? err.message : String(err));
						record(statusName(answer.code));
						callback(answer);
					},
				);
		};
	}

	return {
		created(this: Service) {
			const definition = serviceDefinition(opts.proto, opts.service);
			for (const [rpc, action] of Object.entries(opts.methods)) {
				const method = definition[rpc];
				if (!method || method.requestStream || method.responseStream) {
					throw new Error(`grpcServerMixin: '${rpc}' is not a unary rpc of ${opts.service}`);
				}
				if (!this.schema.actions?.[action]) throw new Error(`grpcServerMixin: rpc ${rpc} maps to '${action}', which ${this.name} does not define`);
			}
			registerMetric(this.broker, METRIC.serverCalls, "counter", "gRPC calls served, by final status", ["service", "method", "code"]);
		},

		async started(this: Service) {
			const server = new Server();
			const definition = serviceDefinition(opts.proto, opts.service);
			const handlers = Object.fromEntries(Object.entries(opts.methods).map(([rpc, action]) => [rpc, handler(this, rpc, action)]));
			server.addService(definition, handlers);
			const health = new HealthImplementation({ "": "NOT_SERVING", [opts.service]: "NOT_SERVING" });
			health.addToServer(server);
			const listen = hostPort(host, opts.port ?? 0);
			const port = await new Promise<number>((resolve, reject) =>
				server.bindAsync(listen, ServerCredentials.createInsecure(), (err, bound) =>
					err ? reject(new Error(`gRPC ${opts.service} cannot listen on ${listen}: ${err.message}`)) : resolve(bound),
				),
			);
			const address = hostPort(advertiseHost, port);
			states.set(this, { server, health });
			health.setStatus("", "SERVING");
			health.setStatus(opts.service, "SERVING");
			// No INFO re-send needed: the local node's `metadata` is this very object, and Moleculer
			// registers the service right after started() resolves, which bumps the INFO `seq` and
			// broadcasts INFO (debounced 1 s). The integration test asserts a remote node sees it.
			advertised(this.broker)[opts.service] = address;
			this.logger.info(`gRPC ${opts.service} listening on ${hostPort(host, port)}, advertised as ${address}`);
		},

		async stopped(this: Service) {
			const state = states.get(this);
			if (!state) return;
			states.delete(this);
			state.health.setStatus("", "NOT_SERVING");
			state.health.setStatus(opts.service, "NOT_SERVING");
			delete advertised(this.broker)[opts.service];
			await new Promise<void>((resolve) => {
				const force = setTimeout(() => {
					state.server.forceShutdown();
					resolve();
				}, opts.shutdownTimeoutMs ?? 5_000);
				state.server.tryShutdown(() => {
					clearTimeout(force);
					resolve();
				});
			});
		},
	};
}

// --- Client ----------------------------------------------------------------------------------

export interface GrpcClientTarget {
	proto: string;
	service: string;
}

export interface GrpcClientOptions {
	/** Local name -> contract, e.g. `{ auth: { proto: "auth/v1/auth.proto", service: "auth.v1.AuthService" } }`. */
	clients: Record<string, GrpcClientTarget>;
	/** Deadline of every call, shortened to the caller's remaining timeout; default 2000. */
	deadlineMs?: number;
	/** Rpc name -> its own deadline, for the few that are slow by design (password hashing). */
	methodDeadlinesMs?: Record<string, number>;
	/** Extra attempts on UNAVAILABLE (0..5); default 2. */
	retries?: number;
	/** First back-off between attempts, doubled each time, capped at 8x; default 25. */
	retryDelayMs?: number;
	breaker?: Partial<BreakerOptions>;
}

export interface GrpcClientMethods {
	/** Calls `method` (rpc name as in the proto) of the service behind `client`; rejects with AppError. */
	grpcCall(client: string, method: string, request: object, ctx?: Context): Promise<object>;
}

interface ClientState {
	channels: Map<string, Client>;
	breakers: BreakerSet;
	turns: Map<string, number>;
}

/** Closes channels and forgets breakers of addresses no available node advertises any more. */
function prune(state: ClientState, broker: ServiceBroker) {
	const live = liveAddresses(broker.registry.nodes.toArray());
	for (const [address, channel] of state.channels) {
		if (!live.has(address)) {
			channel.close();
			state.channels.delete(address);
		}
	}
	state.breakers.retain(live);
}

type Attempt = { ok: true; value: object } | { ok: false; error: ServiceError };

function unary(channel: Client, method: Method, payload: Buffer, metadata: Metadata, deadline: number): Promise<Attempt> {
	return new Promise((resolve) => {
		channel.makeUnaryRequest(method.path, (b: Buffer) => b, method.responseDeserialize, payload, metadata, { deadline }, (error, value) =>
			resolve(error ? { ok: false, error } : { ok: true, value: value ?? {} }),
		);
	});
}

export function grpcClientMixin(opts: GrpcClientOptions): Partial<ServiceSchema> {
	const deadlineMs = opts.deadlineMs ?? 2_000;
	const baseDelay = opts.retryDelayMs ?? 25;
	const policy: RetryPolicy = { retries: opts.retries ?? 2, baseDelayMs: baseDelay, maxDelayMs: baseDelay * 8 };
	const breakerOptions: BreakerOptions = { threshold: 5, windowMs: 10_000, halfOpenMs: 5_000, ...opts.breaker };

	const states = new WeakMap<Service, ClientState>();
	const stateOf = (svc: Service) => {
		const state = states.get(svc);
		if (!state) throw new Error(`grpcCall: ${svc.fullName} is not created`);
		return state;
	};

	function target(client: string) {
		const t = opts.clients[client];
		if (!t) throw new Error(`grpcCall: unknown gRPC client '${client}'; configured: ${Object.keys(opts.clients).join(", ")}`);
		return t;
	}

	async function call(svc: Service, client: string, method: string, request: object, ctx?: Context): Promise<{ value: object } | { code: string; error: AppError }> {
		const { service, proto } = target(client);
		const definition = serviceDefinition(proto, service)[method];
		if (!definition) throw new Error(`grpcCall: ${service} has no rpc '${method}'`);
		const budget = Math.floor(Math.min(opts.methodDeadlinesMs?.[method] ?? deadlineMs, (ctx && remainingMs(ctx.options.timeout, ctx.startHrTime)) ?? Infinity));
		const site = { service, method, deadlineMs: budget };
		if (budget <= 0) return { code: "DEADLINE_EXCEEDED", error: statusToError({ code: status.DEADLINE_EXCEEDED, details: "", metadata: new Metadata() }, site) };

		let payload: Buffer;
		try {
			payload = definition.requestSerialize(request);
		} catch (err) {
			// Encoded up front so a malformed request never reaches (or is blamed on) a server.
			return { code: "INVALID_REQUEST", error: new AppError(400, "GRPC_INVALID_REQUEST", `Cannot encode the ${service}/${method} request: ${(err as Error).message}`) };
		}
		const metadata = new Metadata();
		if (ctx?.requestID) metadata.set("x-request-id", ctx.requestID);
		metadata.set("x-caller", `${svc.broker.nodeID}/${svc.fullName}`);
		setMetaOnMetadata(metadata, ctx?.meta);

		const state = stateOf(svc);
		const turn = state.turns.get(service) ?? 0;
		state.turns.set(service, turn + 1);
		const addresses = rotate(advertisedAddresses(svc.broker.registry.nodes.toArray(), service), turn);
		if (addresses.length === 0) {
			return { code: "NO_SERVER", error: grpcUnavailable(`No node advertises gRPC service ${service}: it is not running, or its nodes are gone.`, { service }) };
		}
		const deadline = Date.now() + budget;
		const tried = new Set<string>();
		let last: ServiceError | undefined;
		for (let attempt = 1; ; attempt++) {
			const address = state.breakers.pick(addresses, tried);
			if (!address) break;
			tried.add(address);
			let channel = state.channels.get(address);
			if (!channel) state.channels.set(address, (channel = new Client(address, credentials.createInsecure(), CHANNEL_OPTIONS)));
			const result = await unary(channel, definition, payload, metadata.clone(), deadline);
			const breaker = state.breakers.get(address);
			if (result.ok || !countsAsFailure(result.error.code)) breaker.onSuccess();
			else breaker.onFailure();
			if (result.ok) return { value: result.value };
			last = result.error;
			if (!shouldRetry(last.code, attempt, policy, deadline - Date.now())) break;
			await new Promise((r) => setTimeout(r, retryDelayMs(attempt, policy)));
		}
		if (last) return { code: statusName(last.code), error: statusToError(last, site) };
		const message = `gRPC service ${service} is failing: the circuit is open for all ${addresses.length} of its servers; next trial in ${state.breakers.retryInMs(addresses)} ms.`;
		return { code: "CIRCUIT_OPEN", error: grpcUnavailable(message, { service, addresses }) };
	}

	return {
		events: {
			"$node.disconnected"(this: Service) {
				prune(stateOf(this), this.broker);
			},
			"$node.updated"(this: Service) {
				prune(stateOf(this), this.broker);
			},
		},

		methods: {
			async grpcCall(this: Service, client: string, method: string, request: object, ctx?: Context): Promise<object> {
				const started = performance.now();
				const outcome = await call(this, client, method, request, ctx);
				if (this.broker.isMetricsEnabled()) {
					const labels = { service: target(client).service, method };
					this.broker.metrics.increment(METRIC.clientCalls, { ...labels, code: "value" in outcome ? "OK" : outcome.code });
					this.broker.metrics.observe(METRIC.clientDuration, performance.now() - started, labels);
				}
				if ("value" in outcome) return outcome.value;
				throw outcome.error;
			},
		},

		created(this: Service) {
			// Load every contract now, so a wrong proto or service name stops the node at start.
			for (const { proto, service } of Object.values(opts.clients)) serviceDefinition(proto, service);
			states.set(this, { channels: new Map(), breakers: new BreakerSet(breakerOptions), turns: new Map() });
			registerMetric(this.broker, METRIC.clientCalls, "counter", "gRPC client calls, by final outcome", ["service", "method", "code"]);
			registerMetric(this.broker, METRIC.clientDuration, "histogram", "gRPC client call duration, retries included", ["service", "method"]);
		},

		async stopped(this: Service) {
			const state = stateOf(this);
			for (const channel of state.channels.values()) channel.close();
			state.channels.clear();
			state.breakers.retain(new Set());
		},
	};
}

/**
 * What a call carries besides its request: the calling service (`x-caller`), the end user the
 * gateway authenticated (`x-caller-identity-bin`, JSON) and the client's IP (`x-client-ip`).
 * The server side trusts them because only the gateway can reach gRPC ports (NetworkPolicy).
 */
interface RequestMeta {
	caller?: Caller;
	clientIp?: string;
}

function setMetaOnMetadata(metadata: Metadata, meta: RequestMeta | undefined): void {
	if (meta?.caller) metadata.set("x-caller-identity-bin", Buffer.from(JSON.stringify(meta.caller)));
	if (meta?.clientIp) metadata.set("x-client-ip", meta.clientIp);
}

function metaFromMetadata(metadata: Metadata): RequestMeta & { grpcCaller?: string } {
	const meta: RequestMeta & { grpcCaller?: string } = {};
	const service = headerValue(metadata, "x-caller");
	if (service) meta.grpcCaller = service;
	const identity = metadata.get("x-caller-identity-bin")[0];
	if (Buffer.isBuffer(identity)) meta.caller = parseCaller(identity);
	const ip = headerValue(metadata, "x-client-ip");
	if (ip) meta.clientIp = ip;
	return meta;
}

/** A caller identity as the gateway sends it, or undefined when the bytes are not one. */
function parseCaller(bytes: Buffer): Caller | undefined {
	try {
		const c = JSON.parse(bytes.toString("utf8")) as Partial<Caller>;
		const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === "string");
		return typeof c.userId === "string" && typeof c.sessionId === "string" && strings(c.roles) && strings(c.permissions) ? (c as Caller) : undefined;
	} catch {
		return undefined;
	}
}
