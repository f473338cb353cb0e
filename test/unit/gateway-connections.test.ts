/**
 * The connection guard on a plain node:http server over loopback: past the cap new connections
 * are closed at once and counted, with one warning per window; slow clients are cut within the
 * bounds (the checking interval is honoured, not Node's 30 s default).
 */
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectionGuard, SLOW_CLIENT_LIMITS } from "../../services/gateway/connections.ts";
import type { ConnectionLimits } from "../../services/gateway/connections.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("ConnectionGuard", () => {
	let server: http.Server | undefined;
	let guard: ConnectionGuard | undefined;
	const sockets: net.Socket[] = [];

	afterEach(async () => {
		for (const s of sockets.splice(0)) s.destroy();
		guard?.stop();
		server?.closeAllConnections();
		await new Promise((r) => server?.close(r));
	});

	async function serve(limits: Partial<ConnectionLimits>, warnEveryMs = 10_000) {
		const counts = { opened: 0, closed: 0, refused: 0, warnings: [] as string[] };
		server = http.createServer((_req, res) => res.end("ok"));
		guard = new ConnectionGuard(
			{ maxConnections: 3, ...SLOW_CLIENT_LIMITS, ...limits },
			{
				opened: () => counts.opened++,
				closed: () => counts.closed++,
				refused: () => counts.refused++,
				warn: (message) => counts.warnings.push(message),
			},
			warnEveryMs,
		);
		guard.attach(server);
		await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
		const port = (server.address() as net.AddressInfo).port;
		const connect = () => {
			const socket = net.connect(port, "127.0.0.1");
			socket.on("error", () => undefined);
			sockets.push(socket);
			return socket;
		};
		return { counts, port, connect };
	}

	it("closes connections past the cap at once, counts them and warns once per window", async () => {
		const { counts, port, connect } = await serve({ maxConnections: 3 }, 200);
		const closedEarly: number[] = [];
		for (let i = 0; i < 10; i++) connect().on("close", () => closedEarly.push(i));
		await sleep(300);
		expect(guard!.size).toBe(3);
		expect(counts.refused).toBe(7);
		expect(closedEarly).toHaveLength(7);
		// The first refusal warns; the rest of its window is one summary line, then silence.
		expect(counts.warnings).toHaveLength(2);
		expect(counts.warnings[1]).toContain("refused 6 more");
		await sleep(300);
		expect(counts.warnings).toHaveLength(2);

		// While full, even a well-behaved client is refused; once the holders leave, it is served.
		await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
		for (const s of sockets.splice(0)) s.destroy();
		await sleep(100);
		expect(guard!.size).toBe(0);
		expect(counts.opened - counts.closed).toBe(0);
		expect(await (await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } })).text()).toBe("ok");
	});

	it("cuts a client that sends no headers within headersTimeout and the checking interval", async () => {
		const { connect } = await serve({ headersTimeoutMs: 300, requestTimeoutMs: 600, checkEveryMs: 100 });
		const started = performance.now();
		const socket = connect();
		const answer = new Promise<string>((resolve) => {
			let data = "";
			socket.on("data", (d: Buffer) => (data += d.toString()));
			socket.on("close", () => resolve(data));
		});
		socket.write("GET / HTTP/1.1\r\nHost: x\r\n");
		expect((await answer).split("\r\n")[0]).toBe("HTTP/1.1 408 Request Timeout");
		expect(performance.now() - started).toBeLessThan(1_500);
	});
});
