/**
 * Server-Sent Events of in-app alerts: every open stream of a user on this gateway node.
 * Each gateway node receives the notification service's broadcast and writes to its own
 * streams, so a user gets the alert on every tab whichever node holds the connection.
 */
import type { ServerResponse } from "node:http";

const MAX_STREAMS_PER_USER = 10;
const KEEPALIVE_MS = 25_000;

export class AlertStreams {
	private readonly byUser = new Map<string, Set<ServerResponse>>();
	private keepalive?: NodeJS.Timeout;

	start(): void {
		// A comment line keeps proxies and load balancers from closing an idle stream.
		this.keepalive = setInterval(() => this.each((res) => res.write(": keepalive\n\n")), KEEPALIVE_MS);
		this.keepalive.unref();
	}

	/** Opens a stream; the oldest of the user's streams closes beyond the per-user bound. */
	open(userId: string, res: ServerResponse): void {
		const streams = this.byUser.get(userId) ?? new Set();
		this.byUser.set(userId, streams);
		if (streams.size >= MAX_STREAMS_PER_USER) streams.values().next().value?.end();
		res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", Connection: "keep-alive", "X-Accel-Buffering": "no" });
		res.write("retry: 3000\n\n");
		streams.add(res);
		res.on("close", () => {
			streams.delete(res);
			if (streams.size === 0) this.byUser.delete(userId);
		});
	}

	send(userId: string, event: string, data: unknown, id?: string): number {
		const streams = this.byUser.get(userId);
		if (!streams) return 0;
		const frame = `${id ? `id: ${id}\n` : ""}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
		for (const res of streams) res.write(frame);
		return streams.size;
	}

	get size(): number {
		let n = 0;
		for (const s of this.byUser.values()) n += s.size;
		return n;
	}

	close(): void {
		clearInterval(this.keepalive);
		this.each((res) => res.end());
		this.byUser.clear();
	}

	private each(fn: (res: ServerResponse) => void): void {
		for (const streams of this.byUser.values()) for (const res of streams) fn(res);
	}
}
