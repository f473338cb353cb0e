/**
 * gateway: the single HTTP entry point (moleculer-web). Every request gets a request id and the
 * client's real IP, is admitted only while this node has room (load shedding, per-service
 * bulkheads), is authenticated by public key (access JWT verified locally with auth's JWKS),
 * rate limited in Redis across all gateway nodes, and routed: auth over the gRPC bridge, billing
 * and notification as Moleculer calls. Every error leaves as RFC 9457 problem+json.
 * The route table is services/gateway/routes.ts.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Context, Service, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { ApiRouteSchema, ApiSettingsSchema } from "moleculer-web";
import { assertPermitted } from "../lib/caller.ts";
import type { Caller } from "../lib/caller.ts";
import type { Config } from "../lib/config.ts";
import { AppError, unauthorized } from "../lib/errors.ts";
import type { HealthReport } from "../lib/health.ts";
import { clusterHealth } from "../lib/cluster-health.ts";
import { PROBLEM_CONTENT_TYPE, toProblem } from "../lib/problem.ts";
import { closeRedis, createRedis } from "../lib/redis.ts";
import { traceresponse } from "../lib/trace-context.ts";
import { grpcClientMixin } from "../mixins/grpc.mixin.ts";
import { Admission, SHED_RETRY_AFTER_S } from "./gateway/admission.ts";
import { AlertStreams } from "./gateway/alert-streams.ts";
import { bearerToken, clientIpResolver, jsonBodiesOnly, requestIdOf, setSecurityHeaders, writeRefusal } from "./gateway/http.ts";
import { ConnectionGuard, SLOW_CLIENT_LIMITS } from "./gateway/connections.ts";
import { drainConnections } from "./gateway/drain.ts";
import { fileActions } from "./gateway/file-actions.ts";
import { AUTO_ALIASED_PREFIXES, exemptFromShedding, rateLimitOf, serviceOfPath } from "./gateway/edge-policy.ts";
import type { EdgePolicy } from "./gateway/edge-policy.ts";
import { CONNECTIONS_OPEN, CONNECTIONS_REFUSED, HTTP_REQUESTS, httpMetricsMiddleware, registerHttpMetrics } from "./gateway/http-metrics.ts";
import { parsePolicy, RateLimiter, rateLimitHeaders } from "./gateway/rate-limit.ts";
import type { RatePolicy } from "./gateway/rate-limit.ts";
import { AUTH_ROUTES, AUTO_ALIASED, proxyActionName } from "./gateway/routes.ts";
import { TokenVerifier } from "./gateway/token-verifier.ts";

const NODE_HEALTH_TIMEOUT_MS = 1_500;
/**
 * Timeout of a call from the edge to billing or notification (their p99 is ~20 ms). A node killed
 * without notice is dropped only after the heartbeat timeout (~10 s); until the circuit breaker
 * opens, a caller waits this long instead of the 10 s service-to-service default
 * (docs/reliability.md, scenario 2).
 */
const EDGE_CALL_TIMEOUT_MS = 2_000;
/**
 * Rpcs that hash a password (bcrypt, ~0.1-0.3 s of a core at cost 12). A burst of them queues in
 * auth's hashing threads; with the 2 s deadline of cheap rpcs they timed out and opened the
 * circuit, so logins failed under a load auth was still working through (docs/benchmarks.md).
 */
const CREDENTIAL_DEADLINE_MS = 8_000;
const CREDENTIAL_RPCS = ["Register", "Login", "ResetPassword", "ChangePassword", "RequestEmailChange", "StartTotp", "DisableTotp", "RegenerateRecoveryCodes", "StartPasskeyRegistration", "DeleteAccount"];
const JSON_LIMIT = "64kb";

type Request = IncomingMessage & { $ctx?: Context; $action?: EdgePolicy; $alias?: object; originalUrl?: string; rawBody?: Buffer };

type Meta = {
	caller?: Caller;
	clientIp?: string;
	webhook?: { rawBody: string; signature: string };
	$statusCode?: number;
	$location?: string;
};

interface GatewayMethods {
	grpcCall(client: string, method: string, request: object, ctx?: Context): Promise<object>;
	httpHandler(req: Request, res: ServerResponse, next?: unknown): Promise<void>;
	platformHealth(): Promise<unknown>;
	authenticate(ctx: Context<unknown, Meta>, route: unknown, req: Request, res: ServerResponse): Promise<null>;
	authorize(ctx: Context<unknown, Meta>, route: unknown, req: Request): Promise<void>;
	applyRateLimit(res: ServerResponse, policy: RatePolicy, subject: string): Promise<void>;
}

