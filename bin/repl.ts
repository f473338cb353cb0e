/**
 * A broker node that hosts no service and opens the Moleculer REPL, so an operator can inspect
 * and call the running cluster: `nodes`, `services`, `call auth.ping`, `call gateway.liveness`,
 * plus our own commands (`help` lists them), e.g. `notifications-failed email`.
 * Needs only RABBITMQ_URL (and NAMESPACE if the cluster uses one).
 */
import os from "node:os";
import { ServiceBroker } from "moleculer";
import type { BrokerOptions } from "moleculer";
import { brokerOptions } from "../moleculer.config.ts";
import { ConfigError, loadConfig } from "../lib/config.ts";
import { operatorReplCommands } from "./repl-commands.ts";

try {
	const env = { LOG_LEVEL: "warn", ...process.env, NODE_ID: process.env.NODE_ID ?? `repl-${os.hostname()}-${process.pid}` };
	const config = loadConfig(env, { services: [] });
	// An operator's console: no metrics endpoint of its own.
	const broker = new ServiceBroker(
		brokerOptions(config, {
			metrics: false,
			replOptions: { customCommands: operatorReplCommands({ rabbitmqUrl: config.rabbitmqUrl }) as unknown as NonNullable<BrokerOptions["replOptions"]>["customCommands"] },
		}),
	);
	await broker.start();
	broker.repl();
} catch (err) {
	if (!(err instanceof ConfigError)) throw err;
	console.error(err.message);
	process.exit(78);
}
