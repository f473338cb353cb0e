/**
 * A broker node that hosts no service and opens the Moleculer REPL, so an operator can inspect
 * and call the running cluster: `nodes`, `services`, `call auth.ping`, `call gateway.liveness`.
 * Needs only RABBITMQ_URL (and NAMESPACE if the cluster uses one).
 */
import os from "node:os";
import { ServiceBroker } from "moleculer";
import { brokerOptions } from "../moleculer.config.ts";
import { ConfigError, loadConfig } from "../lib/config.ts";

try {
	const config = loadConfig({ ...process.env, NODE_ID: process.env.NODE_ID ?? `repl-${os.hostname()}-${process.pid}`, METRICS_PORT: "0" }, { services: [] });
	const broker = new ServiceBroker(brokerOptions(config, { logLevel: "warn" }));
	await broker.start();
	broker.repl();
} catch (err) {
	if (!(err instanceof ConfigError)) throw err;
	console.error(err.message);
	process.exit(78);
}
