/**
 * The floor of the authenticated-GET row: a bare moleculer-web gateway calling an action on
 * another process with the same AMQP settings (prefetch 100, no Nagle), with no authentication,
 * rate limit, metrics or middlewares of ours; over Moleculer's stock AMQP transporter or over ours,
 * which batches packets (lib/batching-amqp-transporter.ts). Run as two processes:
 * `node bench/bare-moleculer.ts remote NAMESPACE stock|batching` and
 * `node bench/bare-moleculer.ts gateway NAMESPACE stock|batching PORT`.
 */
import { ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";
import { BatchingAmqpTransporter } from "../lib/batching-amqp-transporter.ts";

const [role, namespace, transporter, port] = process.argv.slice(2);
const amqp = { url: process.env.RABBITMQ_URL, prefetch: 100, socketOptions: { noDelay: true } };
const broker = new ServiceBroker({
	namespace,
	nodeID: `bare-${role}-${process.pid}`,
	logger: false,
	transporter: transporter === "batching" ? new BatchingAmqpTransporter(amqp) : { type: "AMQP", options: amqp },
});
if (role === "remote") {
	broker.createService({ name: "bare", actions: { hello: () => ({ items: [], nextCursor: null }) } });
} else {
	broker.createService({ name: "api", mixins: [ApiGateway], settings: { port: Number(port), ip: "127.0.0.1", routes: [{ path: "/", aliases: { "GET hello": "bare.hello" } }] } });
}
await broker.start();
if (role === "gateway") await broker.waitForServices(["bare"], 10_000);
process.stdout.write("up\n");
process.on("SIGTERM", () => void broker.stop().then(() => process.exit(0)));
