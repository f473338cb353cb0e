/**
 * Carries the request id of the Moleculer context through async code, so every log line written
 * while handling a request (by us or by a library logging through Moleculer) carries it and its
 * W3C trace id (lib/trace-context.ts), without passing a logger around. The pino `mixin` in
 * moleculer.config.ts reads the store.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Context, Middleware } from "moleculer";
import { traceIdOf } from "../lib/trace-context.ts";

interface RequestStore {
	requestId: string;
	/** Derived when a line is first logged: most handlers log nothing, and deriving it may hash. */
	traceId?: string;
	/** The action, event or channel being handled. */
	handler: string;
}

const storage = new AsyncLocalStorage<RequestStore>();

/** Fields added to every log line: the current request and trace ids, when there are some. */
export function logContext(): Record<string, string> {
	const store = storage.getStore();
	if (!store) return {};
	store.traceId ??= traceIdOf(store.requestId);
	return { requestId: store.requestId, traceId: store.traceId, handler: store.handler };
}

type Handler = (ctx: Context, ...rest: unknown[]) => unknown;

// Every argument is passed on: a channel handler also gets the raw message (its redelivery count).
function withStore(handler: Handler, name = "?"): Handler {
	return (ctx: Context, ...rest: unknown[]) => {
		const requestId = ctx.requestID ?? ctx.id;
		if (!requestId) return handler(ctx, ...rest);
		return storage.run({ requestId, handler: name }, () => handler(ctx, ...rest));
	};
}

type Named = { name?: string };

export const RequestContextMiddleware = {
	name: "RequestContext",
	localAction: (handler: Handler, action: Named) => withStore(handler, action.name),
	localEvent: (handler: Handler, event: Named) => withStore(handler, event.name),
	// Hook provided by @moleculer/channels for channel handlers that run with a context.
	localChannel: (handler: Handler, channel: Named) => withStore(handler, channel.name),
} as unknown as Middleware;
