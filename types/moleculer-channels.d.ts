// @moleculer/channels ships no type declarations for its CommonJS entry; this covers the part we use.
declare module "@moleculer/channels" {
	import type { Middleware } from "moleculer";
	/** The AMQP adapter: `channel` is its amqplib channel once `tryConnect` has resolved. */
	class AmqpAdapter {
		constructor(options: Record<string, unknown>);
		channel: unknown;
		tryConnect(): Promise<void>;
	}
	const Channels: {
		Middleware(options: { adapter: string | { type: string; options?: Record<string, unknown> } | AmqpAdapter; context?: boolean; schemaProperty?: string; sendMethodName?: string }): Middleware;
		Adapters: { AMQP: typeof AmqpAdapter };
	};
	export default Channels;
}
