/**
 * Connection details of the real servers the tests use (started by scripts/infra.sh; URLs from
 * `scripts/infra.sh env`, with the project's default ports as fallback), and helpers that give
 * each test its own database, namespace and config.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import webpush from "web-push";
import { ServiceBroker } from "moleculer";
import type { Middleware, ServiceSchema } from "moleculer";
import { loadConfig } from "../../lib/config.ts";
import type { AppError } from "../../lib/errors.ts";
import type { Config, ServiceName } from "../../lib/config.ts";
import { brokerOptions } from "../../moleculer.config.ts";
import { databasesInUse, namespacesInUse } from "./namespaces.ts";

export const infra = {
	rabbitmqUrl: process.env.RABBITMQ_URL ?? "amqp://backplane:backplane@127.0.0.1:55672",
	rabbitmqManagementUrl: process.env.RABBITMQ_MANAGEMENT_URL ?? "http://backplane:backplane@127.0.0.1:55673",
	databaseUrl: process.env.DATABASE_URL ?? "postgres://backplane:backplane@127.0.0.1:55432/backplane",
	mongoUrl: process.env.MONGO_URL ?? "mongodb://127.0.0.1:57017/backplane",
	redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:56379",
	smtpUrl: process.env.SMTP_URL ?? "smtp://127.0.0.1:51025",
	mailpitApiUrl: process.env.MAILPIT_API_URL ?? "http://127.0.0.1:58025",
	stripeApiBase: process.env.STRIPE_API_BASE ?? "http://127.0.0.1:52111",
};

/** One VAPID key pair per test process, so push is enabled wherever notification runs. */
const vapid = webpush.generateVAPIDKeys();

export const uniqueId = (prefix: string) => `${prefix}${randomBytes(4).toString("hex")}`;

/** A fresh, empty PostgreSQL database for one test file (dropped when the file ends); returns its URL. */
export async function createTestDatabase(): Promise<string> {
	const name = uniqueId("test_");
	const admin = new pg.Client({ connectionString: infra.databaseUrl });
	await admin.connect();
	try {
		await admin.query(`CREATE DATABASE ${name}`);
	} finally {
		await admin.end();
	}
	const url = new URL(infra.databaseUrl);
	url.pathname = `/${name}`;
	databasesInUse.add(url.toString());
	return url.toString();
}

/**
 * Drops a database made by createTestDatabase. By default it ends whatever connections it still
 * has; `{ force: false }` instead waits (up to 5 s) for them to go, for a caller whose own pools
 * may still be closing: a connection ended by force makes its pg client emit an error nobody
 * listens to any more (pg's `Pool.end()` resolves before its sockets are closed).
 */
export async function dropTestDatabase(url: string, opts: { force?: boolean } = {}): Promise<void> {
	const name = new URL(url).pathname.slice(1);
	const admin = new pg.Client({ connectionString: infra.databaseUrl });
	await admin.connect();
	try {
		if (opts.force === false) {
			for (let waited = 0; ; waited += 100) {
				try {
					await admin.query(`DROP DATABASE IF EXISTS ${name}`);
					break;
				} catch (err) {
					// 55006: still has connections.
					if ((err as { code?: string }).code !== "55006" || waited >= 5_000) throw err;
					await new Promise((r) => setTimeout(r, 100));
				}
			}
		} else {
			await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
		}
		databasesInUse.delete(url);
	} finally {
		await admin.end();
	}
}

/** The environment a node of the test cluster gets; each test run has its own namespace. */
export function testEnv(namespace: string, extra: Record<string, string> = {}): Record<string, string> {
	namespacesInUse.add(namespace);
	const mongo = new URL(infra.mongoUrl);
	mongo.pathname = `/${namespace}`;
	return {
		NODE_ENV: "test",
		NAMESPACE: namespace,
		LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
		RABBITMQ_URL: infra.rabbitmqUrl,
		DATABASE_URL: infra.databaseUrl,
		MONGO_URL: mongo.toString(),
		REDIS_URL: infra.redisUrl,
		SMTP_URL: infra.smtpUrl,
		STRIPE_API_BASE: infra.stripeApiBase,
		VAPID_PUBLIC_KEY: vapid.publicKey,
		VAPID_PRIVATE_KEY: vapid.privateKey,
		VAPID_SUBJECT: "mailto:ops@backplane.test",
		BCRYPT_COST: "4",
		// Tests log in often from one address; the strict limit itself is tested on its own.
		RATE_LIMIT_AUTH_STRICT: "10000/60s",
		// Test gateways share their event loop with the test code and other nodes of the process: the
		// shedding guard's own tests set it; elsewhere a busy test process must not be mistaken for overload.
		GATEWAY_MAX_EVENT_LOOP_DELAY_MS: "1000",
		METRICS_PORT: "0",
		HEALTH_PORT: "0",
		GRPC_PORT: "0",
		GATEWAY_PORT: "0",
		...extra,
	};
}

export function testConfig(env: Record<string, string>): Config {
	return loadConfig(env);
}

/**
 * Starts an in-process broker node on the real transporter hosting the given services;
 * `middlewares` are added after the production ones (to inject a fault, such as a slow handler).
 */
export async function startNode(services: ServiceName[], env: Record<string, string>, middlewares: Middleware[] = []): Promise<ServiceBroker> {
	const config = testConfig({ ...env, SERVICES: services.join(","), NODE_ID: env.NODE_ID ?? uniqueId(`${services.join("-")}-`) });
	const options = brokerOptions(config, process.env.TEST_LOG_LEVEL ? {} : { logger: false });
	options.middlewares = [...(options.middlewares ?? []), ...middlewares];
	const broker = new ServiceBroker(options);
	for (const name of services) {
		const module = (await import(`../../services/${name}.service.ts`)) as { default: (c: Config) => ServiceSchema };
		broker.createService(module.default(config));
	}
	await broker.start();
	return broker;
}

/** Polls `probe` until it returns a value that is not undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined | false>, timeoutMs = 10_000, what = "condition"): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	let lastError: unknown;
	while (Date.now() < deadline) {
		try {
			const value = await probe();
			if (value !== undefined && value !== false) return value;
		} catch (err) {
			lastError = err;
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ""}`);
}

/** Waits until every node sees every other node available (discovery is asynchronous). */
export async function waitForCluster(nodes: ServiceBroker[], timeoutMs = 15_000): Promise<void> {
	const ids = nodes.map((n) => n.nodeID);
	await eventually(
		async () => nodes.every((n) => ids.every((id) => n.registry.nodes.get(id)?.available === true)),
		timeoutMs,
		`nodes ${ids.join(", ")} to see each other`,
	);
}

/** Base URL of a node's health server (/livez, /readyz); tests listen on port 0. */
export function healthUrl(broker: ServiceBroker): string {
	return `http://127.0.0.1:${String(broker.metadata.healthPort)}`;
}

/** Base URL of the HTTP server of an in-process gateway node (tests listen on port 0). */
export function gatewayUrl(broker: ServiceBroker): string {
	const gateway = broker.getLocalService("gateway") as unknown as { server: { address(): { port: number } } };
	return `http://127.0.0.1:${gateway.server.address().port}`;
}

/** The error `p` rejects with; fails the test when it resolves instead. */
export async function failure(p: Promise<unknown>): Promise<AppError> {
	return p.then(
		(value) => {
			throw new Error(`expected a failure, got ${JSON.stringify(value)}`);
		},
		(err: unknown) => err as AppError,
	);
}
