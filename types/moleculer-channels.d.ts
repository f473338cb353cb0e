// @moleculer/channels ships no type declarations; this covers the part we use.
declare module "@moleculer/channels" {
	import type { Middleware } from "moleculer";
	const Channels: {
		Middleware(options: { adapter: string | { type: string; options?: Record<string, unknown> }; context?: boolean; schemaProperty?: string; sendMethodName?: string }): Middleware;
	};
	export default Channels;
}
