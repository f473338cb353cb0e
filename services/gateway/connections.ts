/**
 * Bounds on the connections a gateway node holds. Past `maxConnections` Node closes a new
 * connection as soon as it is accepted (the server's 'drop' event): memory stays bounded by the
 * connections a node keeps, which is what set its peak under a flood (docs/reliability.md,
 * overload). Slow clients are bounded too: headers must arrive within 10 s and the whole request
 * within 30 s, so a client trickling bytes (or sending none) cannot hold a slot for long.
 */
import type { Server } from "node:http";
import type { Socket } from "node:net";

export interface ConnectionLimits {
	maxConnections: number;
	headersTimeoutMs: number;
	/** Receiving the whole request, body included (bodies are at most 64 kB, webhooks 1 MB). */
	requestTimeoutMs: number;
	/** An idle keep-alive connection closes after this; a drain waits as long (drain.ts). */
	keepAliveTimeoutMs: number;
	/** How often Node looks for connections past the two timeouts above (its default: 30 s). */
	checkEveryMs: number;
}

export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
export const SLOW_CLIENT_LIMITS: Omit<ConnectionLimits, "maxConnections"> = {
	headersTimeoutMs: 10_000,
	requestTimeoutMs: 30_000,
	keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
	checkEveryMs: 1_000,
};
/** At most one warning per window while connections are refused (a flood is thousands a second). */
const WARN_EVERY_MS = 10_000;

export interface ConnectionObserver {
	opened(): void;
	closed(): void;
	refused(): void;
	warn(message: string, data: Record<string, unknown>): void;
}

export class ConnectionGuard {
	private readonly limits: ConnectionLimits;
	private readonly observer: ConnectionObserver;
	private readonly warnEveryMs: number;
	private open = 0;
	private refusedInWindow = 0;
	private window?: NodeJS.Timeout;

	constructor(limits: ConnectionLimits, observer: ConnectionObserver, warnEveryMs = WARN_EVERY_MS) {
		this.limits = limits;
		this.observer = observer;
		this.warnEveryMs = warnEveryMs;
	}

	/** Applies the limits; call before the server listens (Node reads the checking interval then). */
	attach(server: Server): void {
		server.maxConnections = this.limits.maxConnections;
		server.headersTimeout = this.limits.headersTimeoutMs;
		server.requestTimeout = this.limits.requestTimeoutMs;
		server.keepAliveTimeout = this.limits.keepAliveTimeoutMs;
		// A constructor option in Node's types; the server reads it when it starts listening
		// (test/unit/gateway-connections.test.ts shows a silent client cut within the bound).
		(server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = this.limits.checkEveryMs;
		server.on("connection", (socket: Socket) => {
			this.open++;
			this.observer.opened();
			socket.once("close", () => {
				this.open--;
				this.observer.closed();
			});
		});
		server.on("drop", () => this.refuse());
	}

	/** Connections open now. */
	get size(): number {
		return this.open;
	}

	stop(): void {
		clearTimeout(this.window);
		this.window = undefined;
	}

	private refuse(): void {
		this.observer.refused();
		if (this.window) {
			this.refusedInWindow++;
			return;
		}
		this.observer.warn("refusing connections: this gateway holds its maximum", { maxConnections: this.limits.maxConnections });
		this.window = setTimeout(() => this.endWindow(), this.warnEveryMs).unref();
	}

	/** Reports what the window refused after its first warning; the next refusal then warns at once. */
	private endWindow(): void {
		if (this.refusedInWindow === 0) {
			this.window = undefined;
			return;
		}
		this.observer.warn(`refused ${this.refusedInWindow} more connections in ${this.warnEveryMs / 1000} s`, { maxConnections: this.limits.maxConnections, open: this.open });
		this.refusedInWindow = 0;
		this.window = setTimeout(() => this.endWindow(), this.warnEveryMs).unref();
	}
}
