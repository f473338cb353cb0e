/**
 * During shutdown the AMQP transporter closes its channel while a heartbeat timer may still fire;
 * amqplib then throws IllegalOperationError from inside Moleculer's send path, which surfaces as
 * an unhandled rejection. A packet sent while the node is stopping has nobody left to read it:
 * drop it. Any other send error, and any error while running, still propagates.
 */
import type { Middleware } from "moleculer";

type Send = (topic: string, data: Buffer, meta: object) => Promise<void>;

export function quietShutdownMiddleware(): Middleware {
	let stopping = false;
	const droppable = (err: unknown) => stopping && err instanceof Error && err.name === "IllegalOperationError";
	return {
		name: "QuietShutdown",
		async stopping() {
			stopping = true;
		},
		transporterSend(next: Send): Send {
			return (topic, data, meta) => {
				try {
					return next(topic, data, meta).catch((err: unknown) => {
						if (!droppable(err)) throw err;
					});
				} catch (err) {
					if (droppable(err)) return Promise.resolve();
					throw err;
				}
			};
		},
	} as unknown as Middleware;
}
