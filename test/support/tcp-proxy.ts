/**
 * A TCP proxy on 127.0.0.1 in front of a real server, which a test can take down and bring back
 * on the same port: an outage of that server for the node under test only, without disturbing
 * anyone else who uses the server.
 */
import net from "node:net";
import { PassThrough, Transform } from "node:stream";
import type { AddressInfo } from "node:net";

export class TcpProxy {
	port = 0;
	/** Each new connection reaches the server only after this long (a slow server). */
	latencyMs = 0;
	/** Each chunk a client sends reaches the server this much later (slow even on pooled connections). */
	chunkDelayMs = 0;
	private server?: net.Server;
	private readonly sockets = new Set<net.Socket>();
	private readonly target: { host: string; port: number };

	constructor(target: { host: string; port: number }) {
		this.target = target;
	}

	/** Listens (on the previous port after a `down()`). */
	async up(): Promise<void> {
		const server = net.createServer((client) => {
			this.sockets.add(client);
			client.on("close", () => this.sockets.delete(client));
			client.on("error", () => client.destroy());
			client.pause();
			setTimeout(() => {
				if (client.destroyed) return;
				const upstream = net.connect(this.target.port, this.target.host);
				this.sockets.add(upstream);
				upstream.on("close", () => this.sockets.delete(upstream));
				upstream.on("error", () => client.destroy());
				client.on("close", () => upstream.destroy());
				client.pipe(this.chunkDelayMs ? delayEach(this.chunkDelayMs) : new PassThrough()).pipe(upstream).pipe(client);
				client.resume();
			}, this.latencyMs);
		});
		await new Promise<void>((resolve, reject) => {
			server.once("error", reject);
			server.listen(this.port, "127.0.0.1", () => resolve());
		});
		this.port = (server.address() as AddressInfo).port;
		this.server = server;
	}

	/** Refuses new connections and cuts the open ones. */
	async down(): Promise<void> {
		const server = this.server;
		this.server = undefined;
		for (const s of this.sockets) s.destroy();
		this.sockets.clear();
		if (server) await new Promise((r) => server.close(r));
	}
}

/** Passes every chunk on `ms` later, in order. */
function delayEach(ms: number): Transform {
	return new Transform({ transform: (chunk, _encoding, done) => void setTimeout(() => done(null, chunk), ms) });
}
