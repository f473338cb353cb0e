/**
 * auth: accounts, credentials and tokens on PostgreSQL. Served to the gateway over the gRPC
 * bridge (protos/auth/v1/auth.proto) and as Moleculer actions. Publishes through its outbox.
 */
import path from "node:path";
import type { Context, ServiceSchema } from "moleculer";
import type pg from "pg";
import type { Config } from "../lib/config.ts";
import { pgOutboxStore } from "../lib/events/pg-outbox.ts";
import { migrateUp } from "../lib/migrations.ts";
import { createPgPool } from "../lib/postgres.ts";
import { outboxMixin } from "../mixins/events.mixin.ts";
import type { OutboxMethods } from "../mixins/events.mixin.ts";
import { grpcServerMixin } from "../mixins/grpc.mixin.ts";
import { healthMixin } from "../mixins/health.mixin.ts";
import { registerUser } from "./auth/accounts.ts";
import type { RegisterInput } from "./auth/accounts.ts";

const MIGRATIONS_DIR = path.join(import.meta.dirname, "auth", "migrations");

interface PingParams {
	message?: string;
}

export default function authService(config: Config): ServiceSchema<Record<string, never>, OutboxMethods> {
	let pool: pg.Pool;

	return {
		name: "auth",
		mixins: [
			healthMixin(),
			outboxMixin({ rabbitmqUrl: config.rabbitmqUrl, store: () => pgOutboxStore(pool) }),
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
					return { message: ctx.params.message || "pong", nodeId: this.broker.nodeID, serverTimeMs: Date.now() };
				},
			},

			register: {
				rest: "POST /register",
				params: {
					$$strict: "remove",
					email: { type: "email", max: 254, normalize: true },
					password: { type: "string", min: 8, max: 128 },
					name: { type: "string", max: 200, optional: true, trim: true },
				},
				async handler(ctx: Context<RegisterInput, { $statusCode?: number }>) {
					const user = await registerUser(pool, ctx.params, { bcryptCost: config.bcryptCost, requestId: ctx.requestID ?? undefined });
					this.relayOutbox();
					ctx.meta.$statusCode = 201;
					return { user };
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
		async started() {
			const applied = await migrateUp(config.databaseUrl!, MIGRATIONS_DIR, this.logger);
			this.logger.info(applied.length ? `applied migrations: ${applied.join(", ")}` : "database schema is up to date");
		},
		async stopped() {
			await pool.end();
		},
	};
}
