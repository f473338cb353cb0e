/**
 * The one place that reads environment variables. Everything is validated at start-up and a
 * node refuses to start with a single message that lists every missing or bad value.
 * Which variables are required depends on the services the node hosts (SERVICES).
 */
import { isIP } from "node:net";
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
	/** Per-node /livez and /readyz (lib/health-server.ts). */
	healthPort: number;
	/** RabbitMQ queue type of the durable event channels: quorum on a RabbitMQ cluster. */
	amqpQueueType: "classic" | "quorum";
	grpc: { host: string; port: number; advertiseHost: string; deadlineMs: number };
	tracingZipkinUrl?: string;
	gateway: {
		host: string;
		port: number;
		corsOrigins: string[];
		trustedProxies: string[];
		hsts: boolean;
		/** Routes that need a permission (the administration) refuse a session signed in without two-step login. */
		adminRequiresMfa: boolean;
		/** Every signed-in route but setting up a second factor needs a session with one. */
		usersRequireMfa: boolean;
		/** Rate limits as "requests/window", e.g. "600/60s". */
		rateLimits: { anonymous: string; user: string; authStrict: string };
		/** Access tokens are accepted only from this issuer, for this audience. */
		tokenIssuer: string;
		tokenAudience: string;
		/** Load shedding per gateway node (services/gateway/admission.ts). */
		admission: { maxInFlight: number; maxInFlightPerService: number; maxEventLoopDelayMs: number };
		/**
		 * Open connections per node (services/gateway/connections.ts). Default 500: a flood of 1,000
		 * busy connections took a gateway from ~120 MB to 348-474 MB, past k8s/base's 384 Mi limit
		 * (docs/reliability.md, overload); at that cost 500 come to about 235-300 MB. It is above
		 * GATEWAY_MAX_IN_FLIGHT, so busy clients get the 503 with Retry-After first.
		 */
		maxConnections: number;
	};
	databaseUrl?: string;
	bcryptCost: number;
	auth: AuthConfig;
	mongoUrl?: string;
	billing: {
		stripeApiKey: string;
		/** Where the Stripe SDK sends requests (stripe-mock locally); unset = api.stripe.com. */
		stripeApiBase?: string;
		/** Unset: webhooks are refused (503) because they cannot be verified. */
		stripeWebhookSecret?: string;
		trialDays: number;
		defaultPlan: string;
		/** Where Checkout and the Customer Portal send the user back to. */
		returnUrl: string;
		sweepIntervalMs: number;
		seller: { name: string; address: string; taxId?: string };
		tax: { name: string; rateBps: number };
		/** Dunning of the invoices we collect ourselves: days between retries, and where exhausted retries leave the subscription. */
		dunning: { retryDays: number[]; finalStatus: "unpaid" | "canceled" };
	};
	redisUrl?: string;
	smtpUrl?: string;
	notification: NotificationConfig;
}

/** E-mail, push and queue settings of the notification service (defaults apply on other nodes). */
export interface NotificationConfig {
	/** Base of the links in e-mails, alerts and push messages (the web console). */
	publicUrl: string;
	/** From: of every e-mail. */
	smtpFrom: string;
	/** Web Push is on only when all three are set. */
	vapid: { publicKey?: string; privateKey?: string; subject?: string };
	/** Origins a push subscription's endpoint may point to (the browsers' push services). */
	pushEndpointOrigins: string[];
	retry: { attempts: number; baseMs: number; maxMs: number };
	emailRatePerSecond: number;
	/** E-mails sent at once per node, each over its own pooled SMTP connection. */
	emailConcurrency: number;
	pushRatePerSecond: number;
}

