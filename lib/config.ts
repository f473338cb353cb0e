/**
 * The one place that reads environment variables. Everything is validated at start-up and a
 * node refuses to start with a single message that lists every missing or bad value.
 * Which variables are required depends on the services the node hosts (SERVICES).
 */
import os from "node:os";
import type { ValidationError, ValidationSchema } from "fastest-validator";
import { createValidator } from "./validator.ts";

export const SERVICE_NAMES = ["gateway", "auth", "billing", "notification"] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export interface Config {
	nodeEnv: "development" | "production" | "test";
	nodeId: string;
	namespace: string;
	services: ServiceName[];
	logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
	rabbitmqUrl: string;
	requestTimeoutMs: number;
	heartbeatIntervalS: number;
	heartbeatTimeoutS: number;
	metricsPort: number;
	grpc: { host: string; port: number; advertiseHost: string; deadlineMs: number };
	tracingZipkinUrl?: string;
	gateway: { host: string; port: number; corsOrigins: string[] };
	databaseUrl?: string;
	bcryptCost: number;
	mongoUrl?: string;
	redisUrl?: string;
	smtpUrl?: string;
}

/** Raised when the environment is not usable; `problems` names every bad variable. */
export class ConfigError extends Error {
	readonly problems: string[];
	constructor(problems: string[]) {
		super(`invalid configuration:\n  - ${problems.join("\n  - ")}\nSee .env.example for every variable.`);
		this.name = "ConfigError";
		this.problems = problems;
	}
}

