/**
 * Makes request timeouts count as circuit-breaker failures.
 *
 * Moleculer's Timeout middleware wraps the CircuitBreaker from the outside, so a call to a node
 * that died without saying so (kill -9, network partition) times out without the breaker ever
 * seeing a failure, and every caller keeps waiting the full timeout until the heartbeat timeout
 * removes the node. User middlewares sit inside the breaker: this one rejects the inner promise
 * at the same deadline, so the breaker records the timeout and opens, and later calls fail fast.
 */
import { Errors } from "moleculer";
import type { Context, Middleware } from "moleculer";

type Handler = (ctx: Context) => unknown;

export const BreakerTimeoutsMiddleware = {
	name: "BreakerTimeouts",
	remoteAction(handler: Handler, action: { name?: string }): Handler {
		return (ctx: Context) => {
			const timeout = ctx.options.timeout ?? 0;
			if (timeout <= 0) return handler(ctx);
			return new Promise((resolve, reject) => {
				const timer = setTimeout(
					() => reject(new Errors.RequestTimeoutError({ action: action.name ?? "", nodeID: ctx.nodeID ?? "" })),
					timeout,
				);
				Promise.resolve(handler(ctx)).then(resolve, reject).finally(() => clearTimeout(timer));
			});
		};
	},
} as unknown as Middleware;
