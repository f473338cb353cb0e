/**
 * The MongoDB client watchdog (lib/mongo.ts) on the real MongoDB-wire server. A TCP proxy in front
 * of it freezes the connections the client already holds while new ones still get through: what a
 * FerretDB restart left one billing node with in the chaos suite. The watchdog reopens the client
 * and the same Db object works again; when the server itself is unreachable it leaves the client be.
 */
import net from "node:net";
import type { AddressInfo } from "node:net";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { watchMongoClient } from "../../lib/mongo.ts";
import { eventually, testEnv, uniqueId } from "../support/infra.ts";

/** Forwards to the server; `freeze()` silently drops the bytes of every connection open now. */
class FreezingProxy {
	port = 0;
	refuseNew = false;
	private server?: net.Server;
	private readonly pairs = new Set<{ frozen: boolean; sockets: net.Socket[] }>();
	private readonly target: { host: string; port: number };

	constructor(target: { host: string; port: number }) {
		this.target = target;
	}

	async listen(): Promise<void> {
		this.server = net.createServer((client) => {
			if (this.refuseNew) return void client.destroy();
			const upstream = net.connect(this.target.port, this.target.host);
			const pair = { frozen: false, sockets: [client, upstream] };
			this.pairs.add(pair);
			client.on("data", (d) => void (pair.frozen || upstream.write(d)));
			upstream.on("data", (d) => void (pair.frozen || client.write(d)));
			for (const s of pair.sockets) {
				s.on("error", () => undefined);
				s.on("close", () => (pair.sockets.forEach((x) => x.destroy()), this.pairs.delete(pair)));
			}
		});
		await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
		this.port = (this.server.address() as AddressInfo).port;
	}

	freeze(): void {
		for (const pair of this.pairs) pair.frozen = true;
	}

	async close(): Promise<void> {
		for (const pair of this.pairs) pair.sockets.forEach((s) => s.destroy());
		await new Promise((r) => this.server?.close(r));
	}
}

describe("MongoDB client watchdog", () => {
	const direct = new URL(testEnv(uniqueId("watchdog")).MONGO_URL!);
	let proxy: FreezingProxy;
	let url: string;

	beforeAll(async () => {
		proxy = new FreezingProxy({ host: direct.hostname, port: Number(direct.port) });
		await proxy.listen();
		const viaProxy = new URL(direct);
		viaProxy.port = String(proxy.port);
		url = viaProxy.toString();
	});
	afterAll(async () => {
		await proxy.close();
	});

	const pingWithin = (client: MongoClient, ms: number) =>
		Promise.race([client.db().command({ ping: 1 }).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), ms))]);

	it("reopens a client whose connections stopped answering while new ones get through", async () => {
		// One pooled connection: once it is frozen, every operation of this client waits on it.
		const client = new MongoClient(url, { maxPoolSize: 1, retryWrites: false, serverSelectionTimeoutMS: 2_000 });
		const db = client.db();
		const resets: number[] = [];
		let failedPings = 0;
		try {
			await db.collection("notes").insertOne({ _id: "kept" as never, text: "still here" });
			proxy.freeze();
			expect(await pingWithin(client, 500)).toBe(false);
			const watchdog = watchMongoClient(client, url, { everyMs: 200, failures: 3, timeoutMs: 500, onPingFailed: () => void failedPings++, onReset: () => void resets.push(Date.now()) });
			try {
				await eventually(() => pingWithin(client, 500), 10_000, "the client answering again");
			} finally {
				watchdog.stop();
			}
			expect(resets).toHaveLength(1);
			expect(failedPings).toBeGreaterThanOrEqual(3);
			expect(await db.collection("notes").findOne({ _id: "kept" as never })).toMatchObject({ text: "still here" });
		} finally {
			await db.dropDatabase().catch(() => undefined);
			await client.close();
		}
	});

	it("leaves the client alone while the server cannot be reached at all", async () => {
		const client = new MongoClient(url, { maxPoolSize: 2, retryWrites: false, serverSelectionTimeoutMS: 2_000 });
		let failedPings = 0;
		let resets = 0;
		try {
			await client.db().command({ ping: 1 });
			proxy.freeze();
			proxy.refuseNew = true;
			const watchdog = watchMongoClient(client, url, { everyMs: 100, failures: 3, timeoutMs: 300, onPingFailed: () => void failedPings++, onReset: () => void resets++ });
			await eventually(async () => failedPings >= 6, 10_000, "six failed pings");
			watchdog.stop();
			expect(resets).toBe(0);
		} finally {
			proxy.refuseNew = false;
			await client.close();
		}
	});
});
