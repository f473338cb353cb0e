/**
 * gateway: the single HTTP entry point (moleculer-web). Routes under /api/v1 call the other
 * services; auth's strong-contract calls go over the gRPC bridge. Every error leaves as
 * RFC 9457 problem+json.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, Service, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { ApiSettingsSchema } from "moleculer-web";
import { clusterHealth } from "../lib/cluster-health.ts";
import type { Config } from "../lib/config.ts";
import type { HealthReport } from "../lib/health.ts";
import { PROBLEM_CONTENT_TYPE, toProblem } from "../lib/problem.ts";
import { closeRedis, createRedis } from "../lib/redis.ts";
import { grpcClientMixin } from "../mixins/grpc.mixin.ts";

/** The services whose health the gateway reports. */
const BACKENDS = ["auth", "billing", "notification"] as const;
const NODE_HEALTH_TIMEOUT_MS = 1_500;

type Request = IncomingMessage & { $ctx?: Context; originalUrl?: string };

interface GatewayMethods {
	/** From grpcClientMixin. */
	grpcCall(client: string, method: string, request: object, ctx?: Context): Promise<object>;
	platformHealth(): Promise<unknown>;
}

export default function gatewayService(config: Config): ServiceSchema<ApiSettingsSchema, GatewayMethods> {
	const redis = createRedis(config.redisUrl!, `${config.nodeId}/gateway`);

	return {
		name: "gateway",
		mixins: [
			ApiGateway,
			grpcClientMixin({
				clients: { auth: { proto: "auth/v1/auth.proto", service: "auth.v1.AuthService" } },
				deadlineMs: config.grpc.deadlineMs,
				retries: 2,
				breaker: { threshold: 5, windowMs: 10_000, halfOpenMs: 5_000 },
			}),
		],

		settings: {
			port: config.gateway.port,
			ip: config.gateway.host,
			log4XXResponses: false,
			logRequestParams: null,
			logResponseData: null,
			cors: config.gateway.corsOrigins.length ? { origin: config.gateway.corsOrigins, credentials: true, maxAge: 600 } : undefined,
			routes: [
				{
					path: "/",
					mappingPolicy: "restrict",
					aliases: {
						"GET healthz": "gateway.liveness",
						"GET readyz": "gateway.readiness",
					},
				},
				{
					path: "/api/v1",
					mappingPolicy: "restrict",
					bodyParsers: { json: { limit: "64kb", strict: true } },
					aliases: {
						"POST auth/register": "auth.register",
					},
				},
			],
			onError(this: Service, req: Request, res: ServerResponse, err: unknown) {
				const requestId = req.$ctx?.requestID ?? undefined;
				const problem = toProblem(err, req.originalUrl ?? req.url, requestId);
				if (problem.status >= 500) this.logger.error("request failed", { url: req.url, requestId, err });
				res.setHeader("Content-Type", PROBLEM_CONTENT_TYPE);
				res.writeHead(problem.status);
				res.end(JSON.stringify(problem));
			},
		},

		actions: {
			/** Alive: the process answers. Reports every service's health without failing on it. */
			liveness: {
				visibility: "published",
				async handler() {
					return this.platformHealth();
				},
			},
			/** Ready: this gateway can serve traffic (its own dependencies answer). */
			readiness: {
				visibility: "published",
				async handler(ctx: Context<unknown, { $statusCode?: number }>) {
					const checks = { rabbitmq: this.broker.transit?.connected === true, redis: redis.status === "ready" };
					const ready = Object.values(checks).every(Boolean);
					if (!ready) ctx.meta.$statusCode = 503;
					return { status: ready ? "ready" : "not_ready", checks };
				},
			},
		},

		methods: {
			async platformHealth() {
				const hosts: Record<string, string[]> = Object.fromEntries(BACKENDS.map((s) => [s, []]));
				for (const svc of this.broker.registry.getServiceList({ onlyAvailable: true }) as { name: string; nodeID: string }[]) {
					hosts[svc.name]?.push(svc.nodeID);
				}
				const [cluster, grpc] = await Promise.all([
					clusterHealth(hosts, (service, nodeID) =>
						this.broker.call<HealthReport, object>(`${service}.health`, {}, { nodeID, timeout: NODE_HEALTH_TIMEOUT_MS, retries: 0 }),
					),
					this.grpcCall("auth", "Ping", { message: "health" }).then(
						() => ({ status: "up" as const }),
						(err: Error) => ({ status: "down" as const, error: err.message }),
					),
				]);
				return { ...cluster, gateway: { nodeId: this.broker.nodeID, authGrpc: grpc } };
			},
		},

		async started() {
			await redis.connect();
		},
		async stopped() {
			await closeRedis(redis);
		},
	};
}