/** A URL with one of the given schemes (fastest-validator's own `url` rule knows only http). */
const url = (schemes: string[]) => ({
	type: "string",
	pattern: new RegExp(`^(${schemes.join("|")})://\\S+$`),
	messages: { stringPattern: `must be a ${schemes.map((s) => `${s}://`).join(" or ")} URL` },
});

/** Variables every node reads, with their defaults. */
const commonSchema: ValidationSchema = {
	NODE_ENV: { type: "enum", values: ["development", "production", "test"], default: "development" },
	NODE_ID: { type: "string", optional: true, pattern: /^[A-Za-z0-9._-]{1,100}$/ },
	NAMESPACE: { type: "string", default: "", pattern: /^[A-Za-z0-9_-]{0,40}$/ },
	SERVICES: { type: "string", default: SERVICE_NAMES.join(",") },
	LOG_LEVEL: { type: "enum", values: ["trace", "debug", "info", "warn", "error", "fatal"], default: "info" },
	RABBITMQ_URL: url(["amqp", "amqps"]),
	REQUEST_TIMEOUT_MS: { type: "number", integer: true, min: 100, max: 300_000, convert: true, default: 10_000 },
	HEARTBEAT_INTERVAL_S: { type: "number", integer: true, min: 1, max: 60, convert: true, default: 2 },
	HEARTBEAT_TIMEOUT_S: { type: "number", integer: true, min: 2, max: 300, convert: true, default: 6 },
	METRICS_PORT: { type: "number", integer: true, min: 0, max: 65535, convert: true, default: 3030 },
	// Loopback by default; containers set GRPC_HOST=0.0.0.0 and GRPC_ADVERTISE_HOST to the pod IP.
	GRPC_HOST: { type: "string", default: "127.0.0.1" },
	GRPC_PORT: { type: "number", integer: true, min: 0, max: 65535, convert: true, default: 50051 },
	GRPC_ADVERTISE_HOST: { type: "string", default: "127.0.0.1" },
	GRPC_DEADLINE_MS: { type: "number", integer: true, min: 10, max: 60_000, convert: true, default: 2_000 },
	TRACING_ZIPKIN_URL: { ...url(["http", "https"]), optional: true },
};

/** Variables only the nodes hosting a given service need. */
const perServiceSchema: Record<ServiceName, ValidationSchema> = {
	gateway: {
		GATEWAY_HOST: { type: "string", default: "127.0.0.1" },
		GATEWAY_PORT: { type: "number", integer: true, min: 0, max: 65535, convert: true, default: 4000 },
		CORS_ORIGINS: { type: "string", default: "" },
		REDIS_URL: url(["redis", "rediss"]),
	},
	auth: {
		DATABASE_URL: url(["postgres", "postgresql"]),
		BCRYPT_COST: { type: "number", integer: true, min: 4, max: 15, convert: true, default: 12 },
	},
	billing: {
		MONGO_URL: url(["mongodb", "mongodb+srv"]),
	},
	notification: {
		REDIS_URL: url(["redis", "rediss"]),
		SMTP_URL: url(["smtp", "smtps"]),
	},
};

const validator = createValidator();

function describe(error: ValidationError): string {
	const value = error.actual === undefined ? "missing" : "bad value";
	const message = error.type === "required" ? "is required" : error.message?.replace(/^The '[^']+' field /, "") ?? error.type;
	return `${error.field} (${value}): ${message}`;
}

export function parseServices(raw: string): { services: ServiceName[]; unknown: string[] } {
	const names = raw.split(",").map((s) => s.trim()).filter(Boolean);
	const known = new Set<string>(SERVICE_NAMES);
	return {
		services: [...new Set(names.filter((n): n is ServiceName => known.has(n)))],
		unknown: names.filter((n) => !known.has(n)),
	};
}

/**
 * Reads and validates the environment. Throws ConfigError naming every problem at once.
 * `opts.services` overrides SERVICES (the REPL node hosts none).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, opts: { services?: ServiceName[] } = {}): Config {
	// Empty strings count as unset, as in most twelve-factor tools.
	const input: Record<string, unknown> = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
	const problems: string[] = [];
	const { services, unknown } = opts.services ? { services: opts.services, unknown: [] } : parseServices(typeof input.SERVICES === "string" ? input.SERVICES : SERVICE_NAMES.join(","));
	if (unknown.length) problems.push(`SERVICES (bad value): unknown service(s) ${unknown.join(", ")}; known: ${SERVICE_NAMES.join(", ")}`);

	const schema: ValidationSchema = { $$root: false, ...commonSchema };
	for (const name of services) Object.assign(schema, perServiceSchema[name]);
	const result = validator.validate(input, schema);
	if (result !== true) problems.push(...(result as ValidationError[]).map(describe));
	if (Number(input.HEARTBEAT_TIMEOUT_S ?? 6) <= Number(input.HEARTBEAT_INTERVAL_S ?? 2)) {
		problems.push("HEARTBEAT_TIMEOUT_S (bad value): must be greater than HEARTBEAT_INTERVAL_S");
	}
	if (problems.length) throw new ConfigError([...new Set(problems)]);

	const v = input as Record<string, string | number | undefined>;
	const str = (key: string) => (v[key] === undefined ? undefined : String(v[key]));
	return {
		nodeEnv: v.NODE_ENV as Config["nodeEnv"],
		nodeId: str("NODE_ID") ?? os.hostname(),
		namespace: String(v.NAMESPACE),
		services,
		logLevel: v.LOG_LEVEL as Config["logLevel"],
		rabbitmqUrl: String(v.RABBITMQ_URL),
		requestTimeoutMs: Number(v.REQUEST_TIMEOUT_MS),
		heartbeatIntervalS: Number(v.HEARTBEAT_INTERVAL_S),
		heartbeatTimeoutS: Number(v.HEARTBEAT_TIMEOUT_S),
		metricsPort: Number(v.METRICS_PORT),
		grpc: {
			host: String(v.GRPC_HOST),
			port: Number(v.GRPC_PORT),
			advertiseHost: String(v.GRPC_ADVERTISE_HOST),
			deadlineMs: Number(v.GRPC_DEADLINE_MS),
		},
		tracingZipkinUrl: str("TRACING_ZIPKIN_URL"),
		gateway: {
			host: String(v.GATEWAY_HOST ?? "127.0.0.1"),
			port: Number(v.GATEWAY_PORT ?? 4000),
			corsOrigins: String(v.CORS_ORIGINS ?? "").split(",").map((s) => s.trim()).filter(Boolean),
		},
		databaseUrl: str("DATABASE_URL"),
		bcryptCost: Number(v.BCRYPT_COST ?? 12),
		mongoUrl: str("MONGO_URL"),
		redisUrl: str("REDIS_URL"),
		smtpUrl: str("SMTP_URL"),
	};
}
