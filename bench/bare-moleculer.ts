/**
 * The floor of the authenticated-GET row: a bare moleculer-web gateway calling an action on
 * another process over the same AMQP transporter settings (prefetch 100, no Nagle), with no
 * authentication, rate limit, metrics or middlewares of ours. Run as two processes:
 * `node bench/bare-moleculer.ts remote NAMESPACE` and `node bench/bare-moleculer.ts gateway NAMESPACE PORT`.
 */
import { ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";

const [role, namespace, port] = process.argv.slice(2);
const broker = new ServiceBroker({
	namespace,
	nodeID: `bare-${role}-${process.pid}`,
	logger: false,
	transporter: { type: "AMQP", options: { url: process.env.RABBITMQ_URL, prefetch: 100, socketOptions: { noDelay: true } } as Record<string, unknown> },
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
