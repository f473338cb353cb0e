/**
 * Broker options for every node, built from the validated configuration.
 * The numbers below are measured choices; see docs/decisions/0001-transporter-tuning.md.
 */
import Channels from "@moleculer/channels";
import { DurableAmqpAdapter } from "./lib/events/durable-amqp-adapter.ts";
import type { BrokerOptions, Errors } from "moleculer";
import { pino } from "pino";
import { coalesceAmqpWrites } from "./lib/amqp-writes.ts";
import { BatchingAmqpTransporter } from "./lib/batching-amqp-transporter.ts";
import type { Config } from "./lib/config.ts";
import { isNotDelivered } from "./lib/errors.ts";
import { consoleStyle } from "./lib/logger.ts";
import { BreakerTimeoutsMiddleware } from "./middlewares/breaker-timeouts.ts";
import { nodeHealthMiddleware } from "./middlewares/node-health.ts";
import { permissionsMiddleware } from "./middlewares/permissions.ts";
import { logContext, RequestContextMiddleware } from "./middlewares/request-context.ts";
import { quietShutdownMiddleware } from "./middlewares/quiet-shutdown.ts";
import { runtimeMetricsMiddleware } from "./middlewares/runtime-metrics.ts";

type AnyError = Error | Errors.MoleculerError;

/** Paths pino blanks out wherever they appear in a logged object. */
const REDACT = ["password", "newPassword", "currentPassword", "token", "refreshToken", "accessToken", "authorization", "cookie"].flatMap(
	(key) => [key, `*.${key}`, `*.*.${key}`],
);

export function brokerOptions(config: Config, overrides: Partial<BrokerOptions> = {}): BrokerOptions {
	// Every AMQP connection of the process (transporter, channels, outbox publisher) sends what it
	// has queued in one write.
	coalesceAmqpWrites();
	const rootLogger = pino({
		level: config.logLevel,
		mixin: logContext,
		redact: { paths: REDACT, censor: "[redacted]" },
		formatters: { level: (label: string) => ({ level: label }) },
	});
	return {
		namespace: config.namespace,
		nodeID: config.nodeId,

		// pino JSON lines; every line written while handling a request carries its request id.
		logger: {
			type: "Pino",
			options: {
				level: config.logLevel,
				createLogger: (level: string, bindings: Record<string, unknown>) => consoleStyle(rootLogger.child(bindings, { level })),
			},
		},

		// The AMQP transporter's defaults (prefetch 1, Nagle on) cap a remote call at ~18 req/s; packets
		// to one node within one event-loop turn travel as one message (lib/batching-amqp-transporter.ts).
		// socketOptions is passed to amqplib but missing from Moleculer's type.
		transporter: new BatchingAmqpTransporter({ url: config.rabbitmqUrl, prefetch: 100, socketOptions: { noDelay: true } } as ConstructorParameters<typeof BatchingAmqpTransporter>[0]),
		// A node killed without notice is dropped after heartbeatTimeout (default 2 s / 6 s).
		heartbeatInterval: config.heartbeatIntervalS,
		heartbeatTimeout: config.heartbeatTimeoutS,

		requestTimeout: config.requestTimeoutMs,
		// Only retried when the request certainly did not run: no double side effects.
		retryPolicy: {
			enabled: true,
			retries: 3,
			delay: 100,
			maxDelay: 1_000,
			factor: 2,
			check: (err: AnyError) => isNotDelivered(err),
		},
		circuitBreaker: {
			enabled: true,
			threshold: 0.5,
			minRequestCount: 10,
			windowTime: 10,
			// Longer than a dead node takes to be dropped (heartbeat timeout, ~10.5 s after kill -9 at
			// 2 s / 6 s): a half-open probe of a node that is gone would cost its caller a full timeout.
			halfOpenTime: 11_000,
			// Server faults and timeouts trip it (BreakerTimeoutsMiddleware makes timeouts visible);
			// a client's bad request never does.
			check: (err: AnyError) => !("code" in err) || typeof err.code !== "number" || err.code >= 500,
		},
		bulkhead: { enabled: true, concurrency: 100, maxQueueSize: 1_000 },
		// Graceful shutdown: stop() waits for in-flight requests to finish.
		tracking: { enabled: true, shutdownTimeout: 10_000 },

		validator: true, // fastest-validator, as for config and event envelopes (lib/validator.ts)

		metrics: {
			enabled: true,
			reporter: {
				type: "Prometheus",
				options: {
					port: config.metricsPort,
					path: "/metrics",
					defaultLabels: (registry: { broker: { namespace: string; nodeID: string } }) => ({
						namespace: registry.broker.namespace,
						nodeID: registry.broker.nodeID,
					}),
				},
			},
		},
		// Spans are exported only when a collector is configured; request ids flow either way.
		tracing: config.tracingZipkinUrl
			? {
					enabled: true,
					events: true,
					exporter: { type: "Zipkin", options: { baseURL: config.tracingZipkinUrl } },
					// Spans name the action and the outcome, never what was sent: params carry passwords,
					// codes and tokens, and an error's data can carry a login's mfaToken.
					tags: { action: { params: false, meta: false }, event: { params: false, meta: false } },
					errorFields: ["name", "message", "code", "type"],
				}
			: { enabled: false },

		middlewares: [
			RequestContextMiddleware,
			permissionsMiddleware({ adminRequiresMfa: config.gateway.adminRequiresMfa }),
			BreakerTimeoutsMiddleware,
			runtimeMetricsMiddleware(),
			quietShutdownMiddleware(),
			nodeHealthMiddleware(config.healthPort),
			// Durable, acknowledged event consumption (see mixins/events.mixin.ts).
			Channels.Middleware({
				adapter: new DurableAmqpAdapter({
					amqp: {
						url: config.rabbitmqUrl,
						socketOptions: { noDelay: true },
						// Quorum queues (replicated, for a RabbitMQ cluster) or classic ones, dead-letter queues
						// alike; channels dead-letters by republishing, which works with either type. Classic
						// queues are declared without the argument, as before it existed (an existing queue
						// must be redeclared with the same arguments).
						queueOptions: { durable: true, ...(config.amqpQueueType === "quorum" ? { arguments: { "x-queue-type": "quorum" } } : {}) },
						exchangeOptions: { durable: true },
						messageOptions: { persistent: true },
					},
					// For a subscription without its own; eventHandlersMixin gives each its own (the prefetch
					// of its queue's consumer, lib/events/durable-amqp-adapter.ts).
					maxInFlight: 10,
				}),
				context: true,
			}),
		],
		metadata: { services: config.services },
		...overrides,
	};
}
