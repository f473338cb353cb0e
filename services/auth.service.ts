/**
 * auth: accounts, credentials and tokens on PostgreSQL. Served to the gateway over the gRPC
 * bridge (protos/auth/v1/auth.proto) and as Moleculer actions.
 */
import type { Context, ServiceSchema } from "moleculer";
import type pg from "pg";
import type { Config } from "../lib/config.ts";
import { createPgPool } from "../lib/postgres.ts";
import { grpcServerMixin } from "../mixins/grpc.mixin.ts";
import { healthMixin } from "../mixins/health.mixin.ts";

interface PingParams {
	message?: string;
}

export default function authService(config: Config): ServiceSchema {
	let pool: pg.Pool;

	return {
		name: "auth",
		mixins: [
			healthMixin(),
			grpcServerMixin({
				proto: "auth/v1/auth.proto",
				service: "auth.v1.AuthService",
				methods: { Ping: "ping" },
				host: config.grpc.host,
				port: config.grpc.port,
				advertiseHost: config.grpc.advertiseHost,
			}),
		],

		actions: {
			ping: {
				params: { message: { type: "string", max: 200, optional: true } },
				handler(ctx: Context<PingParams>) {
					return { message: ctx.params.message ?? "pong", nodeId: this.broker.nodeID, serverTimeMs: Date.now() };
				},
			},
		},

		methods: {
			healthChecks() {
				return { postgres: () => pool.query("SELECT 1") };
			},
		},

		created() {
			pool = createPgPool(config.databaseUrl!, `${config.nodeId}/auth`, (err) => this.logger.warn("idle PostgreSQL connection lost", err.message));
		},
		async stopped() {
			await pool.end();
		},
	};
}
