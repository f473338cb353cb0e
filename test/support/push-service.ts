/**
 * Acting as a browser and its push service, to test Web Push end to end without either:
 *
 * - `createBrowserSubscription(endpoint)` makes what PushManager.subscribe() returns (a P-256
 *   key pair and a 16-byte auth secret) and can decrypt what is sent to it;
 * - `FakePushService` is an HTTP server on 127.0.0.1 that records each push request and answers
 *   201, or the status set for a device (404/410 for an expired subscription);
 * - `decryptAes128gcm` undoes RFC 8291 message encryption (aes128gcm, RFC 8188) with node:crypto;
 * - `verifyVapid` checks the VAPID JWT (RFC 8292) in the Authorization header.
 */
import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, verify } from "node:crypto";
import http from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedPush {
	device: string;
	headers: IncomingHttpHeaders;
	body: Buffer;
	status: number;
}

export class FakePushService {
	readonly received: ReceivedPush[] = [];
	private readonly statuses = new Map<string, number>();
	private readonly server: http.Server;
	origin = "";

	private constructor() {
		this.server = http.createServer((req, res) => {
			const chunks: Buffer[] = [];
			req.on("data", (c: Buffer) => chunks.push(c));
			req.on("end", () => {
				const device = decodeURIComponent((req.url ?? "").replace(/^\/push\//, ""));
				const status = req.method === "POST" && req.url?.startsWith("/push/") ? (this.statuses.get(device) ?? 201) : 404;
				this.received.push({ device, headers: req.headers, body: Buffer.concat(chunks), status });
				res.writeHead(status, { "content-type": "text/plain" });
				res.end(status < 300 ? "" : "subscription gone");
			});
		});
	}

	static async start(): Promise<FakePushService> {
		const service = new FakePushService();
		await new Promise<void>((resolve) => service.server.listen(0, "127.0.0.1", resolve));
		service.origin = `http://127.0.0.1:${(service.server.address() as AddressInfo).port}`;
		return service;
	}

	endpoint(device: string): string {
		return `${this.origin}/push/${encodeURIComponent(device)}`;
	}

	/** From now on, pushes to this device are answered with `status`. */
	respondWith(device: string, status: number): void {
		this.statuses.set(device, status);
	}

	for(device: string): ReceivedPush[] {
		return this.received.filter((r) => r.device === device);
	}

	async close(): Promise<void> {
		this.server.closeAllConnections();
		await new Promise((r) => this.server.close(r));
	}
}

export interface BrowserSubscription {
	subscription: { endpoint: string; keys: { p256dh: string; auth: string } };
	decrypt(body: Buffer): Buffer;
}

/** What a browser's PushManager.subscribe() would give, plus its private half to decrypt with. */
export function createBrowserSubscription(endpoint: string): BrowserSubscription {
	const ecdh = createECDH("prime256v1");
	const publicKey = ecdh.generateKeys();
	const privateKey = ecdh.getPrivateKey();
	const auth = randomBytes(16);
	return {
		subscription: { endpoint, keys: { p256dh: publicKey.toString("base64url"), auth: auth.toString("base64url") } },
		decrypt: (body) => decryptAes128gcm(body, privateKey, publicKey, auth),
	};
}

const TAG_LENGTH = 16;

/**
 * RFC 8291 section 3.4 key derivation and RFC 8188 record decryption. The header is
 * salt (16) | record size (4) | key id length (1) | key id (the sender's public key).
 */
export function decryptAes128gcm(body: Buffer, uaPrivate: Buffer, uaPublic: Buffer, authSecret: Buffer): Buffer {
	const salt = body.subarray(0, 16);
	const recordSize = body.readUInt32BE(16);
	const idLength = body[20]!;
	const asPublic = body.subarray(21, 21 + idLength);
	const ciphertext = body.subarray(21 + idLength);
	if (idLength !== 65 || recordSize < TAG_LENGTH + 2) throw new Error(`unexpected aes128gcm header (idlen ${idLength}, rs ${recordSize})`);

	const ecdh = createECDH("prime256v1");
	ecdh.setPrivateKey(uaPrivate);
	const ecdhSecret = ecdh.computeSecret(asPublic);
	// IKM = HKDF(salt = auth_secret, ikm = ecdh_secret, info = "WebPush: info" || 0x00 || ua_public || as_public)
	const ikm = Buffer.from(hkdfSync("sha256", ecdhSecret, authSecret, Buffer.concat([Buffer.from("WebPush: info\0"), uaPublic, asPublic]), 32));
	const cek = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: aes128gcm\0"), 16));
	const baseNonce = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: nonce\0"), 12));

	const records: Buffer[] = [];
	for (let offset = 0, seq = 0; offset < ciphertext.length; offset += recordSize, seq++) {
		const record = ciphertext.subarray(offset, Math.min(offset + recordSize, ciphertext.length));
		const nonce = Buffer.from(baseNonce);
		// nonce = base nonce XOR the record's sequence number (big-endian, right-aligned)
		nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ seq) >>> 0, 8);
		const decipher = createDecipheriv("aes-128-gcm", cek, nonce);
		decipher.setAuthTag(record.subarray(record.length - TAG_LENGTH));
		const plain = Buffer.concat([decipher.update(record.subarray(0, record.length - TAG_LENGTH)), decipher.final()]);
		// Padding: a delimiter (0x02 in the last record, 0x01 before) followed by zeros.
		let end = plain.length - 1;
		while (end >= 0 && plain[end] === 0) end--;
		const last = offset + recordSize >= ciphertext.length;
		if (plain[end] !== (last ? 2 : 1)) throw new Error("bad padding delimiter");
		records.push(plain.subarray(0, end));
	}
	return Buffer.concat(records);
}

/** Checks `Authorization: vapid t=<jwt>, k=<public key>`; answers the JWT's claims. */
export function verifyVapid(authorization: string | undefined, expectedPublicKey: string): { aud: string; sub: string; exp: number } {
	const match = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(authorization ?? "");
	if (!match) throw new Error(`not a VAPID authorization header: ${authorization}`);
	const [, jwt, k] = match as unknown as [string, string, string];
	if (k !== expectedPublicKey) throw new Error("VAPID key is not the server's");
	const [header, payload, signature] = jwt.split(".") as [string, string, string];
	const raw = Buffer.from(k, "base64url");
	const key = createPublicKey({ key: { kty: "EC", crv: "P-256", x: raw.subarray(1, 33).toString("base64url"), y: raw.subarray(33, 65).toString("base64url") }, format: "jwk" });
	const ok = verify("sha256", Buffer.from(`${header}.${payload}`), { key, dsaEncoding: "ieee-p1363" }, Buffer.from(signature, "base64url"));
	if (!ok) throw new Error("VAPID signature does not verify");
	return JSON.parse(Buffer.from(payload, "base64url").toString()) as { aud: string; sub: string; exp: number };
}
