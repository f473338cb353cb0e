/**
 * A separate node serving auth.v1.AuthService over the gRPC bridge, for tests that must kill or
 * freeze a real server process. Env: NAMESPACE, NODE_ID, RABBITMQ_URL. Prints "READY <address>".
 */
import { ServiceBroker } from "moleculer";
import type { Context } from "moleculer";
import { grpcServerMixin } from "../../mixins/grpc.mixin.ts";

const broker = new ServiceBroker({
	namespace: process.env.NAMESPACE,
	nodeID: process.env.NODE_ID,
	logger: false,
	transporter: { type: "AMQP", options: { url: process.env.RABBITMQ_URL, prefetch: 100, socketOptions: { noDelay: true } } as Record<string, unknown> },
	heartbeatInterval: 2,
	heartbeatTimeout: 6,
});

broker.createService({
	name: "auth",
	mixins: [grpcServerMixin({ proto: "auth/v1/auth.proto", service: "auth.v1.AuthService", methods: { Ping: "ping" } })],
	actions: {
		ping(ctx: Context<{ message: string }>) {
			return { message: ctx.params.message, nodeId: broker.nodeID, serverTimeMs: Date.now() };
		},
	},
});

await broker.start();
console.log(`READY ${(broker.metadata.grpc as Record<string, string>)["auth.v1.AuthService"]}`);