/** Tokens, sessions and links of the auth service (defaults apply on nodes that do not host it). */
export interface AuthConfig {
	/** `iss` of every access token; the gateway checks it. */
	issuer: string;
	/** `aud` of every access token; the gateway checks it. */
	audience: string;
	accessTokenTtlS: number;
	/** Absolute session lifetime: no refresh extends a session beyond it. */
	refreshTokenTtlS: number;
	/** A session unused for this long ends (its refresh token expires). */
	sessionIdleTimeoutS: number;
	/** How long a signing key signs before the next one takes over. */
	keyRotationDays: number;
	/** How long introspection may answer "active" from memory (0: always ask PostgreSQL). */
	sessionCacheMs: number;
	/** Password hashes run at once per node, and how many more may wait (services/auth/passwords.ts). */
	hashing: { concurrency: number; queue: number };
	/** 32 bytes, base64: encrypts signing keys at rest. Unset outside production: a development key is used. */
	keyEncryptionKey?: string;
	/** Base of the links in e-mails (verification, password reset). */
	publicUrl: string;
	/** Passkeys: the domain they are bound to, the name shown, the origins allowed to use them. */
	webauthn: { rpId: string; rpName: string; origins: string[] };
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
	// Read by every node: the gateway at the edge, every node's permissions middleware, auth's hook.
	ADMIN_REQUIRES_MFA: { type: "boolean", convert: true, default: false },
	USERS_REQUIRE_MFA: { type: "boolean", convert: true, default: false },
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
	HEALTH_PORT: { type: "number", integer: true, min: 0, max: 65535, convert: true, default: 3040 },
	AMQP_QUEUE_TYPE: { type: "enum", values: ["classic", "quorum"], default: "classic" },
	// Loopback by default; containers set GRPC_HOST=0.0.0.0 and GRPC_ADVERTISE_HOST to the pod IP.
	GRPC_HOST: { type: "string", default: "127.0.0.1" },
	GRPC_PORT: { type: "number", integer: true, min: 0, max: 65535, convert: true, default: 50051 },
	GRPC_ADVERTISE_HOST: { type: "string", default: "127.0.0.1" },
	GRPC_DEADLINE_MS: { type: "number", integer: true, min: 10, max: 60_000, convert: true, default: 2_000 },
	TRACING_ZIPKIN_URL: { ...url(["http", "https"]), optional: true },
};

const RATE = /^\d+\/\d+(s|m|h)$/;

