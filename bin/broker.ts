/**
 * Starts one broker node hosting the services named in SERVICES (all four by default).
 * The same image runs every node; Kubernetes Deployments differ only in SERVICES.
 *
 *   SERVICES=gateway,auth node bin/broker.ts
 */
import { ServiceBroker } from "moleculer";
import type { ServiceSchema } from "moleculer";
import { brokerOptions } from "../moleculer.config.ts";
import { ConfigError, loadConfig } from "../lib/config.ts";
import type { Config, ServiceName } from "../lib/config.ts";

const EX_CONFIG = 78;

if (process.argv.includes("--help")) {
	console.log(`Usage: node bin/broker.ts
Starts one Moleculer node hosting the services listed in SERVICES (gateway, auth, billing,
notification; default all). Every setting comes from environment variables: see .env.example.`);
	process.exit(0);
}

let config: Config;
try {
	config = loadConfig();
} catch (err) {
	if (!(err instanceof ConfigError)) throw err;
	console.error(err.message);
	process.exit(EX_CONFIG);
}

type ServiceFactory = (config: Config) => ServiceSchema;

// Loaded on demand so a node only imports (and connects to) what it hosts.
async function loadService(name: ServiceName): Promise<ServiceFactory> {
	const module = (await import(`../services/${name}.service.ts`)) as { default: ServiceFactory };
	return module.default;
}

const broker = new ServiceBroker(brokerOptions(config));
for (const name of config.services) broker.createService((await loadService(name))(config));

try {
	await broker.start();
} catch (err) {
	broker.logger.fatal("node failed to start", err);
	await broker.stop().catch(() => undefined);
	process.exit(1);
}
