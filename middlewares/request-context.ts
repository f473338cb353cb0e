/**
 * Carries the request id of the Moleculer context through async code, so every log line written
 * while handling a request (by us or by a library logging through Moleculer) carries it, without
 * passing a logger around. The pino `mixin` in moleculer.config.ts reads the store.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Context, Middleware } from "moleculer";

interface RequestStore {
	requestId: string;
	/** The action, event or channel being handled. */
	handler: string;
}

const storage = new AsyncLocalStorage<RequestStore>();

/** Fields added to every log line: the current request id, when there is one. */
export function logContext(): Record<string, string> {
	const store = storage.getStore();
	return store ? { requestId: store.requestId, handler: store.handler } : {};
}

type Handler = (ctx: Context) => Promise<unknown>;

function withStore(handler: Handler, name: string): Handler {
	return (ctx) => {
		const requestId = ctx.requestID ?? ctx.id;
		if (!requestId) return handler(ctx);
		return storage.run({ requestId, handler: name }, () => handler(ctx));
	};
}

export const RequestContextMiddleware: Middleware = {
	name: "RequestContext",
	localAction: (handler: Handler, action: { name: string }) => withStore(handler, action.name),
	localEvent: (handler: Handler, event: { name: string }) => withStore(handler, event.name),
	// Hook provided by @moleculer/channels for channel handlers that run with a context.
	localChannel: (handler: Handler, channel: { name: string }) => withStore(handler, channel.name),
};