/** Variables only the nodes hosting a given service need. */
const perServiceSchema: Record<ServiceName, ValidationSchema> = {
	gateway: {
		GATEWAY_HOST: { type: "string", default: "127.0.0.1" },
		GATEWAY_PORT: { type: "number", integer: true, min: 0, max: 65535, convert: true, default: 4000 },
		CORS_ORIGINS: { type: "string", default: "" },
		TRUSTED_PROXIES: { type: "string", default: "" },
		HSTS: { type: "boolean", convert: true, default: false },
		RATE_LIMIT_ANONYMOUS: { type: "string", pattern: RATE, default: "120/60s", messages: { stringPattern: "must look like 120/60s, 10/1m or 5000/1h" } },
		RATE_LIMIT_USER: { type: "string", pattern: RATE, default: "600/60s", messages: { stringPattern: "must look like 600/60s" } },
		RATE_LIMIT_AUTH_STRICT: { type: "string", pattern: RATE, default: "10/60s", messages: { stringPattern: "must look like 10/60s" } },
		AUTH_ISSUER: { type: "string", default: "http://127.0.0.1:4000" },
		AUTH_AUDIENCE: { type: "string", default: "backplane-api" },
		GATEWAY_MAX_IN_FLIGHT: { type: "number", integer: true, min: 1, max: 100_000, convert: true, default: 400 },
		GATEWAY_MAX_IN_FLIGHT_PER_SERVICE: { type: "number", integer: true, min: 1, max: 100_000, convert: true, default: 100 },
		GATEWAY_MAX_EVENT_LOOP_DELAY_MS: { type: "number", integer: true, min: 10, max: 60_000, convert: true, default: 100 },
		GATEWAY_MAX_CONNECTIONS: { type: "number", integer: true, min: 1, max: 1_000_000, convert: true, default: 500 },
		REDIS_URL: url(["redis", "rediss"]),
	},
	auth: {
		DATABASE_URL: url(["postgres", "postgresql"]),
		BCRYPT_COST: { type: "number", integer: true, min: 4, max: 15, convert: true, default: 12 },
		AUTH_ISSUER: { type: "string", min: 1, max: 200, default: "http://127.0.0.1:4000" },
		AUTH_AUDIENCE: { type: "string", min: 1, max: 200, default: "backplane-api" },
		ACCESS_TOKEN_TTL_S: { type: "number", integer: true, min: 60, max: 3_600, convert: true, default: 900 },
		REFRESH_TOKEN_TTL_S: { type: "number", integer: true, min: 3_600, max: 31_536_000, convert: true, default: 2_592_000 },
		SESSION_IDLE_TIMEOUT_S: { type: "number", integer: true, min: 300, max: 31_536_000, convert: true, default: 604_800 },
		AUTH_KEY_ROTATION_DAYS: { type: "number", integer: true, min: 1, max: 365, convert: true, default: 30 },
		AUTH_SESSION_CACHE_MS: { type: "number", integer: true, min: 0, max: 60_000, convert: true, default: 2_000 },
		AUTH_HASH_CONCURRENCY: { type: "number", integer: true, min: 1, max: 64, convert: true, default: 4 },
		AUTH_HASH_QUEUE: { type: "number", integer: true, min: 0, max: 10_000, convert: true, default: 64 },
		AUTH_KEY_ENCRYPTION_KEY: {
			type: "string",
			optional: true,
			pattern: /^[A-Za-z0-9+/]{43}=$/,
			messages: { stringPattern: "must be 32 bytes in base64 (openssl rand -base64 32)" },
		},
		PUBLIC_URL: { ...url(["http", "https"]), default: "http://127.0.0.1:4000" },
		WEBAUTHN_RP_ID: { type: "string", optional: true, pattern: /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, messages: { stringPattern: "must be a domain name (the site's, or a parent of it), not a URL or an IP address" } },
		WEBAUTHN_RP_NAME: { type: "string", min: 1, max: 100, default: "Backplane" },
		WEBAUTHN_ORIGINS: { type: "string", optional: true, pattern: /^\s*https?:\/\/[^\s,/]+\s*(,\s*https?:\/\/[^\s,/]+\s*)*$/, messages: { stringPattern: "must be origins like https://app.example.com, separated by commas" } },
	},
	billing: {
		MONGO_URL: url(["mongodb", "mongodb+srv"]),
		STRIPE_API_KEY: { type: "string", default: "sk_test_123", pattern: /^(sk|rk)_(test|live)_\S+$/, messages: { stringPattern: "must be a Stripe secret key (sk_test_..., sk_live_...)" } },
		STRIPE_API_BASE: { ...url(["http", "https"]), optional: true },
		STRIPE_WEBHOOK_SECRET: { type: "string", optional: true, pattern: /^whsec_\S+$/, messages: { stringPattern: "must be a webhook signing secret (whsec_...)" } },
		BILLING_TRIAL_DAYS: { type: "number", integer: true, min: 0, max: 730, convert: true, default: 14 },
		BILLING_DEFAULT_PLAN: { type: "string", default: "pro", pattern: /^[a-z0-9][a-z0-9_-]{0,63}$/ },
		BILLING_RETURN_URL: { ...url(["http", "https"]), default: "http://127.0.0.1:4000/" },
		BILLING_SWEEP_INTERVAL_MS: { type: "number", integer: true, min: 50, max: 3_600_000, convert: true, default: 30_000 },
		BILLING_SELLER_NAME: { type: "string", default: "Backplane", max: 200 },
		BILLING_SELLER_ADDRESS: { type: "string", default: "", max: 500 },
		BILLING_SELLER_TAX_ID: { type: "string", optional: true, max: 50 },
		BILLING_TAX_NAME: { type: "string", default: "VAT", max: 50 },
		BILLING_TAX_RATE_BPS: { type: "number", integer: true, min: 0, max: 10_000, convert: true, default: 0 },
		BILLING_DUNNING_RETRY_DAYS: { type: "string", default: "3,5,7", pattern: /^(\d{1,3}(,\d{1,3}){0,9})?$/, messages: { stringPattern: "must be up to 10 comma-separated day counts, e.g. 3,5,7 (empty = no retries)" } },
		BILLING_DUNNING_FINAL_STATUS: { type: "enum", values: ["unpaid", "canceled"], default: "canceled" },
	},
	notification: {
		REDIS_URL: url(["redis", "rediss"]),
		SMTP_URL: url(["smtp", "smtps"]),
		SMTP_FROM: { type: "string", min: 3, max: 200, default: "Backplane <no-reply@backplane.local>" },
		PUBLIC_URL: { ...url(["http", "https"]), default: "http://127.0.0.1:4000" },
		VAPID_PUBLIC_KEY: { type: "string", optional: true, pattern: /^[A-Za-z0-9_-]{87}$/, messages: { stringPattern: "must be a P-256 public key in base64url (npx web-push generate-vapid-keys)" } },
		VAPID_PRIVATE_KEY: { type: "string", optional: true, pattern: /^[A-Za-z0-9_-]{43}$/, messages: { stringPattern: "must be a P-256 private key in base64url (npx web-push generate-vapid-keys)" } },
		VAPID_SUBJECT: { type: "string", optional: true, pattern: /^(mailto:\S+@\S+|https:\/\/\S+)$/, messages: { stringPattern: "must be a mailto: or https:// URL" } },
		PUSH_ENDPOINT_ORIGINS: { type: "string", default: "https://fcm.googleapis.com,https://updates.push.services.mozilla.com,https://web.push.apple.com,https://*.notify.windows.com" },
		NOTIFY_MAX_ATTEMPTS: { type: "number", integer: true, min: 1, max: 50, convert: true, default: 10 },
		NOTIFY_BACKOFF_MS: { type: "number", integer: true, min: 10, max: 3_600_000, convert: true, default: 5_000 },
		NOTIFY_BACKOFF_MAX_MS: { type: "number", integer: true, min: 10, max: 86_400_000, convert: true, default: 900_000 },
		EMAIL_RATE_LIMIT: { type: "number", integer: true, min: 1, max: 100_000, convert: true, default: 50 },
		EMAIL_CONCURRENCY: { type: "number", integer: true, min: 1, max: 100, convert: true, default: 5 },
		PUSH_RATE_LIMIT: { type: "number", integer: true, min: 1, max: 100_000, convert: true, default: 200 },
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
	if (services.includes("auth") && input.NODE_ENV === "production") {
		if (!input.AUTH_KEY_ENCRYPTION_KEY) problems.push("AUTH_KEY_ENCRYPTION_KEY (missing): is required in production (openssl rand -base64 32)");
		if (Number(input.BCRYPT_COST ?? 12) < 12) problems.push("BCRYPT_COST (bad value): must be at least 12 in production");
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
		healthPort: Number(v.HEALTH_PORT),
		amqpQueueType: v.AMQP_QUEUE_TYPE as Config["amqpQueueType"],
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
			corsOrigins: list(v.CORS_ORIGINS),
			trustedProxies: list(v.TRUSTED_PROXIES),
			hsts: input.HSTS === true,
			adminRequiresMfa: input.ADMIN_REQUIRES_MFA === true,
			usersRequireMfa: input.USERS_REQUIRE_MFA === true,
			rateLimits: {
				anonymous: String(v.RATE_LIMIT_ANONYMOUS ?? "120/60s"),
				user: String(v.RATE_LIMIT_USER ?? "600/60s"),
				authStrict: String(v.RATE_LIMIT_AUTH_STRICT ?? "10/60s"),
			},
			tokenIssuer: String(v.AUTH_ISSUER ?? "http://127.0.0.1:4000"),
			tokenAudience: String(v.AUTH_AUDIENCE ?? "backplane-api"),
			admission: {
				maxInFlight: Number(v.GATEWAY_MAX_IN_FLIGHT ?? 400),
				maxInFlightPerService: Number(v.GATEWAY_MAX_IN_FLIGHT_PER_SERVICE ?? 100),
				maxEventLoopDelayMs: Number(v.GATEWAY_MAX_EVENT_LOOP_DELAY_MS ?? 100),
			},
			maxConnections: Number(v.GATEWAY_MAX_CONNECTIONS ?? 500),
		},
		databaseUrl: str("DATABASE_URL"),
		bcryptCost: Number(v.BCRYPT_COST ?? 12),
		auth: {
			issuer: String(v.AUTH_ISSUER ?? "http://127.0.0.1:4000"),
			audience: String(v.AUTH_AUDIENCE ?? "backplane-api"),
			accessTokenTtlS: Number(v.ACCESS_TOKEN_TTL_S ?? 900),
			refreshTokenTtlS: Number(v.REFRESH_TOKEN_TTL_S ?? 2_592_000),
			sessionIdleTimeoutS: Number(v.SESSION_IDLE_TIMEOUT_S ?? 604_800),
			keyRotationDays: Number(v.AUTH_KEY_ROTATION_DAYS ?? 30),
			sessionCacheMs: Number(v.AUTH_SESSION_CACHE_MS ?? 2_000),
			hashing: { concurrency: Number(v.AUTH_HASH_CONCURRENCY ?? 4), queue: Number(v.AUTH_HASH_QUEUE ?? 64) },
			keyEncryptionKey: str("AUTH_KEY_ENCRYPTION_KEY"),
			publicUrl: String(v.PUBLIC_URL ?? "http://127.0.0.1:4000").replace(/\/+$/, ""),
			webauthn: webauthnSettings(String(v.PUBLIC_URL ?? "http://127.0.0.1:4000"), str("WEBAUTHN_RP_ID"), String(v.WEBAUTHN_RP_NAME ?? "Backplane"), list(v.WEBAUTHN_ORIGINS)),
		},
		mongoUrl: str("MONGO_URL"),
		billing: {
			stripeApiKey: String(v.STRIPE_API_KEY ?? "sk_test_123"),
			stripeApiBase: str("STRIPE_API_BASE"),
			stripeWebhookSecret: str("STRIPE_WEBHOOK_SECRET"),
			trialDays: Number(v.BILLING_TRIAL_DAYS ?? 14),
			defaultPlan: String(v.BILLING_DEFAULT_PLAN ?? "pro"),
			returnUrl: String(v.BILLING_RETURN_URL ?? "http://127.0.0.1:4000/"),
			sweepIntervalMs: Number(v.BILLING_SWEEP_INTERVAL_MS ?? 30_000),
			seller: { name: String(v.BILLING_SELLER_NAME ?? "Backplane"), address: String(v.BILLING_SELLER_ADDRESS ?? ""), taxId: str("BILLING_SELLER_TAX_ID") },
			tax: { name: String(v.BILLING_TAX_NAME ?? "VAT"), rateBps: Number(v.BILLING_TAX_RATE_BPS ?? 0) },
			dunning: {
				retryDays: list(v.BILLING_DUNNING_RETRY_DAYS ?? "3,5,7").map(Number),
				finalStatus: v.BILLING_DUNNING_FINAL_STATUS === "unpaid" ? "unpaid" : "canceled",
			},
		},
		redisUrl: str("REDIS_URL"),
		smtpUrl: str("SMTP_URL"),
		notification: {
			publicUrl: String(v.PUBLIC_URL ?? "http://127.0.0.1:4000").replace(/\/+$/, ""),
			smtpFrom: String(v.SMTP_FROM ?? "Backplane <no-reply@backplane.local>"),
			vapid: { publicKey: str("VAPID_PUBLIC_KEY"), privateKey: str("VAPID_PRIVATE_KEY"), subject: str("VAPID_SUBJECT") },
			pushEndpointOrigins: list(v.PUSH_ENDPOINT_ORIGINS),
			retry: { attempts: Number(v.NOTIFY_MAX_ATTEMPTS ?? 10), baseMs: Number(v.NOTIFY_BACKOFF_MS ?? 5_000), maxMs: Number(v.NOTIFY_BACKOFF_MAX_MS ?? 900_000) },
			emailRatePerSecond: Number(v.EMAIL_RATE_LIMIT ?? 50),
			emailConcurrency: Number(v.EMAIL_CONCURRENCY ?? 5),
			pushRatePerSecond: Number(v.PUSH_RATE_LIMIT ?? 200),
		},
	};
}

/**
 * Passkeys are bound to a domain (the RP ID) and accepted from the listed origins. By default both
 * come from PUBLIC_URL; browsers refuse an IP address as RP ID, so a PUBLIC_URL on an address
 * (the local default, http://127.0.0.1:4000) gives "localhost", and its origin on localhost too.
 */
export function webauthnSettings(publicUrl: string, rpId: string | undefined, rpName: string, origins: string[]): AuthConfig["webauthn"] {
	const site = new URL(publicUrl);
	const onAddress = isIP(site.hostname.replace(/^\[|\]$/g, "")) !== 0;
	const defaultOrigins = onAddress ? [site.origin, `${site.protocol}//localhost${site.port ? `:${site.port}` : ""}`] : [site.origin];
	return { rpId: rpId ?? (onAddress ? "localhost" : site.hostname), rpName, origins: origins.length ? origins : defaultOrigins };
}

const list = (value: unknown) =>
	(typeof value === "string" ? value : "")
		.split(",")
		.map((s) => s.trim())
		.filter(Boolean);