export default function gatewayService(config: Config): ServiceSchema<ApiSettingsSchema, GatewayMethods> {
	const redis = createRedis(config.redisUrl!, `${config.nodeId}/gateway`);
	const limiter = new RateLimiter(redis, config.namespace || "backplane");
	const policies: Record<string, RatePolicy> = {
		anonymous: parsePolicy("anonymous", config.gateway.rateLimits.anonymous),
		user: parsePolicy("user", config.gateway.rateLimits.user),
		"auth-strict": parsePolicy("auth-strict", config.gateway.rateLimits.authStrict),
	};
	const clientIp = clientIpResolver(config.gateway.trustedProxies);
	const streams = new AlertStreams();
	const admission = new Admission(config.gateway.admission);
	const mfaPolicy = { admins: config.gateway.adminRequiresMfa, everyone: config.gateway.usersRequireMfa };
	let verifier: TokenVerifier;
	let connections: ConnectionGuard | undefined;
	let draining = false;
	const files = fileActions();
	let metricsMiddleware = (_req: Request, _res: ServerResponse, next: () => void) => next();

	// Auth routes call local actions that forward to auth over gRPC; edge policy comes from the table.
	const grpcProxies = Object.fromEntries(
		AUTH_ROUTES.map((r) => [
			proxyActionName(r),
			{
				visibility: "published",
				auth: r.auth,
				permissions: r.permissions,
				rateLimit: r.rateLimit,
				enrolment: r.enrolment,
				async handler(this: Service & GatewayMethods, ctx: Context<Record<string, unknown>, Meta>) {
					const result = await this.grpcCall("auth", r.rpc, ctx.params, ctx);
					if (r.successStatus) ctx.meta.$statusCode = r.successStatus;
					if (r.location) ctx.meta.$location = r.location;
					return r.successStatus === 204 ? null : result;
				},
			},
		]),
	);
	const aliasesOf = (absolute: boolean) =>
		Object.fromEntries(AUTH_ROUTES.filter((r) => r.route.split(" ")[1]!.startsWith("/") === absolute).map((r) => [r.route, `gateway.${proxyActionName(r)}`]));

	const apiRoute = {
		authentication: true,
		authorization: true,
		mappingPolicy: "restrict",
		bodyParsers: { json: { limit: JSON_LIMIT, strict: true, type: ["application/json", "application/*+json"] }, urlencoded: false },
		use: [jsonBodiesOnly],
	};

	return {
		name: "gateway",
		mixins: [
			ApiGateway,
			grpcClientMixin({
				clients: { auth: { proto: "auth/v1/auth.proto", service: "auth.v1.AuthService" } },
				deadlineMs: config.grpc.deadlineMs,
				methodDeadlinesMs: Object.fromEntries(CREDENTIAL_RPCS.map((rpc) => [rpc, Math.max(config.grpc.deadlineMs, CREDENTIAL_DEADLINE_MS)])),
				retries: 2,
				breaker: { threshold: 5, windowMs: 10_000, halfOpenMs: 5_000 },
			}),
		],

		settings: {
			port: config.gateway.port,
			ip: config.gateway.host,
			// Map the routes of a service 10 ms after discovery finds it, not moleculer-web's 500 ms:
			// meanwhile its routes answer 503 and /readyz says not ready (docs/reliability.md).
			debounceTime: 10,
			// One line per request at info would dominate the gateway's CPU; metrics count requests.
			logRequest: "debug",
			logResponse: "debug",
			log4XXResponses: false,
			logRequestParams: null,
			logResponseData: null,
			// Runs before the request's context exists: its id and the client IP come from here.
			rootCallOptions: ((options: { requestID?: string; meta?: Meta }, req: Request, res: ServerResponse) => {
				options.requestID = requestIdOf(req);
				// The trace id every node logs for this request (W3C Trace Context, lib/trace-context.ts).
				res.setHeader("traceresponse", traceresponse(options.requestID));
				options.meta = { clientIp: clientIp(req) };
			}) as unknown as ApiSettingsSchema["rootCallOptions"],
			cors: config.gateway.corsOrigins.length ? { origin: config.gateway.corsOrigins, credentials: true, maxAge: 600, exposedHeaders: ["X-Request-ID", "traceresponse", "RateLimit", "RateLimit-Policy", "Retry-After"] } : undefined,
			use: [
				(req: Request, res: ServerResponse, next: () => void) => metricsMiddleware(req, res, next),
				(req: Request, res: ServerResponse, next: (err?: unknown) => void) => {
					setSecurityHeaders(res, config.gateway.hsts);
					// Draining (shutting down): answer, then close the connection, so a keep-alive client
					// reconnects through the load balancer to another gateway.
					if (draining) res.setHeader("Connection", "close");
					next();
				},
			],
			routes: ([
				{
					name: "root",
					path: "/",
					mappingPolicy: "restrict",
					authentication: true,
					aliases: {
						"GET healthz": "gateway.liveness",
						"GET readyz": "gateway.readiness",
						...aliasesOf(true),
						// The console: its page for the paths it owns (e-mailed links land on them), then its files.
						"GET /": "gateway.console",
						"GET reset-password": "gateway.console",
						"GET verify-email": "gateway.console",
						"GET confirm-email": "gateway.console",
						"GET revert-email": "gateway.console",
						"GET assets/:file": "gateway.consoleAsset",
						"GET sw.js": "gateway.consoleServiceWorker",
					},
				},
				{ name: "docs", path: "/api", mappingPolicy: "restrict", aliases: { "GET openapi.json": "gateway.openapi", "GET docs": "gateway.docs", "GET docs/:file": "gateway.docsAsset" }, authentication: true },
				{
					name: "webhooks",
					path: "/api/v1/billing/webhooks",
					mappingPolicy: "restrict",
					aliases: { "POST stripe": "gateway.stripeWebhook" },
					// Stripe signs the exact bytes: keep them beside the parsed body.
					bodyParsers: { json: { limit: "1mb", verify: (req: Request, _res: unknown, buf: Buffer) => (req.rawBody = Buffer.from(buf)) } },
					onBeforeCall(ctx: Context<unknown, Meta>, _route: unknown, req: Request) {
						const signature = req.headers["stripe-signature"];
						ctx.meta.webhook = { rawBody: (req.rawBody ?? Buffer.alloc(0)).toString("base64"), signature: typeof signature === "string" ? signature : "" };
					},
				},
				// Two routes share /api/v1 (moleculer-web tells them apart by name): the gRPC-backed
				// auth routes and the auto-aliased services, each with its own whitelist.
				{
					name: "api-grpc",
					path: "/api/v1",
					...apiRoute,
					aliases: {
						...aliasesOf(false),
						"GET notifications/stream"(this: Service, req: Request, res: ServerResponse) {
							streams.open((req.$ctx as Context<unknown, Meta>).meta.caller!.userId, res);
						},
					},
				},
				{ name: "api", path: "/api/v1", ...apiRoute, whitelist: AUTO_ALIASED.map((s) => `${s}.*`), autoAliases: true, aliases: {}, callOptions: { timeout: Math.min(config.requestTimeoutMs, EDGE_CALL_TIMEOUT_MS) } },
			] as ApiRouteSchema[]),
			onError(this: Service, req: Request, res: ServerResponse, err: unknown) {
				const requestId = req.$ctx?.requestID ?? undefined;
				// A service with no available endpoint (last node gone, every circuit open) loses its
				// auto-aliases: a path under its prefix is then unavailable (503), not unknown (404).
				const prefix = /^\/api\/v1\/([^/?]+)/.exec(req.originalUrl ?? req.url ?? "")?.[1];
				const owner = prefix ? AUTO_ALIASED_PREFIXES[prefix] : undefined;
				if (owner && (err as { name?: string } | null)?.name === "NotFoundError" && !(this as unknown as { aliases: { action?: string }[] }).aliases.some((a) => a.action?.startsWith(`${owner}.`))) {
					err = Object.assign(new Error(`${owner} is not available`), { name: "ServiceNotAvailableError" });
				}
				const problem = toProblem(err, req.originalUrl ?? req.url, requestId);
				if (problem.status >= 500) this.logger.error("request failed", { url: req.url, requestId, err });
				if (requestId) res.setHeader("X-Request-ID", requestId);
				// A refusal that says when to come back (auth's lockout, its busy password checks).
				const retryAfterS = (err as { data?: { retryAfterS?: unknown } } | null)?.data?.retryAfterS;
				if ((problem.status === 429 || problem.status === 503) && typeof retryAfterS === "number") res.setHeader("Retry-After", String(Math.ceil(retryAfterS)));
				res.setHeader("Content-Type", PROBLEM_CONTENT_TYPE);
				res.writeHead(problem.status);
				res.end(JSON.stringify(problem));
			},
		},

		actions: {
			// moleculer-web's HTTP entry action. Never retried: the broker's retry policy (for calls
			// that did not reach a service) would re-run it on a consumed request and answer 404.
			// No broker bulkhead either: one shared queue for every route let requests to a slow
			// service starve all others; admission control bounds each service's share instead.
			rest: { retryPolicy: { enabled: false }, bulkhead: { enabled: false } },
			...grpcProxies,
			/** Alive: the process answers. Reports every service's health without failing on it. */
			liveness: { visibility: "published", auth: "none", rateLimit: "none", handler() { return this.platformHealth(); } },
			/** Ready: this gateway can serve traffic (its own dependencies answer). */
			readiness: {
				visibility: "published",
				auth: "none",
				rateLimit: "none",
				handler(ctx: Context<unknown, Meta>) {
					// routes: not draining, and every service this gateway can reach has its routes mapped
					// (`debounceTime` after discovery; a load balancer that sends traffic to a fresh
					// gateway before that gets 503s: docs/reliability.md, graceful shutdown).
					const gw = this as unknown as { aliases: { action?: string }[] };
					const reachable = new Set(this.broker.registry.getActionList({ onlyAvailable: true, skipInternal: true }).map((a: { name: string }) => a.name.split(".")[0]!));
					const routes = !draining && AUTO_ALIASED.every((svc) => !reachable.has(svc) || gw.aliases.some((a) => a.action?.startsWith(`${svc}.`)));
					const checks = { rabbitmq: this.broker.transit?.connected === true, redis: redis.status === "ready", routes };
					const ready = Object.values(checks).every(Boolean);
					if (!ready) ctx.meta.$statusCode = 503;
					return { status: ready ? "ready" : "not_ready", checks };
				},
			},
			...files.actions,
			/** Operator view (REPL): the endpoints this gateway's circuit breaker has taken out of rotation. */
			circuitBreakers: {
				visibility: "public",
				handler() {
					const actions = this.broker.registry.getActionList({ skipInternal: true, withEndpoints: true }) as { name: string; endpoints?: { nodeID: string; state: boolean; available: boolean }[] }[];
					const open = actions.flatMap((a) => (a.endpoints ?? []).filter((ep) => ep.available && !ep.state).map((ep) => ({ action: a.name, nodeId: ep.nodeID })));
					return { gateway: this.broker.nodeID, open };
				},
			},
			stripeWebhook: {
				visibility: "published",
				auth: "none",
				handler(ctx: Context<unknown, Meta>) {
					return ctx.call("billing.handleStripeWebhook", { ...ctx.meta.webhook, encoding: "base64" });
				},
			},
		},

		events: {
			// Pushed by auth when a session ends: its tokens stop working before they expire.
			"auth.session.revoked"(ctx: Context<{ sessionId: string; expiresAt: string }>) {
				verifier.revokeSession(ctx.params.sessionId, Date.parse(ctx.params.expiresAt) / 1000);
			},
			"notification.alert.created"(ctx: Context<{ userId: string; alert: { id: string }; unreadCount?: number }>) {
				streams.send(ctx.params.userId, "alert", { alert: ctx.params.alert, unreadCount: ctx.params.unreadCount }, ctx.params.alert.id);
			},
			// Routes and actions changed: the spec is rebuilt on next request.
			"$services.changed"() {
				files.invalidateSpec();
			},
		},

		methods: {
			/**
			 * moleculer-web's entry for every HTTP request, wrapped: admission runs before any
			 * context, routing or middleware exists, so a refusal costs almost nothing. (Refused
			 * inside the route's middlewares, a flood of 1,000 connections spent the node's CPU on
			 * refusals and starved the requests it had admitted: docs/reliability.md, overload.)
			 */
			httpHandler(req: Request, res: ServerResponse, next?: unknown) {
				const path = req.url ?? "/";
				if (!exemptFromShedding(path)) {
					try {
						res.once("close", admission.admit(serviceOfPath(path)));
					} catch (err) {
						// Counted under the route "shed": refused before routing knew the route.
						if (this.broker.isMetricsEnabled()) this.broker.metrics.increment(HTTP_REQUESTS, { method: req.method ?? "GET", route: "shed", status: 503 });
						return Promise.resolve(writeRefusal(res, err as AppError, path, { hsts: config.gateway.hsts, retryAfterS: SHED_RETRY_AFTER_S }));
					}
				}
				return (ApiGateway.methods!.httpHandler as GatewayMethods["httpHandler"]).call(this, req, res, next);
			},
			async authenticate(ctx: Context<unknown, Meta>, _route: unknown, req: Request, res: ServerResponse) {
				const policy: EdgePolicy = req.$action ?? { auth: "required" };
				const token = bearerToken(req);
				const caller = token ? await verifier.verify(token) : undefined;
				if (!caller && policy.auth !== "none") throw unauthorized("This request needs `Authorization: Bearer <access token>`.");
				if (caller) ctx.meta.caller = { userId: caller.userId, sessionId: caller.sessionId, roles: caller.roles, permissions: caller.permissions, amr: caller.amr };
				const limit = rateLimitOf(policy, caller, ctx.meta.clientIp, policies);
				if (limit) await this.applyRateLimit(res, limit.policy, limit.subject);
				return null;
			},
			async authorize(ctx: Context<unknown, Meta>, _route: unknown, req: Request) {
				// The rule every node applies again (middlewares/permissions.ts); refused here before any call.
				assertPermitted(ctx.meta.caller, req.$action ?? { auth: "required" }, mfaPolicy);
			},
			async applyRateLimit(res: ServerResponse, policy: RatePolicy, subject: string) {
				const decision = await limiter.take(policy, subject);
				for (const [k, v] of Object.entries(rateLimitHeaders(decision))) res.setHeader(k, v);
				if (!decision.allowed) throw new AppError(429, "RATE_LIMITED", `Too many requests; try again in ${decision.retryAfterS} s.`);
			},
			async platformHealth() {
				const hosts: Record<string, string[]> = { auth: [], billing: [], notification: [] };
				for (const svc of this.broker.registry.getServiceList({ onlyAvailable: true }) as { name: string; nodeID: string }[]) {
					hosts[svc.name]?.push(svc.nodeID);
				}
				const [cluster, grpc] = await Promise.all([
					clusterHealth(hosts, (service, nodeID) => this.broker.call<HealthReport, object>(`${service}.health`, {}, { nodeID, timeout: NODE_HEALTH_TIMEOUT_MS, retries: 0 })),
					this.grpcCall("auth", "Ping", { message: "health" }).then(
						() => ({ status: "up" as const }),
						(err: Error) => ({ status: "down" as const, error: err.message }),
					),
				]);
				return { ...cluster, gateway: { nodeId: this.broker.nodeID, authGrpc: grpc, openStreams: streams.size, openConnections: connections?.size, inFlight: admission.inFlight() } };
			},
		},

		created() {
			if (this.broker.isMetricsEnabled()) {
				registerHttpMetrics(this.broker.metrics);
				const record = httpMetricsMiddleware(this.broker.metrics);
				metricsMiddleware = (req, res, next) => record(req, res, next);
			}
			// moleculer-web (a mixin, so created first) has made the server; it listens in started().
			const server = (this as unknown as { server?: Server }).server;
			if (server) {
				const metrics = this.broker.isMetricsEnabled() ? this.broker.metrics : undefined;
				connections = new ConnectionGuard(
					{ maxConnections: config.gateway.maxConnections, ...SLOW_CLIENT_LIMITS },
					{
						opened: () => metrics?.increment(CONNECTIONS_OPEN),
						closed: () => metrics?.decrement(CONNECTIONS_OPEN),
						refused: () => metrics?.increment(CONNECTIONS_REFUSED),
						warn: (message, data) => this.logger.warn(message, data),
					},
				);
				connections.attach(server);
			}
			verifier = new TokenVerifier({
				issuer: config.gateway.tokenIssuer,
				audience: config.gateway.tokenAudience,
				fetchJwks: async () => (await this.grpcCall("auth", "GetJwks", {})) as { keys: [] },
			});
		},
		async started() {
			await redis.connect();
			streams.start();
			admission.start();
		},
		async stopped() {
			// Graceful shutdown: drain the HTTP connections, and only then close Redis (closing it
			// first fails the requests still arriving; docs/reliability.md, graceful shutdown).
			draining = true;
			const server = (this as unknown as { server?: Server }).server;
			if (server) await drainConnections(server);
			admission.stop();
			connections?.stop();
			streams.close();
			await closeRedis(redis);
		},
	};
}

